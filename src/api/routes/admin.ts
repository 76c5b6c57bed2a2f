import Router from '@koa/router';
import type { AdminService } from '../../sales/admin-service.js';
import type { WorkerFiguresBoard } from '../../inventory/worker-figures.js';
import { skuNotFound } from '../../sales/sales-service.js';
import { requireAdmin } from '../auth.js';
import {
  adminOrderPaymentsSchema,
  adminOrderSchema,
  adminPaymentSchema,
  adminSaleSchema,
  pageSchema,
  saleSchema,
  saleStatsSchema,
  workerFiguresSchema,
  deploymentStatusSchema,
} from '../response-schemas.js';
import { route } from '../route.js';
import {
  adminOrdersQuerySchema,
  adminPaymentsQuerySchema,
  adminSalesQuerySchema,
  orderParams,
  skuParams,
} from '../schemas.js';
import { Refusal } from '../../infra/refusal.js';
import type { DeploymentStatus } from '../../infra/worker-deployments.js';

/** The operators' routes under /api/admin; the admin token is checked before anything else is read. */
export function adminRoutes(deps: {
  admin: AdminService;
  adminToken: string;
  workers: Pick<WorkerFiguresBoard, 'read'>;
  /** Null: unversioned workers. */
  deployment: { status(): Promise<DeploymentStatus> } | null;
}): Router {
  const { admin } = deps;
  const router = new Router();

  // A malformed SKU names no sale: 404, like GET /api/sales/:sku.
  const pathSku = (ctx: { params: Record<string, string | undefined> }, params: { sku: string } | null): string => {
    if (!params) throw skuNotFound(ctx.params.sku ?? '');
    return params.sku;
  };
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
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.listSales(input.query());
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
      params: skuParams,
      responses: { 200: { description: 'The sale seen from every store', schema: saleStatsSchema } },
      errors: saleErrors,
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.saleStats(pathSku(ctx, input.params()));
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
      params: skuParams,
      responses: { 200: { description: 'The sale with its new end', schema: saleSchema } },
      errors: saleErrors,
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.closeSale(pathSku(ctx, input.params()));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/orders',
      operationId: 'adminListOrders',
      summary: 'Orders, of a sale, a shopper or both, optionally of one status, newest first (keyset-paged)',
      tag: 'admin',
      auth: 'admin',
      query: adminOrdersQuerySchema,
      responses: { 200: { description: 'A page of orders', schema: pageSchema(adminOrderSchema, 'AdminOrdersPage') } },
      errors: { ...listErrors, 404: { codes: ['SKU_NOT_FOUND'] } },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.listOrders(input.query());
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
      responses: {
        200: { description: 'A page of payments', schema: pageSchema(adminPaymentSchema, 'AdminPaymentsPage') },
      },
      errors: listErrors,
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await admin.listPayments(input.query());
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/orders/:orderNo/payments',
      operationId: 'adminOrderPayments',
      summary: "One order's payment events (refunds with their provider ids) and failed payment attempts",
      tag: 'admin',
      auth: 'admin',
      params: orderParams,
      responses: { 200: { description: "The order's payments", schema: adminOrderPaymentsSchema } },
      errors: {
        401: { codes: ['UNAUTHORIZED'] },
        404: { codes: ['ORDER_NOT_FOUND'], description: '`ORDER_NOT_FOUND`: no such order, and nothing paid for it' },
      },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const params = input.params();
      if (!params) throw new Refusal('ORDER_NOT_FOUND', `no order ${ctx.params.orderNo ?? ''}`);
      ctx.body = await admin.orderPayments(params.orderNo);
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/workers',
      operationId: 'adminWorkers',
      summary:
        "The workers' workflow cache: size, bound, hits, misses and forced evictions of each worker still reporting",
      description:
        'Each worker process publishes its figures every 5 s; one that stopped is left out within 15 s (the list may be empty).',
      tag: 'admin',
      auth: 'admin',
      responses: { 200: { description: 'The workers reporting', schema: workerFiguresSchema } },
      errors: { 401: { codes: ['UNAUTHORIZED'] } },
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = { workers: await deps.workers.read() };
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/admin/deployment',
      operationId: 'adminDeployment',
      summary: "The workers' builds during a rollout: which is current, and the orders still open on each",
      description:
        'An old build can stop once it shows DRAINED (docs/operations.md, "Deploying during a sale"). 404 ' +
        'NOT_VERSIONED where the workers run unversioned (WORKER_VERSIONING=false).',
      tag: 'admin',
      auth: 'admin',
      responses: { 200: { description: 'The deployment and its versions', schema: deploymentStatusSchema } },
      errors: { 401: { codes: ['UNAUTHORIZED'] }, 404: { codes: ['NOT_VERSIONED'] }, 503: { codes: ['UNAVAILABLE'] } },
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      if (!deps.deployment) throw new Refusal('NOT_VERSIONED', 'the workers run unversioned (WORKER_VERSIONING=false)');
      ctx.body = await deps.deployment.status();
    },
  );
  return router;
}
