/**
 * Checkout: reserve in Redis (one Lua step), start the order's workflow, answer. No database on
 * this path: MySQL is written by the workflow at its own pace, so a burst cannot knock it over.
 * Two models share it (README, "Two checkout models"): polling (`checkout`) and waiting
 * (`checkoutAndWait`, `Prefer: wait=N`), which also answers with the persisted or failed order.
 */
import type { AppConfig } from '../config/index.js';
import { boundBy, Deadline, DependencyUnavailableError, type DependencyGuard } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import type { RedisInventory, Reservation, ReserveResult } from '../inventory/redis-inventory.js';
import { viewOfState, type AwaitedStart, type FoundOrder, type OrderClient, type OrderView } from '../orders/order-client.js';
import { newOrderNo } from '../orders/order-number.js';
import { Refusal } from '../refusal.js';
import type { OrderInput, OrderStatus } from '../workflows/definitions.js';
import type { SoldOutCache } from './sold-out-cache.js';

export interface CheckoutRequest {
  userId: string;
  sku: string;
  quantity: number;
  idempotencyKey?: string;
}

/**
 * What a checkout answers. Without `order`, the order is accepted and goes on (202: poll its
 * status). With `order` (only a waiting checkout), its persistence had an outcome within the wait:
 * `order.status` is AWAITING_PAYMENT (or later, for a retried key of an older order), or FAILED,
 * with `failureReason` (see orderFailed).
 */
export interface CheckoutAnswer {
  orderNo: string;
  status: OrderStatus;
  order?: OrderView;
  failureReason?: string;
}

/** The refusal a waiting checkout answers for an order that failed within the wait (409 ORDER_FAILED). */
export function orderFailed(answer: CheckoutAnswer, statusUrl: string): Refusal {
  return new Refusal('ORDER_FAILED', `the order ${answer.orderNo} failed and holds no stock: ${answer.failureReason ?? 'unknown reason'}`, {
    orderNo: answer.orderNo,
    status: 'FAILED',
    failureReason: answer.failureReason ?? null,
    statusUrl,
  });
}

/** What a checkout reports as it goes (the API's metrics implement it). */
export interface CheckoutObserver {
  /** A monotonic clock in milliseconds, for the `startedAt` of the calls below. */
  now(): number;
  soldOutFlagHit(): void;
  reserveDone(outcome: ReserveResult['outcome'] | 'ERROR', startedAt: number): void;
  workflowStartDone(ok: boolean, startedAt: number): void;
}

/** A reservation that holds (or, for a retried Idempotency-Key, already held) units for an order. */
export type AcceptedReservation = Extract<ReserveResult, { outcome: 'RESERVED' | 'DUPLICATE' }>;

/**
 * The answer to a reservation that did not reserve: the one mapping from reserve.lua's outcomes to
 * refusals (the benchmark's queue baseline uses it too). Returns the reservation when it holds
 * units, throws the Refusal otherwise.
 */
export function acceptReservation(result: ReserveResult, request: Pick<CheckoutRequest, 'sku' | 'quantity'>): AcceptedReservation {
  switch (result.outcome) {
    case 'NO_SALE':
      throw new Refusal('SKU_NOT_FOUND', `no sale for sku ${request.sku}`);
    case 'NOT_ACTIVE':
      throw new Refusal('SALE_NOT_ACTIVE', `the sale for ${request.sku} is not open now`);
    case 'TOO_MANY_CANCELS':
      throw new Refusal('TOO_MANY_CANCELLATIONS', `you cancelled too many orders of ${request.sku}; this sale takes no more checkouts from you`);
    case 'LIMIT_EXCEEDED':
      throw new Refusal('PURCHASE_LIMIT_EXCEEDED', `buying ${request.quantity} would exceed the per-user limit for ${request.sku}`);
    case 'SOLD_OUT':
      throw soldOutError(request.sku);
    case 'DUPLICATE':
    case 'RESERVED':
      return result;
  }
}

export class CheckoutService {
  constructor(
    private readonly deps: {
      config: Pick<AppConfig, 'checkoutMaxWaitSeconds' | 'deadlines' | 'maxCancelsPerShopper' | 'paymentWindow'>;
      /** Seen through the Redis guard (each call bounded by REDIS_TIMEOUT). */
      inventory: RedisInventory;
      /**
       * The same inventory without the guard, for compensations, which are sent whatever the
       * breaker says (a reservation left behind would hold its units until the reconciler's grace
       * period ends): the release after a failed start, and after a reserve whose answer did not
       * come in time. The client's per-command timeout (REDIS_TIMEOUT) still bounds them.
       */
      unguardedInventory: RedisInventory;
      /** Redis's breaker: while it is open a checkout fails before it touches anything (but the sold-out flag). */
      redis: DependencyGuard;
      orders: OrderClient;
      logger: Logger;
      soldOut: SoldOutCache;
      observer: CheckoutObserver;
      /** Counts a checkout against its shopper's budget (RATE_LIMIT_CHECKOUT); throws once it is spent. */
      spendBudget?: (userId: string) => Promise<void>;
    },
  ) {}

