/** The shopper's order routes: checkout, read (and its long-poll), list, cancel; each calls a service of src/order/. */
import Router from '@koa/router';
import { z } from 'zod';
import type { ShopperAuth } from '../auth.js';
import { errorCodeOf } from '../errors.js';
import type { ApiMetrics } from '../metrics.js';
import { ORDERS_LIST_LIMIT } from '../rate-limit.js';
import { preferredWaitSeconds } from '../prefer.js';
import { cancelAcceptedSchema, checkoutAcceptedSchema, checkoutPersistedSchema } from '../response-schemas.js';
import { orderReadSchema, orderSchema } from '../../order/lookup.js';
import { pageSchema } from '../../infra/schema-fields.js';
import { route } from '../route.js';
import {
  checkoutHeadersSchema,
  checkoutSchema,
  DEFAULT_STATUS_WAIT_SECONDS,
  orderParams,
  orderWaitQuerySchema,
  shopperOrdersQuerySchema,
} from '../schemas.js';
import type { CancelOrder } from '../../order/cancel.js';
import { orderFailed, type CheckoutService } from '../../order/checkout.js';
import type { FoundOrder } from '../../order/lookup.js';
import type { ShopperOrders } from '../../order/shopper-orders.js';
import { findOwnOrder, type OrderStatusReader } from '../../order/status-reads.js';

