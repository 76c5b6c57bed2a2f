/**
 * The Koa application: routes of PRODUCT.md §3. Handlers validate, call one service, map errors.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import Koa, { type Context } from 'koa';
import type { Pool } from 'mysql2/promise';
import type { AppConfig } from '../config/index.js';
import type { Logger } from '../infra/logger.js';
import { RedisInventory } from '../inventory/redis-inventory.js';
import { ShopperAuth, requireAdmin } from './auth.js';
import { CheckoutService } from './checkout.js';
import { ApiError, errorMiddleware } from './errors.js';
import { checkHealth } from './health.js';
import { OrderReader } from './orders.js';
import { PaymentWebhook } from './payments.js';
import { SalesService } from './sales.js';
import { SoldOutCache } from './sold-out-cache.js';
import {
  checkoutSchema,
  createSaleSchema,
  devLoginSchema,
  idempotencyKeySchema,
  orderNoSchema,
  paymentWebhookSchema,
  simulatePaymentSchema,
  skuSchema,
} from './schemas.js';
import { signWebhook } from './webhook-signature.js';

export interface ApiDeps {
  config: AppConfig;
  redis: Redis;
  pool: Pool;
  temporal: Client;
  logger: Logger;
  /** Fed by a subscription the caller owns (see startApi); without one it never caches. */
  soldOut?: SoldOutCache;
}

const BODY_LIMIT = '16kb';
const DEMO_PAGE = join(dirname(fileURLToPath(import.meta.url)), 'public', 'index.html');

