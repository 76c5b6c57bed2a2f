/**
 * The order's vocabulary and its rules, as plain data and pure functions. The vocabulary: every
 * status, reason and outcome an order and its payments can have, each list declared once (the
 * API's zod enums, the store's statuses and the dashboard derive from them). The rules: when a
 * payment came in time, which payment is applied and why one is refunded, which order can be
 * cancelled, how the wait for a payment ends. OrderWorkflow applies them to its state, the order
 * client to what MySQL recorded of a closed order. It imports nothing, so the workflow bundle and
 * the dashboard's browser script take it in, and test/order-rules.test.ts needs no server.
 */

/** The statuses an order row can have: a PENDING order exists only in its workflow. */
export const STORED_ORDER_STATUSES = [
  'AWAITING_PAYMENT',
  'PAID',
  'CANCELLED',
  'FAILED',
  'DISPUTED',
  'REFUNDED',
] as const;

/**
 * An order's statuses in the order it moves through them (docs/api.md, "Order states"). DISPUTED and
 * REFUNDED come after PAID, from the provider (a card holder's dispute, a refund made at the provider):
 * the workflow has closed by then, and never sets them.
 */
export const ORDER_STATUSES = ['PENDING', ...STORED_ORDER_STATUSES] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** While open the order's workflow decides what happens next; the workflow never changes the others. */
export const OPEN_STATUSES: readonly OrderStatus[] = ['PENDING', 'AWAITING_PAYMENT'];

export type StoredOrderStatus = (typeof STORED_ORDER_STATUSES)[number];

/**
 * The statuses of an order whose units are sold: paid, whatever became of the money since. A unit whose money went
 * back (a refund at the provider, a dispute lost) is not put back on sale: its goods may be on their way.
 */
export const SOLD_STATUSES = ['PAID', 'DISPUTED', 'REFUNDED'] as const satisfies readonly StoredOrderStatus[];

export function isSold(status: OrderStatus | undefined): boolean {
  return (SOLD_STATUSES as readonly string[]).includes(status ?? '');
}

/**
 * A dispute's standing as the order shows it (Stripe's dispute statuses folded): OPEN while the card holder's bank
 * decides (an inquiry included), then WON or LOST.
 */
export const DISPUTE_STANDINGS = ['OPEN', 'WON', 'LOST'] as const;
export type DisputeStanding = (typeof DISPUTE_STANDINGS)[number];

/** What the provider reported taken back from a paid order, and the status the order shows for it. */
export interface MoneyTakenBack {
  /** Refunds made at the provider without us (pending or done), in cents. */
  refundedCents: number;
  /** The newest dispute of the order's payment, if any. */
  dispute: DisputeStanding | null;
}

/**
 * A paid order's status once the provider took money back: DISPUTED while a dispute is open; REFUNDED once all of it
 * went back (refunds of the whole amount, or a dispute lost); else PAID (a part refunded shows as refundedCents).
 */
export function paidOrderStatus(totalCents: number, takenBack: MoneyTakenBack): 'PAID' | 'DISPUTED' | 'REFUNDED' {
  if (takenBack.dispute === 'OPEN') return 'DISPUTED';
  if (takenBack.dispute === 'LOST' || takenBack.refundedCents >= totalCents) return 'REFUNDED';
  return 'PAID';
}

/** OPERATOR_CANCELLED: the workflow itself was cancelled (Web UI, CLI) while the order awaited payment. */
export const CANCEL_REASONS = ['PAYMENT_TIMEOUT', 'USER_CANCELLED', 'OPERATOR_CANCELLED'] as const;
export type CancelReason = (typeof CANCEL_REASONS)[number];

/** The workflow's verdict on one payment event. */
export const PAYMENT_OUTCOMES = ['APPLIED', 'REFUND_REQUIRED'] as const;
export type PaymentOutcome = (typeof PAYMENT_OUTCOMES)[number];

/**
 * Where a REFUND_REQUIRED payment's refund stands at a provider that refunds through its API
 * (Stripe): asked (REFUND_REQUESTED), then the provider's answer or refund webhook: REFUNDED, or
 * REFUND_FAILED (an operator takes over). A payment through the generic webhook stays
 * REFUND_REQUIRED for an operator.
 */
export const REFUND_STATES = ['REFUND_REQUESTED', 'REFUNDED', 'REFUND_FAILED'] as const;
export type RefundState = (typeof REFUND_STATES)[number];

/** A payment row's outcome: RECEIVED from the webhook's first write until the verdict is written, then the refund's. */
export const STORED_PAYMENT_OUTCOMES = ['RECEIVED', ...PAYMENT_OUTCOMES, ...REFUND_STATES] as const;
export type StoredPaymentOutcome = (typeof STORED_PAYMENT_OUTCOMES)[number];

