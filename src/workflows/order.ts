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
 *   close    PAID       confirm the reservation (Redis), then markPaid (MySQL; not for a payment the row
 *                       applied itself); if the units are gone from Redis the order FAILS instead and the
 *                       payment is refunded
 *            CANCELLED  cancelUnpaidOrder (MySQL): a payment recorded in time but not delivered
 *                       yet turns it into PAID (above); else cancelled, and the reservation
 *                       released (Redis)
 *            FAILED     recordOrderFailure (MySQL: a FAILED row, units back if it was persisted),
 *                       then release the reservation (Redis); an accepted payment is refunded
 *            and every payment that was not applied is recorded REFUND_REQUIRED.
 *
 * An order paid through a provider with an API (input.paymentProvider: Stripe) also has its
 * payment made there once persisted (openPayment, while the wait goes on; a refusal fails the
 * order). Its intent's state decides its close: before the order is cancelled its intents are
 * closed at the provider (closePayment: cancel, and after a refusal read again); one that was paid
 * first pays the order, one still processing keeps the unit until its outcome, and the unit is
 * released only once none can be paid. Such a payment is judged by the provider's state machine,
 * not by when it arrived.
 *
 * A payment the order's row applied as it was recorded arrives as the paymentApplied Signal: the workflow follows
 * the row's decision, never judging it again. One the row could not decide arrives as the pay Update, and so does the
 * shopper's cancel. A payment through the generic webhook is judged by when MySQL recorded it (receivedAt), not by
 * when it is delivered (src/model/order-rules.ts), because the SDK runs an activation's Updates before its timer and
 * a delivery can come late.
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
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/order.js';
import type { PaymentActivities, ProviderClose } from '../activities/payments.js';
import {
  awaitPersistedUpdate,
  cancelUpdate,
  isCancellable,
  judgePayment,
  NOT_CANCELLABLE,
  OPEN_STATUSES,
  outcomeOfWait,
  paymentAppliedSignal,
  payUpdate,
  paysInTime,
  pendingOrderState,
  providerTaskQueue,
  statusQuery,
  verdictOf,
  type CancelReason,
  type OrderInput,
  type OrderState,
  type OrderWorkflowSignature,
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
 * A failed order's close and the refunds: they must happen eventually (a lost release loses stock, a lost refund
 * record loses money). These retry without limit (capped backoff); every one of them is idempotent.
 */
const { recordOrderFailure, recordRefundRequired, releaseReservation } = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * The close's steps as local activities: a decided order closes in the workflow task that decided it instead of one
 * activity task and one more workflow task per step. A paid order is PAID about
 * one round trip after its payment's Update, and each close writes two markers into the history instead of six
 * events per step: at a sale's rate the server and the worker do a third of the work. Backoffs of 1 s or more wait
 * on a durable timer, and they retry without limit as the activities above do.
 */
const closeInTask = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * The provider's API: its requests wait and retry (capped at a minute) for as long as it is away.
 * openPayment's wait ends with the order's decision; closePayment's when the provider answers.
 * They go to the provider's own task queue, whose workers pace them at the rate the provider's
 * account allows (STRIPE_REQUESTS_PER_SECOND): a sale's deadlines bunch.
 */
const PROVIDER_ACTIVITY_OPTIONS = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
} as const;

/** The re-reads of an intent still processing: sparse, so a bank debit of days keeps a small history. */
const PROCESSING_FIRST_READ_MS = 60_000;
const PROCESSING_MAX_READ_MS = 3_600_000;

type Refund = PaymentReceived & { reason: RefundReason };

/**
 * Pinned (Worker Versioning, the worker's default behaviour: src/workers/versioning.ts): an order runs to its end on
 * the build that started it, so a change to this workflow ships as a new build that only new orders run
 * (docs/operations.md, "Deploying during a sale").
 */
