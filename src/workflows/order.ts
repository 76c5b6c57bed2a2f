/**
 * OrderWorkflow: one durable process per order (docs/fault-tolerance.md, "OrderWorkflow: decide, then close").
 *
 * The order's row in MySQL is the one judge of its payments: it decides each one as it is recorded (or, for one that
 * came before the row, as the row is written), and the workflow follows. It first decides the order's outcome, then
 * closes the order on one path that cannot be cancelled:
 *
 *   decide   persistOrder (claims the Redis reservation, writes MySQL; a payment that came first is decided there)
 *              fails for good / cancelled while pending ─────────────────────────▶ FAILED
 *              ok ─▶ AWAITING_PAYMENT ─ wait for the payment Signal, a cancel or the deadline
 *                        paymentApplied ─▶ PAID · deadline ─▶ CANCELLED (PAYMENT_TIMEOUT)
 *                        shopper ─▶ CANCELLED (USER_CANCELLED) · operator ─▶ CANCELLED (OPERATOR_CANCELLED)
 *   close    PAID       confirm the reservation (Redis); the row is PAID already. If the units are gone from Redis
 *                       the order FAILS instead and the payment is refunded
 *            CANCELLED  cancelUnpaidOrder (MySQL): a payment the row applied first turns it into PAID (above);
 *                       else cancelled, and the reservation released (Redis)
 *            FAILED     recordOrderFailure (MySQL: a FAILED row, units back if it was persisted, an applied
 *                       payment to be refunded), then release the reservation (Redis)
 *
 * An order paid through a provider with an API (input.paymentProvider: Stripe) also has its
 * payment made there once persisted (openPayment, while the wait goes on; a refusal fails the
 * order). Its intent's state decides its close: before the order is cancelled its intents are
 * closed at the provider (closePayment: cancel, and after a refusal read again, the money of one that succeeded
 * recorded and decided by the row); one that was paid first pays the order, one still processing keeps the unit
 * until its outcome, and the unit is released only once none can be paid.
 *
 * The shopper's cancel is an Update whose verdict is the row's: it cancels the row first (cancelUnpaidOrder), so a
 * cancel after a payment the row applied is refused NOT_CANCELLABLE and the order closes PAID.
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
  NOT_CANCELLABLE,
  outcomeOfWait,
  paymentAppliedSignal,
  pendingOrderState,
  providerTaskQueue,
  statusQuery,
  type CancelReason,
  type OrderInput,
  type OrderState,
  type OrderStatus,
  type OrderWorkflowSignature,
  type Outcome,
  type PaymentReceived,
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
 * A failed order's close: it must happen eventually (a lost release loses stock, a lost failure loses the refund of
 * an applied payment). These retry without limit (capped backoff); both are idempotent.
 */
const { recordOrderFailure, releaseReservation } = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * The close's steps (and the shopper's cancel) as local activities: a decided order closes in the workflow task that
 * decided it instead of one activity task and one more workflow task per step. Each close writes two markers into
 * the history instead of six events per step: at a sale's rate the server and the worker do a third of the work.
 * Backoffs of 1 s or more wait on a durable timer, and they retry without limit as the activities above do.
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
  setHandler(cancelUpdate, () => order.cancel(), { validator: () => order.assertCancellable() });
  setHandler(awaitPersistedUpdate, () => order.untilPersisted());
  return order.run();
}

/** Callers start the workflow by name with OrderWorkflowSignature: this stops compiling if the two part ways. */
const _keepsItsSignature: OrderWorkflowSignature = OrderWorkflow;

/**
 * Where an order's run is: one value (OrderRun.phase), moved only by OrderRun.moveTo along PHASE_TRANSITIONS; the
 * status callers see is read from it (statusOf).
 * Until PAYING, SETTLING_IN_MYSQL or FAILING the outcome is open; from then on it is decided: no payment is
 * applied any more and no cancel accepted. An operator's cancellation of the workflow is no phase: it ends the
 * persist or the wait by throwing, and run() rethrows it once the order is closed.
 */
