/**
 * The Stripe adapter (docs/operations.md, "Payments through Stripe"): a PaymentIntent per order,
 * cancelled when the order is, refunds through Stripe's API, and Stripe's webhook translated into
 * ProviderEvents.
 *
 * Stripe's rules this follows (docs.stripe.com: idempotent requests, PaymentIntent lifecycle,
 * webhooks):
 * - The SDK puts a random idempotency key on every POST it retries itself, so a Temporal retry of
 *   an activity would make a second PaymentIntent or refund. Every POST here carries a key derived
 *   from the order or the payment event, and the SDK's own retries are off: Temporal retries.
 * - A key replays its first answer for 24 hours, an error included, so a key is used only for one
 *   request body.
 * - A cancelled PaymentIntent cannot be charged; one already `processing` can still succeed, and
 *   its money then follows the arrival rule like any late payment.
 * - Webhooks come duplicated, out of order and for days: events are recorded by their id, refunds
 *   only move forwards (Store.recordRefundProgress).
 */
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import type { StripeSettings } from '../config/index.js';
import type { RefundProgress } from '../db/store.js';
import { ORDER_NO_PATTERN, type PaymentIntentHandle, type ProviderWithApi } from '../order/contract.js';
import {
  ProviderRefusal,
  type OrderPayment,
  type PaymentProviderApi,
  type PaymentToRefund,
  type ProviderEvent,
} from './provider.js';

/** The API version every request is made with, pinned (the SDK's own default moves with its releases). */
export const STRIPE_API_VERSION = '2026-10-28.endive';

/** How long one Stripe request may take before it counts as failed (and is retried by its owner). */
const REQUEST_TIMEOUT_MS = 8_000;

/** How far a webhook's signature time may be from now (Stripe's default tolerance). */
const WEBHOOK_TOLERANCE_SECONDS = 300;

/** The metadata key naming the order on a PaymentIntent, and the payment event on a refund. */
export const ORDER_NO_METADATA = 'orderNo';
export const PAYMENT_EVENT_METADATA = 'paymentEventId';

/** The idempotency keys: one PaymentIntent per order, one refund per payment event, one cancel per order. */
export const stripeIdempotencyKeys = {
  openPayment: (orderNo: string) => `flash-checkout:order:${orderNo}:payment-intent`,
  cancelPayment: (orderNo: string) => `flash-checkout:order:${orderNo}:payment-intent-cancel`,
  refund: (eventId: string) => `flash-checkout:payment:${eventId}:refund`,
};

/** The SDK client as this adapter configures it: pinned version, no SDK retries, bounded requests. */
export function stripeClient(settings: StripeSettings): Stripe {
  const api = settings.apiUrl ? new URL(settings.apiUrl) : null;
  return new Stripe(settings.secretKey, {
    apiVersion: STRIPE_API_VERSION,
    maxNetworkRetries: 0,
    timeout: REQUEST_TIMEOUT_MS,
    telemetry: false,
    appInfo: { name: 'flash-checkout' },
    ...(api
      ? {
          host: api.hostname,
          port: Number(api.port || (api.protocol === 'https:' ? 443 : 80)),
          protocol: api.protocol === 'http:' ? 'http' : 'https',
        }
      : {}),
  });
}

export class StripeProvider implements PaymentProviderApi {
  readonly name: ProviderWithApi = 'stripe';
  private readonly stripe: Stripe;

  constructor(private readonly settings: StripeSettings) {
    this.stripe = stripeClient(settings);
  }

  async openPayment(order: OrderPayment): Promise<PaymentIntentHandle> {
    const intent = await this.createIntent(order);
    if (!intent.client_secret) throw new Error(`PaymentIntent ${intent.id} came back without a client secret`);
    return { id: intent.id, clientSecret: intent.client_secret };
  }