export async function OrderWorkflow(input: OrderInput): Promise<OrderState> {
  const order = new OrderRun(input);
  // Registered before the first await, so a message delivered with the start finds its handler.
  setHandler(statusQuery, () => order.state);
  setHandler(paymentAppliedSignal, (payment) => order.followAppliedPayment(payment));
  setHandler(payUpdate, (payment) => order.receivePayment(payment), { validator: validatePayment });
  setHandler(cancelUpdate, () => order.cancel(), { validator: () => order.assertCancellable() });
  setHandler(awaitPersistedUpdate, () => order.untilPersisted());
  return order.run();
}

/** Callers start the workflow by name with OrderWorkflowSignature: this stops compiling if the two part ways. */
const _keepsItsSignature: OrderWorkflowSignature = OrderWorkflow;

/**
 * Where an order's run is: one value (OrderRun.phase), moved only by OrderRun.moveTo along PHASE_TRANSITIONS.
 * Until PAYING, SETTLING_IN_MYSQL or FAILING the outcome is open; from then on it is decided: no payment is
 * applied any more and no cancel accepted. An operator's cancellation of the workflow is no phase: it ends the
 * persist or the wait by throwing, and run() rethrows it once the order is closed.
 */
type OrderPhase =
  /** persistOrder runs (the order is PENDING): a payment waits for it; a shopper's cancel is kept for the wait. */
  | { readonly kind: 'PERSISTING' }
  /** Payable: a payment, a cancel, the deadline or the provider's refusal ends the wait (providerPayment). */
  | { readonly kind: 'AWAITING_PAYMENT' }
  /** The shopper cancelled while the outcome was open: the wait ends with it, at once if it came while persisting. */
  | { readonly kind: 'CANCEL_REQUESTED' }
  /** A payment was applied while the outcome was open: the wait ends with it, and the order closes as PAID. */
  | { readonly kind: 'PAYMENT_APPLIED'; readonly payment: PaymentReceived }
  /**
   * Cancelled, a provider order closes its intents first: open until the provider answers, so a
   * payment is judged as for an open order, and a cancel changes nothing.
   */
  | { readonly kind: 'SETTLING_AT_PROVIDER' }
  /** Decided PAID: the reservation confirmed in Redis, then markPaid in MySQL. */
  | { readonly kind: 'PAYING'; readonly payment: PaymentReceived }
  /** Decided CANCELLED: cancelUnpaidOrder looks for a payment recorded in time; such a payment waits for it. */
  | { readonly kind: 'SETTLING_IN_MYSQL' }
  /** MySQL found none: the order is cancelled and its reservation released. */
  | { readonly kind: 'CANCELLING' }
  /** Decided FAILED: recorded and its reservation released; the payment it had applied, if any, is refunded. */
  | { readonly kind: 'FAILING'; readonly applied: PaymentReceived | undefined }
  /** Closed as its final status: a payment that still arrives is refunded. */
  | { readonly kind: 'CLOSED'; readonly as: OrderState['status']; readonly applied: PaymentReceived | undefined };

type PhaseKind = OrderPhase['kind'];

/** The phases whose outcome is still open: a payment applied now decides it. */
const OPEN_PHASES: readonly PhaseKind[] = [
  'PERSISTING',
  'AWAITING_PAYMENT',
  'CANCEL_REQUESTED',
  'SETTLING_AT_PROVIDER',
];

