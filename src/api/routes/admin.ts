import Router from '@koa/router';
import { z } from 'zod';
import type { AdminService } from '../admin.js';
import { requireAdmin } from '../auth.js';
import { route } from '../documented-route.js';
import { ApiError, echo } from '../errors.js';
import { adminOrderSchema, adminPaymentSchema, adminSaleSchema, pageSchema, saleSchema, saleStatsSchema } from '../response-schemas.js';
import { adminOrdersQuerySchema, adminPaymentsQuerySchema, adminSalesQuerySchema, skuSchema } from '../schemas.js';

/**
 * The operators' routes under /api/admin (admin bearer token): sale stats, orders, payments, the
 * sales list, and closing a sale early. The token is checked before anything else is read.
 */
export function adminRoutes(deps: { admin: AdminService; adminToken: string }): Router {
  const { admin } = deps;
  const router = new Router();

  /** A SKU from the path; a malformed one cannot name a sale, so it is 404 like GET /api/sales/:sku. */
  const pathSku = (raw: string | undefined): string => {
    const sku = skuSchema.safeParse(raw);
    if (!sku.success) throw new ApiError(404, 'SKU_NOT_FOUND', `no sale for sku ${echo(raw ?? '')}`);
    return sku.data;
  };
  const skuParam = z.object({ sku: skuSchema });
  const listErrors = { 400: { codes: ['INVALID_REQUEST' as const] }, 401: { codes: ['UNAUTHORIZED' as const] } };
  const saleErrors = { 401: { codes: ['UNAUTHORIZED' as const] }, 404: { codes: ['SKU_NOT_FOUND' as const] } };

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/sales',
      operationId: 'adminListSales',
      summary: 'The sales, newest first (keyset-paged)',
      tag: 'admin',
      auth: 'admin',
      query: adminSalesQuerySchema,
      responses: { 200: { description: 'A page of sales', schema: pageSchema(adminSaleSchema, 'AdminSalesPage') } },
      errors: listErrors,
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.listSales(adminSalesQuerySchema.parse(ctx.query));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/sales/:sku/stats',
      operationId: 'adminSaleStats',
      summary: 'Redis counters, MySQL orders by status, running workflows and the drift between them',
      tag: 'admin',
      auth: 'admin',
      params: skuParam,
      responses: { 200: { description: 'The sale seen from every store', schema: saleStatsSchema } },
      errors: saleErrors,
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.saleStats(pathSku(ctx.params.sku));
    },
  );

  route(
    router,
    {
      method: 'post',
      path: '/api/admin/sales/:sku/close',
      operationId: 'adminCloseSale',
      summary: 'Close a sale now: no new checkouts; open orders run to their end (idempotent)',
      tag: 'admin',
      auth: 'admin',
      params: skuParam,
      responses: { 200: { description: 'The sale with its new end', schema: saleSchema } },
      errors: saleErrors,
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.closeSale(pathSku(ctx.params.sku));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/orders',
      operationId: 'adminListOrders',
      summary: "A sale's orders, optionally of one status, newest first (keyset-paged)",
      tag: 'admin',
      auth: 'admin',
      query: adminOrdersQuerySchema,
      responses: { 200: { description: 'A page of orders', schema: pageSchema(adminOrderSchema, 'AdminOrdersPage') } },
      errors: { ...listErrors, 404: { codes: ['SKU_NOT_FOUND'] } },
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.listOrders(adminOrdersQuerySchema.parse(ctx.query));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/payments',
      operationId: 'adminListPayments',
      summary: 'Payments of one outcome, oldest first (REFUND_REQUIRED: the refunds to make)',
      tag: 'admin',
      auth: 'admin',
      query: adminPaymentsQuerySchema,
      responses: { 200: { description: 'A page of payments', schema: pageSchema(adminPaymentSchema, 'AdminPaymentsPage') } },
      errors: listErrors,
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.listPayments(adminPaymentsQuerySchema.parse(ctx.query));
    },
  );
  return router;
}
