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
 *
 * OrderRun holds the order's state, its message handlers and the steps above; OrderWorkflow wires
 * them to Temporal.
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
  pendingOrderState,
  type CancelReason,
  type OrderInput,
  type OrderState,
  type PaymentReceived,
  type PaymentVerdict,
  type RefundReason,
} from '../order/contract.js';
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
type Refund = PaymentReceived & { reason: RefundReason };

export async function OrderWorkflow(input: OrderInput): Promise<OrderState> {
  // Kept while recorded histories need it: those of v1 (no patch marker) replay the frozen first version.
  if (!patched(ORDER_PATCHES.decideThenClose)) {
    return orderWorkflowV1(input, { persistOrder, markPaid, cancelOrder, recordOrderFailure, recordRefundRequired, releaseReservation, confirmReservation });
  }
  const order = new OrderRun(input, patched(ORDER_PATCHES.paymentByArrival));
  // Registered before the first await, so a message delivered with the start finds its handler.
  setHandler(statusQuery, () => order.state);
  setHandler(payUpdate, (payment) => order.receivePayment(payment), { validator: validatePayment });
  setHandler(paymentReceivedSignal, (payment) => void order.receivePayment(payment));
  setHandler(cancelUpdate, () => order.cancel(), { validator: () => order.assertCancellable() });
  // No command is issued: the handler only watches the state, so histories recorded before it replay.
  setHandler(awaitPersistedUpdate, () => order.untilPersisted());
  setHandler(cancelOrderSignal, () => order.cancelIfCancellable());
  return order.run();
}

/** One order: its state, the handlers of its messages and the steps of its run (see the header). */
class OrderRun {
  readonly state: OrderState;
  private readonly reservation: { sku: string; orderNo: string };
  private accepted: PaymentReceived | undefined;
  /** Payments that reached the order before it was persisted, waiting to be judged (receivePayment). */
  private paymentsAwaitingPersist = 0;
  private cancelRequested = false;
  /** Set once the outcome is decided: from then on no payment is accepted and no cancel either. */
  private decided: Outcome | undefined;
  /** The operator's cancellation of this workflow, rethrown once the order is closed. */
  private operatorCancellation: unknown;
  /** While cancelUnpaidOrder looks for a payment recorded in time: such payments wait for its answer. */
  private settling = false;
  /** Payments that were not applied, to be recorded REFUND_REQUIRED. */
  private readonly refunds: Refund[] = [];

  /**
   * byArrival: payments are judged by when they were recorded. False for orders started before
   * ORDER_PATCHES.paymentByArrival, which judge by when they run and close with cancelOrder
   * (kept: the recorded v2 histories replay that path).
   */
  constructor(
    private readonly input: OrderInput,
    private readonly byArrival: boolean,
  ) {
    // Until the order is persisted, the earliest its deadline can be: the reservation + the window.
    // By arrival persistOrder moves it to when the order became payable, so a start or a persist
    // that came late (a worker, Temporal or MySQL away) keeps the shopper's whole window; before,
    // it ran from the reservation.
    this.state = pendingOrderState(input);
    this.reservation = { sku: input.sku, orderNo: input.orderNo };
  }

  /** persist → await a payment, a cancel or the deadline → close, on a path that cannot be cancelled. */
  async run(): Promise<OrderState> {
    const outcome = await this.decide();
    await CancellationScope.nonCancellable(async () => {
      await this.close(outcome);
      await this.recordRefunds();
      // Payments that arrive while closing are refunded too.
      await condition(() => allHandlersFinished() && this.paymentsAwaitingPersist === 0);
      await this.recordRefunds();
    });
    log.info('order closed', { orderNo: this.state.orderNo, status: this.state.status, workflowId: workflowInfo().workflowId });
    // The order is closed as the operator asked; the workflow shows as cancelled, unless it was paid.
    if (this.operatorCancellation && this.state.status !== 'PAID') throw this.operatorCancellation;
    return this.state;
  }

  // ---- messages ---------------------------------------------------------------------------------

  /**
   * The pay Update and the older payment signal. A payment recorded in time that reaches the order
   * while cancelUnpaidOrder runs waits for it: that step finds every such payment in MySQL, so it
   * decides, and this one then reads the outcome.
   */
  async receivePayment(payment: PaymentReceived): Promise<PaymentVerdict> {
    // Not payable yet: judged once the persist has written the deadline (or failed), even when an
    // operator cancels the workflow meanwhile. The marker is written only by an order that met
    // this, so the others' histories are unchanged.
    if (this.byArrival && this.state.status === 'PENDING' && patched(ORDER_PATCHES.paymentWaitsForPersist)) {
      // Counted: the older payment signal's handler is not awaited, so run() waits for these itself.
      this.paymentsAwaitingPersist++;
      try {
        await CancellationScope.nonCancellable(() => condition(() => this.state.status !== 'PENDING'));
      } finally {
        this.paymentsAwaitingPersist--;
      }
    }
    if (this.waitsForSettling(payment)) await condition(() => !this.settling);
    return this.judgePayment(payment);
  }

