/**
 * OrderWorkflow: one durable process per order (docs/fault-tolerance.md, "OrderWorkflow: decide, then close").
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
 * An order paid through a provider with an API (input.paymentProvider: Stripe) also has its
 * payment made there once persisted (openPayment, while the wait goes on; a refusal fails the
 * order). Its intent's state decides its close (patch INTENT_DECIDES_CLOSE): before the order is
 * cancelled its intents are closed at the provider (closePayment: cancel, and after a refusal read
 * again); one that was paid first pays the order, one still processing keeps the unit until its
 * outcome, and the unit is released only once none can be paid. Such a payment is judged by the
 * provider's state machine, not by when it arrived. Orders started before that patch close at the
 * provider beside their own steps, as they did.
 *
 * Payments and cancels arrive as Updates. A payment through the generic webhook is judged by when
 * MySQL recorded it (receivedAt), not by when it is delivered (src/order/rules.ts), because the SDK
 * runs an activation's Updates before its timer and a delivery can come late.
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
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, ProviderClose } from '../activities/order.js';
import {
  awaitPersistedUpdate,
  cancelUpdate,
  isCancellable,
  judgePayment,
  NOT_CANCELLABLE,
  OPEN_STATUSES,
  outcomeOfWait,
  payUpdate,
  paysInTime,
  pendingOrderState,
  providerTaskQueue,
  statusQuery,
  verdictOf,
  type CancelReason,
  type OrderInput,
  type OrderState,
  type Outcome,
  type PaymentReceived,
  type PaymentVerdict,
  type RefundReason,
} from '../model/order-workflow.js';

/**
 * persistOrder runs as a local activity, inside the workflow task that starts the order: one
 * workflow task instead of three. A 202 is a promise, so it outlasts a MySQL outage for 15 minutes
 * (the time a promise may wait for its start) before the order fails and gives its stock back.
 * Backoffs of 1 s or more wait on a durable timer, so messages are answered between attempts.
 */
const { persistOrder } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '5s',
  scheduleToCloseTimeout: '15m',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

/**
 * Closing must happen eventually: a lost markPaid loses money, a lost cancel or release loses
 * stock. These retry without limit (capped backoff); every one of them is idempotent.
 */
const {
  markPaid,
  cancelUnpaidOrder,
  recordOrderFailure,
  recordRefundRequired,
  releaseReservation,
  confirmReservation,
} = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * The provider's API: its requests wait and retry (capped at a minute) for as long as it is away.
 * openPayment's wait ends with the order's decision; closePayment's when the provider answers.
 * Patched orders send them to the provider's own task queue, whose workers pace them at the rate
 * the provider's account allows (STRIPE_REQUESTS_PER_SECOND): a sale's deadlines bunch.
 */
const PROVIDER_ACTIVITY_OPTIONS = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
} as const;
const legacyProviderActivities = proxyActivities<Activities>(PROVIDER_ACTIVITY_OPTIONS);

/**
 * The patch of a provider order's close: its intent's state decides it (see the header). Patch
 * lifecycle in docs/testing.md, "Changing the workflow: the patch lifecycle"; the replay test guards both paths.
 */
export const INTENT_DECIDES_CLOSE = 'intent-decides-close';

/** The re-reads of an intent still processing: sparse, so a bank debit of days keeps a small history. */
const PROCESSING_FIRST_READ_MS = 60_000;
const PROCESSING_MAX_READ_MS = 3_600_000;

type Refund = PaymentReceived & { reason: RefundReason };

export async function OrderWorkflow(input: OrderInput): Promise<OrderState> {
  const order = new OrderRun(input);
  // Registered before the first await, so a message delivered with the start finds its handler.
  setHandler(statusQuery, () => order.state);
  setHandler(payUpdate, (payment) => order.receivePayment(payment), { validator: validatePayment });
  setHandler(cancelUpdate, () => order.cancel(), { validator: () => order.assertCancellable() });
  setHandler(awaitPersistedUpdate, () => order.untilPersisted());
  return order.run();
}