/**
 * A payment provider's name: the generic signed webhook, Stripe, or another registered provider (docs/api.md). A plain
 * string here, checked against the providers' registry (src/payments/providers/registry.ts) where a name comes in.
 */
export type PaymentProviderName = string;

/**
 * The webhook's answer: the verdict, DUPLICATE for an event already judged, or RECEIVED for an
 * event recorded whose verdict did not come in time (it is delivered and judged later).
 */
export const WEBHOOK_OUTCOMES = [...PAYMENT_OUTCOMES, 'DUPLICATE', 'RECEIVED'] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

/** Stripe's webhook answers a payment as the generic one does; its other events are RECORDED or IGNORED. */
export const STRIPE_WEBHOOK_OUTCOMES = [...WEBHOOK_OUTCOMES, 'RECORDED', 'IGNORED'] as const;
export type StripeWebhookOutcome = (typeof STRIPE_WEBHOOK_OUTCOMES)[number];

/**
 * Why a payment was not applied to its order. RECEIVED_AFTER_DEADLINE: recorded after the order's
 * payment deadline (judged by when it arrived, not when it was delivered); ORDER_NOT_FOUND: no
 * order with that number was ever accepted; INTENT_MISMATCH: paid on a provider's intent this
 * deployment opened, but not for that order (or in another currency).
 */
export const REFUND_REASONS = [
  'ORDER_NOT_AWAITING_PAYMENT',
  'AMOUNT_MISMATCH',
  'ALREADY_PAID',
  'ORDER_FAILED',
  'RECEIVED_AFTER_DEADLINE',
  'ORDER_NOT_FOUND',
  'INTENT_MISMATCH',
] as const;
export type RefundReason = (typeof REFUND_REASONS)[number];

/** The arrival rule: recorded at or before the deadline is in time (the store applies it in SQL too). */
export function receivedInTime(receivedAt: string, paymentDeadline: string): boolean {
  return Date.parse(receivedAt) <= Date.parse(paymentDeadline);
}

/** A shopper may cancel an order while it is open and no payment was applied to it. */
export function isCancellable(state: {
  status: OrderStatus;
  payments: ReadonlyArray<{ outcome: PaymentOutcome }>;
}): boolean {
  return OPEN_STATUSES.includes(state.status) && !state.payments.some((p) => p.outcome === 'APPLIED');
}

/** Why a payment cannot be applied to an order closed (or closing) as `status`. */
export function refundReasonFor(status: OrderStatus | undefined): RefundReason {
  if (isSold(status)) return 'ALREADY_PAID';
  if (status === 'FAILED') return 'ORDER_FAILED';
  return 'ORDER_NOT_AWAITING_PAYMENT';
}

/** The workflow's verdict on one payment event. */
export interface PaymentVerdict {
  outcome: PaymentOutcome;
  refundReason?: RefundReason;
}

/** A payment as it is judged: its amount and when MySQL recorded it (ISO). */
export interface PaymentArrival {
  amountCents: number;
  receivedAt: string;
}

/** The verdict of a recorded payment without its event fields: what the `pay` Update answered. */
export function verdictOf(record: PaymentVerdict): PaymentVerdict {
  return record.refundReason
    ? { outcome: record.outcome, refundReason: record.refundReason }
    : { outcome: record.outcome };
}

/** What a payment is judged against. */
export interface PayableOrder {
  totalCents: number;
  paymentDeadline: string;
  /** A payment was already applied. */
  paid: boolean;
  /** The status the order is closed or closing as; undefined while it waits for a payment. */
  closingAs: OrderStatus | undefined;
  /**
   * Whether the payment deadline decides (the arrival rule: the generic webhook). False for a
   * provider whose intent cannot be paid once cancelled (Stripe): its state machine decides.
   */
  deadlineDecides?: boolean;
}

/**
 * The verdict on a payment. What the payment itself says comes first (its amount, when it was
 * recorded), so the reason does not depend on when it was delivered; then the order's standing.
 */
export function judgePayment(order: PayableOrder, payment: PaymentArrival): PaymentVerdict {
  if (payment.amountCents !== order.totalCents) return refund('AMOUNT_MISMATCH');
  if (order.deadlineDecides !== false && !receivedInTime(payment.receivedAt, order.paymentDeadline))
    return refund('RECEIVED_AFTER_DEADLINE');
  if (order.paid) return refund('ALREADY_PAID');
  if (order.closingAs) return refund(refundReasonFor(order.closingAs));
  return { outcome: 'APPLIED' };
}