export type OrderPhase =
  /** persistOrder runs (the order is PENDING): a shopper's cancel waits for it. */
  | { readonly kind: 'PERSISTING' }
  /** Payable: a payment, a cancel, the deadline or the provider's refusal ends the wait (providerPayment). */
  | { readonly kind: 'AWAITING_PAYMENT' }
  /** The shopper's cancel was accepted (the row is CANCELLED): the wait ends with it. */
  | { readonly kind: 'CANCEL_REQUESTED' }
  /** The row applied a payment while the outcome was open: the wait ends with it, and the order closes as PAID. */
  | { readonly kind: 'PAYMENT_APPLIED'; readonly payment: PaymentReceived }
  /**
   * Cancelled, a provider order closes its intents first: open until the provider answers, so a payment its row
   * applies meanwhile pays it, and a cancel changes nothing.
   */
  | { readonly kind: 'SETTLING_AT_PROVIDER' }
  /** Decided PAID (the row is PAID): the reservation confirmed in Redis. */
  | { readonly kind: 'PAYING'; readonly payment: PaymentReceived }
  /** Decided CANCELLED: cancelUnpaidOrder cancels the row unless it applied a payment first. */
  | { readonly kind: 'SETTLING_IN_MYSQL' }
  /** MySQL found none: the order is cancelled and its reservation released. */
  | { readonly kind: 'CANCELLING' }
  /**
   * Decided FAILED: recorded and its reservation released; the payment it had applied, if any, is refunded.
   * `persisted`: the order had a row (AWAITING_PAYMENT shown until closed), else it shows PENDING.
   */
  | { readonly kind: 'FAILING'; readonly applied: PaymentReceived | undefined; readonly persisted: boolean }
  /** Closed as its final status: a payment that still arrives is refunded by the row. */
  | { readonly kind: 'CLOSED'; readonly as: OrderState['status']; readonly applied: PaymentReceived | undefined };

type PhaseKind = OrderPhase['kind'];

/** The phases whose outcome is still open: a payment the row applied decides it. */
const OPEN_PHASES: readonly PhaseKind[] = [
  'PERSISTING',
  'AWAITING_PAYMENT',
  'CANCEL_REQUESTED',
  'SETTLING_AT_PROVIDER',
];

