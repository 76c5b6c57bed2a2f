/**
 * OrderLookup: an order by its number wherever it is known: its running workflow (the truth), its closed workflow's
 * result, MySQL's row, or the promise Redis holds for a reservation not started yet.
 */
import { isMysqlFailure, type OrderRow, type StoredDispute } from '../db/rows.js';
import type { OrderStore } from '../db/orders.js';
import { clientSecretContext, type PaymentStore } from '../db/payments.js';
import type { TextSealer } from '../infra/payload-codec.js';
import {
  boundBy,
  Deadline,
  DeadlineExceededError,
  DependencyGuard,
  DependencyUnavailableError,
} from '../infra/dependency-guard.js';
import { activeSince, type ActiveSale, type RedisInventory } from '../inventory/redis-inventory.js';
import { DEFAULT_CALL_TIMEOUT_MS, type OrderWorkflowClient } from './workflow-client.js';
import {
  pendingOrderState,
  type OrderDispute,
  type OrderInput,
  type OrderState,
  type OrderView,
  type PaymentIntentHandle,
} from '../model/order-workflow.js';

/** `stores`: the row or the promise, read when the workflow did not answer or has not started; may lag it. */
export type OrderSource = 'workflow' | 'database' | 'stores';

export interface FoundOrder {
  view: OrderView;
  userId: string;
  source: OrderSource;
  /** Read from its promise (no workflow answered, no row): its recorded input (a cancel starts it first). */
  promised?: OrderInput;
  live?: OrderState;
  /** Why a FAILED order failed (not shown by GET; the waiting checkout's FAILED answer gives it). */
  failureReason?: string;
}

/** How long the list of active sales (for lookups of an order by its number alone) is reused. */
const SALES_REFRESH_MS = 1_000;

const defaultDeadline = () => Deadline.in(DEFAULT_CALL_TIMEOUT_MS);

export interface OrderLookupDeps {
  orders: OrderWorkflowClient;
  /** The stores as they are: their reads go through `mysql`. */
  stores: { orders: OrderStore; payments: PaymentStore };
  /** The API's MySQL breaker, or a guard that never opens (OrderLookup.withoutBreaker). */
  mysql: DependencyGuard;
  /** Where promised orders are found by their number (the reservation's recorded input); null: nowhere. */
  inventory: RedisInventory | null;
  /** Of a read's deadline, the share kept for the stores should the workflow not answer; the query gets the rest. */
  storesReadMs: number;
  /** Opens an intent's client secret, kept sealed in MySQL (the payload codec's keys). */
  secrets: TextSealer;
}

export class OrderLookup {
  private sales: { list: ActiveSale[]; readAt: number } = { list: [], readAt: 0 };

  constructor(private readonly deps: OrderLookupDeps) {}

  /** For the worker and the tools: MySQL's reads bounded by their deadlines only, no breaker. */
  static withoutBreaker(
    orders: OrderWorkflowClient,
    stores: { orders: OrderStore; payments: PaymentStore },
    inventory: RedisInventory | null,
    secrets: TextSealer,
  ): OrderLookup {
    return new OrderLookup({
      orders,
      stores,
      inventory,
      secrets,
      storesReadMs: 0,
      mysql: DependencyGuard.neverOpen('mysql', isMysqlFailure),
    });
  }

  private get orders(): OrderWorkflowClient {
    return this.deps.orders;
  }

  private onMysql<T>(deadline: Deadline, call: () => Promise<T>): Promise<T> {
    return this.deps.mysql.call(deadline, call);
  }