  /** The longest wait a `Prefer: wait=N` checkout is given (CHECKOUT_MAX_WAIT), in seconds. */
  get maxWaitSeconds(): number {
    return this.deps.config.checkoutMaxWaitSeconds;
  }

  /**
   * The polling checkout: answered within CHECKOUT_DEADLINE. The start must end early enough for
   * its compensation (one Redis call, REDIS_TIMEOUT at most) to fit in the deadline too.
   */
  async checkout(request: CheckoutRequest): Promise<CheckoutAnswer> {
    const now = Date.now();
    const deadline = new Deadline(now + this.deps.config.deadlines.checkoutMs);
    const result = await this.reserve(request, now);
    if (result.outcome === 'DUPLICATE') return this.retryWithKey(request, result.orderNo, result.priceCents, result.reservation, deadline);

    try {
      await this.startOrder(this.orderInput(request, result.orderNo, result.priceCents, now), this.startDeadline(deadline));
    } catch (err) {
      return this.afterFailedStart(request, result.orderNo, err);
    }
    return { orderNo: result.orderNo, status: 'PENDING' };
  }

  /** When a start must have ended: the request's deadline less the time its compensation may take. */
  private startDeadline(deadline: Deadline): Deadline {
    return deadline.minus(this.deps.config.deadlines.redisMs);
  }

  /**
   * The first half of both checkout models: the sold-out flag (from memory), the breakers, the
   * shopper's budget, then reserve.lua; answers the reservation that holds units, throws the
   * Refusal (or DependencyUnavailableError) otherwise.
   */
  private async reserve(request: CheckoutRequest, now: number): Promise<AcceptedReservation> {
    const { inventory, soldOut, observer } = this.deps;
    // A retry with an Idempotency-Key must reach Redis: it may own an order even after sell-out.
    if (!request.idempotencyKey && soldOut.isSoldOut(request.sku, now)) {
      observer.soldOutFlagHit();
      throw soldOutError(request.sku);
    }
    // Redis known to be failing: 503 at once, before anything is counted. (With Temporal's breaker
    // open the reserve still runs, so that a sold-out sale keeps answering 409, and a reservation
    // is released at once when the start is refused.)
    this.deps.redis.assertAvailable();
    // The shopper's budget is counted after the sold-out flag, which answers the bulk of a sale
    // from memory and must stay free of Redis calls, and before anything reaches Redis's stock.
    await this.deps.spendBudget?.(request.userId);
    const reserveStartedAt = observer.now();
    let reserved: ReserveResult;
    const orderNo = newOrderNo(now);
    try {
      reserved = await inventory.reserve({ orderNo, nowMs: now, maxCancels: this.deps.config.maxCancelsPerShopper, ...request });
    } catch (err) {
      observer.reserveDone('ERROR', reserveStartedAt);
      this.releaseIfReservedLate(request, orderNo, err);
      throw err;
    }
    observer.reserveDone(reserved.outcome, reserveStartedAt);
    if (reserved.outcome === 'SOLD_OUT') soldOut.markSoldOut(request.sku, reserved.generation, now);
    return acceptReservation(reserved, request);
  }

  /**
   * A reserve that ran out of time sits in the hung Redis's socket and runs when it resumes: a
   * reservation for a checkout already answered 503. The release sent right behind it, on the same
   * connection, runs right after it, so the units are back at once instead of after the
   * reconciler's grace period (under a burst a frozen Redis would otherwise hold the whole stock
   * until then), and the shopper's retry with the same Idempotency-Key reserves anew.
   * Not awaited: it is answered only once Redis is back. A reserve the breaker refused was never
   * sent, so nothing follows it.
   */
  private releaseIfReservedLate(request: CheckoutRequest, orderNo: string, err: unknown): void {
    if (!(err instanceof DependencyUnavailableError) || err.reason === 'breaker-open' || err.reason === 'busy') return;
    this.deps.unguardedInventory.release(request.sku, orderNo, { as: 'unclaimed', ...this.idempotencyOf(request) }).catch(() => {
      // Redis did not take it either (a refused connection): the reconciler releases the orphan.
    });
  }