export function createApp(deps: ApiDeps): Koa {
  const { config, redis, pool, temporal, logger } = deps;
  const inventory = new RedisInventory(redis);
  const auth = new ShopperAuth(config.jwtSecret);
  const orders = new OrderReader(temporal, pool);
  const sales = new SalesService(pool, inventory);
  const checkout = new CheckoutService({ config, inventory, temporal, logger, soldOut: deps.soldOut ?? new SoldOutCache() });
  const webhook = new PaymentWebhook({ config, pool, temporal, orders });

  const router = new Router();

  router.get('/healthz', async (ctx) => {
    const report = await checkHealth({ redis, pool, temporal });
    ctx.status = report.ok ? 200 : 503;
    ctx.body = report.ok
      ? { status: 'ok', checks: report.checks }
      : { error: { code: 'UNAVAILABLE', message: `down: ${report.down.join(', ')}` }, checks: report.checks };
  });

  router.post('/api/sales', async (ctx) => {
    requireAdmin(ctx, config.adminToken);
    const sale = await sales.create(createSaleSchema.parse(jsonBody(ctx)));
    ctx.status = 201;
    ctx.body = sale;
  });

  router.get('/api/sales/:sku', async (ctx) => {
    const sku = skuSchema.safeParse(ctx.params.sku);
    const sale = sku.success ? await sales.get(sku.data) : null;
    if (!sale) throw new ApiError(404, 'SKU_NOT_FOUND', `no sale for sku ${ctx.params.sku}`);
    ctx.body = sale;
  });

  router.post('/api/auth/dev-login', async (ctx) => {
    if (!config.authDevLogin) throw new ApiError(404, 'NOT_FOUND', 'dev login is disabled (AUTH_DEV_LOGIN=false)');
    const { userId } = devLoginSchema.parse(jsonBody(ctx));
    ctx.body = { token: await auth.issue(userId), userId };
  });

  router.post('/api/checkout', async (ctx) => {
    const userId = await auth.authenticate(ctx);
    const request = checkoutSchema.parse(jsonBody(ctx));
    const idempotencyKey = idempotencyKeySchema.parse(ctx.get('idempotency-key') || undefined);
    const { orderNo, status } = await checkout.checkout({ userId, ...request, idempotencyKey });
    ctx.status = 202;
    ctx.set('Location', `/api/orders/${orderNo}`);
    ctx.body = { orderNo, status, statusUrl: `/api/orders/${orderNo}` };
  });

  router.get('/api/orders/:orderNo', async (ctx) => {
    const userId = await auth.authenticate(ctx);
    ctx.body = (await ownOrder(ctx, userId)).view;
  });

  router.post('/api/orders/:orderNo/cancel', async (ctx) => {
    const userId = await auth.authenticate(ctx);
    const order = await ownOrder(ctx, userId);
    await checkout.cancel(order);
    ctx.status = 202;
    ctx.body = { orderNo: order.view.orderNo, status: order.view.status, cancelRequested: true };
  });

  router.post('/api/payments/webhook', async (ctx) => {
    const rawBody = (ctx.request as { rawBody?: string }).rawBody ?? '';
    webhook.verify(rawBody, ctx.get('payment-signature') || undefined);
    const event = paymentWebhookSchema.parse(jsonBody(ctx));
    const outcome = await webhook.handle(event);
    ctx.body = { received: true, outcome };
  });

  // Demo helper: signs and sends a webhook as the provider would. Only with AUTH_DEV_LOGIN=true.
  router.post('/api/dev/simulate-payment', async (ctx) => {
    if (!config.authDevLogin) throw new ApiError(404, 'NOT_FOUND', 'dev helpers are disabled (AUTH_DEV_LOGIN=false)');
    const userId = await auth.authenticate(ctx);
    const { orderNo } = simulatePaymentSchema.parse(jsonBody(ctx));
    const order = await ownOrderByNo(orderNo, userId);
    const body = JSON.stringify({ eventId: `evt_demo_${orderNo}_${Date.now()}`, type: 'payment.succeeded', orderNo, amountCents: order.view.totalCents });
    const response = await fetch(`http://127.0.0.1:${ctx.socket.localPort}/api/payments/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'payment-signature': signWebhook(config.webhookSecret, body) },
      body,
    });
    ctx.status = response.status;
    ctx.body = await response.json();
  });

  router.get('/', (ctx) => {
    ctx.type = 'html';
    ctx.body = readFileSync(DEMO_PAGE);
  });

  async function ownOrder(ctx: Context, userId: string) {
    const orderNo = orderNoSchema.safeParse(ctx.params.orderNo);
    if (!orderNo.success) throw new ApiError(404, 'ORDER_NOT_FOUND', `no order ${ctx.params.orderNo}`);
    return ownOrderByNo(orderNo.data, userId);
  }

  async function ownOrderByNo(orderNo: string, userId: string) {
    const order = await orders.find(orderNo);
    if (!order) throw new ApiError(404, 'ORDER_NOT_FOUND', `no order ${orderNo}`);
    if (order.userId !== userId) throw new ApiError(403, 'FORBIDDEN', 'this order belongs to another shopper');
    return order;
  }

  return createKoaApp(router, logger);
}

/**
 * The middleware every route runs behind: error shape, JSON-only bodies of at most 16 KB (the raw
 * body kept for signatures), then the routes. Shared with the benchmark's baselines so that they
 * pay exactly the same HTTP costs.
 */
export function createKoaApp(router: Router, logger: Logger): Koa {
  const app = new Koa();
  app.proxy = false;
  app.use(errorMiddleware(logger));
  app.use(requireJsonBodies);
  app.use(
    bodyParser({
      enableTypes: ['json'],
      jsonLimit: BODY_LIMIT,
      encoding: 'utf-8',
      // JSON only: a body must be an object or array; "strict" refuses bare strings and numbers.
      jsonStrict: true,
      onError: (err) => {
        throw err;
      },
    }),
  );
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** POST bodies must be JSON; anything else is refused before it is read. */
async function requireJsonBodies(ctx: Context, next: () => Promise<unknown>): Promise<void> {
  const hasBody = Number(ctx.get('content-length') || 0) > 0 || Boolean(ctx.get('transfer-encoding'));
  if (ctx.method === 'POST' && hasBody && !ctx.is('application/json')) {
    throw new ApiError(400, 'INVALID_REQUEST', 'send JSON with Content-Type: application/json');
  }
  await next();
}

export function jsonBody(ctx: Context): unknown {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  if (body === undefined || (typeof body === 'object' && body !== null && Object.keys(body).length === 0 && !ctx.get('content-length'))) {
    throw new ApiError(400, 'INVALID_REQUEST', 'a JSON body is required');
  }
  return body;
}