  /**
   * The running workflow, else the closed order's row, else the promise (PENDING); null when none knows it. The
   * workflow not answering in time: what the stores know (source 'stores'); throws only when they cannot answer.
   */
  async find(orderNo: string, deadline = defaultDeadline()): Promise<FoundOrder | null> {
    // An unclaimed promise is PENDING whatever the workflow says: Redis answers, sparing the worker a query (hundreds
    // are polled while starts catch up after a Temporal outage). Redis not answering: ask on.
    const unclaimed = await this.unclaimedPromise(orderNo, deadline.capped(this.deps.storesReadMs || undefined)).catch(
      () => null,
    );
    if (unclaimed) return unclaimed;
    let live: OrderState | null;
    try {
      live = await this.orders.queryLive(orderNo, deadline.minus(this.deps.storesReadMs));
    } catch (err) {
      if (!(err instanceof DependencyUnavailableError)) throw err;
      // The stores keep their share even if the query overran it (a late event loop): else a read they can answer 503s.
      const { storesReadMs } = this.deps;
      const storesDeadline = deadline.remainingMs() >= storesReadMs ? deadline : Deadline.in(storesReadMs);
      const known = await this.fromStores(orderNo, storesDeadline).catch(() => null);
      if (known) return known;
      throw err;
    }
    if (live)
      return live.status === 'AWAITING_PAYMENT' ? this.settledSince(foundLive(live), deadline) : foundLive(live);
    try {
      // Half the stores' share is kept back: MySQL hung must leave time for the workflow's result.
      return (
        (await this.fromDatabase(orderNo, deadline.minus(Math.floor(this.deps.storesReadMs / 2)))) ??
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

  /**
   * An order being paid or cancelled: MySQL's row first, final there before the workflow shows it (the close writes it
   * before announcing), sparing the worker a query; else as find().
   */
  async findChanging(orderNo: string, deadline = defaultDeadline()): Promise<FoundOrder | null> {
    // At most the stores' share: a hung MySQL must leave the workflow its time.
    const row = await this.fromDatabase(orderNo, deadline.capped(this.deps.storesReadMs || undefined)).catch(
      () => null,
    );
    if (row && row.view.status !== 'AWAITING_PAYMENT' && row.view.status !== 'PENDING') return row;
    return this.find(orderNo, deadline);
  }

  /**
   * The row decides a payment before the workflow hears of it: a final status in MySQL wins over AWAITING_PAYMENT.
   * The row not answering within the stores' share leaves the workflow's answer.
   */
  private async settledSince(live: FoundOrder, deadline: Deadline): Promise<FoundOrder> {
    const storesDeadline = deadline.capped(this.deps.storesReadMs || undefined);
    const intentId = live.live?.paymentIntent?.id;
    const [row, intent] = await Promise.all([
      this.fromDatabase(live.view.orderNo, storesDeadline).catch(() => null),
      // Not read: the view goes without its intent, which the shopper's next read shows (never cached without).
      intentId ? this.payableIntent(live.view.orderNo, intentId, storesDeadline).catch(() => null) : null,
    ]);
    if (row && row.view.status !== 'AWAITING_PAYMENT') return row;
    return intent ? { ...live, view: { ...live.view, paymentIntent: intent } } : live;
  }

  /** The intent the workflow opened, its client secret from MySQL: the secret never enters Temporal. */
  private async payableIntent(
    orderNo: string,
    intentId: string,
    deadline: Deadline,
  ): Promise<PaymentIntentHandle | null> {
    const intents = await this.onMysql(deadline, () => this.deps.stores.payments.paymentIntentsOf(orderNo));
    const sealed = intents.find((intent) => intent.intentId === intentId)?.clientSecret;
    if (!sealed) return null;
    return { id: intentId, clientSecret: this.deps.secrets.open(sealed, clientSecretContext(intentId)) };
  }

  /** The final state a completed workflow returned (null: it failed, was terminated, or is unknown). */
  private async fromClosedWorkflow(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const state = await this.orders.closedResult(orderNo, deadline);
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
    const live = await this.orders.queryLive(orderNo, deadline);
    return live ? foundLive(live) : null;
  }

  /** MySQL's row, else the promise (source 'stores'); half of storesReadMs is kept for the promise if MySQL hangs. */
  private async fromStores(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const row = await this.fromDatabase(orderNo, deadline.minus(Math.floor(this.deps.storesReadMs / 2))).catch(
      () => null,
    );
    if (row) return { ...row, source: 'stores' };
    return this.fromPromise(orderNo, deadline);
  }

  /** The promise while its reservation is unclaimed (then surely PENDING); else null. */
  private async unclaimedPromise(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const inventory = this.deps.inventory;
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

  /** An order's recorded input by number alone: numbers carry no SKU, so each sale active since then is asked. */
  async findPromise(orderNo: string, deadline = defaultDeadline()): Promise<OrderInput | null> {
    const inventory = this.deps.inventory;
    if (!inventory) return null;
    try {
      return await boundBy(deadline, async () => {
        const fresh = Date.now() - this.sales.readAt <= SALES_REFRESH_MS;
        const found = fresh ? await inventory.findOrderInput(orderNo, this.sales.list) : null;
        if (found) return found;
        // Not among the sales as read a moment ago: the sale may have become active since.
        const since = activeSince(orderNo);
        if (since === null) return null;
        this.sales = { list: await inventory.activeSales(since), readAt: Date.now() };
        return inventory.findOrderInput(orderNo, this.sales.list);
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

  async fromDatabase(orderNo: string, deadline = defaultDeadline()): Promise<FoundOrder | null> {
    const row = await this.onMysql(deadline, () => this.deps.stores.orders.getOrder(orderNo));
    if (!row) return null;
    return {
      userId: row.userId,
      source: 'database',
      ...(row.failureReason ? { failureReason: row.failureReason } : {}),
      view: viewOfRow(row),
    };
  }
}

/** The order as its MySQL row shows it (GET /api/orders/:orderNo from the row, and the shopper's list). */
export function viewOfRow(row: OrderRow): OrderView {
  return {
    orderNo: row.orderNo,
    sku: row.sku,
    quantity: row.quantity,
    totalCents: row.totalCents,
    status: row.status,
    ...(row.cancelReason ? { cancelReason: row.cancelReason } : {}),
    paymentDeadline: row.paymentDeadline.toISOString(),
    createdAt: row.createdAt.toISOString(),
    ...(row.paidAt ? { paidAt: row.paidAt.toISOString() } : {}),
    ...(row.refundedCents > 0 ? { refundedCents: row.refundedCents } : {}),
    ...(row.dispute ? { dispute: disputeView(row.dispute) } : {}),
  };
}

/** A stored dispute as the order shows it. */
export function disputeView(dispute: StoredDispute): OrderDispute {
  return {
    standing: dispute.standing,
    reason: dispute.reason,
    dueBy: dispute.dueBy?.toISOString() ?? null,
    amountCents: dispute.amountCents,
  };
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
    ...(state.paymentProvider ? { paymentProvider: state.paymentProvider } : {}),
  };
}
