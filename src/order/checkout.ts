/** Checkout: one Lua step reserves and records a pending start; no Temporal, no MySQL, no release (docs/api.md). */
import { newOrderNo } from './order-numbers.js';
import type { SaleWindows } from './sale-windows.js';
import type { SoldOutCache } from './sold-out-cache.js';
import { ANSWER_MARGIN_MS, type AppConfig } from '../config/index.js';
import { Deadline, DependencyUnavailableError, type DependencyGuard } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import { traceCarrier } from '../infra/tracing.js';
import type { RedisInventory, ReserveResult } from '../redis/inventory.js';
import type { AwaitedStart, OrderWorkflowClient } from './workflow-client.js';
import { viewOfState, type FoundOrder, type OrderLookup, type OrderView } from './lookup.js';
import { Refusal } from '../infra/refusal.js';
import type { OrderInput, OrderStatus } from '../model/order-workflow.js';

export interface CheckoutRequest {
  userId: string;
  sku: string;
  quantity: number;
  idempotencyKey?: string;
  /** Header Admission-Token, for a sale with a waiting line. */
  admissionToken?: string;
}

/** Checks an admission's signature, owner, sale and time (src/line/line-service.ts implements it). */
export interface AdmissionChecker {
  checkAdmission(
    token: string,
    expected: { sku: string; userId: string },
    retryWithKey: boolean,
  ):
    | { ok: true; admission: { position: number } }
    | { ok: false; code: 'ADMISSION_INVALID' | 'ADMISSION_NOT_YOURS' | 'ADMISSION_EXPIRED' };
}

/** Without `order`: accepted, poll it (202). With `order` (a waiting checkout): persisted or FAILED within the wait. */
export interface CheckoutAnswer {
  orderNo: string;
  status: OrderStatus;
  order?: OrderView;
  failureReason?: string;
}

/** The refusal a waiting checkout answers for an order that failed within the wait (409 ORDER_FAILED). */
export function orderFailed(answer: CheckoutAnswer, statusUrl: string): Refusal {
  const failureReason = answer.failureReason ?? null;
  return new Refusal(
    'ORDER_FAILED',
    `the order ${answer.orderNo} failed and holds no stock: ${failureReason ?? 'unknown reason'}`,
    { orderNo: answer.orderNo, status: 'FAILED', failureReason, statusUrl },
  );
}

/** What a checkout reports as it goes (the API's metrics implement it). */
export interface CheckoutObserver {
  /** A monotonic clock in milliseconds, for the `startedAt` of the calls below. */
  now(): number;
  soldOutFlagHit(): void;
  reserveDone(outcome: ReserveResult['outcome'] | 'ERROR', startedAt: number): void;
  /** A waiting checkout's Update-with-Start (the polling checkout starts nothing). */
  workflowStartDone(ok: boolean, startedAt: number): void;
}

/** A reservation that holds (or, for a retried Idempotency-Key, already held) units for an order. */
export type AcceptedReservation = Extract<ReserveResult, { outcome: 'RESERVED' | 'DUPLICATE' }>;

/** The reservation when it holds units, else throws reserve.lua's outcome as a Refusal (the one mapping). */
export function acceptReservation(
  result: ReserveResult,
  request: Pick<CheckoutRequest, 'sku' | 'quantity'>,
): AcceptedReservation {
  if (result.outcome === 'RESERVED' || result.outcome === 'DUPLICATE') return result;
  throw refusalOf(result, request);
}

function refusalOf(
  result: Exclude<ReserveResult, AcceptedReservation>,
  request: Pick<CheckoutRequest, 'sku' | 'quantity'>,
): Refusal {
  switch (result.outcome) {
    case 'NO_SALE':
      return new Refusal('SKU_NOT_FOUND', `no sale for sku ${request.sku}`);
    case 'NOT_ACTIVE':
      return new Refusal('SALE_NOT_ACTIVE', `the sale for ${request.sku} is not open now`);
    case 'TOO_MANY_CANCELS':
      return new Refusal(
        'TOO_MANY_CANCELLATIONS',
        `you cancelled too many orders of ${request.sku}; this sale takes no more checkouts from you`,
      );
    case 'LIMIT_EXCEEDED':
      // Named, since the shopper may hold an order whose 202 never reached them.
      return new Refusal(
        'PURCHASE_LIMIT_EXCEEDED',
        `buying ${request.quantity} would exceed the per-user limit for ${request.sku}` +
          (result.heldBy.length > 0 ? `; held by ${result.heldBy.join(', ')}` : ''),
        { heldBy: result.heldBy },
      );
    case 'SOLD_OUT':
      return soldOutError(request.sku);
    case 'NOT_ADMITTED':
    case 'ADMISSION_INVALID':
    case 'ADMISSION_EXPIRED':
    case 'ADMISSION_USED':
      return admissionRefusal(result.outcome, request.sku);
    case 'LATE':
      return new Refusal(
        'UNAVAILABLE',
        'the reservation came too late to be answered; nothing was reserved, please retry',
        undefined,
        1,
      );
  }
}

