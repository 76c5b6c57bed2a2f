/**
 * OrderWorkflow: one durable process per order. It decides the outcome, then closes the order on one path that cannot
 * be cancelled; the order's row is the one judge of its payments and the workflow follows it
 * (docs/fault-tolerance.md, "OrderWorkflow: decide, then close"; a provider order: "Stripe: the intent decides").
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
  payUpdate,
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
  type PaymentVerdict,
} from '../model/order-workflow.js';

// A local activity: one workflow task instead of three. 15 minutes is how long a 202's promise may wait for its start,
// so a MySQL outage that long is outlasted; backoffs ≥ 1 s wait on a durable timer, so messages are answered.
const { persistOrder } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '5s',
  scheduleToCloseTimeout: '15m',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

// A lost release loses stock, a lost failure loses a refund: both idempotent, retried without limit.
const { recordOrderFailure, releaseReservation } = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

// The close as local activities, in the task that decided it: two markers instead of six events per step, a third of
// the server's and worker's work at a sale's rate. Retried without limit, as above.
const closeInTask = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

// Retried (capped at a minute) while the provider is away, on the provider's own task queue, whose workers pace calls
// at STRIPE_REQUESTS_PER_SECOND: a sale's deadlines bunch.
const PROVIDER_ACTIVITY_OPTIONS = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
} as const;

/** The re-reads of an intent still processing: sparse, so a bank debit of days keeps a small history. */
const PROCESSING_FIRST_READ_MS = 60_000;
const PROCESSING_MAX_READ_MS = 3_600_000;

// Pinned (src/workers/versioning.ts): an order runs to its end on the build that started it
// (docs/operations.md, "Deploying during a sale").
export async function OrderWorkflow(input: OrderInput): Promise<OrderState> {
  const order = new OrderRun(input);
  // Registered before the first await, so a message delivered with the start finds its handler.
  setHandler(statusQuery, () => order.state);
  setHandler(paymentAppliedSignal, (payment) => order.followAppliedPayment(payment));
  setHandler(cancelUpdate, () => order.cancel(), { validator: () => order.assertCancellable() });
  setHandler(payUpdate, (payment) => order.payDeliveredByOlderApi(payment), { validator: validatePayment });
  setHandler(awaitPersistedUpdate, () => order.untilPersisted());
  return order.run();
}

/** Callers start the workflow by name with OrderWorkflowSignature: this stops compiling if the two part ways. */
const _keepsItsSignature: OrderWorkflowSignature = OrderWorkflow;

/**
 * Where an order's run is, moved only by OrderRun.moveTo along PHASE_TRANSITIONS; the status is read from it. The
 * outcome is open until PAYING, SETTLING_IN_MYSQL or FAILING. An operator's cancellation is no phase: it throws out of
 * the persist or the wait, and run() rethrows it once the order is closed.
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
  /** Cancelled: a provider order closes its intents first; still open, so a payment applied meanwhile pays it. */
  | { readonly kind: 'SETTLING_AT_PROVIDER' }
  /** Decided PAID (the row is PAID): the reservation confirmed in Redis. */
  | { readonly kind: 'PAYING'; readonly payment: PaymentReceived }
  /** Decided CANCELLED: cancelUnpaidOrder cancels the row unless it applied a payment first. */
  | { readonly kind: 'SETTLING_IN_MYSQL' }
  /** MySQL found none: the order is cancelled and its reservation released. */
  | { readonly kind: 'CANCELLING' }
  /** Decided FAILED; an applied payment is refunded. `persisted`: shows AWAITING_PAYMENT until closed, else PENDING. */
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
  // persisted · the row applied a payment first · the persist failed, or an operator cancelled it
  PERSISTING: ['AWAITING_PAYMENT', 'PAYMENT_APPLIED', 'FAILING'],
  // shopper's cancel · a payment · deadline or operator's cancel (provider order, other) · provider refused the payment
  AWAITING_PAYMENT: ['CANCEL_REQUESTED', 'PAYMENT_APPLIED', 'SETTLING_AT_PROVIDER', 'SETTLING_IN_MYSQL', 'FAILING'],
  // a payment in the same activation (it wins) · the wait ends with the cancel, as above · the persist failed
  CANCEL_REQUESTED: ['PAYMENT_APPLIED', 'SETTLING_AT_PROVIDER', 'SETTLING_IN_MYSQL', 'FAILING'],
  PAYMENT_APPLIED: ['PAYING'],
  // a payment first (the intent succeeded, or its webhook came) · the provider says none can be paid any more
  SETTLING_AT_PROVIDER: ['PAYMENT_APPLIED', 'SETTLING_IN_MYSQL'],
  // the reservation was gone from Redis · paid
  PAYING: ['FAILING', 'CLOSED'],
  // MySQL found a payment recorded in time · it found none
  SETTLING_IN_MYSQL: ['PAYING', 'CANCELLING'],
  CANCELLING: ['CLOSED'],
  FAILING: ['CLOSED'],
  CLOSED: [],
};

