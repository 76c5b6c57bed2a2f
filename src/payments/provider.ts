/**
 * The payment-provider port (docs/architecture.md, "Payment providers"). Two adapters:
 *
 * - generic: the signed webhook of src/order/payments.ts, for providers without an adapter. It
 *   needs nothing made per order, and its refunds stay REFUND_REQUIRED for an operator.
 * - stripe (./stripe.ts): a PaymentIntent per order, cancelled when the order is, and refunds
 *   through Stripe's API.
 *
 * Outbound, an adapter with an API implements PaymentProviderApi (the order's activities and the
 * refund owner call it). Inbound, each adapter turns its webhook into ProviderEvents; a payment
 * then takes the one record-first path (PaymentWebhook.handle), so the order's rules (record
 * first, arrival decides, refund reasons) stay one piece of code for every provider.
 */
import type { PaymentFailure, RecordedPaymentEvent, RefundProgress } from '../db/store.js';
import type { PaymentIntentHandle, ProviderWithApi } from '../order/contract.js';

/** A payment to open or close at the provider: one per order. */
export interface OrderPayment {
  orderNo: string;
  amountCents: number;
}

/** A payment to give back: the event that brought the money, and the provider's id of the payment. */
export interface PaymentToRefund {
  eventId: string;
  orderNo: string;
  amountCents: number;
  providerRef: string | null;
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

export interface PaymentProviderApi {
  readonly name: ProviderWithApi;
  /**
   * Makes the order's payment (once: a retry returns the same one), for the shopper to pay.
   */
  openPayment(order: OrderPayment): Promise<PaymentIntentHandle>;
  /**
   * Closes the order's payment so it can no longer be paid: CANCELLED, or ALREADY_FINAL when it was
   * paid, is being paid or was closed before (money that still comes follows the arrival rule).
   * Without `paymentIntentId` (its opening never answered) it is found by the order first.
   */
  closePayment(order: OrderPayment & { paymentIntentId?: string }): Promise<'CANCELLED' | 'ALREADY_FINAL'>;
  /** Gives a payment back (once per event: a retry returns the same refund), and where the refund stands. */
  refund(payment: PaymentToRefund): Promise<RefundProgress>;
}

/** What one provider webhook call says, translated. */
export type ProviderEvent =
  /** Money arrived for an order: recorded first, then judged like every payment. */
  | { kind: 'payment'; payment: RecordedPaymentEvent }
  /** A payment attempt failed (no money moved): recorded for the order. */
  | { kind: 'payment_failed'; failure: PaymentFailure }
  /** A refund moved on; matched by the payment event id the refund carries, or by its own id. */
  | { kind: 'refund'; paymentEventId: string | null; refundId: string; progress: RefundProgress }
  /** Anything else: acknowledged and ignored. */
  | { kind: 'ignored'; type: string; reason: string };
