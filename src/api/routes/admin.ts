import Router from '@koa/router';
import type { AdminService } from '../../sales/admin-service.js';
import type { WorkerFiguresBoard } from '../../redis/worker-figures.js';
import type { OrderEventFeed } from '../../order-events/order-events.js';
import type { OperatorTokens } from '../auth.js';
import {
  adminOrderPaymentsSchema,
  adminOrderSchema,
  adminPaymentSchema,
  adminSaleSchema,
  saleStatsSchema,
} from '../../sales/admin-views.js';
import { saleSchema } from '../../sales/sale-view.js';
import { pageSchema } from '../../infra/schema-fields.js';
import { workerFiguresSchema } from '../../redis/worker-figures.js';
import { deploymentStatusSchema } from '../../infra/worker-deployments.js';
import { smokeOrderResultSchema } from '../../order/smoke-order.js';
import { orderEventPageSchema } from '../../order-events/order-events.js';
import { route } from '../route.js';
import {
  adminOrdersQuerySchema,
  adminPaymentsQuerySchema,
  adminSalesQuerySchema,
  orderEventsQuerySchema,
  orderParams,
  pathSku,
  skuParams,
  smokeOrderRequestSchema,
} from '../schemas.js';
import { Refusal } from '../../infra/refusal.js';
import type { DeploymentStatus } from '../../infra/worker-deployments.js';
import type { SmokeOrderResult } from '../../order/smoke-order.js';

/** The deployment's status, and a smoke order pinned to one of its builds (`npm run rollout`'s). */
export interface AdminDeployment {
  status(): Promise<DeploymentStatus>;
  smokeOrder(buildId: string): Promise<SmokeOrderResult>;
}

