/** OrderWorkflow: persists the order, waits, and its row decides how it ends (docs/fault-tolerance.md, "One close"). */
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
  closeRequestOf,
  isSold,
  NOT_CANCELLABLE,
  paymentAppliedSignal,
  pendingOrderState,
  providerTaskQueue,
  statusQuery,
  type CloseRequest,
  type CloseVerdict,
  type OrderInput,
  type OrderState,
  type OrderStatus,
  type OrderWorkflowSignature,
} from '../model/order-workflow.js';

// Local: one task, not three. 15m: a 202's pending start's longest wait; backoffs ≥ 1 s on a timer answer messages.
const { persistOrder } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '5s',
  scheduleToCloseTimeout: '15m',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

// Local, in the task that decided it (two markers, not six events); a lost close loses stock or money: no retry limit.
const { closeOrder } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  localRetryThreshold: '1s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

// Retried while the provider is away, on its own task queue paced at its rate limit: a sale's deadlines bunch.
const PROVIDER_ACTIVITY_OPTIONS = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
} as const;

/** The re-reads of an intent still processing: sparse, so a bank debit of days keeps a small history. */
const PROCESSING_FIRST_READ_MS = 60_000;
const PROCESSING_MAX_READ_MS = 3_600_000;

// Pinned (src/workers/versioning.ts): an order ends on the build that started it (docs/operations.md).
export async function OrderWorkflow(input: OrderInput): Promise<OrderState> {
  const order = new OrderRun(input);
  // Registered before the first await, so a message delivered with the start finds its handler.
  setHandler(statusQuery, () => order.state);
  setHandler(paymentAppliedSignal, () => order.askTheRow());
  setHandler(cancelUpdate, () => order.cancel(), { validator: () => order.assertCancellable() });
  setHandler(awaitPersistedUpdate, () => order.untilPersisted());
  return order.run();
}

/** Callers start the workflow by name with OrderWorkflowSignature: this stops compiling if the two part ways. */
const _keepsItsSignature: OrderWorkflowSignature = OrderWorkflow;

/** Where the run is (the status is the row's verdict, statusOf): PERSISTING → AWAITING_PAYMENT → CLOSING → CLOSED. */
export type RunPhase = 'PERSISTING' | 'AWAITING_PAYMENT' | 'SETTLING_AT_PROVIDER' | 'CLOSING' | 'CLOSED';

/** The status the order shows: PENDING until persisted, AWAITING_PAYMENT until closed, then its row's verdict. */
export function statusOf(phase: RunPhase, persisted: boolean, verdict: CloseVerdict | undefined): OrderStatus {
  if (phase === 'CLOSED' && verdict && verdict.outcome !== 'OPEN')
    return verdict.outcome === 'PAID' ? verdict.status : verdict.outcome;
  return persisted ? 'AWAITING_PAYMENT' : 'PENDING';
}

class OrderRun {
  /** What the order reports besides its status (its deadline, reasons, payment time). */
  private readonly facts: Omit<OrderState, 'status'>;
  private phase: RunPhase = 'PERSISTING';
  private persisted = false;
  private verdict: CloseVerdict | undefined;
  /** A payment's Signal came (or the row applied one as it was written): the row is asked whether it paid. */
  private paymentSignalled = false;
  private shopperCancelled = false;
  /** A provider order's openPayment beside the wait (cancelled once decided); `unavailable`: why else it failed. */
  private providerPayment: { readonly opening: CancellationScope; unavailable?: string } | undefined;
  private readonly providerActivities: Pick<PaymentActivities, 'openPayment' | 'closePayment'>;

  constructor(private readonly input: OrderInput) {
    // The earliest deadline; persistOrder moves it to when the order became payable: the shopper's whole window.
    const { status: _pending, ...facts } = pendingOrderState(input);
    this.facts = facts;
    this.providerActivities = proxyActivities<PaymentActivities>({
      ...PROVIDER_ACTIVITY_OPTIONS,
      taskQueue: providerTaskQueue(workflowInfo().taskQueue),
    });
  }

