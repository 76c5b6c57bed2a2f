/**
 * The API's one read path for an order's status (GET /api/orders/:orderNo, its long-poll, and the
 * shopper's own-order checks of cancel and the dev payment), with its route. Around OrderLookup.find,
 * which asks the running workflow (the truth) or MySQL once it has closed:
 *
 * - single-flight: concurrent reads of one order share one query;
 * - a bounded per-order cache (LRU by entries) whose freshness follows the status: PENDING is never
 *   cached (it is about to change), nor an order whose provider payment is not made yet;
 *   AWAITING_PAYMENT at most `cacheMs` old (from when its query
 *   started) and never past its paymentDeadline; PAID, CANCELLED and FAILED never change, so they
 *   stay until evicted;
 * - `changed(orderNo)`: this process recorded a payment or a cancel; the cached answer and any
 *   query already under way are dropped, open states are not cached again until the order reaches
 *   a final state (the workflow applies a payment a moment after accepting it), and long-poll
 *   waiters of the order are woken to re-read at once. Until then it is read from MySQL first
 *   (OrderLookup.findChanging): a final status there needs no workflow query.
 *
 * Notifications (OrderChangeNotifier, below): changed() also tells the other API processes, and
 * the worker's activities (persistOrder, cancelUnpaidOrder, recordOrderFailure) tell every API process
 * before the workflow shows the new state, so an operator's cancel from the Web UI, a timeout or
 * the reconciler's repair are seen too. While this process's Redis subscription is live (and was
 * when the answer was read), an AWAITING_PAYMENT answer may be served for `notifiedCacheMs`; while
 * it is down, only for `cacheMs` (entries are cut back to that when it drops), because a change
 * could go unnoticed. A lost notification (a publish that failed after the subscription seemed
 * live) is still bounded: by `notifiedCacheMs`. Long-poll waits of open orders likewise sleep until
 * a notification wakes them (bounded the same way), rather than re-reading every `cacheMs`.
 */
import { LRUCache } from 'lru-cache';
import type { AppConfig } from '../config/index.js';
import { Deadline } from '../infra/dependency-guard.js';
import { type OrderStatus, ORDER_NO_PATTERN } from '../model/order-workflow.js';
import type { ChannelListener } from '../infra/redis-subscription.js';
import { Refusal, echo } from '../infra/refusal.js';
import type { FoundOrder, OrderLookup, OrderSource } from './lookup.js';
import type { RedisClient } from '../infra/redis.js';

/**
 * How a read was answered: from the cache, by another read's query (coalesced), else by the lookup, counted by where
 * its answer came from (OrderSource, the `source` its body shows; an order not found counts as `database`).
 */
export type StatusReadSource = 'cache' | 'coalesced' | OrderSource;
export const STATUS_READ_SOURCES: readonly StatusReadSource[] = [
  'cache',
  'coalesced',
  'workflow',
  'database',
  'stores',
];

/** Told of every read and of the number of long-poll waiters (the API's metrics). */
export interface StatusReadObserver {
  statusRead(source: StatusReadSource): void;
  statusWaiters(count: number): void;
}

export interface OrderStatusReaderOptions {
  /** How long an AWAITING_PAYMENT answer may be served from memory; 0 turns the cache off. */
  cacheMs: number;
  /** The same while the change notifications are live (>= cacheMs); without a subscription, unused. */
  notifiedCacheMs?: number;
  /** Tells the other API processes of a local change (a payment or cancel taken here). */
  notifier?: OrderChangeNotifier;
  /** The most orders kept in the cache (least recently used go first). */
  maxEntries: number;
  /** The most concurrent long-poll waits of this process. */
  maxWaiters: number;
  /** How long one read may take (READ_DEADLINE): past it, DependencyUnavailableError. Default 10 s. */
  readTimeoutMs?: number;
  observer?: StatusReadObserver;
}

