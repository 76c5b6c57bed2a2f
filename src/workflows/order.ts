/**
 * OrderWorkflow: one durable process per order (docs/fault-tolerance.md).
 *
 * It first decides the order's outcome, then closes the order on one path that cannot be cancelled:
 *
 *   decide   persistOrder (claims the Redis reservation, writes MySQL)
 *              fails for good / cancelled while pending ─────────────────────────▶ FAILED
 *              ok ─▶ AWAITING_PAYMENT ─ wait for a payment, a cancel or the deadline
 *                        payment ─▶ PAID · deadline ─▶ CANCELLED (PAYMENT_TIMEOUT)
 *                        shopper ─▶ CANCELLED (USER_CANCELLED) · operator ─▶ CANCELLED (OPERATOR_CANCELLED)
 *   close    PAID       confirm the reservation (Redis), then markPaid (MySQL); if the units are
 *                       gone from Redis the order FAILS instead and the payment is refunded
 *            CANCELLED  cancelUnpaidOrder (MySQL): a payment recorded in time but not delivered
 *                       yet turns it into PAID (above); else cancelled, and the reservation
 *                       released (Redis)
 *            FAILED     recordOrderFailure (MySQL: a FAILED row, units back if it was persisted),
 *                       then release the reservation (Redis); an accepted payment is refunded
 *            and every payment that was not applied is recorded REFUND_REQUIRED.
 *
 * Payments and cancels arrive as Updates (the caller gets the verdict, a refused cancel never
 * enters the history) or, from older callers, as signals; both go through the same handlers.
 * A payment is judged by when MySQL recorded it (receivedAt), not by when it is delivered: the SDK
 * runs an activation's Updates before its timer, and a delivery can come late (docs/fault-tolerance.md,
 * "A payment's path"). Orders started before that rule replay without it (patch
 * ORDER_PATCHES.paymentByArrival); before ORDER_PATCHES.decideThenClose, orderWorkflowV1.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import {
  awaitPersistedUpdate,
  cancelOrderSignal,
  cancelUpdate,
  isCancellable,
  NOT_CANCELLABLE,
  OPEN_STATUSES,
  ORDER_PATCHES,
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  payUpdate,
  paymentReceivedSignal,
  receivedInTime,
  refundReasonFor,
  statusQuery,
  verdictOf,
  type CancelReason,
  type OrderInput,
  type OrderState,
  type PaymentReceived,
  type PaymentVerdict,
  type RefundReason,
} from '../order/contract.js';
import { durationToMs } from '../order/contract.js';
import { orderWorkflowV1 } from './order-v1.js';

/**
 * persistOrder runs as a local activity: in the worker, inside the workflow task that starts the
 * order, so persisting costs Temporal one workflow task instead of three (docs/performance.md).
 * It is worth retrying through a database hiccup or fail-over (about a minute of backoff), but not
 * forever: the shopper is waiting, and failing gives the stock back to others. Backoffs of 1 s or
 * more wait on a durable timer, so queries, payments and cancels are answered between attempts.
 */
const { persistOrder } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '5s',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
});

/**
 * From v4 (ORDER_PATCHES.persistOutlastsOutage): a 202 is a promise, so persisting outlasts a
 * MySQL outage instead of failing the order after a minute: it retries for PERSIST_BUDGET (the
 * same 15 minutes a promise may wait for its start), then fails and gives the stock back.
 */
const { persistOrder: persistOrderThroughOutage } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '5s',
  scheduleToCloseTimeout: '15m',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

/**
 * Closing must happen eventually: a lost markPaid loses money, a lost cancelOrder or release loses
 * stock. These retry without limit (capped backoff); every one of them is idempotent.
 */
const { markPaid, cancelOrder, cancelUnpaidOrder, recordOrderFailure, recordRefundRequired, releaseReservation, confirmReservation } =
  proxyActivities<Activities>({
    startToCloseTimeout: '10s',
    retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
  });

