import Router from '@koa/router';
import { z } from 'zod';
import { Deadline } from '../../infra/dependency-guard.js';
import { OrderNotCancellableError, type OrderClient } from '../../orders/order-client.js';
import type { RedisInventory } from '../../inventory/redis-inventory.js';
import { TooManyWaitersError, type OrderStatusReader } from '../../orders/order-status-reader.js';
import type { ShopperAuth } from '../auth.js';
import type { CheckoutService } from '../checkout.js';
import { route } from '../documented-route.js';
import { ApiError, toApiError } from '../errors.js';
import { jsonBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import { findOwnOrder } from '../order-access.js';
import { preferredWaitSeconds } from '../prefer.js';
import { cancelAcceptedSchema, checkoutAcceptedSchema, checkoutPersistedSchema, orderSchema, orderStatusSchema } from '../response-schemas.js';
import { checkoutSchema, idempotencyKeySchema, orderNoSchema, orderWaitQuerySchema, DEFAULT_STATUS_WAIT_SECONDS, MAX_STATUS_WAIT_SECONDS } from '../schemas.js';
import { answerWaitingCheckout } from './checkout-wait.js';

const orderParams = z.object({ orderNo: orderNoSchema });
/** The long-poll's query as documented (the handler parses it with orderWaitQuerySchema, which adds the checks). */
const orderWaitQueryDocSchema = z.object({
  waitForChange: orderStatusSchema
    .optional()
    .meta({ description: 'Long-poll: answer as soon as the status differs from this one (at once if it already does)' }),
  timeoutSeconds: z
    .int()
    .min(1)
    .max(MAX_STATUS_WAIT_SECONDS)
    .optional()
    .meta({ description: `With waitForChange: the longest wait in whole seconds (default ${DEFAULT_STATUS_WAIT_SECONDS})` }),
});

/** The shopper's routes: POST /api/checkout, GET /api/orders/:orderNo, POST /api/orders/:orderNo/cancel. */
export function orderRoutes(deps: {
  auth: ShopperAuth;
  checkout: CheckoutService;
  orders: OrderClient;
  /** Every read of an order goes through it; told of each cancel delivered here. */
  statusReader: OrderStatusReader;
  inventory: RedisInventory;
  metrics: ApiMetrics;
  /** WRITE_DEADLINE: the cancel's Update must have its answer by then. */
  writeDeadlineMs: number;
}): Router {
  const { auth, checkout, orders, statusReader, inventory, metrics, writeDeadlineMs } = deps;
  const router = new Router();

  route(
    router,
    {
      method: 'post',
      path: '/api/checkout',
      operationId: 'checkout',
      summary: 'Reserve units and start the order',
      description:
        'Reserves in Redis (limit, idempotency key and stock in one atomic step) and starts the order workflow; no database on this path. ' +
        'The same Idempotency-Key from the same shopper answers the same order.',
      tag: 'orders',
      auth: 'shopper',
      headers: z.object({
        'Idempotency-Key': idempotencyKeySchema,
        Prefer: z
          .string()
          .optional()
          .meta({ description: 'RFC 7240 `wait=N`: hold the answer up to N seconds (at most CHECKOUT_MAX_WAIT) until the order is persisted or failed' }),
      }),
      body: checkoutSchema,
      responses: {
        201: {
          description: 'With Prefer: wait=N, persisted within the wait: the order, AWAITING_PAYMENT, with its payment deadline',
          schema: checkoutPersistedSchema,
          headers: z.object({
            Location: z.string().meta({ description: 'The order: /api/orders/{orderNo}' }),
            'Preference-Applied': z.string().meta({ description: 'wait=N' }),
          }),
        },
        202: {
          description: 'Accepted: the order runs; poll statusUrl',
          schema: checkoutAcceptedSchema,
          headers: z.object({ Location: z.string().meta({ description: 'The order: /api/orders/{orderNo}' }) }),
        },
      },
      errors: {
        400: { codes: ['INVALID_REQUEST'] },
        401: { codes: ['UNAUTHORIZED'] },
        404: { codes: ['SKU_NOT_FOUND'] },
        409: { codes: ['SOLD_OUT', 'SALE_NOT_ACTIVE', 'PURCHASE_LIMIT_EXCEEDED', 'TOO_MANY_CANCELLATIONS', 'ORDER_FAILED'] },
        422: { codes: ['IDEMPOTENCY_KEY_REUSED'] },
        429: { codes: ['RATE_LIMITED'], description: '`RATE_LIMITED`: this shopper sent too many checkouts (RATE_LIMIT_CHECKOUT); see Retry-After' },
        503: { codes: ['UNAVAILABLE'], description: '`UNAVAILABLE`: the order could not be started; nothing is reserved' },
      },
    },
    async (ctx) => {
      try {
        const userId = await auth.authenticate(ctx);
        const request = checkoutSchema.parse(jsonBody(ctx));
        const idempotencyKey = idempotencyKeySchema.parse(ctx.get('idempotency-key') || undefined);
        // Prefer: wait=N (RFC 7240): the waiting checkout answers for itself (routes/checkout-wait.ts).
        const waitSeconds = preferredWaitSeconds(ctx.get('prefer'), checkout.maxWaitSeconds);
        if (waitSeconds > 0) {
          await answerWaitingCheckout(ctx, checkout, { userId, ...request, idempotencyKey }, waitSeconds);
        } else {
          const { orderNo, status } = await checkout.checkout({ userId, ...request, idempotencyKey });
          ctx.status = 202;
          ctx.set('Location', `/api/orders/${orderNo}`);
          ctx.body = { orderNo, status, statusUrl: `/api/orders/${orderNo}` };
        }
      } catch (err) {
        metrics.checkoutOutcome(toApiError(err).code);
        throw err;
      }
      metrics.checkoutOutcome('ACCEPTED');
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/orders/:orderNo',
      operationId: 'getOrder',
      summary: "The shopper's order",
      description:
        "The running workflow's state while it is open, the MySQL row once it has closed. An AWAITING_PAYMENT answer may be up to STATUS_CACHE_MS old " +
        '(never past its paymentDeadline); a payment or cancel delivered through the same API process shows at once. ' +
        'Long-poll: with `waitForChange=<STATUS>` it answers as soon as the status differs from that one (at once if it already does), ' +
        'else after `timeoutSeconds` with the order as it is; `Order-Status-Changed` says which.',
      tag: 'orders',
      auth: 'shopper',
      params: orderParams,
      query: orderWaitQueryDocSchema,
      responses: {
        200: {
          description: 'The order (with waitForChange: once changed, or at the timeout)',
          schema: orderSchema,
          headers: z.object({
            'Order-Status-Changed': z
              .enum(['true', 'false'])
              .optional()
              .meta({ description: 'Only with waitForChange: true when the status differs from waitForChange, false when the wait timed out' }),
          }),
        },
      },
      errors: {
        400: { codes: ['INVALID_REQUEST'] },
        401: { codes: ['UNAUTHORIZED'] },
        403: { codes: ['FORBIDDEN'] },
        404: { codes: ['ORDER_NOT_FOUND'] },
        503: {
          codes: ['UNAVAILABLE'],
          description:
            '`UNAVAILABLE`: the running order did not answer in time, or this process already holds STATUS_LONG_POLL_MAX_WAITERS long-polls (with Retry-After); retry',
        },
      },
    },
    async (ctx) => {
      const userId = await auth.authenticate(ctx);
      const wait = orderWaitQuerySchema.parse(ctx.query);
      const order = await findOwnOrder(statusReader, ctx.params.orderNo ?? '', userId);
      if (!wait.waitForChange) {
        ctx.body = order.view;
        return;
      }
      if (order.view.status !== wait.waitForChange) {
        ctx.set('Order-Status-Changed', 'true');
        ctx.body = order.view;
        return;
      }
      // The client going away ends its wait (the response's close: the request's fires once read).
      const disconnected = new AbortController();
      const onClose = () => disconnected.abort();
      ctx.res.once('close', onClose);
      try {
        const { order: latest, changed } = await statusReader.waitForChange(
          order.view.orderNo,
          wait.waitForChange,
          wait.timeoutSeconds * 1000,
          disconnected.signal,
        );
        ctx.set('Order-Status-Changed', String(changed));
        // Shutting down: the client reconnects (to another process) instead of keeping this connection.
        if (statusReader.stopped) ctx.set('Connection', 'close');
        ctx.body = (latest ?? order).view;
      } catch (err) {
        if (err instanceof TooManyWaitersError)
          throw new ApiError(503, 'UNAVAILABLE', 'too many status waits on this server; retry shortly', undefined, { 'Retry-After': '1' });
        throw err;
      } finally {
        ctx.res.off('close', onClose);
      }
    },
  );

  route(
    router,
    {
      method: 'post',
      path: '/api/orders/:orderNo/cancel',
      operationId: 'cancelOrder',
      summary: 'Cancel an order that awaits payment',
      description: 'Accepted while the order is open and no payment was accepted for it; the units go back on sale.',
      tag: 'orders',
      auth: 'shopper',
      params: orderParams,
      responses: { 202: { description: 'The cancel is accepted; poll the order to see it CANCELLED', schema: cancelAcceptedSchema } },
      errors: {
        401: { codes: ['UNAUTHORIZED'] },
        403: { codes: ['FORBIDDEN'] },
        404: { codes: ['ORDER_NOT_FOUND'] },
        409: { codes: ['NOT_CANCELLABLE'] },
        503: { codes: ['UNAVAILABLE'] },
      },
    },
    async (ctx) => {
      const userId = await auth.authenticate(ctx);
      const deadline = Deadline.in(writeDeadlineMs);
      const order = await findOwnOrder(statusReader, ctx.params.orderNo ?? '', userId);
      try {
        await orders.cancel(order, deadline);
      } catch (err) {
        if (err instanceof OrderNotCancellableError) throw new ApiError(409, 'NOT_CANCELLABLE', err.message);
        throw err;
      } finally {
        statusReader.changed(order.view.orderNo);
      }
      // Counted against the shopper: a checkout-cancel loop is bounded (MAX_CANCELS_PER_SHOPPER).
      // The cancel is done whatever Redis says: a count Redis could not take is one the bound misses.
      await inventory.countCancel(order.view.sku, userId).catch(() => undefined);
      ctx.status = 202;
      ctx.body = { orderNo: order.view.orderNo, status: order.view.status, cancelRequested: true };
    },
  );
  return router;
}