  async closePayment(order: OrderPayment & { paymentIntentId?: string }): Promise<'CANCELLED' | 'ALREADY_FINAL'> {
    // Opened but never answered: the same key finds (or makes) the order's one PaymentIntent.
    const id = order.paymentIntentId ?? (await this.createIntent(order)).id;
    try {
      await call(() =>
        this.stripe.paymentIntents.cancel(
          id,
          { cancellation_reason: 'abandoned' },
          { idempotencyKey: stripeIdempotencyKeys.cancelPayment(order.orderNo) },
        ),
      );
      return 'CANCELLED';
    } catch (err) {
      // Succeeded, processing or cancelled already: nothing more to close.
      if (err instanceof ProviderRefusal) return 'ALREADY_FINAL';
      throw err;
    }
  }

  async refund(payment: PaymentToRefund): Promise<RefundProgress> {
    if (!payment.providerRef)
      throw new ProviderRefusal(`payment ${payment.eventId} names no PaymentIntent to refund`, null);
    try {
      const refund = await call(() =>
        this.stripe.refunds.create(
          {
            payment_intent: payment.providerRef!,
            amount: payment.amountCents,
            metadata: { [PAYMENT_EVENT_METADATA]: payment.eventId, [ORDER_NO_METADATA]: payment.orderNo },
          },
          { idempotencyKey: stripeIdempotencyKeys.refund(payment.eventId) },
        ),
      );
      return refundProgressOf(refund);
    } catch (err) {
      // The money is back already (refunded in the Dashboard, say): done, not failed.
      if (err instanceof ProviderRefusal && err.code === 'charge_already_refunded')
        return { state: 'REFUNDED', refundId: null, error: err.message };
      throw err;
    }
  }

  private createIntent(order: OrderPayment): Promise<Stripe.PaymentIntent> {
    return call(() =>
      this.stripe.paymentIntents.create(
        {
          amount: order.amountCents,
          currency: this.settings.currency,
          metadata: { [ORDER_NO_METADATA]: order.orderNo },
          automatic_payment_methods: { enabled: true },
        },
        { idempotencyKey: stripeIdempotencyKeys.openPayment(order.orderNo) },
      ),
    );
  }
}

/** Where a Stripe refund stands, in the payment's refund states. */
export function refundProgressOf(refund: Pick<Stripe.Refund, 'id' | 'status' | 'failure_reason'>): RefundProgress {
  switch (refund.status) {
    case 'succeeded':
      return { state: 'REFUNDED', refundId: refund.id };
    case 'failed':
    case 'canceled':
      return {
        state: 'REFUND_FAILED',
        refundId: refund.id,
        error: `refund ${refund.status}${refund.failure_reason ? `: ${refund.failure_reason}` : ''}`,
      };
    default:
      // pending, requires_action: Stripe's refund webhook says how it ends.
      return { state: 'REFUND_REQUESTED', refundId: refund.id };
  }
}

/** A Stripe call with its errors sorted: a request Stripe refuses as invalid is a ProviderRefusal. */
async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    if (
      err instanceof Stripe.errors.StripeInvalidRequestError ||
      err instanceof Stripe.errors.StripeIdempotencyError ||
      err instanceof Stripe.errors.StripeCardError
    ) {
      throw new ProviderRefusal(`Stripe refused the request: ${err.message}`, err.code ?? null);
    }
    // Timeouts, connection errors, 5xx, 429, and keys Stripe does not accept (an operator fixes them): asked again.
    if (err instanceof Stripe.errors.StripeError)
      throw new Error(`Stripe did not answer the request: ${err.type} ${err.statusCode ?? ''} ${err.message}`);
    throw err;
  }
}

/** The signature did not verify: the webhook answers INVALID_SIGNATURE. */
export class StripeSignatureError extends Error {}

/** A signed event lacking what its type must carry (no data.object, no amount): INVALID_REQUEST, nothing recorded. */
export class MalformedStripeEvent extends Error {}

/**
 * Stripe's webhook, verified and translated: constructEvent over the raw body with the endpoint's
 * signing secret, then the events the order cares about.
 */
export class StripeEvents {
  constructor(private readonly settings: Pick<StripeSettings, 'webhookSecret'>) {}

  parse(rawBody: string, signature: string | undefined): ProviderEvent {
    let event: Stripe.Event;
    try {
      event = Stripe.webhooks.constructEvent(
        rawBody,
        signature ?? '',
        this.settings.webhookSecret,
        WEBHOOK_TOLERANCE_SECONDS,
      );
    } catch (err) {
      throw new StripeSignatureError(err instanceof Error ? err.message : String(err));
    }
    return translateStripeEvent(event);
  }
}

