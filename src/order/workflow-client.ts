/** The only caller of an order's workflow (paced starts, payment Signal, cancel Update, status query). */
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
  statusQuery,
  refundWorkflowId,
  type OrderInput,
  type OrderState,
  type OrderWorkflowSignature,
  type PaymentReceived,
  type RefundWorkflowSignature,
} from '../model/order-workflow.js';
import { hasGrpcStatus } from '../infra/temporal-connection.js';

/** A call's gRPC deadline lags the guard's, so running out of time is always seen as the guard's deadline. */
const GRPC_DEADLINE_LAG_MS = 100;

/** The longest a waiting start gives the server to say whether the start it sent took effect. */
const START_OUTCOME_WAIT_MS = 200;

type OrderWorkflowClientGuards = Pick<DependencyGuards, 'temporal' | 'workflows'>;

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
  const answer = [
    WorkflowNotFoundError,
    QueryRejectedError,
    WorkflowExecutionAlreadyStartedError,
    WorkflowUpdateFailedError,
  ];
  if (answer.some((type) => err instanceof type)) return false;
  return err instanceof ServiceError || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isGrpcDeadline(err);
}

const isGrpcDeadline = (err: unknown) => hasGrpcStatus(err, 'DEADLINE_EXCEEDED');

/** For callers without a deadline (the reconciler, the tools); the API always gives one. */
const defaultDeadline = () => Deadline.in(10_000);

/** DECIDED: persisted or failed (its state). RUNNING: undecided in the wait. ALREADY_CLOSED: an old order's retry. */
export type AwaitedStart =
  { outcome: 'DECIDED'; state: OrderState } | { outcome: 'RUNNING' } | { outcome: 'ALREADY_CLOSED' };

export type PaymentSignalOutcome = 'signalled' | 'no_workflow' | 'timeout' | 'error';

/** Told of each payment Signal, timed here, the one place they are sent. */
export interface PaymentSignalObserver {
  paymentSignalDone(outcome: PaymentSignalOutcome, seconds: number): void;
}

export class OrderWorkflowClient {
  /** Calls to Temporal not ended yet: the connection is closed only after them. */
  private readonly underway = new Set<Promise<unknown>>();

  /** A failed or unanswered call: DependencyUnavailableError (503). A start too late for `pacing` is not sent. */
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

  /** Whether Temporal's breaker lets a start through now (when open, one caller per interval is its probe). */
  temporalAvailable(): boolean {
    try {
      this.guards.temporal.assertAvailable();
      return true;
    } catch {
      return false;
    }
  }

  /** On `temporal` (the frontend) or `workflows` (an Update needs a worker), `anyway` past an open breaker. */
  private on<T>(guard: keyof OrderWorkflowClientGuards, deadline: Deadline, call: () => Promise<T>, anyway = false) {
    const grpc = () => this.temporal.connection.withDeadline(deadline.at + GRPC_DEADLINE_LAG_MS, call);
    return this.guards[guard].call(deadline, () => this.tracked(grpc), { evenWhenOpen: anyway });
  }

  /** A guard that gives up on a call leaves it running to its gRPC deadline: the connection must not close under it. */
  private tracked<T>(call: () => Promise<T>): Promise<T> {
    const running = call();
    this.underway.add(running);
    const done = () => void this.underway.delete(running);
    running.then(done, done);
    return running;
  }

  /** Waits ≤ `maxMs` for calls under way before shutdown: one retried after the close throws outside any promise. */
  async untilCallsEnd(maxMs: number): Promise<void> {
    if (this.underway.size === 0) return;
    await Promise.race([
      Promise.allSettled([...this.underway]),
      new Promise((resolve) => setTimeout(resolve, maxMs).unref()),
    ]);
  }

  /** A second start attaches to the running workflow; a closed one is never started again (ALREADY_CLOSED). */
  async start(input: OrderInput, deadline = defaultDeadline()): Promise<'STARTED' | 'ALREADY_CLOSED'> {
    return (await this.startEagerly(input, deadline, false)).outcome;
  }