  /** persist → wait → close, the close on a path that cannot be cancelled. */
  async run(): Promise<OrderState> {
    let request: CloseRequest | undefined;
    let operatorCancellation: unknown;
    try {
      const persisted = await persistOrder({ ...this.input, paymentDeadline: this.facts.paymentDeadline });
      this.facts.paymentDeadline = persisted.paymentDeadline;
      this.persisted = true;
      this.phase = 'AWAITING_PAYMENT';
      // A payment that came before the row, applied as the row was written: the row is asked at once.
      if (persisted.applied) this.paymentSignalled = true;
      else this.openProviderPayment();
    } catch (err) {
      if (isCancellation(err)) {
        operatorCancellation = err;
        request = { kind: 'FAIL', reason: 'cancelled by an operator before the order was persisted' };
      } else request = { kind: 'FAIL', reason: describeFailure(err) };
    }
    if (!request) ({ request, operatorCancellation } = await this.awaitRequest());
    // Skipped when nothing is left (a paid order's end): a promise costs a sandbox stack trace (docs/performance.md).
    if (request || !allHandlersFinished())
      await CancellationScope.nonCancellable(async () => {
        if (request) await this.close(request);
        // A cancel still waiting for the verdict answers before the workflow completes.
        await condition(allHandlersFinished);
      });
    log.info('order closed', {
      orderNo: this.facts.orderNo,
      status: this.state.status,
      workflowId: workflowInfo().workflowId,
    });
    // The order is closed as its row decided; the workflow shows as cancelled, unless it was paid.
    if (operatorCancellation && !isSold(this.state.status)) throw operatorCancellation;
    return this.state;
  }

  /** The order as callers see it (the status query, the Updates, the result): its facts and the row's verdict. */
  get state(): OrderState {
    return { ...this.facts, status: statusOf(this.phase, this.persisted, this.verdict) };
  }

  /** The paymentApplied Signal (whoever sent it, whatever it carries): the row is asked whether the order is paid. */
  askTheRow(): void {
    this.paymentSignalled = true;
  }

  /** The cancel Update's validator: a refused cancel never enters the history. */
  assertCancellable(): void {
    if (this.phase === 'CLOSING' || this.phase === 'CLOSED')
      throw ApplicationFailure.nonRetryable(
        `${NOT_CANCELLABLE}: order ${this.facts.orderNo} is ${this.state.status} and can no longer be cancelled`,
        NOT_CANCELLABLE,
      );
  }

  /** The shopper's cancel: answered once CANCELLED, refused if a payment was applied first; a provider order's: now. */
  async cancel(): Promise<OrderState> {
    await condition(() => this.persisted || this.phase === 'CLOSED');
    this.assertCancellable();
    this.shopperCancelled = true;
    if (this.input.paymentProvider !== undefined) return this.state;
    await condition(() => this.phase === 'CLOSED');
    if (this.verdict?.outcome !== 'CANCELLED') this.assertCancellable();
    return this.state;
  }

  async untilPersisted(): Promise<OrderState> {
    await condition(() => this.persisted || this.phase === 'CLOSED');
    return this.state;
  }

  /** Waits for what ends the wait; a payment's Signal asks the row at once, an OPEN row waits on (sells nothing). */
  private async awaitRequest(): Promise<{ request?: CloseRequest; operatorCancellation?: unknown }> {
    for (;;) {
      // At least 1 ms: a zero timeout would mean "no timer".
      const remainingMs = Math.max(1, Date.parse(this.facts.paymentDeadline) - Date.now());
      let operatorCancellation: unknown;
      let woken = true;
      try {
        woken = await condition(
          () => this.paymentSignalled || this.shopperCancelled || this.providerPayment?.unavailable !== undefined,
          remainingMs,
        );
      } catch (err) {
        if (!isCancellation(err)) throw err;
        operatorCancellation = err;
      }
      const request = closeRequestOf({
        operatorCancelled: operatorCancellation !== undefined,
        shopperCancelled: this.shopperCancelled,
        paymentUnavailable: this.providerPayment?.unavailable,
        deadlinePassed: !woken,
      });
      if (request.kind !== 'PAYMENT') return { request, operatorCancellation };
      this.paymentSignalled = false;
      const verdict = await CancellationScope.nonCancellable(() => this.ask(request));
      if (verdict.outcome !== 'OPEN') {
        this.closed(verdict);
        return {};
      }
    }
  }