export class CheckoutService {
  /** Per SKU, when this process last marked the sale active (RedisInventory.markSaleActive). */
  private readonly markedActiveAt = new Map<string, number>();

  constructor(
    private readonly deps: {
      config: Pick<
        AppConfig,
        | 'checkoutMaxWaitSeconds'
        | 'deadlines'
        | 'maxCancelsPerShopper'
        | 'paymentWindow'
        | 'checkoutStartBudgetMs'
        | 'clockSkewMarginMs'
      >;
      /** PAYMENT_PROVIDER when it makes a payment per order (Stripe's PaymentIntent); null for the generic webhook. */
      paymentProvider: string | null;
      /** Through the Redis guard: each call bounded by REDIS_TIMEOUT. */
      inventory: Pick<RedisInventory, 'reserve' | 'markSaleActive'>;
      /** Redis's breaker: while it is open a checkout fails before it touches anything (but the sold-out flag). */
      redis: DependencyGuard;
      /** Only the waiting checkout and a retried key's closed order reach it. */
      orders: OrderWorkflowClient;
      lookup: OrderLookup;
      /** REDIS_WAIT_REPLICAS: whether replicas hold a sale's pending starts in `timeoutMs` (a 202 waits); or null. */
      replicas: { replicated(sku: string, timeoutMs: number): Promise<boolean> } | null;
      logger: Logger;
      soldOut: SoldOutCache;
      windows: SaleWindows;
      observer: CheckoutObserver;
      /** Counts a checkout against its shopper's budget (RATE_LIMIT_CHECKOUT); throws once it is spent. */
      spendBudget: (userId: string) => Promise<void>;
      admissions: AdmissionChecker;
    },
  ) {}

  /** The longest wait a `Prefer: wait=N` checkout is given (CHECKOUT_MAX_WAIT), in seconds. */
  get maxWaitSeconds(): number {
    return this.deps.config.checkoutMaxWaitSeconds;
  }

  /** SOLD_OUT (counted as a flag hit) when `sku` is flagged here; the front's sold-out check asks it too. */
  soldOutRefusal(sku: string, now = Date.now()): Refusal | null {
    if (!this.deps.soldOut.isSoldOut(sku, now)) return null;
    this.deps.observer.soldOutFlagHit();
    return soldOutError(sku);
  }

  /** True while some SKU is flagged sold out: until then the front's sold-out check reads no body. */
  get anySoldOut(): boolean {
    return this.deps.soldOut.flagged > 0;
  }

  /** Whether `sku` is flagged sold out, uncounted: the first look of the front's sold-out check, before the token. */
  flaggedSoldOut(sku: string): boolean {
    return this.deps.soldOut.isSoldOut(sku);
  }

  /** The polling checkout: from Redis alone within CHECKOUT_DEADLINE (after a replica holds it, with replicas). */
  async checkout(request: CheckoutRequest): Promise<CheckoutAnswer> {
    const now = Date.now();
    const deadline = new Deadline(now + this.deps.config.deadlines.checkoutMs);
    const result = await this.reserve(request, now, deadline, 0);
    if (result.outcome === 'DUPLICATE') return this.retryWithKey(request, result, deadline);
    if (!(await this.replicated(request.sku, deadline))) throw notYetDurable(result.orderNo);
    return { orderNo: result.orderNo, status: 'PENDING' };
  }

