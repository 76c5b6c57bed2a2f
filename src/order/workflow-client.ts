/**
 * OrderWorkflowClient: the only code that calls an order's workflow (paced starts, the payment Signal, the cancel
 * Update; never a query: reads go to the row), each call with a deadline and behind its breaker.
 */
import {
  QueryRejectedError,
  ServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  WithStartWorkflowOperation,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import {
  boundBy,
  Deadline,
  DependencyGuard,
  DependencyUnavailableError,
  type DependencyGuards,
} from '../infra/dependency-guard.js';
import {
  awaitPersistedUpdate,
  cancelUpdate,
  NOT_CANCELLABLE,
  ORDER_SKU_SEARCH_ATTRIBUTE,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentAppliedSignal,
  REFUND_WORKFLOW_TYPE,
  refundWorkflowId,
  type OrderInput,
  type OrderState,
  type OrderWorkflowSignature,
  type PaymentReceived,
  type RefundWorkflowSignature,
} from '../model/order-workflow.js';
import { hasGrpcStatus } from '../infra/temporal-connection.js';

/** For callers without a deadline (the reconciler, the tools); the API always gives one. */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** A call's gRPC deadline lags the guard's, so running out of time is always seen as the guard's deadline. */
const GRPC_DEADLINE_LAG_MS = 100;

/** The longest a waiting start gives the server to say whether the start it sent took effect. */
const START_OUTCOME_WAIT_MS = 200;

/** Temporal's frontend, and the order workflows (which need a worker). */
export type OrderWorkflowClientGuards = Pick<DependencyGuards, 'temporal' | 'workflows'>;

/** Guards that classify failures as the API's do but never open: calls bounded by their deadlines only. */
export function guardsWithoutBreakers(): OrderWorkflowClientGuards {
  return {
    temporal: DependencyGuard.neverOpen('temporal', isTemporalFailure),
    workflows: DependencyGuard.neverOpen('workflows', isTemporalFailure),
  };
}

/** What paces this process's starts (StartPacing): `start` runs in a slot admitted by `admitBy`. */
export interface StartPacer {
  run<T>(deadline: Deadline, start: () => Promise<T>, admitBy?: Deadline): Promise<T>;
}

/** Temporal (or the worker behind a query or Update) unwell, not one of its answers: counts against a breaker, 503. */
export function isTemporalFailure(err: unknown): boolean {
  if (
    err instanceof WorkflowNotFoundError ||
    err instanceof QueryRejectedError ||
    err instanceof WorkflowExecutionAlreadyStartedError ||
    err instanceof WorkflowUpdateFailedError
  ) {
    return false;
  }
  return (
    err instanceof ServiceError ||
    err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
    hasGrpcStatus(err, 'DEADLINE_EXCEEDED')
  );
}

const defaultDeadline = () => Deadline.in(DEFAULT_CALL_TIMEOUT_MS);

/**
 * DECIDED: persistence has an outcome (the workflow's state). RUNNING: the workflow exists but had not decided within
 * the wait. ALREADY_CLOSED: it closed before this call (a retry of an old order).
 */
export type AwaitedStart =
  { outcome: 'DECIDED'; state: OrderState } | { outcome: 'RUNNING' } | { outcome: 'ALREADY_CLOSED' };

/** How a payment Signal ended: sent, no running workflow, no answer by its deadline, or a failure. */
export type PaymentSignalOutcome = 'signalled' | 'no_workflow' | 'timeout' | 'error';

/** Told of each payment Signal, timed here, the one place they are sent. */
export interface PaymentSignalObserver {
  paymentSignalDone(outcome: PaymentSignalOutcome, seconds: number): void;
}

export class OrderWorkflowClient {
  /** Calls to Temporal not ended yet: the connection is closed only after them. */
  private readonly underway = new Set<Promise<unknown>>();

  /**
   * A failed or unanswered call throws DependencyUnavailableError (503). `pacing`: starts wait here rather than in
   * Temporal; one too late to be worth it is not sent (the promise's owner sends it later).
   */
  constructor(
    private readonly temporal: Client,
    private readonly taskQueue: string,
    private readonly guards: OrderWorkflowClientGuards,
    readonly pacing: StartPacer,
    private readonly signalObserver?: PaymentSignalObserver,
  ) {}

  /** For the worker and the tools: calls bounded by their deadlines only. */
  static withoutBreakers(temporal: Client, taskQueue: string, pacing: StartPacer): OrderWorkflowClient {
    return new OrderWorkflowClient(temporal, taskQueue, guardsWithoutBreakers(), pacing);
  }

  /** Throws DependencyUnavailableError while Temporal's breaker refuses calls. */
  assertTemporalAvailable(): void {
    this.guards.temporal.assertAvailable();
  }

  /** Whether Temporal's breaker lets a start through now (when open, one caller per interval is its probe). */
  temporalAvailable(): boolean {
    try {
      this.guards.temporal.assertAvailable();
      return true;
    } catch {
      return false;
    }
  }

  /** A call to Temporal's frontend (start, describe, count); its gRPC deadline lets the server drop the work too. */
  private onTemporal<T>(deadline: Deadline, call: () => Promise<T>): Promise<T> {
    return this.guards.temporal.call(deadline, () =>
      this.tracked(() => this.temporal.connection.withDeadline(deadline.at + GRPC_DEADLINE_LAG_MS, call)),
    );
  }

  /** A guard that gives up on a call leaves it running to its gRPC deadline: the connection must not close under it. */
  private tracked<T>(call: () => Promise<T>): Promise<T> {
    const running = call();
    this.underway.add(running);
    const done = () => void this.underway.delete(running);
    running.then(done, done);
    return running;
  }

  /**
   * Waits up to `maxMs` for calls under way before shutdown closes the connection: a call retried after the close
   * throws "Channel has been shut down" from the client's retry timer, outside any promise.
   */
  async untilCallsEnd(maxMs: number): Promise<void> {
    if (this.underway.size === 0) return;
    await Promise.race([
      Promise.allSettled([...this.underway]),
      new Promise((resolve) => setTimeout(resolve, maxMs).unref()),
    ]);
  }

  /** A query or Update, which needs a worker too. `evenWhenOpen`: sent whatever the breaker says. */
  private onWorkflow<T>(
    deadline: Deadline,
    call: () => Promise<T>,
    options: { evenWhenOpen?: boolean } = {},
  ): Promise<T> {
    return this.guards.workflows.call(
      deadline,
      () => this.tracked(() => this.temporal.connection.withDeadline(deadline.at + GRPC_DEADLINE_LAG_MS, call)),
      options,
    );
  }

  /** A second start attaches to the running workflow; a closed one is never started again (ALREADY_CLOSED). */
  async start(input: OrderInput, deadline = defaultDeadline()): Promise<'STARTED' | 'ALREADY_CLOSED'> {
    return (await this.startAndTell(input, deadline, false)).outcome;
  }

  /** start(), asking for the first workflow task back with it (eager start); `eager`: whether Temporal did. */
  async startEagerly(
    input: OrderInput,
    deadline = defaultDeadline(),
  ): Promise<{ outcome: 'STARTED' | 'ALREADY_CLOSED'; eager: boolean }> {
    return this.startAndTell(input, deadline, true);
  }

  private async startAndTell(
    input: OrderInput,
    deadline: Deadline,
    eager: boolean,
  ): Promise<{ outcome: 'STARTED' | 'ALREADY_CLOSED'; eager: boolean }> {
    try {
      const handle = await this.pacing.run(deadline, () =>
        this.onTemporal(deadline, () =>
          this.temporal.workflow.start<OrderWorkflowSignature>(ORDER_WORKFLOW_TYPE, {
            ...this.startOptions(input),
            ...(eager ? { requestEagerStart: true } : {}),
          }),
        ),
      );
      return { outcome: 'STARTED', eager: handle.eagerlyStarted };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { outcome: 'ALREADY_CLOSED', eager: false };
      throw err;
    }
  }

  private startOptions(input: OrderInput) {
    return {
      workflowId: orderWorkflowId(input.orderNo),
      taskQueue: this.taskQueue,
      args: [input] as [OrderInput],
      workflowIdConflictPolicy: 'USE_EXISTING' as const,
      workflowIdReusePolicy: 'REJECT_DUPLICATE' as const,
      typedSearchAttributes: [{ key: ORDER_SKU_SEARCH_ATTRIBUTE, value: input.sku }],
    };
  }

  /**
   * Starts (or attaches to) the workflow and waits up to `waitMs` for persistence's outcome, in one Update-with-Start;
   * the start is paced like any other. Throws when it cannot tell the workflow exists (the caller answers PENDING and
   * the owner of starts starts it). The wait counts against no breaker: not decided in time is an answer.
   */
  async startAndAwaitPersisted(
    input: OrderInput,
    waitMs: number,
    startDeadline = Deadline.in(DEFAULT_CALL_TIMEOUT_MS),
  ): Promise<AwaitedStart> {
    this.assertTemporalAvailable();
    const startOperation = new WithStartWorkflowOperation<OrderWorkflowSignature>(
      ORDER_WORKFLOW_TYPE,
      this.startOptions(input),
    );
    const waitUntil = Deadline.in(waitMs);
    let update: Promise<OrderState> | undefined;
    try {
      await this.pacing.run(
        waitUntil,
        () => {
          const sent = boundBy(waitUntil, () =>
            this.tracked(() =>
              this.temporal.connection.withDeadline(waitUntil.at, () =>
                this.temporal.workflow.executeUpdateWithStart(awaitPersistedUpdate, {
                  startWorkflowOperation: startOperation,
                }),
              ),
            ),
          );
          // Awaited below; until then its failure must not count as unhandled.
          sent.catch(() => undefined);
          update = sent;
          return Promise.race([startOperation.workflowHandle(), sent]);
        },
        startDeadline,
      );
      return { outcome: 'DECIDED', state: await (update as Promise<OrderState>) };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { outcome: 'ALREADY_CLOSED' };
      if (update === undefined) throw err;
      // Not decided in time, or the Update refused (a build without the handler, or closed meanwhile): it goes on.
      const started = await boundBy(Deadline.in(START_OUTCOME_WAIT_MS), () => startOperation.workflowHandle()).then(
        () => true,
        () => false,
      );
      if (started) return { outcome: 'RUNNING' };
      throw err;
    }
  }

  /** Wakes the order to ask its row (a payment was applied); needs no worker. NOT_RUNNING: closed or never started. */
  async signalPaymentApplied(
    orderNo: string,
    payment: PaymentReceived,
    deadline = defaultDeadline(),
  ): Promise<'SIGNALLED' | 'NOT_RUNNING'> {
    const startedAt = performance.now();
    let outcome: PaymentSignalOutcome = 'error';
    try {
      await this.onTemporal(deadline, () => this.handle(orderNo).signal(paymentAppliedSignal, payment));
      outcome = 'signalled';
      return 'SIGNALLED';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        outcome = 'no_workflow';
        return 'NOT_RUNNING';
      }
      if (isTimeout(err)) outcome = 'timeout';
      throw err;
    } finally {
      this.signalObserver?.paymentSignalDone(outcome, (performance.now() - startedAt) / 1_000);
    }
  }

  /** Joins a running refund workflow, or runs a new one after a closed one: the row says whether work is left. */
  async startRefund(eventId: string, deadline = defaultDeadline()): Promise<void> {
    await this.onTemporal(deadline, () =>
      this.temporal.workflow.start<RefundWorkflowSignature>(REFUND_WORKFLOW_TYPE, {
        workflowId: refundWorkflowId(eventId),
        taskQueue: this.taskQueue,
        args: [{ eventId }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      }),
    );
  }

  /**
   * The `cancel` Update, which the order's row decides: TAKEN with the order's state (CANCELLED; a provider order still
   * AWAITING_PAYMENT while its provider confirms), REFUSED (NOT_CANCELLABLE: paid first, or closing), or NOT_RUNNING
   * (its workflow closed or is gone: terminated, reset).
   */
  async cancel(
    orderNo: string,
    deadline = defaultDeadline(),
  ): Promise<{ outcome: 'TAKEN'; state: OrderState } | { outcome: 'REFUSED' | 'NOT_RUNNING' }> {
    try {
      const state = await this.onWorkflow(deadline, () => this.handle(orderNo).executeUpdate(cancelUpdate, {}));
      return { outcome: 'TAKEN', state };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { outcome: 'NOT_RUNNING' };
      if (err instanceof WorkflowUpdateFailedError && err.cause?.message.startsWith(NOT_CANCELLABLE))
        return { outcome: 'REFUSED' };
      throw err;
    }
  }

  /** Whether the order's workflow runs, has closed, or was never started. */
  async workflowState(orderNo: string, deadline = defaultDeadline()): Promise<'RUNNING' | 'CLOSED' | 'NOT_FOUND'> {
    try {
      const description = await this.onTemporal(deadline, () => this.handle(orderNo).describe());
      return description.status.name === 'RUNNING' ? 'RUNNING' : 'CLOSED';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'NOT_FOUND';
      throw err;
    }
  }

  /** Running OrderWorkflows of the SKU, from visibility: a moment behind the workflows. */
  async countRunning(sku: string, deadline = defaultDeadline()): Promise<number> {
    const query = [
      `WorkflowType = ${visibilityString(ORDER_WORKFLOW_TYPE)}`,
      `${ORDER_SKU_SEARCH_ATTRIBUTE.name} = ${visibilityString(sku)}`,
      `ExecutionStatus = 'Running'`,
    ].join(' AND ');
    const { count } = await this.onTemporal(deadline, () => this.temporal.workflow.count(query));
    return count;
  }

  /** Resolves once the order's workflow has closed, however it ended. */
  async awaitClosed(orderNo: string): Promise<void> {
    await this.handle(orderNo)
      .result()
      .catch(() => undefined);
  }

  private handle(orderNo: string): WorkflowHandle<OrderWorkflowSignature> {
    return this.temporal.workflow.getHandle<OrderWorkflowSignature>(orderWorkflowId(orderNo));
  }
}

/** A visibility-query string literal, escaped so no value can end it and add a clause of its own. */
export function visibilityString(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** Whether a call went unanswered in time: its guard's deadline, the Update's own RPC timeout, or gRPC's. */
function isTimeout(err: unknown): boolean {
  if (err instanceof DependencyUnavailableError && err.reason === 'deadline') return true;
  const cause = err instanceof Error ? err.cause : undefined;
  return (
    err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
    cause instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
    hasGrpcStatus(err, 'DEADLINE_EXCEEDED')
  );
}
