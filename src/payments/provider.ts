/**
 * The payment-provider port (docs/architecture.md, "Payment providers"). The providers, each a
 * folder of ./providers/ listed in ./providers/registry.ts:
 *
 * - generic: this service's own signed webhook, for providers without an adapter. It needs
 *   nothing made per order, and its refunds stay REFUND_REQUIRED for an operator.
 * - stripe: a PaymentIntent per order, cancelled when the order is, and refunds through Stripe's
 *   API.
 *
 * Outbound, an adapter with an API implements PaymentProviderApi (the order's activities and the
 * refund activity call it). Inbound, each adapter turns its webhook into ProviderEvents; a payment
 * then takes the one record-first path (PaymentReceiver.handle), so the order's rules (record
 * first, arrival decides, refund reasons) stay one piece of code for every provider.
 */
import type { PaymentFailure, RecordedPaymentEvent } from '../db/payments.js';
import type { RefundProgress } from '../db/refunds.js';
import type { Takeback } from '../db/rows.js';
import type { PaymentIntentHandle, ProviderWithApi } from '../model/order-workflow.js';

/** A payment to open at the provider: one per order, asked under the idempotency key of `keyAttempt`. */
export interface OrderPayment {
  orderNo: string;
  amountCents: number;
  /** 1, then one more after each 5xx (the provider replays a key's 5xx: src/activities/payments). */
  keyAttempt: number;
}

/** A payment the provider made for an order: the handle the shopper pays through, and what it was made for. */
export interface OpenedPayment extends PaymentIntentHandle {
  amountCents: number;
  currency: string;
  status: string;
}

/**
 * Where an intent stands once the provider was asked to close it: its state decides the order's close
 * (docs/fault-tolerance.md, "Stripe: the intent decides"), never a refusal's error code.
 */
export type ClosedIntent =
  /** It can no longer be paid: the order's unit may go back on sale. */
  | { status: 'canceled' }
  /** It was paid before the cancel: the money (all it received) pays the order. */
  | { status: 'succeeded'; amountReceived: number; currency: string; paidAt: Date }
  /** Its money is on its way (a bank debit): it may still succeed or fail; the unit is kept meanwhile. */
  | { status: 'processing'; since: Date };

/** A payment to give back: the event that brought the money, and the provider's id of the payment. */
export interface PaymentToRefund {
  eventId: string;
  orderNo: string;
  amountCents: number;
  providerRef: string | null;
  /** The idempotency key's attempt; past 1, the refund may exist already (a 5xx hid its answer). */
  refundKeyAttempt: number;
}

/**
 * The provider refused the request as invalid (a 4xx that no retry changes): the caller stops
 * asking. Anything else thrown (a timeout, a 5xx, a 429) is transient and asked again.
 */
export class ProviderRefusal extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'ProviderRefusal';
  }
}

/**
 * The provider refuses to refund a payment a dispute holds (Stripe: `charge_disputed`): not an operator's case yet,
 * the dispute decides (RefundStore.recordTakeback): lost or open, the chargeback gave the money back; won, it is ours
 * again and an operator refunds it.
 */
export class ProviderChargeDisputed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProviderChargeDisputed';
  }
}

/**
 * The provider answered 5xx: it may have done what was asked or not, and it replays that answer to
 * the same idempotency key. The caller finds out what happened, then asks under the next key.
 */
export class ProviderOutcomeUnknown extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProviderOutcomeUnknown';
  }
}

/** An idempotency key was reused with other parameters: a bug in the caller, never retried. */
export class ProviderKeyReused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProviderKeyReused';
  }
}

export interface PaymentProviderApi {
  readonly name: ProviderWithApi;
  /** Makes the order's payment for the shopper to pay (a retry under the same key returns the same one). */
  openPayment(order: OrderPayment): Promise<OpenedPayment>;
  /**
   * Closes one of the order's payments so it can no longer be paid, and answers where it stands
   * then: asked to cancel, and after any refusal read again and acted on by its state.
   * `attempt` (the caller's retry) names the cancel's idempotency key.
   */
  closeIntent(intent: { orderNo: string; intentId: string; attempt: number }): Promise<ClosedIntent>;
  /** Gives a payment back, all of it (once per payment: a retry gets the same refund), and where the refund stands. */
  refund(payment: PaymentToRefund): Promise<RefundProgress>;
  /** Where a refund asked before stands now (read from the provider), until it ends. */
  followRefund(payment: PaymentToRefund & { refundId: string | null }): Promise<RefundProgress>;
  /**
   * The provider's events created from `createdFrom` up to `createdUpTo` (its clock, seconds) that it has not
   * delivered to every endpoint yet (pending, or given up), translated: what the catch-up passes through the
   * webhook's path. Every page is one request.
   */
  undeliveredEvents(window: {
    createdFrom: number;
    createdUpTo: number;
  }): AsyncIterable<ProviderEvent & { eventId: string }>;
}

/** A refund or a dispute the provider reports on one of its payments (its order is found from the payment). */
export type ProviderTakeback = Omit<Takeback, 'orderNo' | 'provider'>;

/** What one provider webhook call says, translated. */
export type ProviderEvent =
  /**
   * Money arrived for an order: recorded first, then judged like every payment. `intent`: what the
   * provider's payment says of itself (whether it carries this deployment's tag, its currency), for
   * the check that it is one the order opened.
   */
  | { kind: 'payment'; payment: RecordedPaymentEvent; intent?: { tagged: boolean; currency: string } }
  /** A payment attempt failed (no money moved): recorded for the order. */
  | { kind: 'payment_failed'; failure: PaymentFailure }
  /**
   * A refund moved on; matched by the payment event id the refund carries (ours), or by its own id. One that names
   * no payment event of ours (made in the provider's Dashboard) is matched by its payment (`taken`).
   */
  | {
      kind: 'refund';
      paymentEventId: string | null;
      refundId: string;
      progress: RefundProgress;
      taken: ProviderTakeback | null;
    }
  /** A card holder's dispute of a payment opened, moved on, or ended. */
  | { kind: 'dispute'; taken: ProviderTakeback }
  /** Anything else: acknowledged and ignored. */
  | { kind: 'ignored'; type: string; reason: string };

/** What the catch-up hands each event it found undelivered to: the intake its webhook's events take. */
export interface CatchUpIntake {
  take(event: ProviderEvent): Promise<{ outcome: string }>;
}