  /** Starts the order's workflow, timed for the workflow-start latency histogram. */
  private async startOrder(input: OrderInput, deadline: Deadline): Promise<void> {
    const { orders, observer } = this.deps;
    const startedAt = observer.now();
    try {
      await orders.start(input, deadline);
    } catch (err) {
      observer.workflowStartDone(false, startedAt);
      throw err;
    }
    observer.workflowStartDone(true, startedAt);
  }

  /**
   * The waiting checkout (`Prefer: wait=N`): the same reservation, then Update-with-Start instead
   * of a plain start, so start and wait are one round trip to Temporal and the workflow's own
   * state is the answer. Not decided within `waitMs`: the PENDING answer, and the order goes on.
   * A start whose outcome is unknown is settled exactly as checkout() settles it. Answered within
   * the wait plus CHECKOUT_DEADLINE.
   */
  async checkoutAndWait(request: CheckoutRequest, waitMs: number): Promise<CheckoutAnswer> {
    const { orders, observer } = this.deps;
    const now = Date.now();
    const deadline = new Deadline(now + waitMs + this.deps.config.deadlines.checkoutMs);
    const result = await this.reserve(request, now);
    if (result.outcome === 'DUPLICATE') return this.retryWithKeyAndWait(request, result.orderNo, result.priceCents, result.reservation, waitMs, deadline);

    let awaited: AwaitedStart;
    const startedAt = observer.now();
    try {
      awaited = await orders.startAndAwaitPersisted(this.orderInput(request, result.orderNo, result.priceCents, now), waitMs, this.startDeadline(deadline));
    } catch (err) {
      observer.workflowStartDone(false, startedAt);
      return this.afterFailedStart(request, result.orderNo, err);
    }
    // Start and wait are one call here: the histogram sees the whole of it.
    observer.workflowStartDone(true, startedAt);
    return this.answerOf(result.orderNo, awaited, deadline);
  }

  /**
   * A retried waiting checkout attaches to the same order and waits on it (USE_EXISTING + the
   * Update), never starting a second one; past the point a retry can change, the order's current
   * state is the answer. The same rules as retryWithKey() otherwise.
   */
  private async retryWithKeyAndWait(
    request: CheckoutRequest,
    orderNo: string,
    priceCents: number,
    reservation: Reservation | null,
    waitMs: number,
    deadline: Deadline,
  ): Promise<CheckoutAnswer> {
    if (reservation && reservation.quantity !== request.quantity) throw keyReused(request, reservation.quantity);
    if (reservation?.state === 'RESERVED' || reservation?.state === 'CLAIMED') {
      const input = this.orderInput(request, orderNo, priceCents, reservation.reservedAtMs);
      try {
        return await this.answerOf(orderNo, await this.deps.orders.startAndAwaitPersisted(input, waitMs, deadline), deadline);
      } catch (err) {
        // Claimed: its workflow runs whatever this call says.
        if (reservation.state === 'CLAIMED') return { orderNo, status: 'PENDING' };
        throw couldNotConfirm(err);
      }
    }
    const retried = await this.retryWithKey(request, orderNo, priceCents, reservation, deadline);
    if (retried.status === 'PENDING') return retried;
    const order = await this.deps.orders.find(orderNo, deadline).catch(() => null);
    return order ? answerOfFound(order) : retried;
  }

  private async answerOf(orderNo: string, awaited: AwaitedStart, deadline: Deadline): Promise<CheckoutAnswer> {
    if (awaited.outcome === 'RUNNING') return { orderNo, status: 'PENDING' };
    if (awaited.outcome === 'DECIDED') {
      const { state } = awaited;
      return { orderNo, status: state.status, order: viewOfState(state), ...(state.failureReason ? { failureReason: state.failureReason } : {}) };
    }
    // The workflow had closed: its row in MySQL is the order (not readable in time: poll for it).
    const order = await this.deps.orders.fromDatabase(orderNo, deadline).catch(() => null);
    return order ? answerOfFound(order) : { orderNo, status: 'PENDING' };
  }

