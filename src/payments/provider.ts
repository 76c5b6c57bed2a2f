/** The provider port (docs/architecture.md): PaymentProviderApi out; ProviderEvents in, down one record-first path. */
import type { PaymentFailure, RecordedPaymentEvent } from '../db/payments.js';
import type { PaymentRow, Takeback } from '../db/rows.js';
import type { PaymentIntentHandle, ProviderWithApi, RefundProgress } from '../model/order-workflow.js';

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

/** Its state, not an error code, decides the order's close (docs/fault-tolerance.md, "Stripe: the intent decides"). */
export type ClosedIntent =
  /** It can no longer be paid: the order's unit may go back on sale. */
  | { status: 'canceled' }
  /** It was paid before the cancel: the money (all it received) pays the order. */
  | { status: 'succeeded'; amountReceived: number; currency: string; paidAt: Date }
  /** Its money is on its way (a bank debit): it may still succeed or fail; the unit is kept meanwhile. */
  | { status: 'processing'; since: Date };

/** A payment to give back; past the key's first attempt the refund may exist already (a 5xx hid its answer). */
export type PaymentToRefund = Pick<
  PaymentRow,
  'eventId' | 'orderNo' | 'amountCents' | 'providerRef' | 'refundKeyAttempt'
>;

/** The provider refused the request as invalid (a 4xx no retry changes): stop asking. Anything else is asked again. */
export class ProviderRefusal extends Error {
  override name = 'ProviderRefusal';
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** A disputed charge cannot be refunded (Stripe: `charge_disputed`): the dispute decides it (disputeOwedMoney). */
export class ProviderChargeDisputed extends Error {
  override name = 'ProviderChargeDisputed';
}

/** A 5xx: done or not, and replayed to the same key; the caller finds out what happened, then uses the next key. */
export class ProviderOutcomeUnknown extends Error {
  override name = 'ProviderOutcomeUnknown';
}

/** An idempotency key was reused with other parameters: a bug in the caller, never retried. */
export class ProviderKeyReused extends Error {
  override name = 'ProviderKeyReused';
}

export interface PaymentProviderApi {
  readonly name: ProviderWithApi;
  /** Makes the order's payment for the shopper to pay (a retry under the same key returns the same one). */
  openPayment(order: OrderPayment): Promise<OpenedPayment>;
  /** Cancels one of the order's intents, reading it again after any refusal; `attempt` names the cancel's key. */
  closeIntent(intent: { orderNo: string; intentId: string; attempt: number }): Promise<ClosedIntent>;
  /** Gives a payment back, all of it (once per payment: a retry gets the same refund), and where the refund stands. */
  refund(payment: PaymentToRefund): Promise<RefundProgress>;
  /** Where a refund asked before stands now (read from the provider), until it ends. */
  followRefund(payment: PaymentToRefund & { refundId: string | null }): Promise<RefundProgress>;
  /** Events created in the window (its clock, seconds) not delivered to every endpoint: one request a page. */
  undeliveredEvents(window: { createdFrom: number; createdUpTo: number }): AsyncIterable<UndeliveredEvent>;
}

export type UndeliveredEvent = ProviderEvent & { eventId: string };

/** A refund or a dispute the provider reports on one of its payments (its order is found from the payment). */
export type ProviderTakeback = Omit<Takeback, 'orderNo' | 'provider'>;

/** What one provider webhook call says, translated. */
export type ProviderEvent =
  /** Money arrived: recorded, then judged. `intent`: its tag and currency, to check it is one the order opened. */
  | { kind: 'payment'; payment: RecordedPaymentEvent; intent?: { tagged: boolean; currency: string } }
  /** A payment attempt failed (no money moved): recorded for the order. */
  | { kind: 'payment_failed'; failure: PaymentFailure }
  /** A refund moved on, matched by our payment event id or its own; a Dashboard refund by its payment (`taken`). */
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