  /** Cheapest refusals first (flag, window, breaker, budget, reserve.lua); `handoffMs`: a waiting start's lead. */
  private async reserve(request: CheckoutRequest, now: number, deadline: Deadline, handoffMs: number) {
    const { soldOut } = this.deps;
    // A retry with an Idempotency-Key must reach Redis: it may own an order even after sell-out.
    if (!request.idempotencyKey) {
      const refusal = this.soldOutRefusal(request.sku, now);
      if (refusal) throw refusal;
    }
    // Past its TTL a flag is renewed by this one checkout (the probe) while the others are answered from it.
    const probe = !request.idempotencyKey && soldOut.claimProbe(request.sku, now);
    if (!probe) return this.reserveInRedis(request, now, deadline, handoffMs);
    let asked = false;
    try {
      const reserved = await this.reserveInRedis(request, now, deadline, handoffMs, () => (asked = true));
      soldOut.probeEnded(request.sku, { saleAnswered: true });
      return reserved;
    } catch (err) {
      // SOLD_OUT renewed the flag; another answer from the sale drops it; no answer passes the probe on.
      const answered = asked && err instanceof Refusal && !NO_ANSWER.has(err.code);
      if (!(err instanceof Refusal && err.code === 'SOLD_OUT'))
        soldOut.probeEnded(request.sku, { saleAnswered: answered });
      throw err;
    }
  }

  /** reserve() past the flag. `asked`: called once the sale is asked (its window refuses, or reserve.lua is sent). */
  private async reserveInRedis(
    request: CheckoutRequest,
    now: number,
    deadline: Deadline,
    handoffMs: number,
    asked?: () => void,
  ): Promise<Reserved> {
    const { inventory, soldOut, windows, observer, config } = this.deps;
    // Breaker open: 503 before anything is counted.
    this.deps.redis.assertAvailable();
    // No sale, or not open: refused before the budget and the mark, so it leaves nothing behind.
    const { refusal: windowRefusal, line } = await windows.check(request.sku, now);
    if (windowRefusal) {
      asked?.();
      throw refusalOf({ outcome: windowRefusal }, request);
    }
    const admissionPosition = line ? this.admissionPosition(request) : undefined;
    await this.deps.spendBudget(request.userId);
    this.markSaleActive(request.sku, now);
    const reserveStartedAt = observer.now();
    const orderNo = newOrderNo(now);
    const input = this.orderInput(request, orderNo, now);
    // Past the cutoff nothing is reserved: time must be left to answer, and for a replica's ack or a waiting start.
    const after = this.deps.replicas || handoffMs > 0 ? config.checkoutStartBudgetMs : 0;
    const cutoffMs = deadline.at - after - ANSWER_MARGIN_MS - config.clockSkewMarginMs;
    let reserved: ReserveResult;
    asked?.();
    try {
      reserved = await inventory.reserve({
        orderNo,
        nowMs: now,
        maxCancels: config.maxCancelsPerShopper,
        cutoffMs,
        promise: { input, handoffMs, trace: traceCarrier() },
        ...request,
        ...(admissionPosition === undefined ? {} : { admissionPosition }),
      });
    } catch (err) {
      observer.reserveDone('ERROR', reserveStartedAt);
      throw this.reserveUnanswered(orderNo, err);
    }
    observer.reserveDone(reserved.outcome, reserveStartedAt);
    if (reserved.outcome === 'SOLD_OUT') soldOut.markSoldOut(request.sku, reserved.generation, now);
    if (reserved.outcome === 'NO_SALE' || reserved.outcome === 'NOT_ACTIVE') windows.forget(request.sku);
    return { ...acceptReservation(reserved, request), input };
  }

  /** Checked here: a forged one costs no Redis call. A keyed retry may carry none (its order is answered first). */
  private admissionPosition({ sku, userId, admissionToken, idempotencyKey }: CheckoutRequest): number | undefined {
    const retryWithKey = Boolean(idempotencyKey);
    if (!admissionToken) {
      if (retryWithKey) return undefined;
      throw admissionRefusal('NOT_ADMITTED', sku);
    }
    const check = this.deps.admissions.checkAdmission(admissionToken, { sku, userId }, retryWithKey);
    if (!check.ok) throw admissionRefusal(check.code, sku);
    return check.admission.position;
  }

  /** For the starter and order lookups, ≤ 1/s per process; a lost mark leaves pending starts to the reconciler. */
  private markSaleActive(sku: string, now: number): void {
    if (now - (this.markedActiveAt.get(sku) ?? 0) < 1_000) return;
    if (this.markedActiveAt.size > 10_000) this.markedActiveAt.clear();
    this.markedActiveAt.set(sku, now);
    this.deps.inventory.markSaleActive(sku, now).catch(() => this.markedActiveAt.delete(sku));
  }