/** Whether a payment would pay the order were it still open: the right amount, recorded in time. */
export function paysInTime(
  order: Pick<PayableOrder, 'totalCents' | 'paymentDeadline' | 'deadlineDecides'>,
  payment: PaymentArrival,
): boolean {
  return judgePayment({ ...order, paid: false, closingAs: undefined }, payment).outcome === 'APPLIED';
}

/**
 * The verdict on a payment delivered after its order's workflow closed, from what MySQL recorded:
 * the stored verdict when there is one (a delivery that lost the race with its own earlier one),
 * else judged as the workflow would have against the order's final row; null without a row (no
 * such order, or not started yet).
 */
export function verdictOfClosedOrder(
  order: { status: OrderStatus; totalCents: number; paymentDeadline: string } | null,
  stored: (PaymentArrival & { outcome: string; refundReason: string | null }) | null,
): PaymentVerdict | null {
  if (stored?.outcome === 'APPLIED') return { outcome: 'APPLIED' };
  if (stored?.outcome === 'REFUND_REQUIRED')
    return refund((stored.refundReason ?? 'ORDER_NOT_AWAITING_PAYMENT') as RefundReason);
  if (!order) return null;
  const closed = {
    totalCents: order.totalCents,
    paymentDeadline: order.paymentDeadline,
    paid: isSold(order.status),
    closingAs: order.status,
  };
  return stored ? judgePayment(closed, stored) : refund(refundReasonFor(order.status));
}

/**
 * An order's row as the store finds it when a payment is recorded (under the row's lock): its status, its figures, and
 * whether another payment of the order is still to be judged (RECEIVED) or was applied.
 */
export interface OrderAtTheDoor {
  status: StoredOrderStatus;
  totalCents: number;
  paymentDeadline: string;
  otherPaymentInPlay: boolean;
}

/**
 * The verdict a payment gets as it is recorded (docs/fault-tolerance.md, "A payment's path"), or undefined when only
 * the order's workflow can give it. The order row's lock orders the recording and the close's cancelUnpaidOrder: the
 * first to commit decides, so a verdict given here is the one the workflow gives once told. Given only where every
 * rule agrees:
 *   - the order awaits payment, no other payment of it is in play, and this one pays it (the full amount, recorded in
 *     time): APPLIED. The workflow, told afterwards, judges it the same and closes the order PAID.
 *   - the order is sold: REFUND_REQUIRED, for the reason a closed order's payment gets. Its workflow must not hear of
 *     it: one not told yet of the payment applied here would apply this one too.
 * Anything else (no row yet, another payment in play, the wrong amount or a late one to an open order, an order closed
 * unpaid) is the workflow's to judge, as before the store judged any.
 */
export function judgeAtTheDoor(order: OrderAtTheDoor | null, payment: PaymentArrival): PaymentVerdict | undefined {
  if (!order) return undefined;
  if (order.status === 'AWAITING_PAYMENT') {
    if (order.otherPaymentInPlay || !paysInTime(order, payment)) return undefined;
    return { outcome: 'APPLIED' };
  }
  if (!isSold(order.status)) return undefined;
  return judgePayment(
    { totalCents: order.totalCents, paymentDeadline: order.paymentDeadline, paid: true, closingAs: order.status },
    payment,
  );
}

/** How an order's run ends: its outcome is decided first, then the order is closed accordingly. */
export type Outcome<Payment = PaymentArrival> =
  | { status: 'PAID'; payment: Payment }
  | { status: 'CANCELLED'; reason: CancelReason }
  | { status: 'FAILED'; reason: string };

/**
 * How the wait for a payment ended. A payment accepted before an operator's cancel wins: the money
 * was taken for a persisted order. An order whose provider refused to make its payment (nothing
 * the shopper can pay) fails unless its shopper or an operator cancelled it first.
 */
export function outcomeOfWait<Payment>(wait: {
  accepted: Payment | undefined;
  operatorCancelled: boolean;
  shopperCancelled: boolean;
  /** Why the order's payment could not be made at its provider; undefined while it could. */
  paymentUnavailable?: string | undefined;
}): Outcome<Payment> {
  if (wait.accepted) return { status: 'PAID', payment: wait.accepted };
  if (wait.operatorCancelled) return { status: 'CANCELLED', reason: 'OPERATOR_CANCELLED' };
  if (wait.shopperCancelled) return { status: 'CANCELLED', reason: 'USER_CANCELLED' };
  if (wait.paymentUnavailable) return { status: 'FAILED', reason: wait.paymentUnavailable };
  return { status: 'CANCELLED', reason: 'PAYMENT_TIMEOUT' };
}

function refund(refundReason: RefundReason): PaymentVerdict {
  return { outcome: 'REFUND_REQUIRED', refundReason };
}