/** One order: its state, the handlers of its messages and the steps of its run (see the header). */
class OrderRun {
  readonly state: OrderState;
  private readonly reservation: { sku: string; orderNo: string };
  private accepted: PaymentReceived | undefined;
  private cancelRequested = false;
  /** Set once the outcome is decided: from then on no payment is accepted and no cancel either. */
  private decided: Outcome<PaymentReceived> | undefined;
  /** The operator's cancellation of this workflow, rethrown once the order is closed. */
  private operatorCancellation: unknown;
  /** While cancelUnpaidOrder looks for a payment recorded in time: such payments wait for its answer. */
  private settling = false;
  /** Payments that were not applied, to be recorded REFUND_REQUIRED. */
  private readonly refunds: Refund[] = [];
  /** The opening of the order's payment at its provider, while it runs; cancelled once the outcome is decided. */
  private paymentOpening: CancellationScope | undefined;
  /** Why the provider would not make the order's payment: the order cannot be paid. */
  private paymentUnavailable: string | undefined;
  /** The provider's intent decides the close, and its payments are judged without the arrival rule (patched). */
  private readonly intentDecides: boolean;
  private readonly providerActivities: Pick<Activities, 'openPayment' | 'closePayment'>;

  constructor(private readonly input: OrderInput) {
    // Until persisted, the earliest the deadline can be; persistOrder moves it to when the order
    // became payable, so a late start or persist keeps the shopper's whole window.
    this.state = pendingOrderState(input);
    this.reservation = { sku: input.sku, orderNo: input.orderNo };
    this.intentDecides = input.paymentProvider !== undefined && patched(INTENT_DECIDES_CLOSE);
    this.providerActivities = this.intentDecides
      ? proxyActivities<Activities>({
          ...PROVIDER_ACTIVITY_OPTIONS,
          taskQueue: providerTaskQueue(workflowInfo().taskQueue),
        })
      : legacyProviderActivities;
  }

  /** persist → await a payment, a cancel or the deadline → close, on a path that cannot be cancelled. */
  async run(): Promise<OrderState> {
    const outcome = await this.decide();
    await CancellationScope.nonCancellable(async () => {
      await this.close(outcome);
      await this.recordRefunds();
      // Payments that arrive while closing are refunded too.
      await condition(allHandlersFinished);
      await this.recordRefunds();
    });
    log.info('order closed', {
      orderNo: this.state.orderNo,
      status: this.state.status,
      workflowId: workflowInfo().workflowId,
    });
    // The order is closed as the operator asked; the workflow shows as cancelled, unless it was paid.
    if (this.operatorCancellation && this.state.status !== 'PAID') throw this.operatorCancellation;
    return this.state;
  }

  // ---- messages ---------------------------------------------------------------------------------

  /**
   * The pay Update. A payment that reaches an order still being persisted is judged once the
   * persist wrote the deadline (or failed), even if an operator cancels meanwhile. One recorded in
   * time that arrives while cancelUnpaidOrder runs waits for it: that step finds every such payment
   * in MySQL, so it decides, and this one then reads the outcome.
   */
  async receivePayment(payment: PaymentReceived): Promise<PaymentVerdict> {
    await CancellationScope.nonCancellable(() => condition(() => this.state.status !== 'PENDING'));
    if (this.waitsForSettling(payment)) await condition(() => !this.settling);
    return this.judgePayment(payment);
  }

  /** The cancel Update's validator: a refused cancel never enters the history. */
  assertCancellable(): void {
    if (!this.cancellable())
      throw new Error(
        `${NOT_CANCELLABLE}: order ${this.state.orderNo} is ${this.state.status} and can no longer be cancelled`,
      );
  }

  cancel(): OrderState {
    this.cancelRequested = true;
    return this.state;
  }

  async untilPersisted(): Promise<OrderState> {
    await condition(() => this.state.status !== 'PENDING');
    return this.state;
  }

  // ---- decide -----------------------------------------------------------------------------------