/** Every move an order's phase may make, and what makes it. */
export const PHASE_TRANSITIONS: { readonly [From in PhaseKind]: readonly PhaseKind[] } = {
  // persisted · the shopper's cancel · the row applied a payment before the persist's answer came · the persist
  // failed, or an operator cancelled it
  PERSISTING: ['AWAITING_PAYMENT', 'CANCEL_REQUESTED', 'PAYMENT_APPLIED', 'FAILING'],
  // the shopper's cancel · a payment · the deadline or an operator's cancel, for a provider order or
  // any other · the provider refused to make the payment
  AWAITING_PAYMENT: ['CANCEL_REQUESTED', 'PAYMENT_APPLIED', 'SETTLING_AT_PROVIDER', 'SETTLING_IN_MYSQL', 'FAILING'],
  // a payment in the same activation (it wins) · the wait ends with the cancel, as above · the persist failed
  CANCEL_REQUESTED: ['PAYMENT_APPLIED', 'SETTLING_AT_PROVIDER', 'SETTLING_IN_MYSQL', 'FAILING'],
  // the order closes as PAID
  PAYMENT_APPLIED: ['PAYING'],
  // a payment first (the intent succeeded, or its webhook came) · the provider says none can be paid any more
  SETTLING_AT_PROVIDER: ['PAYMENT_APPLIED', 'SETTLING_IN_MYSQL'],
  // the reservation was gone from Redis · paid
  PAYING: ['FAILING', 'CLOSED'],
  // MySQL found a payment recorded in time · it found none
  SETTLING_IN_MYSQL: ['PAYING', 'CANCELLING'],
  // cancelled
  CANCELLING: ['CLOSED'],
  // failed
  FAILING: ['CLOSED'],
  CLOSED: [],
};

/**
 * Refuses a move PHASE_TRANSITIONS does not list. A programming error, not a verdict on the order: thrown as a
 * plain Error, it fails the workflow task (retried) instead of the order, which then waits for a fix.
 */
export function assertPhaseMove(from: PhaseKind, to: PhaseKind): void {
  if (!PHASE_TRANSITIONS[from].includes(to)) throw new Error(`OrderRun: no move from phase ${from} to ${to}`);
}

/**
 * The order's payment at its provider, once persisted (provider orders): openPayment runs beside the wait
 * (`opening`, cancelled once the wait ends; its intent goes into the state); `unavailable` says why it failed
 * otherwise: the order cannot be paid. Not a phase: the provider answers whenever it does, in whatever phase
 * the order is by then.
 */
interface ProviderPayment {
  readonly opening: CancellationScope;
  unavailable: string | undefined;
}

/** What the wait (or the persist) decided, and the operator's cancellation that ended it, if one did. */
interface Decided {
  outcome: Outcome<PaymentReceived>;
  operatorCancellation: unknown;
}

/** One order: its state, the handlers of its messages and the steps of its run (see the header). */
class OrderRun {
  readonly state: OrderState;
  /** Where the run is (OrderPhase): moved only by moveTo. */
  private phase: OrderPhase = { kind: 'PERSISTING' };
  private readonly reservation: { sku: string; orderNo: string };
  /** Payments that were not applied, to be recorded REFUND_REQUIRED. */
  private readonly refunds: Refund[] = [];
  /** Payments the order's row applied itself (the paymentApplied Signal): PAID is written there once, never again. */
  private readonly paidInMysql = new Set<string>();
  /** The order's payment at its provider; undefined while none was opened (not a provider order, or not persisted). */
  private providerPayment: ProviderPayment | undefined;
  /** A provider order: its intent decides the close, and its payments are judged without the arrival rule. */
  private readonly intentDecides: boolean;
  private readonly providerActivities: Pick<PaymentActivities, 'openPayment' | 'closePayment'>;

  constructor(private readonly input: OrderInput) {
    // Until persisted, the earliest the deadline can be; persistOrder moves it to when the order
    // became payable, so a late start or persist keeps the shopper's whole window.
    this.state = pendingOrderState(input);
    this.reservation = { sku: input.sku, orderNo: input.orderNo };
    this.intentDecides = input.paymentProvider !== undefined;
    this.providerActivities = proxyActivities<PaymentActivities>({
      ...PROVIDER_ACTIVITY_OPTIONS,
      taskQueue: providerTaskQueue(workflowInfo().taskQueue),
    });
  }