  /** Closes the order by its row's verdict; a provider order's cancel first closes its intents at the provider. */
  private async close(request: CloseRequest): Promise<void> {
    // Decided: an opening still retrying against a provider that is away stops here.
    this.providerPayment?.opening.cancel();
    this.phase = 'CLOSING';
    if (request.kind === 'CANCEL' && this.providerPayment && !this.providerPayment.unavailable) {
      this.phase = 'SETTLING_AT_PROVIDER';
      const verdict = await this.settleAtProvider(request);
      this.phase = 'CLOSING';
      return this.closed(verdict);
    }
    // OPEN only answers a PAYMENT asked of a row awaiting payment, which close() never asks.
    const verdict = await this.ask(request);
    this.closed(verdict);
    // Nothing more may be paid for a failed order: money an intent took before its cancel is owed back by the row.
    if (verdict.outcome === 'FAILED') await this.closeProviderPayment();
  }

  // Closes the intents until none can be paid, then asks the row (paid meanwhile: PAID); one processing keeps the unit.
  private async settleAtProvider(request: CloseRequest): Promise<CloseVerdict> {
    let readAfterMs = PROCESSING_FIRST_READ_MS;
    for (;;) {
      if (this.paymentSignalled) {
        this.paymentSignalled = false;
        const paid = await this.ask({ kind: 'PAYMENT' });
        if (paid.outcome !== 'OPEN') return paid;
      }
      const closed = await this.closeProviderPayment();
      if (closed?.state !== 'PROCESSING') return this.ask(request);
      await condition(() => this.paymentSignalled, readAfterMs);
      readAfterMs = Math.min(readAfterMs * 2, PROCESSING_MAX_READ_MS);
    }
  }

  /** The one close: the row's verdict, carried out in Redis by the activity. */
  private ask(request: CloseRequest): Promise<CloseVerdict> {
    return closeOrder({ order: { ...this.input, paymentDeadline: this.facts.paymentDeadline }, request });
  }

  private closed(verdict: CloseVerdict): void {
    this.verdict = verdict;
    if (verdict.outcome === 'PAID' && verdict.paidAt) this.facts.paidAt = verdict.paidAt;
    if (verdict.outcome === 'CANCELLED') this.facts.cancelReason = verdict.reason;
    if (verdict.outcome === 'FAILED') this.facts.failureReason = verdict.reason;
    this.phase = 'CLOSED';
  }

  /** Starts making the order's payment at its provider, beside the wait; its id goes into the state. */
  private openProviderPayment(): void {
    const provider = this.input.paymentProvider;
    if (!provider) return;
    const opened: { opening: CancellationScope; unavailable?: string } = { opening: new CancellationScope() };
    this.providerPayment = opened;
    opened.opening
      .run(() => this.providerActivities.openPayment(this.atProvider(provider)))
      .then(
        (intent) => {
          // The id only: no client secret enters the history.
          this.facts.paymentIntent = { id: intent.id };
        },
        (err: unknown) => {
          if (!isCancellation(err)) opened.unavailable = describeFailure(err);
        },
      );
  }

  /** The order's payment as the provider activities take it. */
  private atProvider(provider: NonNullable<OrderInput['paymentProvider']>) {
    return { provider, orderNo: this.input.orderNo, amountCents: this.facts.totalCents };
  }

  /** Closes the order's payments at its provider so they can no longer be paid, and answers what the provider found. */
  private async closeProviderPayment(): Promise<ProviderClose | undefined> {
    const provider = this.input.paymentProvider;
    if (!provider || !this.providerPayment || this.providerPayment.unavailable) return undefined;
    return this.providerActivities.closePayment({
      ...this.atProvider(provider),
      paymentDeadline: this.facts.paymentDeadline,
      ...(this.facts.paymentIntent ? { paymentIntentId: this.facts.paymentIntent.id } : {}),
    });
  }
}

function describeFailure(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  return cause instanceof Error ? cause.message : String(cause);
}
