/**
 * The order client: the only code that reaches an order's workflow. It starts orders, reads them
 * (the running workflow's `status` query while it is open, MySQL once it has closed), delivers
 * payments and cancels. The API, the reconciler and the tools use it instead of workflow handles.
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
import { isMysqlFailure, type Store } from '../db/store.js';
import {
  boundBy,
  Deadline,
  DeadlineExceededError,
  DependencyGuard,
  DependencyUnavailableError,
  type DependencyGuards,
} from '../infra/dependency-guard.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import {
  orderNoTime,
  pendingOrderState,
  awaitPersistedUpdate,
  cancelUpdate,
  NOT_CANCELLABLE,
  ORDER_SKU_SEARCH_ATTRIBUTE,
  ORDER_USER_SEARCH_ATTRIBUTE,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  payUpdate,
  statusQuery,
  verdictOfClosedOrder,
  type OrderInput,
  type OrderState,
  type OrderView,
  type PaymentReceived,
  type PaymentVerdict,
} from './contract.js';
import type { OrderWorkflow } from '../workflows/order.js';
import { StartPacing } from './start-pacing.js';
import { Refusal } from '../refusal.js';

/**
 * Where a read's answer came from: the running workflow (the truth); MySQL's row of a closed order
 * (final); or, when the workflow did not answer in time or has not started yet, what the stores
 * know (MySQL's row, else the reservation's recorded input: PENDING), which may lag a payment or
 * a cancel on its way.
 */
export type OrderSource = 'workflow' | 'database' | 'stores';

export interface FoundOrder {
  view: OrderView;
  userId: string;
  source: OrderSource;
  /** Read from its promise (no workflow answered, no row): its recorded input (a cancel starts it first). */
  promised?: OrderInput;
  /** The live workflow state when the order was read from its workflow, else undefined. */
  live?: OrderState;
  /** Why a FAILED order failed (not shown by GET; the waiting checkout's FAILED answer gives it). */
  failureReason?: string;
}

/** The order exists but its state no longer allows a cancel. */
export class OrderNotCancellableError extends Refusal {
  constructor(readonly order: FoundOrder) {
    super('NOT_CANCELLABLE', `order ${order.view.orderNo} is ${order.view.status} and can no longer be cancelled`);
    this.name = 'OrderNotCancellableError';
  }
}

/** gRPC status DEADLINE_EXCEEDED: what Temporal answers a query no worker took in time. */
const GRPC_DEADLINE_EXCEEDED = 4;

/**
 * How long a call waits when its caller gives no deadline (the reconciler, the tools): the API
 * always gives one (CHECKOUT_DEADLINE, READ_DEADLINE, WRITE_DEADLINE).
 */
const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** Workflow starts one process sends at once at most unless told otherwise (MAX_CONCURRENT_STARTS). */
const DEFAULT_MAX_CONCURRENT_STARTS = 32;

/** How long the list of active sales (for lookups of an order by its number alone) is reused. */
const SALES_REFRESH_MS = 1_000;
/**
 * A sale marks itself active about once a second: a sale that holds an order was active at most this long before it.
 */
const ACTIVE_MARK_SLACK_MS = 2_000;

/** How much later than the guard's deadline a call's gRPC deadline is (see onTemporal). */
const GRPC_DEADLINE_LAG_MS = 100;

/** The longest a waiting start gives the server to say whether the start it sent took effect. */
const START_OUTCOME_WAIT_MS = 200;

/** The guards the order client calls through: Temporal's frontend, the order workflows (the worker), MySQL. */
export type OrderClientGuards = Pick<DependencyGuards, 'temporal' | 'workflows' | 'mysql'>;

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

