/**
 * OrderWorkflowClient: the only code that calls an order's workflow. It starts orders (paced),
 * queries them, delivers payments and cancels as Updates, each call with a deadline and behind its
 * breaker. Finding an order wherever it is known is OrderLookup's (./lookup.ts).
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
  ORDER_USER_SEARCH_ATTRIBUTE,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentAppliedSignal,
  REFUND_WORKFLOW_TYPE,
  refundWorkflowId,
  statusQuery,
  type OrderInput,
  type OrderState,
  type OrderWorkflowSignature,
  type PaymentReceived,
  type RefundWorkflowSignature,
} from '../model/order-workflow.js';

/** gRPC status DEADLINE_EXCEEDED: what Temporal answers a query no worker took in time. */
const GRPC_DEADLINE_EXCEEDED = 4;

/**
 * How long a call waits when its caller gives no deadline (the reconciler, the tools): the API
 * always gives one (CHECKOUT_DEADLINE, READ_DEADLINE, WRITE_DEADLINE).
 */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** How much later than the guard's deadline a call's gRPC deadline is (see onTemporal). */
const GRPC_DEADLINE_LAG_MS = 100;

/** The longest a waiting start gives the server to say whether the start it sent took effect. */
const START_OUTCOME_WAIT_MS = 200;

/** The guards the order client calls through: Temporal's frontend, and the order workflows (the worker). */
export type OrderWorkflowClientGuards = Pick<DependencyGuards, 'temporal' | 'workflows'>;

/** Guards that classify failures as the API's do but never open: calls bounded by their deadlines only. */
export function guardsWithoutBreakers(): OrderWorkflowClientGuards {
  return {
    temporal: DependencyGuard.neverOpen('temporal', isTemporalFailure),
    workflows: DependencyGuard.neverOpen('workflows', isTemporalFailure),
  };
}

/**
 * What paces this process's starts (StartPacing, ./start-pacing.ts): `start` runs in a slot,
 * admitted only while `admitBy` has not passed and enough of `deadline` is left.
 */
export interface StartPacer {
  run<T>(deadline: Deadline, start: () => Promise<T>, admitBy?: Deadline): Promise<T>;
}

/**
 * Errors that say Temporal (or the worker behind a query or Update) is unwell, as opposed to its
 * answers (not found, already started, an Update refused): these count against a breaker and
 * answer 503.
 */
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
    err instanceof ServiceError || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isDeadlineExceeded(err)
  );
}

const defaultDeadline = () => Deadline.in(DEFAULT_CALL_TIMEOUT_MS);

/**
 * What a waiting start learned within its wait. DECIDED: persistence has an outcome, `state` is
 * the workflow's own (AWAITING_PAYMENT or later, or FAILED). RUNNING: the workflow provably exists
 * (started now or earlier) but had not decided within the wait; it goes on. ALREADY_CLOSED: the
 * order's workflow had closed before this call (an idempotent retry of an old order).
 */
export type AwaitedStart =
  { outcome: 'DECIDED'; state: OrderState } | { outcome: 'RUNNING' } | { outcome: 'ALREADY_CLOSED' };

/** How a payment Signal ended: sent, no running workflow, no answer by its deadline, or a failure. */
export type PaymentSignalOutcome = 'signalled' | 'no_workflow' | 'timeout' | 'error';

/** Told of each payment Signal, timed here, the one place they are sent (the API's metrics). */
export interface PaymentSignalObserver {
  paymentSignalDone(outcome: PaymentSignalOutcome, seconds: number): void;
}

export class OrderWorkflowClient {
  /** Calls to Temporal not ended yet (tracked): the connection is closed only after them. */
  private readonly underway = new Set<Promise<unknown>>();

  /**
   * `guards`: the API's breakers and per-call bounds (OrderWorkflowClient.withoutBreakers for the worker
   * and the tools). Either way a dependency that fails or does not answer in time surfaces as
   * DependencyUnavailableError (the API's 503). `pacing`: starts wait here, in this process, rather
   * than in Temporal; one too late to be worth it is not sent (the promise's owner sends it later).
   * `signalObserver`: told how long each payment Signal took.
   */
  constructor(
    private readonly temporal: Client,
    private readonly taskQueue: string,
    private readonly guards: OrderWorkflowClientGuards,
    readonly pacing: StartPacer,
    private readonly signalObserver?: PaymentSignalObserver,
  ) {}

