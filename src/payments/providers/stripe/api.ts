/**
 * The Stripe adapter (docs/operations.md, "Payments through Stripe"). Derived keys on every POST, no SDK retries: a
 * Temporal retry makes no second intent or refund. A key replays its first answer (5xx too) for 24 h: a 5xx moves on.
 * Webhooks come duplicated, out of order and for days: a payment is its intent (one row), refunds move forwards only.
 */
import Stripe from 'stripe';
import type { StripeSettings } from './settings.js';
import type { IntentStanding } from '../../../db/payments.js';
import { ORDER_NO_PATTERN, type RefundProgress } from '../../../model/order-workflow.js';
import { Refusal } from '../../../infra/refusal.js';
import {
  ProviderChargeDisputed,
  ProviderKeyReused,
  ProviderOutcomeUnknown,
  ProviderRefusal,
  type ClosedIntent,
  type OpenedPayment,
  type OrderPayment,
  type PaymentProviderApi,
  type PaymentToRefund,
  type ProviderEvent,
  type ProviderTakeback,
  type UndeliveredEvent,
} from '../../provider.js';

/** The API version every request is made with, pinned (the SDK's own default moves with its releases). */
export const STRIPE_API_VERSION = '2026-10-28.endive';

/** How long one Stripe request may take before it counts as failed (and is retried by its owner). */
const REQUEST_TIMEOUT_MS = 8_000;

/** How far a webhook's signature time may be from now (Stripe's default tolerance). */
const WEBHOOK_TOLERANCE_SECONDS = 300;

/** The metadata keys: the order on a PaymentIntent, the deployment that opened it, the payment event on a refund. */
export const ORDER_NO_METADATA = 'orderNo';
export const DEPLOYMENT_METADATA = 'deployment';
export const PAYMENT_EVENT_METADATA = 'paymentEventId';

/** Attempt 1 is older builds' key (an intent opened before an upgrade is found); a cancel's is per caller attempt. */
export const stripeIdempotencyKeys = {
  openPayment: (orderNo: string, keyAttempt = 1) =>
    `flash-checkout:order:${orderNo}:payment-intent${keyAttempt > 1 ? `:${keyAttempt}` : ''}`,
  cancelIntent: (intentId: string, attempt: number) => `flash-checkout:intent:${intentId}:cancel:${attempt}`,
  refund: (eventId: string, keyAttempt = 1) =>
    `flash-checkout:payment:${eventId}:refund${keyAttempt > 1 ? `:${keyAttempt}` : ''}`,
};

/** Whether a key is for live money (sk_live_…, rk_live_…): Stripe's events carry the same `livemode`. */
export function isLiveKey(secretKey: string): boolean {
  return /^(sk|rk)_live_/.test(secretKey);
}

/** How many times closeIntent cancels an intent found still payable (requires_*) before it is asked again later. */
const CANCEL_ROUNDS = 3;

/** The SDK client as this adapter configures it: pinned version, no SDK retries, bounded requests. */
export function stripeClient(settings: StripeSettings): Stripe {
  const api = settings.apiUrl ? new URL(settings.apiUrl) : null;
  return new Stripe(settings.secretKey, {
    apiVersion: STRIPE_API_VERSION,
    maxNetworkRetries: 0,
    timeout: REQUEST_TIMEOUT_MS,
    telemetry: false,
    appInfo: { name: 'flash-checkout' },
    ...(api && {
      host: api.hostname,
      port: Number(api.port || (api.protocol === 'https:' ? 443 : 80)),
      protocol: api.protocol === 'http:' ? ('http' as const) : ('https' as const),
    }),
  });
}

export class StripeProvider implements PaymentProviderApi {
  readonly name = 'stripe';
  private readonly stripe: Stripe;

  constructor(private readonly settings: StripeSettings) {
    this.stripe = stripeClient(settings);
  }