/** Every move an order's phase may make, and what makes it. */
export const PHASE_TRANSITIONS: { readonly [From in PhaseKind]: readonly PhaseKind[] } = {
  // persisted · the row applied a payment (its Signal came before the persist's answer) · the persist failed, or an
  // operator cancelled it (the shopper's cancel waits for the persist)
  PERSISTING: ['AWAITING_PAYMENT', 'PAYMENT_APPLIED', 'FAILING'],
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
 * The status an order shows in each phase: PENDING until persisted, AWAITING_PAYMENT until closed (the row may have
 * decided already: a read of the order prefers the row's decided status), then what it closed as.
 */
export function statusOf(phase: OrderPhase): OrderStatus {
  switch (phase.kind) {
    case 'PERSISTING':
      return 'PENDING';
    case 'FAILING':
      return phase.persisted ? 'AWAITING_PAYMENT' : 'PENDING';
    case 'CLOSED':
      return phase.as;
    default:
      return 'AWAITING_PAYMENT';
  }
}

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
  /** What the order holds besides its status (its deadline, payments, reasons): the status is the phase's. */
  private readonly facts: Omit<OrderState, 'status'>;
  /** Where the run is (OrderPhase): moved only by moveTo. */
  private phase: OrderPhase = { kind: 'PERSISTING' };
  private readonly reservation: { sku: string; orderNo: string };
  /** The reason the row was cancelled for by the shopper's cancel (cancel()): the close need not ask the row again. */
  private cancelledInRow: CancelReason | undefined;
  /** The order's payment at its provider; undefined while none was opened (not a provider order, or not persisted). */
  private providerPayment: ProviderPayment | undefined;
  /** A provider order: its intent decides the close. */
  private readonly intentDecides: boolean;
  private readonly providerActivities: Pick<PaymentActivities, 'openPayment' | 'closePayment'>;

  constructor(private readonly input: OrderInput) {
    // Until persisted, the earliest the deadline can be; persistOrder moves it to when the order
    // became payable, so a late start or persist keeps the shopper's whole window.
    const { status: _pending, ...facts } = pendingOrderState(input);
    this.facts = facts;
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
      // Each close ends by moving to CLOSED with the status it closed as.
      await this.close(outcome);
      // A cancel still asking the row answers before the workflow completes.
      await condition(allHandlersFinished);
    });
    log.info('order closed', {
      orderNo: this.facts.orderNo,
      status: this.state.status,
      workflowId: workflowInfo().workflowId,
    });
    // The order is closed as the operator asked; the workflow shows as cancelled, unless it was paid.
    if (operatorCancellation && this.state.status !== 'PAID') throw operatorCancellation;
    return this.state;
  }

  /** The order as callers see it (the status query, the workflow's result): its facts and its phase's status. */
  get state(): OrderState {
    return { ...this.facts, status: statusOf(this.phase) };
  }

  /** The one way the phase changes: only along PHASE_TRANSITIONS. */
  private moveTo(next: OrderPhase): void {
    assertPhaseMove(this.phase.kind, next.kind);
    this.phase = next;
  }

  // ---- messages ---------------------------------------------------------------------------------

  /**
   * The paymentApplied Signal: the order's row applied this payment under its lock. While the outcome is open the
   * order closes as PAID with it; once decided, the close reads the row itself (cancelUnpaidOrder finds the order
   * sold; failOrder refunds the payment). A repeat, or a malformed payload, changes nothing.
   */
  followAppliedPayment(payment: PaymentReceived): void {
    try {
      validatePayment(payment);
    } catch (err) {
      log.warn('a malformed payment signal was ignored', { orderNo: this.facts.orderNo, err: describeFailure(err) });
      return;
    }
    if (this.facts.payments.some((p) => p.eventId === payment.eventId)) return;
    if (!OPEN_PHASES.includes(this.phase.kind)) return;
    this.facts.payments.push({ eventId: payment.eventId, amountCents: payment.amountCents, outcome: 'APPLIED' });
    this.moveTo({ kind: 'PAYMENT_APPLIED', payment });
  }

  /** The cancel Update's validator: a refused cancel never enters the history. */
  assertCancellable(): void {
    if (!this.cancellable())
      throw ApplicationFailure.nonRetryable(
        `${NOT_CANCELLABLE}: order ${this.facts.orderNo} is ${this.state.status} and can no longer be cancelled`,
        NOT_CANCELLABLE,
      );
  }

  /**
   * The shopper's cancel, whose verdict is the row's: once persisted, cancelUnpaidOrder cancels the row, unless the
   * row applied a payment first: then the order closes PAID and the cancel is refused NOT_CANCELLABLE. A provider
   * order is cancelled only once its provider confirms nothing can be paid any more (the close's settleAtProvider):
   * its cancel is accepted and the provider's answer decides. Another cancel, or one after the wait, changes nothing.
   */
  async cancel(): Promise<OrderState> {
    await condition(() => statusOf(this.phase) !== 'PENDING');
    if (this.phase.kind !== 'AWAITING_PAYMENT' || this.intentDecides) {
      this.assertCancellable();
      if (this.phase.kind === 'AWAITING_PAYMENT') this.moveTo({ kind: 'CANCEL_REQUESTED' });
      return this.state;
    }
    const cancelledAt = new Date().toISOString();
    const found = await closeInTask.cancelUnpaidOrder({
      orderNo: this.input.orderNo,
      reason: 'USER_CANCELLED',
      cancelledAt,
    });
    if (found.outcome === 'PAID_IN_TIME') {
      this.followAppliedPayment(found.payment);
      throw ApplicationFailure.nonRetryable(
        `${NOT_CANCELLABLE}: order ${this.facts.orderNo} was paid before the cancel`,
        NOT_CANCELLABLE,
      );
    }
    this.cancelledInRow = found.reason;
    if (this.phase.kind === 'AWAITING_PAYMENT') this.moveTo({ kind: 'CANCEL_REQUESTED' });
    return this.state;
  }

  async untilPersisted(): Promise<OrderState> {
    await condition(() => statusOf(this.phase) !== 'PENDING');
    return this.state;
  }

  // ---- decide -----------------------------------------------------------------------------------

  private async decide(): Promise<Decided> {
    let persisted: Awaited<ReturnType<typeof persistOrder>>;
    try {
      persisted = await persistOrder({ ...this.input, paymentDeadline: this.facts.paymentDeadline });
      this.facts.paymentDeadline = persisted.paymentDeadline;
    } catch (err) {
      return this.persistFailed(err);
    }
    if (this.phase.kind === 'PERSISTING') this.moveTo({ kind: 'AWAITING_PAYMENT' });
    // A payment that came before the row: the row applied it as it was written.
    if (persisted.applied) this.followAppliedPayment(persisted.applied);
    else this.openProviderPayment();
    // At least 1 ms: a zero timeout would mean "no timer".
    const remainingMs = Math.max(1, Date.parse(this.facts.paymentDeadline) - Date.now());
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
          amountCents: this.facts.totalCents,
        }),
      )
      .then(
        (intent) => {
          this.facts.paymentIntent = intent;
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
      amountCents: this.facts.totalCents,
      paymentDeadline: this.facts.paymentDeadline,
      ...(this.facts.paymentIntent ? { paymentIntentId: this.facts.paymentIntent.id } : {}),
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
        // The row applied the intent's money as closePayment recorded it: followed as its Signal would be.
        this.followAppliedPayment(closed.payment);
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
      // The row applied the payment: the order is PAID there already, written once.
      this.facts.paidAt = new Date().toISOString();
      this.moveTo({ kind: 'CLOSED', as: 'PAID', applied: payment });
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
    const found = this.cancelledInRow
      ? ({ outcome: 'CANCELLED', reason: this.cancelledInRow } as const)
      : await closeInTask.cancelUnpaidOrder({ orderNo: this.input.orderNo, reason, cancelledAt });
    if (found.outcome === 'PAID_IN_TIME') {
      // The row applied a payment before the cancel reached it (its Signal not handled yet): it pays the order.
      log.info('a payment the row applied before the order was cancelled pays it', {
        orderNo: this.input.orderNo,
        eventId: found.payment.eventId,
      });
      if (!this.facts.payments.some((p) => p.eventId === found.payment.eventId))
        this.facts.payments.push({ ...verdictless(found.payment), outcome: 'APPLIED' });
      // Applied and decided at once: SETTLING_IN_MYSQL → PAYING.
      return this.closePaid(found.payment);
    }
    this.moveTo({ kind: 'CANCELLING' });
    await closeInTask.releaseReservation(this.reservation);
    // The row's reason: a shopper's cancel it took before the deadline's stays the shopper's.
    this.facts.cancelReason = found.reason;
    this.moveTo({ kind: 'CLOSED', as: 'CANCELLED', applied: undefined });
  }

  private async closeFailed(reason: string): Promise<void> {
    const phase = { kind: 'FAILING', applied: this.applied(), persisted: this.phase.kind !== 'PERSISTING' } as const;
    this.moveTo(phase);
    log.warn('order failed; releasing the reservation', { orderNo: this.input.orderNo, reason });
    await recordOrderFailure({ ...this.input, paymentDeadline: this.facts.paymentDeadline, reason });
    // Failed for a reason of ours: the waiting line's admission that bought it is the shopper's again.
    await releaseReservation({ ...this.reservation, orderFailed: true });
    this.facts.failureReason = reason;
    if (phase.applied) {
      // recordOrderFailure turned the applied payment to be refunded in the row (ORDER_FAILED).
      const payment = phase.applied;
      this.facts.payments = this.facts.payments.map((p) =>
        p.eventId === payment.eventId ? { ...p, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' } : p,
      );
    }
    this.moveTo({ kind: 'CLOSED', as: 'FAILED', applied: phase.applied });
    // Nothing more may be paid for a failed order: money an intent took before its cancel is refunded by the row.
    if (!phase.applied) await this.closeProviderPayment();
  }

  // ---- the order's state ------------------------------------------------------------------------

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

/** A payment's fields without its arrival time: what the state keeps of it. */
function verdictless(payment: PaymentReceived): { eventId: string; amountCents: number } {
  return { eventId: payment.eventId, amountCents: payment.amountCents };
}

/** Refuses a malformed payment before it changes the state. */
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
