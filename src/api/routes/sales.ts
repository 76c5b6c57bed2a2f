import Router from '@koa/router';
import { skuNotFound, type SalesService } from '../../sales/sales-service.js';
import { requireAdmin } from '../auth.js';
import { saleSchema } from '../response-schemas.js';
import { route } from '../route.js';
import { createSaleSchema, skuParams } from '../schemas.js';

/** POST /api/sales (admin) and GET /api/sales/:sku. */
export function salesRoutes(deps: { sales: SalesService; adminToken: string }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'post',
      path: '/api/sales',
      operationId: 'createSale',
      summary: 'Put a SKU on sale (MySQL and Redis)',
      description: 'The window is optional: without startsAt the sale is open at once, without endsAt it never closes.',
      tag: 'sales',
      auth: 'admin',
      body: createSaleSchema,
      responses: { 201: { description: 'The sale, as GET /api/sales/{sku} shows it', schema: saleSchema } },
      errors: {
        400: { codes: ['INVALID_REQUEST'] },
        401: { codes: ['UNAUTHORIZED'] },
        409: { codes: ['SALE_EXISTS'] },
      },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const sale = await deps.sales.create(input.body());
      ctx.status = 201;
      ctx.body = sale;
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/sales/:sku',
      operationId: 'getSale',
      summary: 'A sale with its live stock counts',
      tag: 'sales',
      params: skuParams,
      responses: { 200: { description: 'The sale', schema: saleSchema } },
      errors: { 404: { codes: ['SKU_NOT_FOUND'] } },
    },
    async (ctx, input) => {
      const params = input.params();
      const sale = params ? await deps.sales.get(params.sku) : null;
      if (!sale) throw skuNotFound(ctx.params.sku ?? '');
      ctx.body = sale;
    },
  );
  return router;
}