  /** persist → await a payment, a cancel or the deadline → close, on a path that cannot be cancelled. */
  async run(): Promise<OrderState> {
    const { outcome, operatorCancellation } = await this.decide();
    await CancellationScope.nonCancellable(async () => {
      await this.close(outcome);
      this.moveTo({ kind: 'CLOSED', as: this.state.status, applied: this.applied() });
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
    if (operatorCancellation && this.state.status !== 'PAID') throw operatorCancellation;
    return this.state;
  }

  /** The one way the phase changes: only along PHASE_TRANSITIONS. */
  private moveTo(next: OrderPhase): void {
    assertPhaseMove(this.phase.kind, next.kind);
    this.phase = next;
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
    if (this.waitsForSettling(payment)) await condition(() => this.phase.kind !== 'SETTLING_IN_MYSQL');
    return this.judgePayment(payment);
  }

  /**
   * The paymentApplied Signal: the order's row applied this payment under its lock. While the outcome is open the
   * order closes as PAID with it; once decided, the close reads the row itself (cancelUnpaidOrder finds the order
   * sold; failOrder refunds the payment). A repeat, or a malformed payload, changes nothing.
   */
  followAppliedPayment(payment: PaymentReceived): void {
    try {
      validatePayment(payment);
    } catch (err) {
      log.warn('a malformed payment signal was ignored', { orderNo: this.state.orderNo, err: describeFailure(err) });
      return;
    }
    if (this.state.payments.some((p) => p.eventId === payment.eventId)) return;
    if (!OPEN_PHASES.includes(this.phase.kind)) return;
    this.state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, outcome: 'APPLIED' });
    this.paidInMysql.add(payment.eventId);
    this.moveTo({ kind: 'PAYMENT_APPLIED', payment });
  }

  /** The cancel Update's validator: a refused cancel never enters the history. */
  assertCancellable(): void {
    if (!this.cancellable())
      throw new Error(
        `${NOT_CANCELLABLE}: order ${this.state.orderNo} is ${this.state.status} and can no longer be cancelled`,
      );
  }

  cancel(): OrderState {
    // Another cancel, or one after the wait (a provider order closing at its provider), changes nothing.
    if (this.phase.kind === 'PERSISTING' || this.phase.kind === 'AWAITING_PAYMENT')
      this.moveTo({ kind: 'CANCEL_REQUESTED' });
    return this.state;
  }

  async untilPersisted(): Promise<OrderState> {
    await condition(() => this.state.status !== 'PENDING');
    return this.state;
  }

  // ---- decide -----------------------------------------------------------------------------------

  private async decide(): Promise<Decided> {
    try {
      const persisted = await persistOrder({ ...this.input, paymentDeadline: this.state.paymentDeadline });
      this.state.paymentDeadline = persisted.paymentDeadline;
    } catch (err) {
      return this.persistFailed(err);
    }
    this.state.status = 'AWAITING_PAYMENT';
    // A cancel that came while persisting stays requested: the wait below ends with it at once.
    if (this.phase.kind === 'PERSISTING') this.moveTo({ kind: 'AWAITING_PAYMENT' });
    this.openProviderPayment();
    // At least 1 ms: a zero timeout would mean "no timer".
    const remainingMs = Math.max(1, Date.parse(this.state.paymentDeadline) - Date.now());
    let operatorCancellation: unknown;
    try {
      // A payment applied or a shopper's cancel moves the phase on (PAYMENT_APPLIED, CANCEL_REQUESTED).
      await condition(
        () => this.phase.kind !== 'AWAITING_PAYMENT' || this.providerPayment?.unavailable !== undefined,
        remainingMs,
      );
    } catch (err) {
      if (!isCancellation(err)) throw err;
      operatorCancellation = err;
    }
    // Decided: an opening still retrying against a provider that is away stops here.
    this.providerPayment?.opening.cancel();
    const outcome = outcomeOfWait({
      accepted: this.applied(),
      operatorCancelled: operatorCancellation !== undefined,
      shopperCancelled: this.phase.kind === 'CANCEL_REQUESTED',
      paymentUnavailable: this.providerPayment?.unavailable,
    });
    return { outcome, operatorCancellation };
  }

