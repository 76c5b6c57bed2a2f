/**
 * POST /api/payments/stripe: Stripe's webhook. Verified with the SDK's constructEvent over the raw
 * body, then taken in by StripeIntake (./stripe-intake.ts), the path every Stripe event takes. A
 * 503 (MySQL did not answer) is the one answer that asks Stripe for a retry.
 */
import Router from '@koa/router';
import { answerWebhook, onlyForgedCount } from '../order/payments.js';
import { ApiError } from '../api/errors.js';
import { rawBody } from '../api/http.js';
import type { ApiMetrics } from '../api/metrics.js';
import type { RateLimits } from '../api/rate-limit.js';
import { stripeWebhookAnswerSchema } from '../api/response-schemas.js';
import { route } from '../api/route.js';
import { stripeEventSchema, stripeSignatureHeadersSchema } from '../api/schemas.js';
import type { StripeIntake } from './stripe-intake.js';

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
