import Router from '@koa/router';
import { z } from 'zod';
import { orderFailed, type CheckoutService } from './checkout.js';
import type { CancelOrder } from './cancel.js';
import { findOwnOrder, type OrderStatusReader } from './reads.js';
import type { FoundOrder } from './client.js';
import type { OrderView } from './contract.js';
import type { ShopperAuth } from '../api/auth.js';
import { errorCodeOf } from '../api/errors.js';
import type { ApiMetrics } from '../api/metrics.js';
import { preferredWaitSeconds } from '../api/prefer.js';
import { cancelAcceptedSchema, checkoutAcceptedSchema, checkoutPersistedSchema, orderReadSchema, webhookAnswerSchema } from '../api/response-schemas.js';
import { route } from '../api/route.js';
import {
  checkoutHeadersSchema,
  checkoutSchema,
  DEFAULT_STATUS_WAIT_SECONDS,
  orderParams,
  orderWaitQuerySchema,
  paymentSignatureHeadersSchema,
  paymentWebhookSchema,
} from '../api/schemas.js';
import { rawBody } from '../api/http.js';
import type { RateLimits } from '../api/rate-limit.js';
import type { PaymentWebhook } from './payments.js';

/** The shopper's routes: POST /api/checkout, GET /api/orders/:orderNo, POST /api/orders/:orderNo/cancel. */
export function orderRoutes(deps: {
  auth: ShopperAuth;
  checkout: CheckoutService;
  cancelOrder: CancelOrder;
  /** Every read of an order goes through it (and its long-poll waits). */
  statusReader: OrderStatusReader;
  metrics: ApiMetrics;
}): Router {
  const { auth, checkout, cancelOrder, statusReader, metrics } = deps;
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
      headers: checkoutHeadersSchema,
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
        503: {
          codes: ['UNAVAILABLE', 'OUTCOME_UNKNOWN'],
          description:
            '`UNAVAILABLE`: Redis is unavailable (or the reserve came too late to count): nothing was reserved, retry. ' +
            '`OUTCOME_UNKNOWN`: the reserve got no answer in time and may have reserved `details.orderNo`: retry with the same Idempotency-Key, or read that order. ' +
            'Temporal or the worker being away never makes a checkout 503: a reservation is answered 202 and its order is started later.',
        },
      },
    },
    async (ctx, input) => {
      try {
        const userId = await auth.authenticate(ctx);
        const request = { userId, ...input.body() };
        const { 'Idempotency-Key': idempotencyKey, Prefer: prefer } = input.headers();
        // Prefer: wait=N (RFC 7240): the waiting checkout, which may answer with the order itself.
        const waitSeconds = preferredWaitSeconds(prefer, checkout.maxWaitSeconds);
        const answer =
          waitSeconds > 0
            ? await checkout.checkoutAndWait({ ...request, idempotencyKey }, waitSeconds * 1000)
            : await checkout.checkout({ ...request, idempotencyKey });
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
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/orders/:orderNo',
      operationId: 'getOrder',
      summary: "The shopper's order",
      description:
        "The running workflow's state while it is open, the MySQL row once it has closed; when the workflow does not answer in time " +
        '(or has not started yet), what MySQL and Redis know, marked `source: stores`. An AWAITING_PAYMENT answer may be up to STATUS_CACHE_MS old ' +
        '(never past its paymentDeadline); a payment or cancel delivered through the same API process shows at once. ' +
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
            '`UNAVAILABLE`: neither the running order nor the stores (MySQL, Redis) answered in time, or this process already holds STATUS_LONG_POLL_MAX_WAITERS long-polls (with Retry-After); retry',
        },
      },
    },
    async (ctx, input) => {
      const userId = await auth.authenticate(ctx);
      const wait = input.query();
      const order = await findOwnOrder(statusReader, ctx.params.orderNo ?? '', userId);
      if (!wait.waitForChange) {
        ctx.body = readBody(order);
        return;
      }
      if (order.view.status !== wait.waitForChange) {
        ctx.set('Order-Status-Changed', 'true');
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
      const accepted = await cancelOrder.cancel(ctx.params.orderNo ?? '', userId);
      ctx.status = 202;
      ctx.body = { ...accepted, cancelRequested: true };
    },
  );
  return router;
}

/** A read's answer: the order as its shopper sees it, and where it came from. */
function readBody(order: FoundOrder): OrderView & { source: FoundOrder['source'] } {
  return { ...order.view, source: order.source };
}

/** POST /api/payments/webhook: the provider's signed payment events. */
export function paymentRoutes(deps: { webhook: PaymentWebhook; metrics: ApiMetrics; limits?: RateLimits }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'post',
      path: '/api/payments/webhook',
      operationId: 'paymentWebhook',
      summary: "The payment provider's signed payment event",
      description:
        'Recorded first (the event id is a primary key; MySQL stamps when it arrived), then delivered to the order. ' +
        "200: the order's verdict, APPLIED or REFUND_REQUIRED (kept for a refund), or DUPLICATE for an event already judged. " +
        '202 RECEIVED: recorded, but the order did not judge it within half of WRITE_DEADLINE; the service delivers it until it does ' +
        '(no retry needed; a retry answers the verdict once there is one). A payment is judged by when it arrived: ' +
        "recorded at or before the order's paymentDeadline with the full amount, it pays the order however late it is delivered. " +
        '503: not recorded; retry.',
      tag: 'payments',
      auth: 'webhook',
      // Declared for the document; the signature check reads it itself (INVALID_SIGNATURE, not INVALID_REQUEST).
      headers: paymentSignatureHeadersSchema,
      body: paymentWebhookSchema,
      responses: {
        200: { description: "The order's verdict on the event (APPLIED, REFUND_REQUIRED), or DUPLICATE", schema: webhookAnswerSchema },
        202: { description: 'RECEIVED: recorded; the verdict comes later, without a retry', schema: webhookAnswerSchema },
      },
      errors: {
        400: { codes: ['INVALID_SIGNATURE', 'INVALID_REQUEST'] },
        429: { codes: ['RATE_LIMITED'], description: '`RATE_LIMITED`: too many calls from this client IP (RATE_LIMIT_WEBHOOK); see Retry-After' },
        503: { codes: ['UNAVAILABLE'], description: '`UNAVAILABLE`: the event could not be recorded (MySQL did not answer in time); retry after Retry-After' },
      },
    },
    async (ctx, input) => {
      let answer;
      try {
        // Before the signature: a flood of forged calls from one address is refused without HMACs.
        await deps.limits?.consume('webhook', ctx.ip);
        deps.webhook.verify(rawBody(ctx), ctx.get('payment-signature') || undefined);
        answer = await deps.webhook.handle(input.body());
      } catch (err) {
        deps.metrics.webhookOutcome(errorCodeOf(err));
        throw err;
      }
      deps.metrics.webhookOutcome(answer.outcome);
      if (answer.outcome === 'RECEIVED') ctx.status = 202;
      ctx.body = { received: true, ...answer };
    },
  );
  return router;
}