  /** The cancel Update's validator: a refused cancel never enters the history. */
  assertCancellable(): void {
    if (!this.cancellable()) throw new Error(`${NOT_CANCELLABLE}: order ${this.state.orderNo} is ${this.state.status} and can no longer be cancelled`);
  }

  cancel(): OrderState {
    this.cancelRequested = true;
    return this.state;
  }

  /** The older cancel signal: ignored once the order can no longer be cancelled. */
  cancelIfCancellable(): void {
    if (this.cancellable()) this.cancelRequested = true;
  }

  async untilPersisted(): Promise<OrderState> {
    await condition(() => this.state.status !== 'PENDING');
    return this.state;
  }

  // ---- decide -----------------------------------------------------------------------------------

  private async decide(): Promise<Outcome> {
    try {
      const persisted = await this.persist();
      if (this.byArrival) this.state.paymentDeadline = persisted.paymentDeadline;
    } catch (err) {
      return this.persistFailed(err);
    }
    this.setStatus('AWAITING_PAYMENT');
    // At least 1 ms: a zero timeout would mean "no timer" to some SDK versions.
    const remainingMs = Math.max(1, Date.parse(this.state.paymentDeadline) - Date.now());
    try {
      await condition(() => this.accepted !== undefined || this.cancelRequested, remainingMs);
    } catch (err) {
      if (!isCancellation(err)) throw err;
      this.operatorCancellation = err;
    }
    // A payment accepted before the operator's cancel wins: the money was taken for a persisted order.
    if (this.accepted) return { status: 'PAID', payment: this.accepted };
    if (this.operatorCancellation) return { status: 'CANCELLED', reason: 'OPERATOR_CANCELLED' };
    return { status: 'CANCELLED', reason: this.cancelRequested ? 'USER_CANCELLED' : 'PAYMENT_TIMEOUT' };
  }

  /** Not async: decide awaits the activity's own promise, so it resumes in the same turn as before. */
  private persist(): ReturnType<typeof persistOrder> {
    // persistOrder that gives up after a minute: kept, the recorded v2 and v3 histories ran it.
    const persist = patched(ORDER_PATCHES.persistOutlastsOutage) ? persistOrderThroughOutage : persistOrder;
    return persist({ ...this.input, paymentDeadline: this.state.paymentDeadline, ...(this.byArrival ? { deadlineFromPersist: true } : {}) });
  }

  private persistFailed(err: unknown): Outcome {
    if (!isCancellation(err)) return { status: 'FAILED', reason: describeFailure(err) };
    this.operatorCancellation = err;
    return { status: 'FAILED', reason: 'cancelled by an operator before the order was persisted' };
  }

  // ---- close ------------------------------------------------------------------------------------

  private async close(outcome: Outcome): Promise<void> {
    this.decided = outcome;
    if (outcome.status === 'PAID') return this.closePaid(outcome.payment);
    if (outcome.status === 'CANCELLED') return this.closeCancelled(outcome.reason);
    return this.closeFailed(outcome.reason);
  }

  private async closePaid(payment: PaymentReceived): Promise<void> {
    // Redis first: if the units are no longer this order's, it must not be sold in MySQL either.
    const confirmed = await confirmReservation(this.reservation);
    if (confirmed === 'CONFIRMED' || confirmed === 'ALREADY_CONFIRMED') {
      const paidAt = new Date().toISOString();
      await markPaid({ orderNo: this.input.orderNo, eventId: payment.eventId, amountCents: payment.amountCents, paidAt });
      this.state.paidAt = paidAt;
      this.setStatus('PAID');
      return;
    }
    log.error('the paid order has no reservation left in Redis; failing it and refunding the payment', { orderNo: this.input.orderNo, confirmed });
    this.decided = { status: 'FAILED', reason: `ReservationLost: the reservation was ${confirmed} when the payment was applied` };
    return this.closeFailed(this.decided.reason);
  }

  private async closeCancelled(reason: CancelReason): Promise<void> {
    const cancelledAt = new Date().toISOString();
    if (this.byArrival) {
      this.settling = true;
      const found = await cancelUnpaidOrder({ orderNo: this.input.orderNo, reason, cancelledAt });
      this.settling = false;
      if (found.outcome === 'PAID_IN_TIME') return this.payRecordedInTime(found.payment);
    } else {
      await cancelOrder({ orderNo: this.input.orderNo, reason, cancelledAt });
    }
    await releaseReservation(this.reservation);
    this.state.cancelReason = reason;
    this.setStatus('CANCELLED');
  }