  /** start(), asking (`eager`) for the first workflow task back with it; `eager` answered: whether Temporal did. */
  async startEagerly(
    input: OrderInput,
    deadline = defaultDeadline(),
    eager = true,
  ): Promise<{ outcome: 'STARTED' | 'ALREADY_CLOSED'; eager: boolean }> {
    try {
      const handle = await this.pacing.run(deadline, () =>
        this.on('temporal', deadline, () =>
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

  /** Paced Update-with-Start awaiting persistence ≤ `waitMs` (no breaker counts it); throws if it may not exist. */
  async startAndAwaitPersisted(
    input: OrderInput,
    waitMs: number,
    startDeadline = defaultDeadline(),
  ): Promise<AwaitedStart> {
    this.guards.temporal.assertAvailable();
    const start = new WithStartWorkflowOperation<OrderWorkflowSignature>(ORDER_WORKFLOW_TYPE, this.startOptions(input));
    const send = () =>
      this.temporal.workflow.executeUpdateWithStart(awaitPersistedUpdate, { startWorkflowOperation: start });
    const until = Deadline.in(waitMs);
    let update: Promise<OrderState> | undefined;
    try {
      await this.pacing.run(
        until,
        () => {
          const sent = boundBy(until, () => this.tracked(() => this.temporal.connection.withDeadline(until.at, send)));
          // Awaited below; until then its failure must not count as unhandled.
          sent.catch(() => undefined);
          update = sent;
          return Promise.race([start.workflowHandle(), sent]);
        },
        startDeadline,
      );
      return { outcome: 'DECIDED', state: await (update as Promise<OrderState>) };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { outcome: 'ALREADY_CLOSED' };
      if (update === undefined) throw err;
      // Not decided in time, or the Update refused (a build without the handler, or closed meanwhile): it goes on.
      await boundBy(Deadline.in(START_OUTCOME_WAIT_MS), () => start.workflowHandle()).catch(() => {
        throw err;
      });
      return { outcome: 'RUNNING' };
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
      await this.on('temporal', deadline, () => this.handle(orderNo).signal(paymentAppliedSignal, payment));
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
  async startRefund(eventId: string, deadline: Deadline): Promise<void> {
    await this.on('temporal', deadline, () =>
      this.temporal.workflow.start<RefundWorkflowSignature>(REFUND_WORKFLOW_TYPE, {
        workflowId: refundWorkflowId(eventId),
        taskQueue: this.taskQueue,
        args: [{ eventId }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      }),
    );
  }

  /** The `cancel` Update (the row decides): TAKEN, REFUSED (paid first, or closing) or NOT_RUNNING (closed, gone). */
  async cancel(
    orderNo: string,
    deadline = defaultDeadline(),
  ): Promise<{ outcome: 'TAKEN'; state: OrderState } | { outcome: 'REFUSED' | 'NOT_RUNNING' }> {
    try {
      const state = await this.on('workflows', deadline, () => this.handle(orderNo).executeUpdate(cancelUpdate, {}));
      return { outcome: 'TAKEN', state };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { outcome: 'NOT_RUNNING' };
      if (err instanceof WorkflowUpdateFailedError && err.cause?.message.startsWith(NOT_CANCELLABLE))
        return { outcome: 'REFUSED' };
      throw err;
    }
  }

  /** Its status query (the Web UI's answer, which may lag its row a step), asked even while its breaker is open. */
  readonly queryStatus = (orderNo: string, deadline: Deadline): Promise<OrderState> =>
    this.on('workflows', deadline, () => this.handle(orderNo).query(statusQuery), true);

  async workflowState(orderNo: string, deadline = defaultDeadline()): Promise<'RUNNING' | 'CLOSED' | 'NOT_FOUND'> {
    const description = await this.describe(orderNo, deadline);
    if (!description) return 'NOT_FOUND';
    return description.status.name === 'RUNNING' ? 'RUNNING' : 'CLOSED';
  }

  /** Running with a workflow task scheduled or started: it has a message or timer to act on, a Signal received. */
  async hasWorkflowTaskPending(orderNo: string, deadline = defaultDeadline()): Promise<boolean> {
    const description = await this.describe(orderNo, deadline);
    return description?.status.name === 'RUNNING' && description.raw.pendingWorkflowTask != null;
  }

  private async describe(orderNo: string, deadline: Deadline) {
    try {
      return await this.on('temporal', deadline, () => this.handle(orderNo).describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
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
    const { count } = await this.on('temporal', deadline, () => this.temporal.workflow.count(query));
    return count;
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
  const causes = [err, (err as Error | undefined)?.cause];
  return causes.some((e) => e instanceof WorkflowUpdateRPCTimeoutOrCancelledError) || isGrpcDeadline(err);
}