  /** Starts making the order's payment at its provider, beside the wait; its handle goes into the state. */
  private openProviderPayment(): void {
    const provider = this.input.paymentProvider;
    if (!provider) return;
    const opened: ProviderPayment = { opening: new CancellationScope(), unavailable: undefined };
    this.providerPayment = opened;
    opened.opening
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
          if (!isCancellation(err)) opened.unavailable = describeFailure(err);
        },
      );
  }

  /** Closes the order's payments at its provider so they can no longer be paid, and answers what the provider found. */
  private async closeProviderPayment(): Promise<ProviderClose | undefined> {
    const provider = this.input.paymentProvider;
    if (!provider || !this.providerPayment || this.providerPayment.unavailable) return undefined;
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
      const paidBefore = this.applied();
      if (paidBefore) return paidBefore;
      const closed = await this.closeProviderPayment();
      const paidMeanwhile = this.applied();
      if (paidMeanwhile) return paidMeanwhile;
      if (!closed || closed.state === 'CANCELED') return undefined;
      if (closed.state === 'SUCCEEDED') {
        // Judged as any payment while the order is open: the right amount pays it, another is refunded.
        this.judgePayment(closed.payment);
        return this.applied();
      }
      await condition(() => this.applied() !== undefined, readAfterMs);
      readAfterMs = Math.min(readAfterMs * 2, PROCESSING_MAX_READ_MS);
    }
  }

  private persistFailed(err: unknown): Decided {
    if (!isCancellation(err))
      return { outcome: { status: 'FAILED', reason: describeFailure(err) }, operatorCancellation: undefined };
    return {
      outcome: { status: 'FAILED', reason: 'cancelled by an operator before the order was persisted' },
      operatorCancellation: err,
    };
  }

  // ---- close ------------------------------------------------------------------------------------

  private async close(outcome: Outcome<PaymentReceived>): Promise<void> {
    if (outcome.status === 'CANCELLED' && this.intentDecides) {
      // Not decided yet: until the provider answers, a payment is judged as for an open order.
      this.moveTo({ kind: 'SETTLING_AT_PROVIDER' });
      const paid = await this.settleAtProvider();
      if (paid) return this.close({ status: 'PAID', payment: paid });
    }
    // Decided: each step below starts by moving to its phase (PAYING, SETTLING_IN_MYSQL, FAILING).
    if (outcome.status === 'PAID') return this.closePaid(outcome.payment);
    if (outcome.status === 'CANCELLED') return this.closeCancelled(outcome.reason);
    return this.closeFailed(outcome.reason);
  }

  private async closePaid(payment: PaymentReceived): Promise<void> {
    this.moveTo({ kind: 'PAYING', payment });
    // Redis first: if the units are no longer this order's, it must not be sold in MySQL either.
    const confirmed = await closeInTask.confirmReservation(this.reservation);
    if (confirmed === 'CONFIRMED' || confirmed === 'ALREADY_CONFIRMED') {
      const paidAt = new Date().toISOString();
      // The row applied a signalled payment itself: the order is PAID there already.
      if (!this.paidInMysql.has(payment.eventId))
        await closeInTask.markPaid({
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
    return this.closeFailed(`ReservationLost: the reservation was ${confirmed} when the payment was applied`);
  }

  private async closeCancelled(reason: CancelReason): Promise<void> {
    this.moveTo({ kind: 'SETTLING_IN_MYSQL' });
    const cancelledAt = new Date().toISOString();
    const found = await closeInTask.cancelUnpaidOrder({ orderNo: this.input.orderNo, reason, cancelledAt });
    if (found.outcome === 'PAID_IN_TIME') {
      await this.payRecordedInTime(found.payment);
    } else {
      this.moveTo({ kind: 'CANCELLING' });
      await closeInTask.releaseReservation(this.reservation);
      this.state.cancelReason = reason;
      this.state.status = 'CANCELLED';
    }
  }

  /** A payment recorded in time that the order had not been delivered yet pays it after all. */
  private async payRecordedInTime(payment: PaymentReceived): Promise<void> {
    log.info('a payment recorded before the order was cancelled pays it', {
      orderNo: this.input.orderNo,
      eventId: payment.eventId,
    });
    this.state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, outcome: 'APPLIED' });
    // Applied and decided at once: SETTLING_IN_MYSQL → PAYING.
    return this.closePaid(payment);
  }

  private async closeFailed(reason: string): Promise<void> {
    const phase = { kind: 'FAILING', applied: this.applied() } as const;
    this.moveTo(phase);
    log.warn('order failed; releasing the reservation', { orderNo: this.input.orderNo, reason });
    await recordOrderFailure({ ...this.input, paymentDeadline: this.state.paymentDeadline, reason });
    // Failed for a reason of ours: the waiting line's admission that bought it is the shopper's again.
    await releaseReservation({ ...this.reservation, orderFailed: true });
    this.state.failureReason = reason;
    if (phase.applied) {
      const payment = phase.applied;
      this.state.payments = this.state.payments.map((p) =>
        p.eventId === payment.eventId ? { ...p, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' } : p,
      );
      this.refunds.push({ ...payment, reason: 'ORDER_FAILED' });
    }
    this.state.status = 'FAILED';
    // Nothing more may be paid for a failed order; a payment it accepted has its refund recorded.
    if (!phase.applied) {
      const closed = await this.closeProviderPayment();
      // Paid before its cancel: the money is refunded (ORDER_FAILED).
      if (closed?.state === 'SUCCEEDED') this.judgePayment(closed.payment);
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
    const closingAs = this.decidedAs() ?? (OPEN_STATUSES.includes(this.state.status) ? undefined : this.state.status);
    const verdict = judgePayment(
      {
        totalCents: this.state.totalCents,
        paymentDeadline: this.state.paymentDeadline,
        paid: this.applied() !== undefined,
        closingAs,
        // A provider's intent cannot succeed once cancelled: its state machine, not our clock, decides.
        deadlineDecides: !this.intentDecides,
      },
      payment,
    );
    this.state.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, ...verdict });
    // Accepted while open: the wait ends and the order is closed as PAID.
    if (verdict.outcome === 'APPLIED') this.moveTo({ kind: 'PAYMENT_APPLIED', payment });
    if (verdict.refundReason) this.refunds.push({ ...payment, reason: verdict.refundReason });
    return verdict;
  }

  /** A payment recorded in time, while cancelUnpaidOrder runs, waits for its answer (receivePayment). */
  private waitsForSettling(payment: PaymentReceived): boolean {
    return (
      this.phase.kind === 'SETTLING_IN_MYSQL' &&
      paysInTime({ ...this.state, deadlineDecides: !this.intentDecides }, payment) &&
      !this.state.payments.some((p) => p.eventId === payment.eventId)
    );
  }

  private cancellable(): boolean {
    return this.decidedAs() === undefined && isCancellable(this.state);
  }

  /** The payment applied to the order, if any: it pays the order, and is refunded if the order fails. */
  private applied(): PaymentReceived | undefined {
    switch (this.phase.kind) {
      case 'PAYMENT_APPLIED':
      case 'PAYING':
        return this.phase.payment;
      case 'FAILING':
      case 'CLOSED':
        return this.phase.applied;
      default:
        return undefined;
    }
  }

  /** What the order closes as once decided; undefined while the outcome is open. */
  private decidedAs(): OrderState['status'] | undefined {
    switch (this.phase.kind) {
      case 'PAYING':
        return 'PAID';
      case 'SETTLING_IN_MYSQL':
      case 'CANCELLING':
        return 'CANCELLED';
      case 'FAILING':
        return 'FAILED';
      case 'CLOSED':
        return this.phase.as;
      default:
        return undefined;
    }
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