/** The operators' routes under /api/admin; the token is checked before anything else is read. */
export function adminRoutes(deps: {
  admin: AdminService;
  operators: OperatorTokens;
  workers: Pick<WorkerFiguresBoard, 'read'>;
  /** Null: unversioned workers. */
  deployment: AdminDeployment | null;
  /** GET /api/admin/events: the order events feed, for the merchant's systems to catch up from (docs/api.md). */
  feed: Pick<OrderEventFeed, 'read'>;
}): Router {
  const { admin } = deps;
  const router = new Router();
  const asAdmin = { tag: 'admin', ...deps.operators.admin };

  route(router, {
    at: 'GET /api/admin/sales',
    operationId: 'adminListSales',
    summary: 'The sales, newest first (keyset-paged)',
    ...asAdmin,
    query: adminSalesQuerySchema,
    responses: { 200: { description: 'A page of sales', schema: pageSchema(adminSaleSchema, 'AdminSalesPage') } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED'],
    async handler(ctx, input) {
      ctx.body = await admin.listSales(input.query());
    },
  });

  route(router, {
    at: 'GET /api/admin/sales/:sku/stats',
    operationId: 'adminSaleStats',
    summary: 'Redis counters, MySQL orders by status, running workflows and the drift between them',
    ...asAdmin,
    params: skuParams,
    responses: { 200: { description: 'The sale seen from every store', schema: saleStatsSchema } },
    errors: ['UNAUTHORIZED', 'SKU_NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await admin.saleStats(pathSku(ctx, input.params()));
    },
  });

  route(router, {
    at: 'POST /api/admin/sales/:sku/close',
    operationId: 'adminCloseSale',
    summary: 'Close a sale now: no new checkouts; open orders run to their end (idempotent)',
    ...asAdmin,
    params: skuParams,
    responses: { 200: { description: 'The sale with its new end', schema: saleSchema } },
    errors: ['UNAUTHORIZED', 'SKU_NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await admin.closeSale(pathSku(ctx, input.params()));
    },
  });

  route(router, {
    at: 'GET /api/admin/orders',
    operationId: 'adminListOrders',
    summary: 'Orders, of a sale, a shopper or both, optionally of one status, newest first (keyset-paged)',
    ...asAdmin,
    query: adminOrdersQuerySchema,
    responses: { 200: { description: 'A page of orders', schema: pageSchema(adminOrderSchema, 'AdminOrdersPage') } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'SKU_NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await admin.listOrders(input.query());
    },
  });

  route(router, {
    at: 'GET /api/admin/payments',
    operationId: 'adminListPayments',
    summary: 'Payments of one outcome, oldest first (REFUND_REQUIRED: the refunds to make)',
    ...asAdmin,
    query: adminPaymentsQuerySchema,
    responses: {
      200: { description: 'A page of payments', schema: pageSchema(adminPaymentSchema, 'AdminPaymentsPage') },
    },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED'],
    async handler(ctx, input) {
      ctx.body = await admin.listPayments(input.query());
    },
  });

  route(router, {
    at: 'GET /api/admin/orders/:orderNo/payments',
    operationId: 'adminOrderPayments',
    summary: "One order's payment events (refunds with their provider ids) and failed payment attempts",
    ...asAdmin,
    params: orderParams,
    responses: { 200: { description: "The order's payments", schema: adminOrderPaymentsSchema } },
    errors: ['UNAUTHORIZED', 'ORDER_NOT_FOUND'],
    errorDescriptions: { 404: '`ORDER_NOT_FOUND`: no such order, and nothing paid for it' },
    async handler(ctx, input) {
      const params = input.params();
      if (!params) throw new Refusal('ORDER_NOT_FOUND', `no order ${ctx.params.orderNo ?? ''}`);
      ctx.body = await admin.orderPayments(params.orderNo);
    },
  });

  route(router, {
    at: 'GET /api/admin/workers',
    operationId: 'adminWorkers',
    summary:
      "The workers' workflow cache: size, bound, hits, misses and forced evictions of each worker still reporting",
    description:
      'Each worker process publishes its figures every 5 s; one that stopped is left out within 15 s (the list may be empty).',
    ...asAdmin,
    responses: { 200: { description: 'The workers reporting', schema: workerFiguresSchema } },
    errors: ['UNAUTHORIZED'],
    async handler(ctx) {
      ctx.body = { workers: await deps.workers.read() };
    },
  });

  route(router, {
    at: 'GET /api/admin/deployment',
    operationId: 'adminDeployment',
    summary: "The workers' builds during a rollout: which is current, and the orders still open on each",
    description:
      'An old build can stop once it shows DRAINED (docs/operations.md, "Deploying during a sale"). 404 ' +
      'NOT_VERSIONED where the workers run unversioned (WORKER_VERSIONING=false).',
    ...asAdmin,
    responses: { 200: { description: 'The deployment and its versions', schema: deploymentStatusSchema } },
    errors: ['UNAUTHORIZED', 'NOT_VERSIONED', 'UNAVAILABLE'],
    async handler(ctx) {
      if (!deps.deployment) throw new Refusal('NOT_VERSIONED', 'the workers run unversioned (WORKER_VERSIONING=false)');
      ctx.body = await deps.deployment.status();
    },
  });

  route(router, {
    at: 'POST /api/admin/deployment/smoke-orders',
    operationId: 'adminSmokeOrder',
    summary: 'A smoke order on a build before it takes traffic: reserved, persisted, cancelled, pinned to the build',
    description:
      '`npm run rollout -- promote` asks it of the API, so the rollout needs only Temporal and this API. It sells ' +
      'from its own sale (ROLLOUT-SMOKE) and gives the unit back; up to 30 s.',
    ...asAdmin,
    body: smokeOrderRequestSchema,
    responses: {
      201: { description: 'The smoke order closed CANCELLED on the build', schema: smokeOrderResultSchema },
    },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'NOT_VERSIONED', 'SMOKE_ORDER_FAILED'],
    async handler(ctx, input) {
      if (!deps.deployment) throw new Refusal('NOT_VERSIONED', 'the workers run unversioned (WORKER_VERSIONING=false)');
      ctx.status = 201;
      ctx.body = await deps.deployment.smokeOrder(input.body().buildId);
    },
  });

  route(router, {
    at: 'GET /api/admin/events',
    operationId: 'listOrderEvents',
    summary: 'Order events after a cursor, in the order they committed; none skipped, none held back',
    tag: 'admin',
    ...deps.operators.eventsReader,
    query: orderEventsQuerySchema,
    responses: { 200: { description: 'The events ready after the cursor', schema: orderEventPageSchema } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'CURSOR_EXPIRED'],
    async handler(ctx, input) {
      ctx.body = await deps.feed.read(input.query());
    },
  });
  return router;
}
