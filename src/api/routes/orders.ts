import Router from '@koa/router';
import { OrderNotCancellableError, OrderUnavailableError, type OrderClient } from '../../orders/order-client.js';
import type { RedisInventory } from '../../inventory/redis-inventory.js';
import type { ShopperAuth } from '../auth.js';
import type { CheckoutService } from '../checkout.js';
import { ApiError, toApiError } from '../errors.js';
import { jsonBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import { findOwnOrder } from '../order-access.js';
import { checkoutSchema, idempotencyKeySchema } from '../schemas.js';

/** The shopper's routes: POST /api/checkout, GET /api/orders/:orderNo, POST /api/orders/:orderNo/cancel. */
export function orderRoutes(deps: {
  auth: ShopperAuth;
  checkout: CheckoutService;
  orders: OrderClient;
  inventory: RedisInventory;
  metrics: ApiMetrics;
}): Router {
  const { auth, checkout, orders, inventory, metrics } = deps;
  const router = new Router();

  router.post('/api/checkout', async (ctx) => {
    let answer;
    try {
      const userId = await auth.authenticate(ctx);
      const request = checkoutSchema.parse(jsonBody(ctx));
      const idempotencyKey = idempotencyKeySchema.parse(ctx.get('idempotency-key') || undefined);
      answer = await checkout.checkout({ userId, ...request, idempotencyKey });
    } catch (err) {
      metrics.checkoutOutcome(toApiError(err).code);
      throw err;
    }
    metrics.checkoutOutcome('ACCEPTED');
    const { orderNo, status } = answer;
    ctx.status = 202;
    ctx.set('Location', `/api/orders/${orderNo}`);
    ctx.body = { orderNo, status, statusUrl: `/api/orders/${orderNo}` };
  });

  router.get('/api/orders/:orderNo', async (ctx) => {
    const userId = await auth.authenticate(ctx);
    ctx.body = (await findOwnOrder(orders, ctx.params.orderNo ?? '', userId)).view;
  });

  router.post('/api/orders/:orderNo/cancel', async (ctx) => {
    const userId = await auth.authenticate(ctx);
    const order = await findOwnOrder(orders, ctx.params.orderNo ?? '', userId);
    try {
      await orders.cancel(order);
    } catch (err) {
      if (err instanceof OrderNotCancellableError) throw new ApiError(409, 'NOT_CANCELLABLE', err.message);
      if (err instanceof OrderUnavailableError) throw new ApiError(503, 'UNAVAILABLE', 'the order did not answer in time; retry later');
      throw err;
    }
    // Counted against the shopper: a checkout-cancel loop is bounded (MAX_CANCELS_PER_SHOPPER).
    await inventory.countCancel(order.view.sku, userId);
    ctx.status = 202;
    ctx.body = { orderNo: order.view.orderNo, status: order.view.status, cancelRequested: true };
  });
  return router;
}
