/**
 * The payment providers' webhooks: POST /api/payments/webhook (the generic signed event) and
 * POST /api/payments/stripe (Stripe's). Each verifies the signature (a forged call counts against
 * the per-address limit), hands the event to its provider's intake and answers its verdict.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { ApiError, errorCodeOf } from '../errors.js';
import { rawBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import type { RateLimits } from '../rate-limit.js';
import { stripeWebhookAnswerSchema, webhookAnswerSchema } from '../response-schemas.js';
import { route } from '../route.js';
import {
  paymentSignatureHeadersSchema,
  paymentWebhookSchema,
  stripeEventSchema,
  stripeSignatureHeadersSchema,
} from '../schemas.js';
import type { StripeWebhookOutcome } from '../../model/order-workflow.js';
import type { PaymentWebhook } from '../../payments/providers/generic/webhook.js';
import type { StripeIntake } from '../../payments/providers/stripe/intake.js';

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
        200: {
          description: "The order's verdict on the event (APPLIED, REFUND_REQUIRED), or DUPLICATE",
          schema: webhookAnswerSchema,
        },
        202: {
          description: 'RECEIVED: recorded; the verdict comes later, without a retry',
          schema: webhookAnswerSchema,
        },
      },
      errors: {
        400: { codes: ['INVALID_SIGNATURE', 'INVALID_REQUEST'] },
        429: {
          codes: ['RATE_LIMITED'],
          description: '`RATE_LIMITED`: too many calls from this client IP (RATE_LIMIT_WEBHOOK); see Retry-After',
        },
        503: {
          codes: ['UNAVAILABLE'],
          description:
            '`UNAVAILABLE`: the event could not be recorded (MySQL did not answer in time); retry after Retry-After',
        },
      },
    },
    (ctx, input) =>
      answerWebhook(ctx, deps.metrics, async () => {
        // A verified provider is never throttled (it retries a 429 late); forged calls count per address.
        await onlyForgedCount(deps.limits, ctx.ip, () =>
          deps.webhook.verify(rawBody(ctx), ctx.get('payment-signature') || undefined),
        );
        return deps.webhook.handle(input.body());
      }),
  );
  return router;
}

/**
 * Runs a webhook's signature check; a call that fails it counts against RATE_LIMIT_WEBHOOK for its
 * address (past the limit: 429 RATE_LIMITED instead of 400). Verified calls are not counted: the
 * provider delivers from a few addresses and retries a 429 late, so a limit meant for shoppers
 * would hold back its payments at a sale's peak.
 */
export async function onlyForgedCount<T>(
  limits: RateLimits | undefined,
  ip: string,
  verify: () => T | Promise<T>,
): Promise<T> {
  try {
    return await verify();
  } catch (err) {
    if (limits && errorCodeOf(err) === 'INVALID_SIGNATURE') await limits.consume('webhook', ip);
    throw err;
  }
}

/**
 * Answers a payment webhook (the generic one, a provider's): what `handle` found, counted by outcome (an error by its
 * code), 202 when the verdict comes later.
 */
export async function answerWebhook(
  ctx: Context,
  metrics: Pick<ApiMetrics, 'webhookOutcome'>,
  handle: () => Promise<{ outcome: StripeWebhookOutcome }>,
): Promise<void> {
  let answer;
  try {
    answer = await handle();
  } catch (err) {
    metrics.webhookOutcome(errorCodeOf(err));
    throw err;
  }
  metrics.webhookOutcome(answer.outcome);
  if (answer.outcome === 'RECEIVED') ctx.status = 202;
  ctx.body = { received: true, ...answer };
}

/** POST /api/payments/stripe: Stripe's signed events. */
export function stripeWebhookRoutes(deps: {
  /** Null where Stripe is not configured: the route answers 404. */
  webhook: StripeIntake | null;
  metrics: ApiMetrics;
  limits?: RateLimits;
}): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'post',
      path: '/api/payments/stripe',
      operationId: 'stripeWebhook',
      summary: "Stripe's signed webhook events (PAYMENT_PROVIDER=stripe)",
      description:
        'Verified with the Stripe SDK (constructEvent over the raw body, STRIPE_WEBHOOK_SECRET). `payment_intent.succeeded` takes the ' +
        "generic webhook's record-first path: recorded once by event id, judged by when it arrived, answered with the order's verdict " +
        '(202 RECEIVED when it is judged later, without a retry). `payment_intent.payment_failed` and refund events are RECORDED; any ' +
        'other event is IGNORED. 503: not recorded; Stripe retries.',
      tag: 'payments',
      auth: 'stripe',
      // Declared for the document; constructEvent reads it itself (INVALID_SIGNATURE, not INVALID_REQUEST).
      headers: stripeSignatureHeadersSchema,
      body: stripeEventSchema,
      responses: {
        200: { description: 'The verdict on a payment, or RECORDED / IGNORED', schema: stripeWebhookAnswerSchema },
        202: { description: 'RECEIVED: recorded; the verdict comes later', schema: stripeWebhookAnswerSchema },
      },
      errors: {
        400: { codes: ['INVALID_SIGNATURE', 'INVALID_REQUEST'] },
        404: { codes: ['NOT_FOUND'], description: '`NOT_FOUND`: Stripe is not configured (STRIPE_SECRET_KEY)' },
        429: {
          codes: ['RATE_LIMITED'],
          description: '`RATE_LIMITED`: too many calls from this client IP (RATE_LIMIT_WEBHOOK); see Retry-After',
        },
        503: {
          codes: ['UNAVAILABLE'],
          description: '`UNAVAILABLE`: the event could not be recorded (MySQL did not answer in time); Stripe retries',
        },
      },
    },
    (ctx, input) =>
      answerWebhook(ctx, deps.metrics, async () => {
        const webhook = deps.webhook;
        if (!webhook) throw new ApiError(404, 'NOT_FOUND', 'Stripe is not configured here (STRIPE_SECRET_KEY)');
        // The signature first (forged calls count against the per-address limit), then the event's id and type.
        const event = await onlyForgedCount(deps.limits, ctx.ip, () =>
          webhook.verify(rawBody(ctx), ctx.get('stripe-signature') || undefined),
        );
        return webhook.handle(event, () => input.body());
      }),
  );
  return router;
}