type Outcome = { status: 'PAID'; payment: PaymentReceived } | { status: 'CANCELLED'; reason: CancelReason } | { status: 'FAILED'; reason: string };

export async function OrderWorkflow(input: OrderInput): Promise<OrderState> {
  if (!patched(ORDER_PATCHES.decideThenClose)) return orderWorkflowV1(input);
  /** Payments judged by when they were recorded (false: orders started before, which judge by when they run). */
  const byArrival = patched(ORDER_PATCHES.paymentByArrival);

  // Until the order is persisted, the earliest its deadline can be: the reservation + the window.
  // By arrival (v3) persistOrder moves it to when the order became payable, so a start or a
  // persist that came late (a worker, Temporal or MySQL away) keeps the shopper's whole window;
  // before, it ran from the reservation.
  let paymentDeadline = new Date(Date.parse(input.createdAt) + durationToMs(input.paymentWindow)).toISOString();
  const state: OrderState = {
    orderNo: input.orderNo,
    sku: input.sku,
    userId: input.userId,
    quantity: input.quantity,
    totalCents: input.unitPriceCents * input.quantity,
    status: 'PENDING',
    createdAt: input.createdAt,
    paymentDeadline,
    payments: [],
  };
  const reservation = { sku: input.sku, orderNo: input.orderNo };
  let accepted: PaymentReceived | undefined;
  let cancelRequested = false;
  /** Set once the outcome is decided: from then on no payment is accepted and no cancel either. */
  let decided: Outcome | undefined;
  /** The operator's cancellation of this workflow, rethrown once the order is closed. */
  let operatorCancellation: unknown;
  /** While cancelUnpaidOrder looks for a payment recorded in time: such payments wait for its answer. */
  let settling = false;
  const refunds: Array<PaymentReceived & { reason: RefundReason }> = [];

  const setStatus = (status: OrderState['status']) => {
    state.status = status;
    upsertSearchAttributes([{ key: ORDER_STATUS_SEARCH_ATTRIBUTE, value: status }]);
  };

  /** Why a payment can no longer be applied, once the order is closing or closed. */
  const closedReason = (): RefundReason => refundReasonFor(accepted ? 'PAID' : decided?.status === 'FAILED' ? 'FAILED' : state.status);

  /** The one place a payment event is judged; the same event judged twice gets the same verdict. */
  const judgePayment = (payment: PaymentReceived): PaymentVerdict => {
    const seen = state.payments.find((p) => p.eventId === payment.eventId);
    if (seen) return verdictOf(seen);
    let verdict: PaymentVerdict;
    // By arrival, what the payment itself says comes first (its amount, when it was recorded), so
    // that its reason does not depend on when it was delivered.
    const wrongAmount = payment.amountCents !== state.totalCents;
    if (byArrival && wrongAmount) verdict = { outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' };
    else if (byArrival && payment.receivedAt !== undefined && state.status !== 'PENDING' && !receivedInTime(payment.receivedAt, paymentDeadline)) {
      // (One that reaches a PENDING order came before it was payable, so before its deadline.)
      // Judged by when it was recorded, whatever the order of this delivery and the timer's firing.
      verdict = { outcome: 'REFUND_REQUIRED', refundReason: 'RECEIVED_AFTER_DEADLINE' };
    } else if (accepted) verdict = { outcome: 'REFUND_REQUIRED', refundReason: 'ALREADY_PAID' };
    else if (decided || !OPEN_STATUSES.includes(state.status)) verdict = { outcome: 'REFUND_REQUIRED', refundReason: closedReason() };
    else if (wrongAmount) verdict = { outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' };
    else {
      // Accepted even while PENDING: it is applied once the order is persisted, refunded if it never is.
      accepted = payment;
      verdict = { outcome: 'APPLIED' };
    }
    state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, ...verdict });
    if (verdict.refundReason) refunds.push({ ...payment, reason: verdict.refundReason });
    return verdict;
  };

  /**
   * A payment recorded in time that reaches an order while cancelUnpaidOrder runs waits for it:
   * that step finds every such payment in MySQL, so it decides, and this one then reads the outcome.
   */
  const receivePayment = async (payment: PaymentReceived): Promise<PaymentVerdict> => {
    const mayPay =
      settling &&
      payment.receivedAt !== undefined &&
      receivedInTime(payment.receivedAt, paymentDeadline) &&
      payment.amountCents === state.totalCents &&
      !state.payments.some((p) => p.eventId === payment.eventId);
    if (mayPay) await condition(() => !settling);
    return judgePayment(payment);
  };

  setHandler(statusQuery, () => state);
  setHandler(payUpdate, receivePayment, { validator: validatePayment });
  setHandler(paymentReceivedSignal, (payment) => void receivePayment(payment));
  setHandler(
    cancelUpdate,
    () => {
      cancelRequested = true;
      return state;
    },
    {
      validator: () => {
        if (decided || !isCancellable(state)) throw new Error(`${NOT_CANCELLABLE}: order ${state.orderNo} is ${state.status} and can no longer be cancelled`);
      },
    },
  );
  // No command is issued: the handler only watches the state, so histories recorded before it replay.
  setHandler(awaitPersistedUpdate, async () => {
    await condition(() => state.status !== 'PENDING');
    return state;
  });
  setHandler(cancelOrderSignal, () => {
    if (!decided && isCancellable(state)) cancelRequested = true;
  });

  // ---- decide ---------------------------------------------------------------------------------
  const decide = async (): Promise<Outcome> => {
    try {
      const persist = patched(ORDER_PATCHES.persistOutlastsOutage) ? persistOrderThroughOutage : persistOrder;
      const persisted = await persist({ ...input, paymentDeadline, ...(byArrival ? { deadlineFromPersist: true } : {}) });
      if (byArrival) paymentDeadline = state.paymentDeadline = persisted.paymentDeadline;
    } catch (err) {
      if (!isCancellation(err)) return { status: 'FAILED', reason: describeFailure(err) };
      operatorCancellation = err;
      return { status: 'FAILED', reason: 'cancelled by an operator before the order was persisted' };
    }
    setStatus('AWAITING_PAYMENT');
    // At least 1 ms: a zero timeout would mean "no timer" to some SDK versions.
    const remainingMs = Math.max(1, Date.parse(paymentDeadline) - Date.now());
    try {
      await condition(() => accepted !== undefined || cancelRequested, remainingMs);
    } catch (err) {
      if (!isCancellation(err)) throw err;
      operatorCancellation = err;
    }
    // A payment accepted before the operator's cancel wins: the money was taken for a persisted order.
    if (accepted) return { status: 'PAID', payment: accepted };
    if (operatorCancellation) return { status: 'CANCELLED', reason: 'OPERATOR_CANCELLED' };
    return { status: 'CANCELLED', reason: cancelRequested ? 'USER_CANCELLED' : 'PAYMENT_TIMEOUT' };
  };

  // ---- close: one path, not cancellable ---------------------------------------------------------
  const close = async (outcome: Outcome): Promise<void> => {
    decided = outcome;
    if (outcome.status === 'PAID') return closePaid(outcome.payment);
    if (outcome.status === 'CANCELLED') {
      const cancelledAt = new Date().toISOString();
      if (byArrival) {
        settling = true;
        const found = await cancelUnpaidOrder({ orderNo: input.orderNo, reason: outcome.reason, cancelledAt });
        settling = false;
        if (found.outcome === 'PAID_IN_TIME') return payRecordedInTime(found.payment);
      } else {
        await cancelOrder({ orderNo: input.orderNo, reason: outcome.reason, cancelledAt });
      }
      await releaseReservation(reservation);
      state.cancelReason = outcome.reason;
      setStatus('CANCELLED');
      return;
    }
    return closeFailed(outcome.reason);
  };

  const closePaid = async (payment: PaymentReceived): Promise<void> => {
    // Redis first: if the units are no longer this order's, it must not be sold in MySQL either.
    const confirmed = await confirmReservation(reservation);
    if (confirmed === 'CONFIRMED' || confirmed === 'ALREADY_CONFIRMED') {
      const paidAt = new Date().toISOString();
      await markPaid({ orderNo: input.orderNo, eventId: payment.eventId, amountCents: payment.amountCents, paidAt });
      state.paidAt = paidAt;
      setStatus('PAID');
      return;
    }
    log.error('the paid order has no reservation left in Redis; failing it and refunding the payment', { orderNo: input.orderNo, confirmed });
    decided = { status: 'FAILED', reason: `ReservationLost: the reservation was ${confirmed} when the payment was applied` };
    return closeFailed(decided.reason);
  };

  /** A payment recorded in time that the order had not been delivered yet pays it after all. */
  const payRecordedInTime = async (payment: Required<PaymentReceived>): Promise<void> => {
    log.info('a payment recorded before the order was cancelled pays it', { orderNo: input.orderNo, eventId: payment.eventId });
    accepted = payment;
    decided = { status: 'PAID', payment };
    const seen = state.payments.find((p) => p.eventId === payment.eventId);
    if (seen) {
      seen.outcome = 'APPLIED';
      delete seen.refundReason;
    } else {
      state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, outcome: 'APPLIED' });
    }
    // The same event may have been judged without its arrival time (an older caller): not a refund.
    refunds.splice(0, refunds.length, ...refunds.filter((refund) => refund.eventId !== payment.eventId));
    return closePaid(payment);
  };

  const closeFailed = async (reason: string): Promise<void> => {
    log.warn('order failed; releasing the reservation', { orderNo: input.orderNo, reason });
    await recordOrderFailure({ ...input, paymentDeadline, reason });
    await releaseReservation(reservation);
    state.failureReason = reason;
    if (accepted) {
      const payment = accepted;
      state.payments = state.payments.map((p) => (p.eventId === payment.eventId ? { ...p, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' } : p));
      refunds.push({ ...payment, reason: 'ORDER_FAILED' });
    }
    setStatus('FAILED');
  };

  /** Records every payment that was not applied, including any that arrive while doing so. */
  const recordRefunds = async (): Promise<void> => {
    for (let refund = refunds.shift(); refund; refund = refunds.shift()) {
      await recordRefundRequired({ orderNo: input.orderNo, eventId: refund.eventId, amountCents: refund.amountCents, reason: refund.reason });
    }
  };

  const outcome = await decide();
  await CancellationScope.nonCancellable(async () => {
    await close(outcome);
    await recordRefunds();
    await condition(allHandlersFinished);
    await recordRefunds();
  });
  log.info('order closed', { orderNo: state.orderNo, status: state.status, workflowId: workflowInfo().workflowId });
  // The order is closed as the operator asked; the workflow shows as cancelled, unless it was paid.
  if (operatorCancellation && state.status !== 'PAID') throw operatorCancellation;
  return state;
}

/** Refuses a malformed payment before it enters the history. */
function validatePayment(payment: PaymentReceived): void {
  if (typeof payment?.eventId !== 'string' || payment.eventId.length === 0 || payment.eventId.length > 128) {
    throw new Error('eventId must be a string of 1-128 characters');
  }
  if (!Number.isSafeInteger(payment.amountCents) || payment.amountCents < 0) throw new Error('amountCents must be a non-negative integer');
  if (payment.receivedAt !== undefined && (typeof payment.receivedAt !== 'string' || Number.isNaN(Date.parse(payment.receivedAt)))) {
    throw new Error('receivedAt must be an ISO time');
  }
}

function describeFailure(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  return cause instanceof Error ? cause.message : String(cause);
}