  /** For the worker and the tools: calls bounded by their deadlines only, behind guards that never open. */
  static withoutBreakers(temporal: Client, taskQueue: string, pacing: StartPacer): OrderWorkflowClient {
    return new OrderWorkflowClient(temporal, taskQueue, guardsWithoutBreakers(), pacing);
  }

  /** Whether Temporal's breaker lets a call through now; throws DependencyUnavailableError if not. */
  assertTemporalAvailable(): void {
    this.guards.temporal.assertAvailable();
  }

  /**
   * Whether Temporal's breaker lets a start through now: closed, or open and due to probe (one
   * caller per probe interval is let through, and its call is the probe).
   */
  temporalAvailable(): boolean {
    try {
      this.guards.temporal.assertAvailable();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A call to Temporal's frontend (start, describe, count). The gRPC deadline lets the server drop
   * the work too; it is a little later than the guard's, so that running out of time is always
   * seen (and counted) as the guard's deadline, not as a gRPC error that arrived first.
   */
  private onTemporal<T>(deadline: Deadline, call: () => Promise<T>): Promise<T> {
    return this.guards.temporal.call(deadline, () =>
      this.tracked(() => this.temporal.connection.withDeadline(deadline.at + GRPC_DEADLINE_LAG_MS, call)),
    );
  }

  /**
   * Runs a call to Temporal, kept in `underway` until it ends: a guard that gives up on it leaves it running (to its
   * gRPC deadline), and the connection must not close under it (see untilCallsEnd).
   */
  private tracked<T>(call: () => Promise<T>): Promise<T> {
    const running = call();
    this.underway.add(running);
    const done = () => void this.underway.delete(running);
    running.then(done, done);
    return running;
  }

  /**
   * Waits, at most `maxMs`, for the calls to Temporal still under way, each bounded by its gRPC deadline: a call the
   * client retries after the connection closed throws from the client's retry timer ("Channel has been shut down"),
   * outside any promise. The API's shutdown waits here before it closes the connection.
   */
  async untilCallsEnd(maxMs: number): Promise<void> {
    if (this.underway.size === 0) return;
    await Promise.race([
      Promise.allSettled([...this.underway]),
      new Promise((resolve) => setTimeout(resolve, maxMs).unref()),
    ]);
  }

  /**
   * A call the order's workflow must answer (a query, an Update): it needs a worker as well.
   * `evenWhenOpen`: delivered whatever the breaker says (a payment), within its deadline.
   */
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

  /**
   * Starts the order's workflow. A second start of the same order (an idempotent retry) attaches to
   * the running workflow; an order number is never reused for a new workflow once one has closed
   * (ALREADY_CLOSED: the order exists and has ended).
   */
  async start(input: OrderInput, deadline = defaultDeadline()): Promise<'STARTED' | 'ALREADY_CLOSED'> {
    return (await this.startAndTell(input, deadline, false)).outcome;
  }

  /**
   * start(), asking Temporal to hand the order's first workflow task back with the start (eager
   * start: no task queue round trip) when this client shares the worker's connection; `eager` says
   * whether it did (no free workflow task slot in this worker: the task goes through the queue).
   */
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
      typedSearchAttributes: [
        { key: ORDER_SKU_SEARCH_ATTRIBUTE, value: input.sku },
        { key: ORDER_USER_SEARCH_ATTRIBUTE, value: input.userId },
      ],
    };
  }