  private async decide(): Promise<Outcome<PaymentReceived>> {
    try {
      const persisted = await persistOrder({ ...this.input, paymentDeadline: this.state.paymentDeadline });
      this.state.paymentDeadline = persisted.paymentDeadline;
    } catch (err) {
      return this.persistFailed(err);
    }
    this.state.status = 'AWAITING_PAYMENT';
    this.openProviderPayment();
    // At least 1 ms: a zero timeout would mean "no timer".
    const remainingMs = Math.max(1, Date.parse(this.state.paymentDeadline) - Date.now());
    try {
      await condition(
        () => this.accepted !== undefined || this.cancelRequested || this.paymentUnavailable !== undefined,
        remainingMs,
      );
    } catch (err) {
      if (!isCancellation(err)) throw err;
      this.operatorCancellation = err;
    }
    // Decided: an opening still retrying against a provider that is away stops here.
    this.paymentOpening?.cancel();
    return outcomeOfWait({
      accepted: this.accepted,
      operatorCancelled: this.operatorCancellation !== undefined,
      shopperCancelled: this.cancelRequested,
      paymentUnavailable: this.paymentUnavailable,
    });
  }

  /** Starts making the order's payment at its provider, beside the wait; its handle goes into the state. */
  private openProviderPayment(): void {
    const provider = this.input.paymentProvider;
    if (!provider) return;
    this.paymentOpening = new CancellationScope();
    this.paymentOpening
      .run(() =>
        this.providerActivities.openPayment({
          provider,
          orderNo: this.input.orderNo,
          amountCents: this.state.totalCents,
        }),
      )
      .then(
        (intent) => {
          this.state.paymentIntent = intent;
        },
        (err: unknown) => {
          if (!isCancellation(err)) this.paymentUnavailable = describeFailure(err);
        },
      );
  }

  /**
   * Closes the order's payments at its provider so they can no longer be paid, and answers what
   * the provider found (patched orders act on it; earlier ones only close).
   */
  private async closeProviderPayment(): Promise<ProviderClose | undefined> {
    const provider = this.input.paymentProvider;
    if (!provider || !this.paymentOpening || this.paymentUnavailable) return undefined;
    return this.providerActivities.closePayment({
      provider,
      orderNo: this.input.orderNo,
      amountCents: this.state.totalCents,
      paymentDeadline: this.state.paymentDeadline,
      ...(this.state.paymentIntent ? { paymentIntentId: this.state.paymentIntent.id } : {}),
    });
  }

  /**
   * Before a provider order is cancelled: closes its intents and waits until the provider says none
   * can be paid any more. A payment that came first (an intent that succeeded before its cancel, or
   * its webhook meanwhile) pays the order; one still processing keeps the unit, read again on a
   * sparse backoff until its webhook or a read says how it ended. The payment that paid it, if any.
   */
  private async settleAtProvider(): Promise<PaymentReceived | undefined> {
    let readAfterMs = PROCESSING_FIRST_READ_MS;
    for (;;) {
      if (this.accepted) return this.accepted;
      const closed = await this.closeProviderPayment();
      if (this.accepted) return this.accepted;
      if (!closed || closed.state === 'CANCELED') return undefined;
      if (closed.state === 'SUCCEEDED') {
        // Judged as any payment while the order is open: the right amount pays it, another is refunded.
        this.judgePayment(closed.payment);
        return this.accepted;
      }
      await condition(() => this.accepted !== undefined, readAfterMs);
      readAfterMs = Math.min(readAfterMs * 2, PROCESSING_MAX_READ_MS);
    }
  }

  private persistFailed(err: unknown): Outcome<PaymentReceived> {
    if (!isCancellation(err)) return { status: 'FAILED', reason: describeFailure(err) };
    this.operatorCancellation = err;
    return { status: 'FAILED', reason: 'cancelled by an operator before the order was persisted' };
  }

  // ---- close ------------------------------------------------------------------------------------