/** The process already holds `maxWaiters` long-polls: the caller should retry in a second. */
export class TooManyWaitersError extends Refusal {
  constructor(readonly maxWaiters: number) {
    super('UNAVAILABLE', 'too many status waits on this server; retry shortly', undefined, 1);
    this.name = 'TooManyWaitersError';
  }
}

export interface StatusWaitResult {
  /** The order as last read (null: it does not exist). */
  order: FoundOrder | null;
  /** Whether its status differs from the one waited on. */
  changed: boolean;
}

interface CachedOrder {
  order: FoundOrder;
  /** Date.now() after which the entry is stale; Infinity for final states. */
  expiresAt: number;
}

/** A waiting PENDING order is re-read this often: persistence takes tens of milliseconds. */
const PENDING_RECHECK_MS = 250;
/**
 * After a pay or cancel, until the order's status moves (the workflow applies it next). Notifications live: woken by
 * the worker's announcement, at most CHANGING_RECHECK_MAX_MS apart. Without: first re-read this soon, then after as
 * long again as the change has been under way (100, 200, 400… ms), at most CHANGING_RECHECK_MAX_MS apart. A fixed
 * 100 ms made thousands of orders paid at once ten queries a second each while the worker was behind, which put it
 * further behind (docs/performance.md, "Payments at a sale's rate").
 */
const CHANGING_RECHECK_MS = 100;
const CHANGING_RECHECK_MAX_MS = 1_000;
/** A waiting AWAITING_PAYMENT order is re-read this often when the cache is off. */
const UNCACHED_RECHECK_MS = 1_000;
/** How long a read may take when no READ_DEADLINE was given. */
const DEFAULT_READ_TIMEOUT_MS = 10_000;
/** How long after a change a waiting order is re-read as above (then at its usual pace). */
const CHANGING_FAST_RECHECK_FOR_MS = 30_000;

export class OrderStatusReader {
  private readonly cache: LRUCache<string, CachedOrder> | null;
  /** The query under way per order; a read finds its `answer` and shares it. */
  private readonly inflight = new Map<string, { answer: Promise<FoundOrder | null> }>();
  /**
   * Orders paid or cancelled (here or elsewhere) whose final status has not shown yet, with when:
   * kept until it shows, however long the workflow takes to apply the change (a worker away), so
   * an open status read meanwhile is never cached over it. Bounded by entries, not by time.
   */
  private readonly changing: LRUCache<string, number>;
  private readonly wakers = new Map<string, Set<() => void>>();
  private waiters = 0;
  private stopping = false;
  /** Whether the change notifications are live; `epoch` counts their ups and downs. */
  private notified = false;
  private epoch = 0;

  constructor(
    private readonly lookup: Pick<OrderLookup, 'find' | 'findChanging'>,
    private readonly options: OrderStatusReaderOptions,
  ) {
    this.cache = options.cacheMs > 0 ? new LRUCache<string, CachedOrder>({ max: options.maxEntries }) : null;
    this.changing = new LRUCache<string, number>({ max: Math.max(1_000, Math.min(options.maxEntries, 100_000)) });
  }

  /** The reader configured by STATUS_CACHE_MS, STATUS_CACHE_MAX_ENTRIES and STATUS_LONG_POLL_MAX_WAITERS. */
  static fromConfig(
    lookup: Pick<OrderLookup, 'find' | 'findChanging'>,
    config: AppConfig,
    observer?: StatusReadObserver,
    notifier?: OrderChangeNotifier,
  ): OrderStatusReader {
    return new OrderStatusReader(lookup, {
      ...(notifier ? { notifier } : {}),
      cacheMs: config.statusCacheMs,
      notifiedCacheMs: Math.max(config.statusCacheMs, config.statusCacheNotifiedMs),
      maxEntries: config.statusCacheMaxEntries,
      maxWaiters: config.statusLongPollMaxWaiters,
      readTimeoutMs: config.deadlines.readMs,
      ...(observer ? { observer } : {}),
    });
  }

