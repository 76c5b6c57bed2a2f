/**
 * The order's rules as pure functions: when a payment came in time, which payment is applied and
 * why one is refunded, which order can be cancelled, how the wait for a payment ends. OrderWorkflow
 * applies them to its state, the order client to what MySQL recorded of a closed order. Plain
 * functions of plain data, so they run in the workflow sandbox and test/order-rules.test.ts tests
 * them without a server.
 */
import type { OrderState, PaymentReceived, PaymentVerdict } from './contract.js';
import { OPEN_STATUSES, type CancelReason, type OrderStatus, type RefundReason } from './vocabulary.js';

/** The arrival rule: recorded at or before the deadline is in time (the store applies it in SQL too). */
export function receivedInTime(receivedAt: string, paymentDeadline: string): boolean {
  return Date.parse(receivedAt) <= Date.parse(paymentDeadline);
}

/** A shopper may cancel an order while it is open and no payment was applied to it. */
export function isCancellable(state: Pick<OrderState, 'status' | 'payments'>): boolean {
  return OPEN_STATUSES.includes(state.status) && !state.payments.some((p) => p.outcome === 'APPLIED');
}

/** Why a payment cannot be applied to an order closed (or closing) as `status`. */
export function refundReasonFor(status: OrderStatus | undefined): RefundReason {
  if (status === 'PAID') return 'ALREADY_PAID';
  if (status === 'FAILED') return 'ORDER_FAILED';
  return 'ORDER_NOT_AWAITING_PAYMENT';
}

/** The verdict of a recorded payment without its event fields: what the `pay` Update answered. */
export function verdictOf(record: PaymentVerdict): PaymentVerdict {
  return record.refundReason ? { outcome: record.outcome, refundReason: record.refundReason } : { outcome: record.outcome };
}

/** What a payment is judged against. */
export interface PayableOrder {
  totalCents: number;
  paymentDeadline: string;
  /** A payment was already applied. */
  paid: boolean;
  /** The status the order is closed or closing as; undefined while it waits for a payment. */
  closingAs: OrderStatus | undefined;
}

/**
 * The verdict on a payment. What the payment itself says comes first (its amount, when it was
 * recorded), so the reason does not depend on when it was delivered; then the order's standing.
 */
export function judgePayment(order: PayableOrder, payment: Pick<PaymentReceived, 'amountCents' | 'receivedAt'>): PaymentVerdict {
  if (payment.amountCents !== order.totalCents) return refund('AMOUNT_MISMATCH');
  if (!receivedInTime(payment.receivedAt, order.paymentDeadline)) return refund('RECEIVED_AFTER_DEADLINE');
  if (order.paid) return refund('ALREADY_PAID');
  if (order.closingAs) return refund(refundReasonFor(order.closingAs));
  return { outcome: 'APPLIED' };
}

/** Whether a payment would pay the order were it still open: the right amount, recorded in time. */
export function paysInTime(order: Pick<PayableOrder, 'totalCents' | 'paymentDeadline'>, payment: PaymentReceived): boolean {
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
  stored: (Pick<PaymentReceived, 'amountCents' | 'receivedAt'> & { outcome: string; refundReason: string | null }) | null,
): PaymentVerdict | null {
  if (stored?.outcome === 'APPLIED') return { outcome: 'APPLIED' };
  if (stored?.outcome === 'REFUND_REQUIRED') return refund((stored.refundReason ?? 'ORDER_NOT_AWAITING_PAYMENT') as RefundReason);
  if (!order) return null;
  const closed = { totalCents: order.totalCents, paymentDeadline: order.paymentDeadline, paid: order.status === 'PAID', closingAs: order.status };
  return stored ? judgePayment(closed, stored) : refund(refundReasonFor(order.status));
}

/** How an order's run ends: its outcome is decided first, then the order is closed accordingly. */
export type Outcome = { status: 'PAID'; payment: PaymentReceived } | { status: 'CANCELLED'; reason: CancelReason } | { status: 'FAILED'; reason: string };

/**
 * How the wait for a payment ended. A payment accepted before an operator's cancel wins: the money
 * was taken for a persisted order.
 */
export function outcomeOfWait(wait: { accepted: PaymentReceived | undefined; operatorCancelled: boolean; shopperCancelled: boolean }): Outcome {
  if (wait.accepted) return { status: 'PAID', payment: wait.accepted };
  if (wait.operatorCancelled) return { status: 'CANCELLED', reason: 'OPERATOR_CANCELLED' };
  return { status: 'CANCELLED', reason: wait.shopperCancelled ? 'USER_CANCELLED' : 'PAYMENT_TIMEOUT' };
}

function refund(refundReason: RefundReason): PaymentVerdict {
  return { outcome: 'REFUND_REQUIRED', refundReason };
}