export function orderRoutes(deps: {
  auth: ShopperAuth;
  checkout: CheckoutService;
  metrics: ApiMetrics;
  statusReader: OrderStatusReader;
  orders: ShopperOrders;
  cancelOrder: CancelOrder;
}): Router {
  const { auth, checkout, metrics, statusReader, orders, cancelOrder } = deps;
  const router = new Router();
  route(router, {
    at: 'POST /api/checkout',
    operationId: 'checkout',
    summary: 'Reserve units and start the order',
    description:
      'Reserves in Redis (limit, idempotency key and stock in one atomic step) and starts the order workflow; no database on this path. ' +
      'The same Idempotency-Key from the same shopper answers the same order.',
    tag: 'orders',
    auth: 'shopper',
    headers: checkoutHeadersSchema,
    body: checkoutSchema,
    responses: {
      201: {
        description:
          'With Prefer: wait=N, persisted within the wait: the order, AWAITING_PAYMENT, with its payment deadline',
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
    errors: [
      'INVALID_REQUEST',
      'UNAUTHORIZED',
      'NOT_ADMITTED',
      'ADMISSION_INVALID',
      'ADMISSION_NOT_YOURS',
      'ADMISSION_EXPIRED',
      'ADMISSION_USED',
      'SKU_NOT_FOUND',
      'SOLD_OUT',
      'SALE_NOT_ACTIVE',
      'PURCHASE_LIMIT_EXCEEDED',
      'TOO_MANY_CANCELLATIONS',
      'ORDER_FAILED',
      'IDEMPOTENCY_KEY_REUSED',
      'RATE_LIMITED',
      'UNAVAILABLE',
      'OUTCOME_UNKNOWN',
    ],
    errorDescriptions: {
      403: 'Only for a sale with a waiting line: the checkout carries no valid admission (`Admission-Token`). Nothing changed.',
      429: '`RATE_LIMITED`: this shopper sent too many checkouts (RATE_LIMIT_CHECKOUT); see Retry-After',
      503:
        '`UNAVAILABLE`: Redis is unavailable (or the reserve came too late to count): nothing was reserved, retry. ' +
        '`OUTCOME_UNKNOWN`: the reserve got no answer in time and may have reserved `details.orderNo`: retry with the same Idempotency-Key, or read that order. ' +
        'Temporal or the worker being away never makes a checkout 503: a reservation is answered 202 and its order is started later.',
    },
    async handler(ctx, input) {
      try {
        const userId = await auth.authenticate(ctx);
        const body = input.body();
        const { 'Idempotency-Key': idempotencyKey, Prefer: prefer, 'Admission-Token': admission } = input.headers();
        const request = { userId, ...body, idempotencyKey, ...(admission ? { admissionToken: admission } : {}) };
        // Prefer: wait=N: the waiting checkout, which may answer with the order itself.
        const waitSeconds = preferredWaitSeconds(prefer, checkout.maxWaitSeconds);
        const answer =
          waitSeconds > 0
            ? await checkout.checkoutAndWait(request, waitSeconds * 1000)
            : await checkout.checkout(request);
        const statusUrl = `/api/orders/${answer.orderNo}`;
        ctx.set('Location', statusUrl);
        if (!answer.order) {
          ctx.status = 202;
          ctx.body = { orderNo: answer.orderNo, status: answer.status, statusUrl };
        } else {
          // Decided within the wait: the preference was honoured, whichever way the order went.
          ctx.set('Preference-Applied', `wait=${waitSeconds}`);
          if (answer.status === 'FAILED') throw orderFailed(answer, statusUrl);
          ctx.status = 201;
          ctx.body = { ...answer.order, statusUrl };
        }
      } catch (err) {
        metrics.checkoutOutcome(errorCodeOf(err));
        throw err;
      }
      metrics.checkoutOutcome('ACCEPTED');
    },
  });

  route(router, {
    at: 'GET /api/orders/:orderNo',
    operationId: 'getOrder',
    summary: "The shopper's order",
    description:
      "The order's MySQL row once it has one (the row decides how every order ends), before that its reservation's " +
      'promise (PENDING, `source: stores`); with MySQL away, its workflow (`source: workflow`). An answer that may ' +
      'still change is kept up to STATUS_CACHE_MS (STATUS_CACHE_NOTIFIED_MS while change notifications are live, never ' +
      'past an AWAITING_PAYMENT paymentDeadline); a payment or cancel delivered through the same API process shows at once. ' +
      'Long-poll: with `waitForChange=<STATUS>` it answers as soon as the status differs from that one (at once if it already does), ' +
      'else after `timeoutSeconds` with the order as it is; `Order-Status-Changed` says which.',
    tag: 'orders',
    auth: 'shopper',
    params: orderParams,
    query: orderWaitQuerySchema,
    responses: {
      200: {
        description: 'The order (with waitForChange: once changed, or at the timeout), and where the answer came from',
        schema: orderReadSchema,
        headers: z.object({
          'Order-Status-Changed': z.enum(['true', 'false']).optional().meta({
            description:
              'Only with waitForChange: true when the status differs from waitForChange, false when the wait timed out',
          }),
        }),
      },
    },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'ORDER_NOT_FOUND', 'UNAVAILABLE'],
    errorDescriptions: {
      503: '`UNAVAILABLE`: its row (MySQL) or, before it, its pending start (Redis) was not read in time, or this process already holds STATUS_LONG_POLL_MAX_WAITERS long-polls (with Retry-After); retry',
    },
    async handler(ctx, input) {
      const userId = await auth.authenticate(ctx);
      const wait = input.query();
      const order = await findOwnOrder(statusReader, ctx.params.orderNo ?? '', userId, {
        forWait: wait.waitForChange !== undefined,
      });
      if (!wait.waitForChange || order.view.status !== wait.waitForChange) {
        if (wait.waitForChange) ctx.set('Order-Status-Changed', 'true');
        ctx.body = readBody(order);
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
          (wait.timeoutSeconds ?? DEFAULT_STATUS_WAIT_SECONDS) * 1000,
          disconnected.signal,
        );
        ctx.set('Order-Status-Changed', String(changed));
        // Shutting down: the client reconnects (to another process) instead of keeping this connection.
        if (statusReader.stopped) ctx.set('Connection', 'close');
        ctx.body = readBody(latest ?? order);
      } finally {
        ctx.res.off('close', onClose);
      }
    },
  });

  route(router, {
    at: 'GET /api/orders',
    operationId: 'listOrders',
    summary: "The shopper's own orders, newest first (keyset-paged)",
    description:
      "The token's shopper's orders, newest first, each as GET /api/orders/{orderNo} answers it (no `paymentIntent`: " +
      'read the order for it): from its MySQL row, or PENDING from its pending start in Redis while no row is written yet ' +
      '(seconds after a burst, minutes while Temporal is away).',
    tag: 'orders',
    auth: 'shopper',
    query: shopperOrdersQuerySchema,
    responses: { 200: { description: 'A page of orders', schema: pageSchema(orderSchema, 'OrdersPage') } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'RATE_LIMITED', 'UNAVAILABLE'],
    errorDescriptions: {
      429: `\`RATE_LIMITED\`: this shopper asked for too many pages (${ORDERS_LIST_LIMIT.points} per ${ORDERS_LIST_LIMIT.durationSeconds} s); see Retry-After`,
    },
    async handler(ctx, input) {
      const userId = await auth.authenticate(ctx);
      ctx.body = await orders.list({ userId, ...input.query() });
    },
  });

  route(router, {
    at: 'POST /api/orders/:orderNo/cancel',
    operationId: 'cancelOrder',
    summary: 'Cancel an order that awaits payment',
    description:
      'Taken while the order is open and its row applied no payment (the row decides); the units go back on sale.',
    tag: 'orders',
    auth: 'shopper',
    params: orderParams,
    responses: {
      202: {
        description: 'The cancel is taken: the order CANCELLED, or (Stripe) being closed at the provider',
        schema: cancelAcceptedSchema,
      },
    },
    errors: ['UNAUTHORIZED', 'FORBIDDEN', 'ORDER_NOT_FOUND', 'NOT_CANCELLABLE', 'UNAVAILABLE'],
    async handler(ctx) {
      const userId = await auth.authenticate(ctx);
      const accepted = await cancelOrder.cancel(ctx.params.orderNo ?? '', userId);
      ctx.status = 202;
      ctx.body = { ...accepted, cancelRequested: true };
    },
  });
  return router;
}

const readBody = (order: FoundOrder) => ({ ...order.view, source: order.source });