  /** A payment recorded in time that the order had not been delivered yet pays it after all. */
  private async payRecordedInTime(payment: Required<PaymentReceived>): Promise<void> {
    log.info('a payment recorded before the order was cancelled pays it', { orderNo: this.input.orderNo, eventId: payment.eventId });
    this.accepted = payment;
    this.decided = { status: 'PAID', payment };
    const seen = this.state.payments.find((p) => p.eventId === payment.eventId);
    if (seen) {
      seen.outcome = 'APPLIED';
      delete seen.refundReason;
    } else {
      this.state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, outcome: 'APPLIED' });
    }
    // The same event may have been judged without its arrival time (an older caller): not a refund.
    this.refunds.splice(0, this.refunds.length, ...this.refunds.filter((refund) => refund.eventId !== payment.eventId));
    return this.closePaid(payment);
  }

  private async closeFailed(reason: string): Promise<void> {
    log.warn('order failed; releasing the reservation', { orderNo: this.input.orderNo, reason });
    await recordOrderFailure({ ...this.input, paymentDeadline: this.state.paymentDeadline, reason });
    await releaseReservation(this.reservation);
    this.state.failureReason = reason;
    if (this.accepted) {
      const payment = this.accepted;
      this.state.payments = this.state.payments.map((p) =>
        p.eventId === payment.eventId ? { ...p, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' } : p,
      );
      this.refunds.push({ ...payment, reason: 'ORDER_FAILED' });
    }
    this.setStatus('FAILED');
  }

  /** Records every payment that was not applied, including any that arrive while doing so. */
  private async recordRefunds(): Promise<void> {
    for (let refund = this.refunds.shift(); refund; refund = this.refunds.shift()) {
      await recordRefundRequired({ orderNo: this.input.orderNo, eventId: refund.eventId, amountCents: refund.amountCents, reason: refund.reason });
    }
  }

  // ---- the order's state ------------------------------------------------------------------------

  /** The one place a payment event is judged; the same event judged twice gets the same verdict. */
  private judgePayment(payment: PaymentReceived): PaymentVerdict {
    const seen = this.state.payments.find((p) => p.eventId === payment.eventId);
    if (seen) return verdictOf(seen);
    const verdict = this.verdictOn(payment);
    this.state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, ...verdict });
    if (verdict.refundReason) this.refunds.push({ ...payment, reason: verdict.refundReason });
    return verdict;
  }

  private verdictOn(payment: PaymentReceived): PaymentVerdict {
    // By arrival, what the payment itself says comes first (its amount, when it was recorded), so
    // that its reason does not depend on when it was delivered.
    const wrongAmount = payment.amountCents !== this.state.totalCents;
    if (this.byArrival && wrongAmount) return { outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' };
    if (this.byArrival && this.recordedAfterDeadline(payment)) return { outcome: 'REFUND_REQUIRED', refundReason: 'RECEIVED_AFTER_DEADLINE' };
    if (this.accepted) return { outcome: 'REFUND_REQUIRED', refundReason: 'ALREADY_PAID' };
    if (this.decided || !OPEN_STATUSES.includes(this.state.status)) return { outcome: 'REFUND_REQUIRED', refundReason: this.closedReason() };
    if (wrongAmount) return { outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' };
    // Accepted even while PENDING: it is applied once the order is persisted, refunded if it never is.
    this.accepted = payment;
    return { outcome: 'APPLIED' };
  }

  /**
   * Judged by when it was recorded, whatever the order of its delivery and the timer's firing. One
   * judged while PENDING (orders from before paymentWaitsForPersist) counted as in time.
   */
  private recordedAfterDeadline(payment: PaymentReceived): boolean {
    return payment.receivedAt !== undefined && this.state.status !== 'PENDING' && !receivedInTime(payment.receivedAt, this.state.paymentDeadline);
  }

  /** A payment recorded in time, while cancelUnpaidOrder runs, waits for its answer (receivePayment). */
  private waitsForSettling(payment: PaymentReceived): boolean {
    return (
      this.settling &&
      payment.receivedAt !== undefined &&
      receivedInTime(payment.receivedAt, this.state.paymentDeadline) &&
      payment.amountCents === this.state.totalCents &&
      !this.state.payments.some((p) => p.eventId === payment.eventId)
    );
  }

  /** Why a payment can no longer be applied, once the order is closing or closed. */
  private closedReason(): RefundReason {
    return refundReasonFor(this.accepted ? 'PAID' : this.decided?.status === 'FAILED' ? 'FAILED' : this.state.status);
  }

  private cancellable(): boolean {
    return !this.decided && isCancellable(this.state);
  }

  private setStatus(status: OrderState['status']): void {
    this.state.status = status;
    // Orders started before v5 wrote each status to visibility: their histories (test/replay/histories/v1–v4) replay it.
    if (!patched(ORDER_PATCHES.statusNotInVisibility)) upsertSearchAttributes([{ key: ORDER_STATUS_SEARCH_ATTRIBUTE, value: status }]);
  }
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