  /**
   * Starts the order's workflow (or attaches to the running one: USE_EXISTING, as start() does) and
   * waits up to `waitMs` for persistence to have an outcome, in one Update-with-Start round trip:
   * the `awaitPersisted` Update answers from the workflow's own state. Its start half goes through
   * the pacing like any start (its slot is held until the server answered for the start), and is
   * not sent once `startDeadline` is too close.
   *
   * Throws when it cannot tell that the workflow exists (not sent, refused, or no answer for the
   * start): the order is a promise, so the caller answers PENDING and the starter starts it. The
   * wait itself counts against no breaker (an order not decided in time is an answer).
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
      // Started, but not decided within the wait (a timeout) or the Update was refused (an order
      // started on a version without the handler, or one that closed meanwhile): it goes on.
      const started = await boundBy(Deadline.in(START_OUTCOME_WAIT_MS), () => startOperation.workflowHandle()).then(
        () => true,
        () => false,
      );
      if (started) return { outcome: 'RUNNING' };
      throw err;
    }
  }

  /**
   * The open workflow's state; null when it is closed or does not exist. A worker that does not
   * take the query in time (stalled or busy) or a Temporal that does not answer: the order cannot
   * say where it stands right now, DependencyUnavailableError (callers answer "retry later").
   */
  async queryLive(orderNo: string, deadline = defaultDeadline()): Promise<OrderState | null> {
    try {
      // The client rejects queries to closed workflows (queryRejectCondition NOT_OPEN), which
      // saves a worker from replaying a finished history; MySQL has the final state then.
      return await this.onWorkflow(deadline, () => this.handle(orderNo).query(statusQuery));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || err instanceof QueryRejectedError) return null;
      throw err;
    }
  }

  /**
   * Sends the paymentApplied Signal: a payment the order's row applied. Temporal keeps it durably in the history, so
   * it needs no worker. NOT_RUNNING when the workflow has closed or never started (its close read the row).
   */
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

  /**
   * Starts the refund workflow of a payment its row says is owed back (the reconciler's); one already running is
   * joined, one closed is followed by a new run (the row, not the id, says whether there is work left).
   */
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
   * The shopper's cancel: the `cancel` Update, whose validator applies the rule (isCancellable).
   * False when the order cannot be cancelled (refused, or its workflow has closed).
   */
  async cancel(orderNo: string, deadline = defaultDeadline()): Promise<boolean> {
    try {
      await this.onWorkflow(deadline, () => this.handle(orderNo).executeUpdate(cancelUpdate, {}));
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      if (err instanceof WorkflowUpdateFailedError && err.cause?.message.startsWith(NOT_CANCELLABLE)) return false;
      throw err;
    }
  }

  /** The final state a completed workflow returned (null: it failed, was terminated, or is unknown). */
  async closedResult(orderNo: string, deadline = defaultDeadline()): Promise<OrderState | null> {
    return this.onTemporal(deadline, () => this.handle(orderNo).result()).catch((err: unknown) => {
      if (err instanceof DependencyUnavailableError) throw err;
      return null;
    });
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

  /**
   * How many OrderWorkflows of the SKU are running (PENDING or AWAITING_PAYMENT orders), from
   * Temporal visibility: eventually consistent, a moment behind the workflows themselves.
   */
  async countRunning(sku: string, deadline = defaultDeadline()): Promise<number> {
    const query = [
      `WorkflowType = ${visibilityString(ORDER_WORKFLOW_TYPE)}`,
      `${ORDER_SKU_SEARCH_ATTRIBUTE.name} = ${visibilityString(sku)}`,
      `ExecutionStatus = 'Running'`,
    ].join(' AND ');
    const { count } = await this.onTemporal(deadline, () => this.temporal.workflow.count(query));
    return count;
  }

  /** Resolves once the order's workflow has closed, however it ended (completed, failed, cancelled). */
  async awaitClosed(orderNo: string): Promise<void> {
    await this.handle(orderNo)
      .result()
      .catch(() => undefined);
  }

  private handle(orderNo: string): WorkflowHandle<OrderWorkflowSignature> {
    return this.temporal.workflow.getHandle<OrderWorkflowSignature>(orderWorkflowId(orderNo));
  }
}

/**
 * A string literal of Temporal's visibility query language: quoted, with backslashes and quotes
 * escaped, so no value (the API only lets SKUs of letters, digits and _.- through anyway) can end
 * the literal and add a clause of its own.
 */
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
    isDeadlineExceeded(err)
  );
}

/** Whether a call ran out of time: gRPC DEADLINE_EXCEEDED anywhere in the error's cause chain. */
export function isDeadlineExceeded(err: unknown): boolean {
  for (let current: unknown = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (
      (current as { code?: unknown }).code === GRPC_DEADLINE_EXCEEDED ||
      /\bDEADLINE_EXCEEDED\b/.test(current.message)
    )
      return true;
  }
  return false;
}