  private async close(outcome: Outcome<PaymentReceived>): Promise<void> {
    if (outcome.status === 'CANCELLED' && this.intentDecides) {
      // Not decided yet: until the provider answers, a payment is judged as for an open order.
      const paid = await this.settleAtProvider();
      if (paid) return this.close({ status: 'PAID', payment: paid });
    }
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
      await markPaid({
        orderNo: this.input.orderNo,
        eventId: payment.eventId,
        amountCents: payment.amountCents,
        paidAt,
      });
      this.state.paidAt = paidAt;
      this.state.status = 'PAID';
      return;
    }
    log.error('the paid order has no reservation left in Redis; failing it and refunding the payment', {
      orderNo: this.input.orderNo,
      confirmed,
    });
    this.decided = {
      status: 'FAILED',
      reason: `ReservationLost: the reservation was ${confirmed} when the payment was applied`,
    };
    return this.closeFailed(this.decided.reason);
  }

  private async closeCancelled(reason: CancelReason): Promise<void> {
    const cancelledAt = new Date().toISOString();
    // Unpatched orders: the provider's door closes beside the order's own steps. Patched ones closed it first.
    const providerClosed = this.intentDecides ? Promise.resolve() : this.closeProviderPayment();
    this.settling = true;
    const found = await cancelUnpaidOrder({ orderNo: this.input.orderNo, reason, cancelledAt });
    this.settling = false;
    if (found.outcome === 'PAID_IN_TIME') {
      await this.payRecordedInTime(found.payment);
    } else {
      await releaseReservation(this.reservation);
      this.state.cancelReason = reason;
      this.state.status = 'CANCELLED';
    }
    await providerClosed;
  }

  /** A payment recorded in time that the order had not been delivered yet pays it after all. */
  private async payRecordedInTime(payment: PaymentReceived): Promise<void> {
    log.info('a payment recorded before the order was cancelled pays it', {
      orderNo: this.input.orderNo,
      eventId: payment.eventId,
    });
    this.accepted = payment;
    this.decided = { status: 'PAID', payment };
    this.state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, outcome: 'APPLIED' });
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
    this.state.status = 'FAILED';
    // Nothing more may be paid for a failed order; a payment it accepted has its refund recorded.
    if (!this.accepted) {
      const closed = await this.closeProviderPayment();
      // Paid before its cancel (patched orders learn it): the money is refunded (ORDER_FAILED).
      if (closed?.state === 'SUCCEEDED' && this.intentDecides) this.judgePayment(closed.payment);
    }
  }

  /** Records every payment that was not applied, including any that arrive while doing so. */
  private async recordRefunds(): Promise<void> {
    for (let refund = this.refunds.shift(); refund; refund = this.refunds.shift()) {
      await recordRefundRequired({
        orderNo: this.input.orderNo,
        eventId: refund.eventId,
        amountCents: refund.amountCents,
        reason: refund.reason,
      });
    }
  }

  // ---- the order's state ------------------------------------------------------------------------

  /** The one place a payment event is judged; the same event judged twice gets the same verdict. */
  private judgePayment(payment: PaymentReceived): PaymentVerdict {
    const seen = this.state.payments.find((p) => p.eventId === payment.eventId);
    if (seen) return verdictOf(seen);
    const closingAs =
      this.decided?.status ?? (OPEN_STATUSES.includes(this.state.status) ? undefined : this.state.status);
    const verdict = judgePayment(
      {
        totalCents: this.state.totalCents,
        paymentDeadline: this.state.paymentDeadline,
        paid: this.accepted !== undefined,
        closingAs,
        // A provider's intent cannot succeed once cancelled: its state machine, not our clock, decides.
        deadlineDecides: !this.intentDecides,
      },
      payment,
    );
    this.state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, ...verdict });
    // Accepted while open: the wait ends and the order is closed as PAID.
    if (verdict.outcome === 'APPLIED') this.accepted = payment;
    if (verdict.refundReason) this.refunds.push({ ...payment, reason: verdict.refundReason });
    return verdict;
  }

  /** A payment recorded in time, while cancelUnpaidOrder runs, waits for its answer (receivePayment). */
  private waitsForSettling(payment: PaymentReceived): boolean {
    return (
      this.settling &&
      paysInTime({ ...this.state, deadlineDecides: !this.intentDecides }, payment) &&
      !this.state.payments.some((p) => p.eventId === payment.eventId)
    );
  }

  private cancellable(): boolean {
    return !this.decided && isCancellable(this.state);
  }
}

/** Refuses a malformed payment before it enters the history. */
function validatePayment(payment: PaymentReceived): void {
  if (typeof payment?.eventId !== 'string' || payment.eventId.length === 0 || payment.eventId.length > 128) {
    throw new Error('eventId must be a string of 1-128 characters');
  }
  if (!Number.isSafeInteger(payment.amountCents) || payment.amountCents < 0)
    throw new Error('amountCents must be a non-negative integer');
  if (typeof payment.receivedAt !== 'string' || Number.isNaN(Date.parse(payment.receivedAt)))
    throw new Error('receivedAt must be an ISO time');
}

function describeFailure(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  return cause instanceof Error ? cause.message : String(cause);
}