/**
 * A Stripe event and its Stripe-Signature, signed as Stripe signs (the SDK's test-header helper): what the tests, the
 * fault suite and the README's walk-through send to POST /api/payments/stripe.
 */
export function signedStripeEvent(
  secret: string,
  type: string,
  object: Record<string, unknown>,
  eventId = `evt_${randomUUID().replaceAll('-', '')}`,
): { payload: string; signature: string } {
  const payload = JSON.stringify({
    id: eventId,
    object: 'event',
    api_version: STRIPE_API_VERSION,
    created: Math.floor(Date.now() / 1000),
    type,
    data: { object },
  });
  return { payload, signature: Stripe.webhooks.generateTestHeaderString({ payload, secret }) };
}

/** A succeeded PaymentIntent of an order, as Stripe's `payment_intent.succeeded` carries it. */
export function stripeSucceededIntent(orderNo: string, intentId: string, amountCents: number): Record<string, unknown> {
  return {
    id: intentId,
    object: 'payment_intent',
    amount: amountCents,
    amount_received: amountCents,
    currency: 'usd',
    status: 'succeeded',
    metadata: { [ORDER_NO_METADATA]: orderNo },
  };
}

/** The ProviderEvent a verified Stripe event is; MalformedStripeEvent for one lacking what its type carries. */
export function translateStripeEvent(event: Stripe.Event): ProviderEvent {
  switch (event.type) {
    case 'payment_intent.succeeded': {
      const intent = objectOf(event);
      const orderNo = orderOf(intent);
      if (!orderNo) return { kind: 'ignored', type: event.type, reason: NO_ORDER };
      if (!Number.isSafeInteger(intent.amount_received) || intent.amount_received < 0)
        throw new MalformedStripeEvent(`event ${event.id}: amount_received is not a whole amount`);
      return {
        kind: 'payment',
        payment: {
          eventId: event.id,
          orderNo,
          amountCents: intent.amount_received,
          provider: 'stripe',
          providerRef: intent.id,
        },
      };
    }
    case 'payment_intent.payment_failed': {
      const intent = objectOf(event);
      const orderNo = orderOf(intent);
      if (!orderNo) return { kind: 'ignored', type: event.type, reason: NO_ORDER };
      const error = intent.last_payment_error;
      return {
        kind: 'payment_failed',
        failure: {
          eventId: event.id,
          orderNo,
          provider: 'stripe',
          providerRef: intent.id,
          code: error?.decline_code ?? error?.code ?? null,
          message: error?.message ?? null,
        },
      };
    }
    case 'refund.created':
    case 'refund.updated':
    case 'refund.failed':
    case 'charge.refund.updated': {
      const refund = objectOf(event);
      return {
        kind: 'refund',
        paymentEventId: refund.metadata?.[PAYMENT_EVENT_METADATA] ?? null,
        refundId: refund.id,
        progress: refundProgressOf(refund),
      };
    }
    default:
      return { kind: 'ignored', type: event.type, reason: 'not an event the order uses' };
  }
}

const NO_ORDER = 'the PaymentIntent names no order of this service';

/**
 * The object an event the order uses carries. Signed by Stripe, but read defensively: an event
 * without it is refused (MalformedStripeEvent), never a crash.
 */
function objectOf<T>(event: { id: string; type: string; data?: { object?: T } }): T {
  const object = event.data?.object;
  if (typeof object !== 'object' || object === null)
    throw new MalformedStripeEvent(`event ${event.id} (${event.type}) carries no data.object`);
  return object;
}

/** The order a PaymentIntent was made for: its metadata's order number, when it is one this service makes. */
function orderOf(intent: Pick<Stripe.PaymentIntent, 'metadata'>): string | null {
  const orderNo = intent.metadata?.[ORDER_NO_METADATA];
  return typeof orderNo === 'string' && ORDER_NO_PATTERN.test(orderNo) ? orderNo : null;
}