  /** A reserve that got no answer may still run (before its cutoff): OUTCOME_UNKNOWN, with its order number. */
  private reserveUnanswered(orderNo: string, err: unknown): unknown {
    // An error reply, a closed connection or the breaker's refusal means it did not run.
    if (!(err instanceof DependencyUnavailableError) || err.reason !== 'deadline') return err;
    return new Refusal(
      'OUTCOME_UNKNOWN',
      `Redis did not answer in time: order ${orderNo} may or may not have been reserved; retry with the same Idempotency-Key, or read the order`,
      { orderNo, statusUrl: `/api/orders/${orderNo}` },
      err.retryAfterSeconds,
    );
  }

  /** REDIS_WAIT_REPLICAS: whether a replica holds the pending start in time (else 503: a failover could lose it). */
  private replicated(sku: string, deadline: Deadline): Promise<boolean> {
    const { replicas } = this.deps;
    return replicas ? replicas.replicated(sku, deadline.minus(ANSWER_MARGIN_MS).remainingMs()) : Promise.resolve(true);
  }

  /** `Prefer: wait=N`: the reservation, then one Update-with-Start; undecided or unstarted: PENDING (the starter's). */
  async checkoutAndWait(request: CheckoutRequest, waitMs: number): Promise<CheckoutAnswer> {
    const now = Date.now();
    const { checkoutMs } = this.deps.config.deadlines;
    const deadline = new Deadline(now + waitMs + checkoutMs);
    const result = await this.reserve(request, now, new Deadline(now + checkoutMs), checkoutMs);
    if (result.outcome === 'DUPLICATE') return this.retryWithKey(request, result, deadline, waitMs);
    return this.startAndWait({ ...result.input, unitPriceCents: result.priceCents }, waitMs, deadline);
  }

  private async startAndWait(input: OrderInput, waitMs: number, deadline: Deadline): Promise<CheckoutAnswer> {
    const { orders, observer, lookup, logger } = this.deps;
    const pending: CheckoutAnswer = { orderNo: input.orderNo, status: 'PENDING' };
    const replicated = this.replicated(input.sku, deadline);
    const notStarted = async (): Promise<CheckoutAnswer> => {
      if (await replicated) return pending;
      throw notYetDurable(input.orderNo);
    };
    if (!orders.temporalAvailable()) return notStarted();
    const startedAt = observer.now();
    let awaited: AwaitedStart;
    try {
      awaited = await orders.startAndAwaitPersisted(input, waitMs, Deadline.in(this.deps.config.checkoutStartBudgetMs));
    } catch (err) {
      observer.workflowStartDone(false, startedAt);
      if (!(err instanceof DependencyUnavailableError))
        logger.warn({ err, orderNo: input.orderNo }, 'Update-with-Start failed; the starter starts the order');
      return notStarted();
    }
    // Start and wait are one call here: the histogram sees the whole of it.
    observer.workflowStartDone(true, startedAt);
    if (awaited.outcome === 'RUNNING') return pending;
    if (awaited.outcome === 'DECIDED')
      return answerOfFound({ view: viewOfState(awaited.state), failureReason: awaited.state.failureReason });
    // The workflow had closed: its row in MySQL is the order (not readable in time: poll for it).
    const order = await lookup.fromDatabase(input.orderNo, deadline).catch(() => null);
    return order ? answerOfFound(order) : pending;
  }

  /** A known key answers its order (another quantity: 422, IETF draft); a failed order's key stays spent for good. */
  private async retryWithKey(
    request: CheckoutRequest,
    duplicate: Duplicate,
    deadline: Deadline,
    waitMs?: number,
  ): Promise<CheckoutAnswer> {
    const { orderNo, reservation } = duplicate;
    if (reservation && reservation.quantity !== request.quantity) throw keyReused(request, reservation.quantity);
    // Waiting: attached to the same order (USE_EXISTING), never a second; rebuilt if reserved before pending starts.
    if (waitMs !== undefined && (reservation?.state === 'RESERVED' || reservation?.state === 'CLAIMED')) {
      const rebuilt = () => this.orderInput(request, orderNo, reservation.reservedAtMs);
      const input = duplicate.startInput ?? { ...rebuilt(), unitPriceCents: duplicate.priceCents };
      return this.startAndWait(input, waitMs, deadline);
    }
    if (reservation?.state === 'RESERVED') {
      if (!(await this.replicated(request.sku, deadline))) throw notYetDurable(orderNo);
      return { orderNo, status: 'PENDING' };
    }
    if (reservation?.state === 'CLAIMED') return { orderNo, status: 'PENDING' };
    // Past what a retry can change: its row answers. Unreadable now is not "no order": 503, the key still holds it.
    let order: FoundOrder | null;
    try {
      order = await this.deps.lookup.find(orderNo, deadline);
    } catch (err) {
      throw couldNotConfirm(err);
    }
    if (order) {
      if (order.view.quantity !== request.quantity) throw keyReused(request, order.view.quantity);
      return waitMs !== undefined ? answerOfFound(order) : { orderNo, status: order.view.status };
    }
    if (reservation?.state === 'SOLD') return { orderNo, status: 'PAID' };
    // Released, its row not written yet (the order is closing): the answer is a moment away.
    throw new Refusal(
      'UNAVAILABLE',
      `the order ${orderNo} of this Idempotency-Key is closing; retry shortly`,
      { orderNo },
      1,
    );
  }