  async openPayment(order: OrderPayment): Promise<OpenedPayment> {
    const intent = await call(() =>
      this.stripe.paymentIntents.create(
        {
          amount: order.amountCents,
          currency: this.settings.currency,
          metadata: { [ORDER_NO_METADATA]: order.orderNo, [DEPLOYMENT_METADATA]: this.settings.deploymentTag },
          // Cards settle at once; a bank debit sits `processing` for days (STRIPE_PAYMENT_METHOD_TYPES).
          allowed_payment_method_types: this.settings
            .paymentMethodTypes as Stripe.PaymentIntentCreateParams.AllowedPaymentMethodType[],
        },
        { idempotencyKey: stripeIdempotencyKeys.openPayment(order.orderNo, order.keyAttempt) },
      ),
    );
    if (!intent.client_secret) throw new Error(`PaymentIntent ${intent.id} came back without a client secret`);
    return {
      id: intent.id,
      clientSecret: intent.client_secret,
      amountCents: intent.amount,
      currency: intent.currency,
      status: intent.status,
    };
  }

  async closeIntent(ref: { orderNo: string; intentId: string; attempt: number }): Promise<ClosedIntent> {
    for (let round = 1; round <= CANCEL_ROUNDS; round++) {
      try {
        await call(() =>
          this.stripe.paymentIntents.cancel(
            ref.intentId,
            { cancellation_reason: 'abandoned' },
            { idempotencyKey: stripeIdempotencyKeys.cancelIntent(ref.intentId, ref.attempt * 10 + round) },
          ),
        );
        return { status: 'canceled' };
      } catch (err) {
        // Refused (succeeded, processing, canceled already) or unknown (a 5xx, a timeout): the intent says.
        if (!(err instanceof ProviderRefusal) && !(err instanceof ProviderOutcomeUnknown)) throw err;
      }
      const intent = await call(() => this.stripe.paymentIntents.retrieve(ref.intentId, { expand: ['latest_charge'] }));
      const closed = closedIntentOf(intent);
      if (closed) return closed;
      // requires_payment_method, requires_action, requires_confirmation, requires_capture: still payable, cancel again.
    }
    throw new Error(`PaymentIntent ${ref.intentId} is still payable after ${CANCEL_ROUNDS} cancels; asking again`);
  }

