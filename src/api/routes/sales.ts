import Router from '@koa/router';
import { z } from 'zod';
import { requireAdmin } from '../auth.js';
import { route } from '../documented-route.js';
import { ApiError, echo } from '../errors.js';
import { jsonBody } from '../http.js';
import { saleSchema } from '../response-schemas.js';
import type { SalesService } from '../sales.js';
import { createSaleSchema, skuSchema } from '../schemas.js';

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
      errors: { 400: { codes: ['INVALID_REQUEST'] }, 401: { codes: ['UNAUTHORIZED'] }, 409: { codes: ['SALE_EXISTS'] } },
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      const sale = await deps.sales.create(createSaleSchema.parse(jsonBody(ctx)));
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
      params: z.object({ sku: skuSchema }),
      responses: { 200: { description: 'The sale', schema: saleSchema } },
      errors: { 404: { codes: ['SKU_NOT_FOUND'] } },
    },
    async (ctx) => {
      const sku = skuSchema.safeParse(ctx.params.sku);
      const sale = sku.success ? await deps.sales.get(sku.data) : null;
      if (!sale) throw new ApiError(404, 'SKU_NOT_FOUND', `no sale for sku ${echo(ctx.params.sku ?? '')}`);
      ctx.body = sale;
    },
  );
  return router;
}