  /** The order as its shopper sees it now (within the cache's bounds); null when it does not exist. */
  read(orderNo: string): Promise<FoundOrder | null> {
    const cached = this.cache?.get(orderNo);
    if (cached) {
      if (Date.now() < cached.expiresAt) {
        this.options.observer?.statusRead('cache');
        return Promise.resolve(cached.order);
      }
      this.cache?.delete(orderNo);
    }
    const running = this.inflight.get(orderNo);
    if (running) {
      this.options.observer?.statusRead('coalesced');
      return running.answer;
    }
    return this.query(orderNo);
  }

  private query(orderNo: string): Promise<FoundOrder | null> {
    const startedAt = Date.now();
    // Long-lived only if notifications were live for the whole read (no drop in between).
    const epoch = this.notified ? this.epoch : -1;
    const flight = { answer: Promise.resolve<FoundOrder | null>(null) };
    flight.answer = (async () => {
      let source: StatusReadSource = 'workflow';
      try {
        const deadline = Deadline.in(this.options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS);
        const found = await (this.changing.has(orderNo)
          ? this.lookup.findChanging(orderNo, deadline)
          : this.lookup.find(orderNo, deadline));
        source = found?.source ?? 'database';
        // Not cached when a local change came in meanwhile (changed() dropped this flight): it may predate it.
        if (this.inflight.get(orderNo) === flight)
          this.remember(orderNo, found, startedAt, this.notified && epoch === this.epoch);
        return found;
      } finally {
        if (this.inflight.get(orderNo) === flight) this.inflight.delete(orderNo);
        this.options.observer?.statusRead(source);
      }
    })();
    this.inflight.set(orderNo, flight);
    return flight.answer;
  }

  private remember(orderNo: string, found: FoundOrder | null, startedAt: number, notified: boolean): void {
    if (!found) return;
    const status = found.view.status;
    if (status === 'PENDING') return;
    if (status === 'AWAITING_PAYMENT') {
      if (!this.cache || this.changing.has(orderNo)) return;
      // Its payment at the provider is on its way (a moment after persisting): read again until it shows.
      if (found.view.paymentProvider && !found.view.paymentIntent) return;
      // What the stores said while the workflow did not answer may lag it: kept for cacheMs only, as without
      // notifications. Not at all would send every waiter's next read to the stores while the workflows' breaker is
      // open (thousands a second in a sale), which kept it open.
      const ttl =
        notified && found.source !== 'stores'
          ? (this.options.notifiedCacheMs ?? this.options.cacheMs)
          : this.options.cacheMs;
      const expiresAt = Math.min(startedAt + ttl, Date.parse(found.view.paymentDeadline));
      if (expiresAt > Date.now()) this.cache.set(orderNo, { order: found, expiresAt });
      return;
    }
    this.changing.delete(orderNo);
    this.cache?.set(orderNo, { order: found, expiresAt: Infinity });
  }

  /** This process took a payment or a cancel of the order: tell the others, then as below. */
  changed(orderNo: string): void {
    // Best effort: the worker's activity that applies the change notifies every process as well.
    this.options.notifier?.publish(orderNo).catch(() => {});
    this.changedElsewhere(orderNo);
  }

  /** The order is changing (here or in another process): forget what was known, wake its waiters. */
  changedElsewhere(orderNo: string): void {
    this.cache?.delete(orderNo);
    this.inflight.delete(orderNo);
    this.changing.set(orderNo, Date.now());
    for (const wake of this.wakers.get(orderNo) ?? []) wake();
  }

