/**
 * POST /api/payments/stripe: Stripe's webhook (its route below). Verified with the SDK's
 * constructEvent over the raw body, then:
 *
 *   payment_intent.succeeded       of an intent of ours (this deployment's tag, this mode): the
 *                                  record-first path every payment takes (PaymentWebhook.handle),
 *                                  one row per intent, judged by the order; the answer is its
 *                                  verdict. Of another deployment: IGNORED, never refunded. Tagged
 *                                  ours but not an intent its order opened (or in another currency):
 *                                  REFUND_REQUIRED (INTENT_MISMATCH), never applied
 *   payment_intent.payment_failed  recorded (payment_failures), shown in the admin view
 *   refund.*, charge.refund.updated  the refund's progress, forwards only
 *   anything else                  acknowledged and ignored
 *
 * Stripe retries any answer but a 2xx for up to three days, so every step is idempotent, and a
 * 503 (MySQL did not answer) is the one answer that asks for a retry.
 */
import Router from '@koa/router';
import type { RecordedPaymentEvent, Store } from '../db/store.js';
import { Deadline, type DependencyGuard } from '../infra/dependency-guard.js';
import type { StripeSettings } from '../config/index.js';
import type { Logger } from '../infra/logger.js';
import type { RefundReason, StripeWebhookOutcome } from '../order/contract.js';
import { answerWebhook, onlyForgedCount, type PaymentWebhook } from '../order/payments.js';
import { Refusal } from '../refusal.js';
import { ApiError } from '../api/errors.js';
import { rawBody } from '../api/http.js';
import type { ApiMetrics } from '../api/metrics.js';
import type { RateLimits } from '../api/rate-limit.js';
import { stripeWebhookAnswerSchema } from '../api/response-schemas.js';
import { route } from '../api/route.js';
import { stripeEventSchema, stripeSignatureHeadersSchema } from '../api/schemas.js';
import type { ProviderEvent } from './provider.js';
import { intentOwnership, MalformedStripeEvent, StripeEvents, StripeSignatureError } from './stripe.js';

export interface StripeWebhookAnswer {
  type: string;
  outcome: StripeWebhookOutcome;
  refundReason?: RefundReason;
}

export class StripeWebhook {
  private readonly events: StripeEvents;

  constructor(
    private readonly deps: {
      settings: Pick<StripeSettings, 'webhookSecret' | 'secretKey' | 'deploymentTag' | 'currency'>;
      /** The one record-first path of payments. */
      payments: Pick<PaymentWebhook, 'handle'>;
      store: Store;
      /** The API's MySQL guard: the records go through it whatever its breaker says. */
      mysql: DependencyGuard;
      mysqlMs: number;
      logger?: Pick<Logger, 'info' | 'warn'>;
    },
  ) {
    this.events = new StripeEvents(deps.settings);
  }

  /** The event if Stripe signed these bytes (else INVALID_SIGNATURE; INVALID_REQUEST when it lacks its object). */
  verify(raw: string, signature: string | undefined): ProviderEvent {
    try {
      return this.events.parse(raw, signature);
    } catch (err) {
      if (err instanceof StripeSignatureError) throw new Refusal('INVALID_SIGNATURE', err.message);
      if (err instanceof MalformedStripeEvent) throw new Refusal('INVALID_REQUEST', err.message);
      throw err;
    }
  }

  /** `validate` checks the event's envelope once the signature holds (the route's schema), and answers its type. */
  async handle(event: ProviderEvent, validate: () => { type: string }): Promise<StripeWebhookAnswer> {
    const { type } = validate();
    const { store, mysql, mysqlMs, logger } = this.deps;
    switch (event.kind) {
      case 'payment': {
        if (!event.intent) return { type, ...(await this.deps.payments.handle(event.payment)) };
        const { providerRef, orderNo } = event.payment;
        const standing = await mysql.call(
          Deadline.in(mysqlMs),
          () => store.intentStanding(providerRef ?? '', orderNo),
          { evenWhenOpen: true },
        );
        const ownership = intentOwnership(standing, orderNo, event.intent, this.deps.settings.currency);
        if (ownership === 'FOREIGN') {
          logger?.info({ intentId: providerRef, orderNo }, 'an untagged intent naming no order of ours; ignored');
          return { type, outcome: 'IGNORED' };
        }
        if (ownership === 'MISMATCH') return { type, ...(await this.refundMismatch(event.payment)) };
        return { type, ...(await this.deps.payments.handle(event.payment)) };
      }
      case 'payment_failed':
        await mysql.call(Deadline.in(mysqlMs), () => store.recordPaymentFailure(event.failure), { evenWhenOpen: true });
        logger?.info({ eventId: event.failure.eventId, orderNo: event.failure.orderNo }, 'payment attempt failed');
        return { type, outcome: 'RECORDED' };
      case 'refund': {
        const moved = await mysql.call(
          Deadline.in(mysqlMs),
          () =>
            store.recordRefundProgress(
              { ...(event.paymentEventId ? { eventId: event.paymentEventId } : {}), refundId: event.refundId },
              event.progress,
            ),
          { evenWhenOpen: true },
        );
        // Not moved: already there or further on (a duplicate, or out of order), or a refund not made here.
        if (!moved)
          logger?.info({ refundId: event.refundId, state: event.progress.state }, 'refund event changed nothing');
        return { type, outcome: 'RECORDED' };
      }
      case 'ignored':
        logger?.info({ type: event.type, reason: event.reason }, 'Stripe event ignored');
        return { type, outcome: 'IGNORED' };
    }
  }

  /**
   * Our money on an intent that is not its order's: recorded REFUND_REQUIRED in the same insert, so no
   * delivery can apply it meanwhile (the sweep takes only RECEIVED rows), and refunded.
   */
  private async refundMismatch(
    payment: RecordedPaymentEvent,
  ): Promise<{ outcome: 'REFUND_REQUIRED' | 'DUPLICATE'; refundReason?: RefundReason }> {
    const { store, mysql, mysqlMs, logger } = this.deps;
    const row = await mysql.call(
      Deadline.in(mysqlMs),
      () => store.recordPayment(payment, 'webhook', 'INTENT_MISMATCH'),
      { evenWhenOpen: true },
    );
    if (row.refundReason !== 'INTENT_MISMATCH') return { outcome: 'DUPLICATE' };
    logger?.warn(
      { intentId: payment.providerRef, orderNo: payment.orderNo },
      'a payment on an intent of ours that its order did not open; refunding it',
    );
    return { outcome: 'REFUND_REQUIRED', refundReason: 'INTENT_MISMATCH' };
  }
}

/** POST /api/payments/stripe: Stripe's signed events. */
export function stripeWebhookRoutes(deps: {
  /** Null where Stripe is not configured: the route answers 404. */
  webhook: StripeWebhook | null;
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
