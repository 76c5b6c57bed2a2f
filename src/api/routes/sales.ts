import Router from '@koa/router';
import { requireAdmin } from '../auth.js';
import { ApiError, echo } from '../errors.js';
import { jsonBody } from '../http.js';
import type { SalesService } from '../sales.js';
import { createSaleSchema, skuSchema } from '../schemas.js';

/** POST /api/sales (admin) and GET /api/sales/:sku. */
export function salesRoutes(deps: { sales: SalesService; adminToken: string }): Router {
  const router = new Router();
  router.post('/api/sales', async (ctx) => {
    requireAdmin(ctx, deps.adminToken);
    const sale = await deps.sales.create(createSaleSchema.parse(jsonBody(ctx)));
    ctx.status = 201;
    ctx.body = sale;
  });

  router.get('/api/sales/:sku', async (ctx) => {
    const sku = skuSchema.safeParse(ctx.params.sku);
    const sale = sku.success ? await deps.sales.get(sku.data) : null;
    if (!sale) throw new ApiError(404, 'SKU_NOT_FOUND', `no sale for sku ${echo(ctx.params.sku ?? '')}`);
    ctx.body = sale;
  });
  return router;
}