/** PENDING until persisted, AWAITING_PAYMENT until closed (a read prefers the row's decided status), then the final. */
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

/** A move PHASE_TRANSITIONS lacks is a bug: a plain Error fails the workflow task (retried), not the order. */
export function assertPhaseMove(from: PhaseKind, to: PhaseKind): void {
  if (!PHASE_TRANSITIONS[from].includes(to)) throw new Error(`OrderRun: no move from phase ${from} to ${to}`);
}

/**
 * A provider order's payment: openPayment runs beside the wait in `opening` (cancelled once decided); `unavailable` is
 * why it failed otherwise, and the order cannot be paid. Not a phase: the provider answers in whatever phase.
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

/** One order: its state, its message handlers and the steps of its run. */
class OrderRun {
  /** What the order holds besides its status (its deadline, payments, reasons): the status is the phase's. */
  private readonly facts: Omit<OrderState, 'status'>;
  private phase: OrderPhase = { kind: 'PERSISTING' };
  private readonly reservation: { sku: string; orderNo: string };
  /** Set by the shopper's cancel(): the close need not ask the row again. */
  private cancelledInRow: CancelReason | undefined;
  /** undefined while none was opened (not a provider order, or not persisted). */
  private providerPayment: ProviderPayment | undefined;
  /** A provider order: its intent decides the close. */
  private readonly intentDecides: boolean;
  private readonly providerActivities: Pick<PaymentActivities, 'openPayment' | 'closePayment'>;

  constructor(private readonly input: OrderInput) {
    // The earliest deadline; persistOrder moves it to when the order became payable: the shopper's whole window.
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

  private moveTo(next: OrderPhase): void {
    assertPhaseMove(this.phase.kind, next.kind);
    this.phase = next;
  }

  /**
   * The paymentApplied Signal: the row applied this payment under its lock. While the outcome is open it pays the
   * order; once decided, the close reads the row itself. A repeat or a malformed payload changes nothing.
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
   * The shopper's cancel, judged by the row: refused NOT_CANCELLABLE if the row applied a payment first (the order
   * closes PAID). A provider order's cancel is accepted and its provider decides (settleAtProvider).
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

  /** The previous build's API asks for a verdict (payUpdate): the row decides once the order has one; this follows. */
  async payDeliveredByOlderApi(payment: PaymentReceived): Promise<PaymentVerdict> {
    await this.untilPersisted();
    const verdict = await closeInTask.decideDeliveredPayment({ orderNo: this.input.orderNo, eventId: payment.eventId });
    if (verdict.outcome === 'APPLIED') this.followAppliedPayment(payment);
    return verdict;
  }

  async untilPersisted(): Promise<OrderState> {
    await condition(() => statusOf(this.phase) !== 'PENDING');
    return this.state;
  }

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
          // The id only: an activity of an earlier build answered the client secret too, which state must not keep.
          this.facts.paymentIntent = { id: intent.id };
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
   * Closes a provider order's intents until the provider says none can be paid; answers the payment that paid it, if
   * any. An intent still processing keeps the unit, read again on a sparse backoff until its webhook or a read.
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

  private async close(outcome: Outcome<PaymentReceived>): Promise<void> {
    if (outcome.status === 'CANCELLED' && this.intentDecides) {
      // Not decided yet: until the provider answers, a payment is judged as for an open order.
      this.moveTo({ kind: 'SETTLING_AT_PROVIDER' });
      const paid = await this.settleAtProvider();
      if (paid) return this.close({ status: 'PAID', payment: paid });
    }
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