  /**
   * A start that failed may still have reached Temporal (a timeout after the server accepted it).
   * The reservation decides: released as unclaimed, no order can ever be persisted for it (a
   * workflow that did start finds it released and fails), so the answer is 503; claimed, the
   * workflow exists and owns it, so the order goes on and the answer is 202. If Redis cannot be
   * reached either, the reservation stays and the reconciler settles it after the grace period.
   */
  private async afterFailedStart(request: CheckoutRequest, orderNo: string, err: unknown): Promise<CheckoutAnswer> {
    const released = await boundBy(Deadline.in(this.deps.config.deadlines.redisMs), () =>
      this.deps.unguardedInventory.release(request.sku, orderNo, { as: 'unclaimed', ...this.idempotencyOf(request) }),
    ).catch((releaseErr: unknown) => releaseErr);
    if (released === 'CLAIMED' || released === 'SOLD') {
      this.deps.logger.warn({ err, orderNo }, 'the OrderWorkflow start reported an error but the workflow runs and owns its reservation');
      return { orderNo, status: 'PENDING' };
    }
    // An unavailable Temporal is logged once, by its breaker; anything else here is news.
    if (!(err instanceof DependencyUnavailableError)) this.deps.logger.error({ err, orderNo, released }, 'could not start OrderWorkflow; reservation released');
    const retryAfter = err instanceof DependencyUnavailableError ? err.retryAfterSeconds : undefined;
    throw new Refusal('UNAVAILABLE', 'the order could not be started; nothing was reserved, please retry', undefined, retryAfter);
  }

  /**
   * A retried checkout with a known Idempotency-Key answers the same order. If the first attempt
   * reserved but died before starting the workflow, this starts it (USE_EXISTING makes that safe).
   * The key's first request decides what the key means: the same key with another quantity is
   * refused with 422 (as the IETF Idempotency-Key draft asks), never answered with the old order.
   */
  private async retryWithKey(
    request: CheckoutRequest,
    orderNo: string,
    priceCents: number,
    reservation: Reservation | null,
    deadline: Deadline,
  ): Promise<CheckoutAnswer> {
    if (reservation && reservation.quantity !== request.quantity) throw keyReused(request, reservation.quantity);
    if (reservation?.state === 'RESERVED') {
      const input = this.orderInput(request, orderNo, priceCents, reservation.reservedAtMs);
      try {
        await this.startOrder(input, deadline);
      } catch (err) {
        throw couldNotConfirm(err);
      }
      return { orderNo, status: 'PENDING' };
    }
    // Claimed: its workflow runs.
    if (reservation?.state === 'CLAIMED') return { orderNo, status: 'PENDING' };
    // Sold, released or already forgotten: the order is past the point a retry could change.
    const order = await this.deps.orders.find(orderNo, deadline).catch(() => null);
    if (order) {
      if (order.view.quantity !== request.quantity) throw keyReused(request, order.view.quantity);
      return { orderNo, status: order.view.status };
    }
    if (reservation?.state === 'SOLD') return { orderNo, status: 'PAID' };
    // Released before any order existed (its start failed): forget the key so a retry reserves anew.
    await this.deps.inventory.release(request.sku, orderNo, { as: 'unclaimed', ...this.idempotencyOf(request) });
    throw new Refusal('UNAVAILABLE', 'the earlier attempt with this Idempotency-Key reserved nothing; please retry');
  }

  private idempotencyOf(request: CheckoutRequest): { idempotency?: { userId: string; key: string } } {
    return request.idempotencyKey ? { idempotency: { userId: request.userId, key: request.idempotencyKey } } : {};
  }

  private orderInput(request: CheckoutRequest, orderNo: string, unitPriceCents: number, createdAtMs: number): OrderInput {
    return {
      orderNo,
      sku: request.sku,
      userId: request.userId,
      quantity: request.quantity,
      unitPriceCents,
      ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}),
      createdAt: new Date(createdAtMs).toISOString(),
      paymentWindow: this.deps.config.paymentWindow,
    };
  }
}

function answerOfFound(found: FoundOrder): CheckoutAnswer {
  if (found.view.status === 'PENDING') return { orderNo: found.view.orderNo, status: 'PENDING' };
  return { orderNo: found.view.orderNo, status: found.view.status, order: found.view, ...(found.failureReason ? { failureReason: found.failureReason } : {}) };
}

const soldOutError = (sku: string) => new Refusal('SOLD_OUT', `${sku} is sold out`);
/** A retried checkout whose order could not be confirmed now: 503, with Retry-After when the breaker knows it. */
const couldNotConfirm = (err: unknown) =>
  new Refusal(
    'UNAVAILABLE',
    'could not confirm the order, please retry',
    undefined,
    err instanceof DependencyUnavailableError ? err.retryAfterSeconds : undefined,
  );
const keyReused = (request: CheckoutRequest, firstQuantity: number) =>
  new Refusal(
    'IDEMPOTENCY_KEY_REUSED',
    `this Idempotency-Key was first used for ${firstQuantity} unit(s) of ${request.sku}, not ${request.quantity}; use a new key for a new purchase`,
  );