  private orderInput(request: CheckoutRequest, orderNo: string, createdAtMs: number): UnpricedInput {
    return {
      orderNo,
      sku: request.sku,
      userId: request.userId,
      quantity: request.quantity,
      ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}),
      createdAt: new Date(createdAtMs).toISOString(),
      paymentWindow: this.deps.config.paymentWindow,
      // The generic webhook needs nothing made per order: its input names no provider.
      ...(this.deps.paymentProvider ? { paymentProvider: this.deps.paymentProvider } : {}),
    };
  }
}

type Duplicate = Extract<ReserveResult, { outcome: 'DUPLICATE' }>;
type UnpricedInput = Omit<OrderInput, 'unitPriceCents'>;
type Reserved = AcceptedReservation & { input: UnpricedInput };

function answerOfFound(found: Pick<FoundOrder, 'view' | 'failureReason'>): CheckoutAnswer {
  if (found.view.status === 'PENDING') return { orderNo: found.view.orderNo, status: 'PENDING' };
  return {
    orderNo: found.view.orderNo,
    status: found.view.status,
    order: found.view,
    ...(found.failureReason ? { failureReason: found.failureReason } : {}),
  };
}

const soldOutError = (sku: string) => new Refusal('SOLD_OUT', `${sku} is sold out`);
const ADMISSION_MESSAGES = {
  NOT_ADMITTED:
    'this sale has a waiting line: join it (POST /api/sales/{sku}/line) and check out with the admission it gives you (header Admission-Token)',
  ADMISSION_INVALID: 'this admission is not one this service gave for your place in the line of',
  ADMISSION_NOT_YOURS: "this admission is another shopper's, or another sale's, not yours for",
  ADMISSION_EXPIRED: 'this admission expired; join the line again for a new place for',
  ADMISSION_USED: 'this admission was already spent on an order of',
} as const;
/** The 403 a checkout without a valid admission gets, for a sale with a waiting line. */
const admissionRefusal = (code: keyof typeof ADMISSION_MESSAGES, sku: string) =>
  new Refusal(
    code,
    code === 'NOT_ADMITTED'
      ? ADMISSION_MESSAGES.NOT_ADMITTED.replace('{sku}', sku)
      : `${ADMISSION_MESSAGES[code]} ${sku}`,
  );
/** Refusals that say Redis did not answer, not what the sale holds. */
const NO_ANSWER: ReadonlySet<string> = new Set(['OUTCOME_UNKNOWN', 'UNAVAILABLE']);
/** A retried checkout whose order could not be read now: 503 with Retry-After (the key still holds the order). */
const couldNotConfirm = (err: unknown) =>
  new Refusal(
    'UNAVAILABLE',
    'could not read the order of this Idempotency-Key now, please retry',
    undefined,
    err instanceof DependencyUnavailableError ? err.retryAfterSeconds : 1,
  );
const keyReused = (request: CheckoutRequest, firstQuantity: number) =>
  new Refusal(
    'IDEMPOTENCY_KEY_REUSED',
    `this Idempotency-Key was first used for ${firstQuantity} unit(s) of ${request.sku}, not ${request.quantity}; use a new key for a new purchase`,
  );
/** REDIS_WAIT_REPLICAS: no replica acked in time; the reservation stands, but a failover now could lose it. */
const notYetDurable = (orderNo: string) =>
  new Refusal(
    'OUTCOME_UNKNOWN',
    `order ${orderNo} is reserved, but no Redis replica confirmed it in time; retry with the same Idempotency-Key, or read the order`,
    { orderNo, statusUrl: `/api/orders/${orderNo}` },
    1,
  );
