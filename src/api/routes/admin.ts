import Router from '@koa/router';
import type { AdminService } from '../admin.js';
import { requireAdmin } from '../auth.js';
import { ApiError, echo } from '../errors.js';
import { adminOrdersQuerySchema, adminPaymentsQuerySchema, adminSalesQuerySchema, skuSchema } from '../schemas.js';

/**
 * The operators' routes under /api/admin (admin bearer token): sale stats, orders, payments, the
 * sales list, and closing a sale early. The token is checked before anything else is read.
 */
export function adminRoutes(deps: { admin: AdminService; adminToken: string }): Router {
  const { admin } = deps;
  const router = new Router({ prefix: '/api/admin' });
  router.use(async (ctx, next) => {
    requireAdmin(ctx, deps.adminToken);
    await next();
  });

  /** A SKU from the path; a malformed one cannot name a sale, so it is 404 like GET /api/sales/:sku. */
  const pathSku = (raw: string | undefined): string => {
    const sku = skuSchema.safeParse(raw);
    if (!sku.success) throw new ApiError(404, 'SKU_NOT_FOUND', `no sale for sku ${echo(raw ?? '')}`);
    return sku.data;
  };

  router.get('/sales', async (ctx) => {
    ctx.body = await admin.listSales(adminSalesQuerySchema.parse(ctx.query));
  });
  router.get('/sales/:sku/stats', async (ctx) => {
    ctx.body = await admin.saleStats(pathSku(ctx.params.sku));
  });
  router.post('/sales/:sku/close', async (ctx) => {
    ctx.body = await admin.closeSale(pathSku(ctx.params.sku));
  });
  router.get('/orders', async (ctx) => {
    ctx.body = await admin.listOrders(adminOrdersQuerySchema.parse(ctx.query));
  });
  router.get('/payments', async (ctx) => {
    ctx.body = await admin.listPayments(adminPaymentsQuerySchema.parse(ctx.query));
  });
  return router;
}