/** Guards that classify failures alike but never open: for callers without an API's breakers. */
function unguarded(): OrderClientGuards {
  const never = { failureThreshold: Number.MAX_SAFE_INTEGER, halfOpenAfterMs: 0 };
  return {
    temporal: new DependencyGuard('temporal', { ...never, isFailure: isTemporalFailure }),
    workflows: new DependencyGuard('workflows', { ...never, isFailure: isTemporalFailure }),
    mysql: new DependencyGuard('mysql', { ...never, isFailure: isMysqlFailure }),
  };
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

export interface OrderClientOptions {
  /** The most workflow starts this process sends at once (MAX_CONCURRENT_STARTS); the pacing adapts below it. */
  maxConcurrentStarts?: number;
  /** The process's start pacing, when something else (the owner of starts) paces by it too; else one of its own. */
  pacing?: StartPacing;
  /**
   * Where promised orders are found by their number (the reservation's recorded input) when no
   * workflow and no row knows them yet; without it such an order reads as not found.
   */
  inventory?: RedisInventory;
  /**
   * Of a read's deadline, what is kept back for the stores when the workflow does not answer (the
   * MySQL row, then the reservation): the query gets the rest.
   */
  storesReadMs?: number;
}

export class OrderClient {
  private readonly guards: OrderClientGuards;
  /** The pace of this process's starts: the owner of starts' in the worker, Update-with-Start's in the API. */
  readonly pacing: StartPacing;
  private readonly inventory: RedisInventory | undefined;
  private readonly storesReadMs: number;
  private sales: { list: Array<{ sku: string; lastReservedAtMs: number }>; readAt: number } = { list: [], readAt: 0 };

  /**
   * `guards`: the API's breakers and per-call bounds; without them (the worker's reconciler, the
   * tools) calls are bounded by their deadlines only. Either way a dependency that fails or does
   * not answer in time surfaces as DependencyUnavailableError (the API's 503).
   */
  constructor(
    private readonly temporal: Client,
    private readonly store: Store,
    private readonly taskQueue: string,
    guards?: OrderClientGuards,
    options: OrderClientOptions = {},
  ) {
    this.guards = guards ?? unguarded();
    // Starts wait here, in this process, rather than in Temporal; a start that would be sent too
    // late to be worth it is not sent (the promise's owner sends it later).
    this.pacing =
      options.pacing ?? new StartPacing({ maxLimit: options.maxConcurrentStarts ?? DEFAULT_MAX_CONCURRENT_STARTS });
    this.inventory = options.inventory;
    this.storesReadMs = options.storesReadMs ?? 0;
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
      this.temporal.connection.withDeadline(deadline.at + GRPC_DEADLINE_LAG_MS, call),
    );
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
      () => this.temporal.connection.withDeadline(deadline.at + GRPC_DEADLINE_LAG_MS, call),
      options,
    );
  }

  private onMysql<T>(deadline: Deadline, call: () => Promise<T>): Promise<T> {
    return this.guards.mysql.call(deadline, call);
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
          this.temporal.workflow.start<typeof OrderWorkflow>(ORDER_WORKFLOW_TYPE, {
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
    const startOperation = new WithStartWorkflowOperation<typeof OrderWorkflow>(
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
            this.temporal.connection.withDeadline(waitUntil.at, () =>
              this.temporal.workflow.executeUpdateWithStart(awaitPersistedUpdate, {
                startWorkflowOperation: startOperation,
              }),
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
   * The order from its running workflow, else from MySQL's row (closed), else from its promise (a
   * reservation whose workflow has not started: PENDING); null when none knows it. When the
   * workflow does not answer in time (a frozen worker, Temporal away, a breaker open), what the
   * stores know answers instead (source 'stores'); only when they cannot either does it throw.
   */
  async find(orderNo: string, deadline = defaultDeadline()): Promise<FoundOrder | null> {
    // A promise whose workflow has not claimed its reservation is PENDING whatever the workflow
    // would say: answered from Redis, sparing the worker a query (after a Temporal outage,
    // hundreds of them are polled while their starts catch up). Redis not answering: ask on.
    const unclaimed = await this.unclaimedPromise(orderNo, deadline.capped(this.storesReadMs || undefined)).catch(
      () => null,
    );
    if (unclaimed) return unclaimed;
    let live: OrderState | null;
    try {
      live = await this.queryLive(orderNo, deadline.minus(this.storesReadMs));
    } catch (err) {
      if (!(err instanceof DependencyUnavailableError)) throw err;
      const known = await this.fromStores(orderNo, deadline).catch(() => null);
      if (known) return known;
      throw err;
    }
    if (live) return foundLive(live);
    try {
      // Half the stores' share is kept back: MySQL hung must leave time for the workflow's result.
      return (
        (await this.fromDatabase(orderNo, deadline.minus(Math.floor(this.storesReadMs / 2)))) ??
        (await this.fromPromise(orderNo, deadline))
      );
    } catch (err) {
      if (!(err instanceof DependencyUnavailableError)) throw err;
      // MySQL away: a closed workflow's result is the order's final state, as its row would say.
      const closed = await this.fromClosedWorkflow(orderNo, deadline).catch(() => null);
      if (closed) return closed;
      throw err;
    }
  }

  /** The final state a completed workflow returned (null: it failed, was terminated, or is unknown). */
  private async fromClosedWorkflow(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const state = await this.onTemporal(deadline, () => this.handle(orderNo).result()).catch((err: unknown) => {
      if (err instanceof DependencyUnavailableError) throw err;
      return null;
    });
    if (!state) return null;
    return {
      view: viewOfState(state),
      userId: state.userId,
      source: 'workflow',
      ...(state.failureReason ? { failureReason: state.failureReason } : {}),
    };
  }

  /** The order as its running workflow answers it (null: closed, or not started); the workflow not answering throws. */
  async fromWorkflow(orderNo: string, deadline = defaultDeadline()): Promise<FoundOrder | null> {
    const live = await this.queryLive(orderNo, deadline);
    return live ? foundLive(live) : null;
  }

  /**
   * What MySQL's row, else the reservation's recorded input, says of the order (source 'stores').
   * Half of storesReadMs is kept for the input: a hung MySQL must not take the whole read (the
   * workflow not answering is one mid-persist, which the input shows as it is: PENDING).
   */
  private async fromStores(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const row = await this.fromDatabase(orderNo, deadline.minus(Math.floor(this.storesReadMs / 2))).catch(() => null);
    if (row) return { ...row, source: 'stores' };
    return this.fromPromise(orderNo, deadline);
  }

  /**
   * The order as its promise says, only while its reservation is not claimed yet (then it is PENDING for sure); else
   * null.
   */
  private async unclaimedPromise(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const inventory = this.inventory;
    if (!inventory) return null;
    // Bounded as a whole (lookup and record): a slow Redis must not eat the query's time.
    return boundBy(deadline, async () => {
      const found = await this.fromPromise(orderNo, deadline);
      if (!found) return null;
      const reservation = await inventory.getReservation(found.view.sku, orderNo);
      return reservation?.state === 'RESERVED' ? found : null;
    });
  }

  /** The order as its promise says (PENDING: its workflow has not claimed the reservation yet, or did not answer). */
  private async fromPromise(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const input = await this.findPromise(orderNo, deadline);
    if (!input) return null;
    return { view: viewOfState(pendingOrderState(input)), userId: input.userId, source: 'stores', promised: input };
  }

  /**
   * The recorded input of an order whose units are held, by its number alone: order numbers carry
   * no SKU, so every sale that reserved since the order was made is asked (a handful during a sale);
   * null when none holds it, or there is no inventory to ask.
   */
  async findPromise(orderNo: string, deadline = defaultDeadline()): Promise<OrderInput | null> {
    const inventory = this.inventory;
    const madeAt = orderNoTime(orderNo);
    if (!inventory || madeAt === null) return null;
    const since = madeAt - ACTIVE_MARK_SLACK_MS;
    const ask = (list: Array<{ sku: string; lastReservedAtMs: number }>) =>
      inventory.findOrderInput(
        orderNo,
        list.filter((sale) => sale.lastReservedAtMs >= since).map((sale) => sale.sku),
      );
    try {
      return await boundBy(deadline, async () => {
        const fresh = Date.now() - this.sales.readAt <= SALES_REFRESH_MS;
        const found = fresh ? await ask(this.sales.list) : null;
        if (found) return found;
        // Not in the list as read a moment ago: the sale may have become active since.
        this.sales = { list: await inventory.activeSales(since), readAt: Date.now() };
        return ask(this.sales.list);
      });
    } catch (err) {
      // Redis out of time or failing: "cannot tell now" (503 and retry), never a bug's 500.
      throw new DependencyUnavailableError(
        'redis',
        err instanceof DeadlineExceededError ? 'deadline' : 'failed',
        1,
        err,
      );
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

  async fromDatabase(orderNo: string, deadline = defaultDeadline()): Promise<FoundOrder | null> {
    const row = await this.onMysql(deadline, () => this.store.getOrder(orderNo));
    if (!row) return null;
    return {
      userId: row.userId,
      source: 'database',
      ...(row.failureReason ? { failureReason: row.failureReason } : {}),
      view: {
        orderNo: row.orderNo,
        sku: row.sku,
        quantity: row.quantity,
        totalCents: row.totalCents,
        status: row.status,
        ...(row.cancelReason ? { cancelReason: row.cancelReason } : {}),
        paymentDeadline: row.paymentDeadline.toISOString(),
        createdAt: row.createdAt.toISOString(),
        ...(row.paidAt ? { paidAt: row.paidAt.toISOString() } : {}),
      },
    };
  }

  /**
   * Delivers a payment event to the order (the `pay` Update, deduplicated by event id) and answers
   * the workflow's verdict on it; null when no order with that number is known (no workflow, no
   * row: not started yet, or never). Sent whatever the breaker says, within `deadline`: a payment
   * is worth the wait. An order whose workflow has closed answers from what MySQL recorded
   * (verdictOfClosedOrder).
   */
  async pay(orderNo: string, payment: PaymentReceived, deadline = defaultDeadline()): Promise<PaymentVerdict | null> {
    try {
      return await this.onWorkflow(
        deadline,
        () => this.handle(orderNo).executeUpdate(payUpdate, { args: [payment], updateId: `pay:${payment.eventId}` }),
        {
          evenWhenOpen: true,
        },
      );
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return this.verdictOfClosedOrder(orderNo, payment.eventId, deadline);
      throw err;
    }
  }

  /** The shopper's cancel: the `cancel` Update, whose validator applies the rule (isCancellable). */
  async cancel(order: FoundOrder, deadline = defaultDeadline()): Promise<void> {
    if (!order.live) throw new OrderNotCancellableError(order);
    const orderNo = order.view.orderNo;
    try {
      await this.onWorkflow(deadline, () => this.handle(orderNo).executeUpdate(cancelUpdate, {}));
    } catch (err) {
      if (
        err instanceof WorkflowNotFoundError ||
        (err instanceof WorkflowUpdateFailedError && err.cause?.message.startsWith(NOT_CANCELLABLE))
      ) {
        throw new OrderNotCancellableError(order);
      }
      throw err;
    }
  }

  /**
   * The verdict on a payment delivered after its order's workflow closed (or to one that never
   * existed), stored outcome first: a delivery that lost the race with its own earlier delivery
   * (the order PAID with this very event) is APPLIED, not refunded; one the workflow judged keeps
   * its verdict. Only money the closed order never took is REFUND_REQUIRED, judged as the workflow
   * judges (its amount, then when it was recorded, then the order's final status); null when there
   * is no order row either (no such order, or not started yet).
   */
  private async verdictOfClosedOrder(
    orderNo: string,
    eventId: string,
    deadline: Deadline,
  ): Promise<PaymentVerdict | null> {
    const [stored, order] = await this.onMysql(deadline, () =>
      Promise.all([this.store.getPayment(eventId), this.store.getOrder(orderNo)]),
    );
    return verdictOfClosedOrder(
      order && {
        status: order.status,
        totalCents: order.totalCents,
        paymentDeadline: order.paymentDeadline.toISOString(),
      },
      stored && { ...stored, receivedAt: stored.receivedAt.toISOString() },
    );
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

  private handle(orderNo: string): WorkflowHandle<typeof OrderWorkflow> {
    return this.temporal.workflow.getHandle<typeof OrderWorkflow>(orderWorkflowId(orderNo));
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

/** Whether a call ran out of time: gRPC DEADLINE_EXCEEDED anywhere in the error's cause chain. */
function isDeadlineExceeded(err: unknown): boolean {
  for (let current: unknown = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (
      (current as { code?: unknown }).code === GRPC_DEADLINE_EXCEEDED ||
      /\bDEADLINE_EXCEEDED\b/.test(current.message)
    )
      return true;
  }
  return false;
}

function foundLive(live: OrderState): FoundOrder {
  return {
    view: viewOfState(live),
    userId: live.userId,
    source: 'workflow',
    live,
    ...(live.failureReason ? { failureReason: live.failureReason } : {}),
  };
}

export function viewOfState(state: OrderState): OrderView {
  return {
    orderNo: state.orderNo,
    sku: state.sku,
    quantity: state.quantity,
    totalCents: state.totalCents,
    status: state.status,
    ...(state.cancelReason ? { cancelReason: state.cancelReason } : {}),
    paymentDeadline: state.paymentDeadline,
    createdAt: state.createdAt,
    ...(state.paidAt ? { paidAt: state.paidAt } : {}),
  };
}