  /**
   * Long-poll: resolves as soon as the order's status differs from `from` (at once if it already
   * does), else after `timeoutMs` with the order as it is then. Re-reads through `read` (shared
   * with every other reader of the order) at a cadence that follows the status, and at once when
   * this process changes the order. `signal` ends the wait early (the client went away).
   */
  async waitForChange(
    orderNo: string,
    from: OrderStatus,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<StatusWaitResult> {
    if (this.waiters >= this.options.maxWaiters) throw new TooManyWaitersError(this.options.maxWaiters);
    this.waiters++;
    this.options.observer?.statusWaiters(this.waiters);
    try {
      const deadline = Date.now() + timeoutMs;
      let order = await this.readWatched(orderNo, signal);
      while (order && order.view.status === from && !this.stopping && !signal?.aborted && Date.now() < deadline) {
        await this.pause(orderNo, Math.min(this.recheckMs(order), deadline - Date.now()), signal);
        if (signal?.aborted) break;
        order = await this.readWatched(orderNo, signal);
      }
      return { order, changed: order !== null && order.view.status !== from };
    } finally {
      this.waiters--;
      this.options.observer?.statusWaiters(this.waiters);
    }
  }

  /** What the reader needs from the process's Redis subscription (ORDER_CHANGED_CHANNEL). */
  listener(): ChannelListener {
    return {
      message: (orderNo) => this.changedElsewhere(orderNo),
      listening: (live) => {
        if (live === this.notified) return;
        this.notified = live;
        this.epoch++;
        if (live) return;
        // Waits that slept on the notifications re-read now, then at the pace without them.
        for (const wakers of this.wakers.values()) for (const wake of wakers) wake();
        if (!this.cache) return;
        // Changes may go unnoticed from now on: open answers are served for cacheMs at most.
        const bound = Date.now() + this.options.cacheMs;
        for (const [orderNo, entry] of this.cache.entries()) {
          if (entry.expiresAt > bound && entry.expiresAt !== Infinity)
            this.cache.set(orderNo, { ...entry, expiresAt: bound });
        }
      },
    };
  }

  /** Whether stopWaits was called: the process is shutting down. */
  get stopped(): boolean {
    return this.stopping;
  }

  /** Current long-poll waits of this process. */
  get waiting(): number {
    return this.waiters;
  }

  /** Shutdown: every wait answers now with the order as it is, and new waits answer at once. */
  stopWaits(): void {
    this.stopping = true;
    for (const wakers of this.wakers.values()) for (const wake of wakers) wake();
  }

  private recheckMs(order: FoundOrder): number {
    const { status, orderNo, paymentDeadline } = order.view;
    const changedAt = this.changing.get(orderNo);
    const sinceChange = changedAt === undefined ? Infinity : Date.now() - changedAt;
    if (sinceChange < CHANGING_FAST_RECHECK_FOR_MS) {
      // Notifications live: the worker's closing activity announces the final status once MySQL has it, which wakes
      // the wait; a second apart in case that announcement is lost.
      if (this.notified) return CHANGING_RECHECK_MAX_MS;
      return Math.min(Math.max(sinceChange, CHANGING_RECHECK_MS), CHANGING_RECHECK_MAX_MS);
    }
    if (status === 'PENDING') return PENDING_RECHECK_MS;
    if (status === 'AWAITING_PAYMENT') {
      // The deadline's timer cancels the order: look again just after it, then as while PENDING
      // until the workflow has closed it (never cached past the deadline).
      const untilDeadline = Date.parse(paymentDeadline) - Date.now();
      if (untilDeadline <= 0) return PENDING_RECHECK_MS;
      // Notifications live: every change wakes the wait (changedElsewhere), so it sleeps until the deadline, bounded
      // like a cached answer in case a notification is lost; their loss wakes it to the pace below (listener()).
      const pace = this.notified
        ? (this.options.notifiedCacheMs ?? this.options.cacheMs)
        : this.options.cacheMs > 0
          ? this.options.cacheMs
          : UNCACHED_RECHECK_MS;
      return Math.min(pace || UNCACHED_RECHECK_MS, untilDeadline + 10);
    }
    // Final: it never changes; wait for the timeout (or a wake).
    return Infinity;
  }

  /**
   * The order read now, for a long-poll (its first read too: findOwnOrder). A change of the order announced while
   * the read is out does not wait for it (a workflow query can take most of READ_DEADLINE while the worker is busy,
   * and its answer may predate the change): another read starts at once, which reads the changing order's MySQL row
   * first, and its answer counts instead.
   */
  async readWatched(orderNo: string, signal?: AbortSignal): Promise<FoundOrder | null> {
    for (;;) {
      const change = this.nextChange(orderNo, signal);
      const reading = this.read(orderNo);
      const woken = await Promise.race([
        reading.then(
          () => false,
          () => false,
        ),
        change.happened.then(() => true),
      ]);
      change.cancel();
      if (!woken || signal?.aborted || this.stopping) return reading;
      // Abandoned (it ends by its deadline): only its failure is still to be swallowed.
      reading.catch(() => undefined);
    }
  }

  /** Sleeps `ms`, or until the order is changed here, the process stops or the signal aborts. */
  private async pause(orderNo: string, ms: number, signal?: AbortSignal): Promise<void> {
    const change = this.nextChange(orderNo, signal);
    const timer = setTimeout(change.cancel, Math.max(0, ms));
    await change.happened;
    clearTimeout(timer);
  }

  /**
   * `happened` resolves at the order's next change here (changedElsewhere), the process's stop or the signal's abort;
   * `cancel` resolves it too and forgets the waker.
   */
  private nextChange(orderNo: string, signal?: AbortSignal): { happened: Promise<void>; cancel: () => void } {
    let wakers = this.wakers.get(orderNo);
    if (!wakers) {
      wakers = new Set();
      this.wakers.set(orderNo, wakers);
    }
    const ownWakers = wakers;
    let resolve: () => void = () => {};
    const happened = new Promise<void>((settle) => (resolve = settle));
    const done = () => {
      signal?.removeEventListener('abort', done);
      ownWakers.delete(done);
      if (ownWakers.size === 0 && this.wakers.get(orderNo) === ownWakers) this.wakers.delete(orderNo);
      resolve();
    };
    ownWakers.add(done);
    signal?.addEventListener('abort', done, { once: true });
    return { happened, cancel: done };
  }
}

/**
 * Finds an order for the shopper who owns it: ORDER_NOT_FOUND when there is none (or the number
 * cannot be one), FORBIDDEN when it is someone else's. Through the OrderStatusReader: the API's one
 * read path (single-flight, status-aware cache).
 */
export async function findOwnOrder(
  orders: OrderStatusReader,
  orderNo: string,
  userId: string,
  /** A long-poll's first read: a change meanwhile is read at once (OrderStatusReader.readWatched). */
  options: { forWait?: boolean } = {},
): Promise<FoundOrder> {
  // A running order that does not answer in time is DependencyUnavailableError: 503, retry.
  const order = ORDER_NO_PATTERN.test(orderNo)
    ? await (options.forWait ? orders.readWatched(orderNo) : orders.read(orderNo))
    : null;
  if (!order) throw new Refusal('ORDER_NOT_FOUND', `no order ${echo(orderNo)}`);
  if (order.userId !== userId) throw new Refusal('FORBIDDEN', 'this order belongs to another shopper');
  return order;
}

/**
 * "This order is changing": a Redis pub/sub notification that lets every API process keep an
 * order's AWAITING_PAYMENT answer in its status cache for long (STATUS_CACHE_NOTIFIED_MS) instead
 * of re-asking the workflow every STATUS_CACHE_MS. Sent by whatever changes an open order: the
 * worker's activities (persistOrder, cancelUnpaidOrder, recordOrderFailure, so a timeout, an
 * operator's cancel from the Web UI and the reconciler are covered) and the API process that
 * recorded a payment or a cancel. The workflow stays the truth: a notification only makes the
 * readers ask it again.
 */
/** Where an order's change is announced; the message is the order number. */
export const ORDER_CHANGED_CHANNEL = 'flash:order-changed';

export class OrderChangeNotifier {
  constructor(private readonly redis: RedisClient) {}

  async publish(orderNo: string): Promise<void> {
    await this.redis.publish(ORDER_CHANGED_CHANNEL, orderNo);
  }
}