  async refund(payment: PaymentToRefund): Promise<RefundProgress> {
    const intentId = payment.providerRef;
    if (!intentId) throw new ProviderRefusal(`payment ${payment.eventId} names no PaymentIntent to refund`, null);
    // Past the first key a 5xx hid an earlier ask's outcome: the refund it made, if any, is found first.
    const made = payment.refundKeyAttempt > 1 ? await this.findRefund(intentId, payment.eventId) : null;
    if (made) return made;
    try {
      const refund = await call(() =>
        this.stripe.refunds.create(
          {
            payment_intent: intentId,
            amount: payment.amountCents,
            metadata: { [PAYMENT_EVENT_METADATA]: payment.eventId, [ORDER_NO_METADATA]: payment.orderNo },
          },
          { idempotencyKey: stripeIdempotencyKeys.refund(payment.eventId, payment.refundKeyAttempt) },
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

  async followRefund(payment: PaymentToRefund & { refundId: string | null }): Promise<RefundProgress> {
    const { refundId } = payment;
    if (refundId) return refundProgressOf(await call(() => this.stripe.refunds.retrieve(refundId)));
    // Asked, but its id never reached us (a 5xx hid it): found by the payment event its metadata names.
    const found = payment.providerRef ? await this.findRefund(payment.providerRef, payment.eventId) : null;
    return found ?? { state: 'REFUND_REQUESTED', refundId: null };
  }

  async *undeliveredEvents(window: { createdFrom: number; createdUpTo: number }): AsyncIterable<UndeliveredEvent> {
    const owner = { deploymentTag: this.settings.deploymentTag, livemode: isLiveKey(this.settings.secretKey) };
    // Stripe lists newest first; a page is asked after the last event of the one before.
    let startingAfter: string | undefined;
    for (;;) {
      const page = await call(() =>
        this.stripe.events.list({
          created: { gte: window.createdFrom, lte: window.createdUpTo },
          delivery_success: false,
          types: [...STRIPE_EVENT_TYPES],
          limit: 100,
          ...(startingAfter ? { starting_after: startingAfter } : {}),
        }),
      );
      for (const event of page.data) {
        let translated: ProviderEvent;
        try {
          translated = translateStripeEvent(event, owner);
        } catch (err) {
          if (!(err instanceof MalformedStripeEvent)) throw err;
          translated = { kind: 'ignored', type: event.type, reason: err.message };
        }
        yield { ...translated, eventId: event.id };
      }
      const last = page.data.at(-1);
      if (!page.has_more || !last) return;
      startingAfter = last.id;
    }
  }

  /** The refund asked for a payment, found by the payment event its metadata names (not the Search API: it lags). */
  private async findRefund(intentId: string, eventId: string): Promise<RefundProgress | null> {
    const refunds = await call(() => this.stripe.refunds.list({ payment_intent: intentId, limit: 100 }));
    const ours = refunds.data.find((r) => r.metadata?.[PAYMENT_EVENT_METADATA] === eventId && r.status !== 'failed');
    return ours ? refundProgressOf(ours) : null;
  }
}

/** An intent's state as the close acts on it; null while it can still be paid (cancel it again). */
function closedIntentOf(intent: Stripe.PaymentIntent): ClosedIntent | null {
  switch (intent.status) {
    case 'canceled':
      return { status: 'canceled' };
    case 'succeeded': {
      const charge = typeof intent.latest_charge === 'object' && intent.latest_charge ? intent.latest_charge : null;
      return {
        status: 'succeeded',
        amountReceived: intent.amount_received,
        currency: intent.currency,
        // Stripe's own time of the money (the charge), else of the intent: never our clock.
        paidAt: new Date((charge?.created ?? intent.created) * 1000),
      };
    }
    case 'processing':
      return { status: 'processing', since: new Date(intent.created * 1000) };
    default:
      return null;
  }
}

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

/** Stripe's errors sorted: invalid: ProviderRefusal; 5xx: ProviderOutcomeUnknown; key reused: ProviderKeyReused. */
async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    if (err instanceof Stripe.errors.StripeIdempotencyError) {
      // 409: another request with this key is in flight; 400: the key was used with other parameters.
      if (err.statusCode === 409) throw new Error(`Stripe: a request with this key is in flight: ${err.message}`);
      throw new ProviderKeyReused(`Stripe refused an idempotency key reused with other parameters: ${err.message}`);
    }
    if (err instanceof Stripe.errors.StripeInvalidRequestError && err.code === 'charge_disputed')
      throw new ProviderChargeDisputed(`Stripe refuses to refund a disputed charge: ${err.message}`);
    if (err instanceof Stripe.errors.StripeInvalidRequestError || err instanceof Stripe.errors.StripeCardError)
      throw new ProviderRefusal(`Stripe refused the request: ${err.message}`, err.code ?? null);
    if (err instanceof Stripe.errors.StripeError && (err.statusCode ?? 0) >= 500)
      throw new ProviderOutcomeUnknown(`Stripe answered ${err.statusCode}: ${err.message}`);
    // Timeouts, connection errors, 429, and keys Stripe does not accept (an operator fixes them): asked again.
    if (err instanceof Stripe.errors.StripeError)
      throw new Error(`Stripe did not answer the request: ${err.type} ${err.statusCode ?? ''} ${err.message}`);
    throw err;
  }
}

/** A signed event lacking what its type must carry (no data.object, no amount): INVALID_REQUEST, nothing recorded. */
export class MalformedStripeEvent extends Error {}

/** Stripe's webhook verified (constructEvent over the raw body, the endpoint's secret; else INVALID_SIGNATURE). */
export function verifiedStripeEvent(webhookSecret: string, rawBody: string, signature: string | undefined) {
  try {
    return Stripe.webhooks.constructEvent(rawBody, signature ?? '', webhookSecret, WEBHOOK_TOLERANCE_SECONDS);
  } catch (err) {
    throw new Refusal('INVALID_SIGNATURE', err instanceof Error ? err.message : String(err));
  }
}

/** Who this deployment is to Stripe: the tag its intents carry, and whether its key moves live money. */
type StripeOwner = { deploymentTag: string; livemode: boolean };

/** The ProviderEvent a verified Stripe event is; MalformedStripeEvent for one lacking what its type carries. */
export function translateStripeEvent(event: Stripe.Event, owner: StripeOwner): ProviderEvent {
  // The other mode's events (a test-mode endpoint sent live events, or the reverse) are never ours.
  if (typeof event.livemode === 'boolean' && event.livemode !== owner.livemode)
    return { kind: 'ignored', type: event.type, reason: `a ${event.livemode ? 'live' : 'test'}-mode event` };
  switch (event.type) {
    case 'payment_intent.succeeded':
    case 'payment_intent.payment_failed': {
      const intent = objectOf(event);
      // The order the intent was made for: its metadata's order number, when it is one this service makes.
      const orderNo = intent.metadata?.[ORDER_NO_METADATA];
      if (typeof orderNo !== 'string' || !ORDER_NO_PATTERN.test(orderNo))
        return { kind: 'ignored', type: event.type, reason: 'the PaymentIntent names no order of this service' };
      const tag = intent.metadata?.[DEPLOYMENT_METADATA];
      // Another deployment's intent: ignored, never recorded nor refunded.
      if (tag !== undefined && tag !== owner.deploymentTag)
        return { kind: 'ignored', type: event.type, reason: `an intent of another deployment (${tag})` };
      const ref = { eventId: event.id, orderNo, provider: 'stripe' as const, providerRef: intent.id };
      if (event.type === 'payment_intent.payment_failed') {
        const error = intent.last_payment_error;
        const failure = { ...ref, code: error?.decline_code ?? error?.code ?? null, message: error?.message ?? null };
        return { kind: 'payment_failed', failure };
      }
      if (!Number.isSafeInteger(intent.amount_received) || intent.amount_received < 0)
        throw new MalformedStripeEvent(`event ${event.id}: amount_received is not a whole amount`);
      return {
        kind: 'payment',
        payment: {
          ...ref,
          amountCents: intent.amount_received,
          // Stripe's time of the event: when the intent succeeded, by Stripe's clock.
          ...(Number.isSafeInteger(event.created) ? { paidAtProvider: new Date(event.created * 1000) } : {}),
        },
        intent: { tagged: tag !== undefined, currency: String(intent.currency ?? '') },
      };
    }
    case 'refund.created':
    case 'refund.updated':
    case 'refund.failed':
    case 'charge.refund.updated': {
      const refund = objectOf(event);
      const paymentEventId = refund.metadata?.[PAYMENT_EVENT_METADATA] ?? null;
      const intentId = idOf(refund.payment_intent);
      return {
        kind: 'refund',
        paymentEventId,
        refundId: refund.id,
        progress: refundProgressOf(refund),
        // Not one we asked for (a refund in the Dashboard): money taken back from the intent's payment.
        taken: paymentEventId === null && intentId ? refundTakeback(refund, intentId) : null,
      };
    }
    case 'charge.dispute.created':
    case 'charge.dispute.updated':
    case 'charge.dispute.closed':
    case 'charge.dispute.funds_withdrawn':
    case 'charge.dispute.funds_reinstated': {
      const dispute = objectOf(event);
      const intentId = idOf(dispute.payment_intent);
      if (!intentId)
        return { kind: 'ignored', type: event.type, reason: 'a dispute of a charge without a PaymentIntent' };
      return { kind: 'dispute', taken: disputeTakeback(dispute, intentId) };
    }
    case 'charge.refunded':
      // Each refund of the charge comes as its own refund.created / refund.updated, which say which one it was.
      return { kind: 'ignored', type: event.type, reason: 'its refunds come as refund.* events' };
    default:
      return { kind: 'ignored', type: event.type, reason: 'not an event the order uses' };
  }
}

/** The events the order uses: what the catch-up asks Stripe for (at most 20 types per list). */
export const STRIPE_EVENT_TYPES = [
  'payment_intent.succeeded',
  'payment_intent.payment_failed',
  'refund.created',
  'refund.updated',
  'refund.failed',
  'charge.refund.updated',
  'charge.dispute.created',
  'charge.dispute.updated',
  'charge.dispute.closed',
  'charge.dispute.funds_withdrawn',
  'charge.dispute.funds_reinstated',
] as const;

const idOf = (ref: string | { id: string } | null | undefined) => (typeof ref === 'string' ? ref : (ref?.id ?? null));

/** A refund we did not ask for, as money taken back from its payment: pending and done count, failed does not. */
export function refundTakeback(
  refund: Pick<Stripe.Refund, 'id' | 'amount' | 'status' | 'created' | 'reason'>,
  intentId: string,
): ProviderTakeback {
  const status = refund.status ?? 'pending';
  const [folded, stage] =
    status === 'succeeded'
      ? (['SUCCEEDED', 2] as const)
      : status === 'failed' || status === 'canceled'
        ? (['FAILED', 3] as const)
        : (['PENDING', 1] as const);
  return {
    id: refund.id,
    kind: 'REFUND',
    intentId,
    amountCents: refund.amount,
    status: folded,
    providerStatus: status,
    stage,
    reason: refund.reason ?? null,
    dueBy: null,
    createdAt: new Date(refund.created * 1000),
  };
}

/** A dispute: OPEN while the bank decides (`warning_*` too), WON or LOST; its stage never moves back. */
export function disputeTakeback(
  dispute: Pick<Stripe.Dispute, 'id' | 'amount' | 'status' | 'created' | 'reason' | 'evidence_details'>,
  intentId: string,
): ProviderTakeback {
  const status: string = dispute.status;
  const [standing, stage] =
    status === 'lost'
      ? (['LOST', 3] as const)
      : status === 'won' || status === 'warning_closed' || status === 'prevented'
        ? (['WON', 3] as const)
        : status === 'under_review' || status === 'warning_under_review'
          ? (['OPEN', 2] as const)
          : (['OPEN', 1] as const);
  const dueBy = dispute.evidence_details?.due_by;
  return {
    id: dispute.id,
    kind: 'DISPUTE',
    intentId,
    amountCents: dispute.amount,
    status: standing,
    providerStatus: status,
    stage,
    reason: dispute.reason ?? null,
    dueBy: typeof dueBy === 'number' ? new Date(dueBy * 1000) : null,
    createdAt: new Date(dispute.created * 1000),
  };
}

/** By MySQL: MISMATCH is refunded, FOREIGN ignored; tagged, none recorded is OURS (opened before intents were). */
export function intentOwnership(
  standing: IntentStanding,
  orderNo: string,
  intent: { tagged: boolean; currency: string },
  currency: string,
): 'OURS' | 'MISMATCH' | 'FOREIGN' {
  if (!intent.tagged) return standing.orderExists ? 'OURS' : 'FOREIGN';
  if (standing.intent) {
    const sameOrder = standing.intent.orderNo === orderNo;
    return sameOrder && standing.intent.currency === intent.currency && intent.currency === currency
      ? 'OURS'
      : 'MISMATCH';
  }
  return standing.orderIntents > 0 ? 'MISMATCH' : 'OURS';
}

/** The object an event carries, read defensively though signed: missing, MalformedStripeEvent, never a crash. */
function objectOf<T>(event: { id: string; type: string; data?: { object?: T } }): T {
  const object = event.data?.object;
  if (typeof object !== 'object' || object === null)
    throw new MalformedStripeEvent(`event ${event.id} (${event.type}) carries no data.object`);
  return object;
}
