/** The API's status reads: one lookup per order at a time, cached until its row changes (docs/architecture.md). */
import { LRUCache } from 'lru-cache';
import type { AppConfig } from '../config/index.js';
import { Deadline } from '../infra/dependency-guard.js';
import { isFinal, type OrderStatus, ORDER_NO_PATTERN } from '../model/order-workflow.js';
import type { ChannelListener } from '../infra/redis-subscription.js';
import { Refusal, echo } from '../infra/refusal.js';
import type { FoundOrder, OrderLookup, OrderSource } from './lookup.js';
import type { RedisClient } from '../infra/redis.js';

/** How a read was answered: the cache, another read's lookup, else the lookup's source (not found: `database`). */
export type StatusReadSource = 'cache' | 'coalesced' | OrderSource;
export const STATUS_READ_SOURCES = ['cache', 'coalesced', 'database', 'stores', 'workflow'] as const;

export interface StatusReadObserver {
  statusRead(source: StatusReadSource): void;
  statusWaiters(count: number): void;
}

export interface OrderStatusReaderOptions {
  /** How long an answer that may still change (not PENDING, not final) is served from memory; 0: no cache. */
  cacheMs: number;
  /** The same while the change notifications are live (>= cacheMs); without a subscription, unused. */
  notifiedCacheMs?: number;
  /** Tells the other API processes of a local change (a payment or cancel taken here). */
  notifier?: OrderChangeNotifier;
  maxEntries: number;
  maxWaiters: number;
  /** How long one read may take (READ_DEADLINE): past it, DependencyUnavailableError. Default 10 s. */
  readTimeoutMs?: number;
  observer?: StatusReadObserver;
}

/** `expiresAt`: Date.now() after which the entry is stale; Infinity for final states. */
type CachedOrder = { order: FoundOrder; expiresAt: number };

/** A waiting PENDING order is re-read this often: persistence takes tens of milliseconds. */
const PENDING_RECHECK_MS = 250;
/** After a change, no notifications: 100, 200, 400… ms up to the max (a fixed 100: docs/performance.md). */
const CHANGING_RECHECK_MS = 100;
const CHANGING_RECHECK_MAX_MS = 1_000;
/** A waiting AWAITING_PAYMENT order is re-read this often when the cache is off. */
const UNCACHED_RECHECK_MS = 1_000;
/** How long after a change a waiting order is re-read as above (then at its usual pace). */
const CHANGING_FAST_RECHECK_FOR_MS = 30_000;

export class OrderStatusReader {
  private readonly cache: LRUCache<string, CachedOrder> | null;
  /** The lookup under way per order; a read finds its `answer` and shares it. */
  private readonly inflight = new Map<string, { answer: Promise<FoundOrder | null> }>();
  /** Orders a change was announced for, with when: re-read at a quicker pace for a while after (recheckMs). */
  private readonly changing: LRUCache<string, number>;
  private readonly wakers = new Map<string, Set<() => void>>();
  private waiters = 0;
  /** Set by stopWaits: the process is shutting down. */
  stopped = false;
  /** Whether the change notifications are live; `epoch` counts their ups and downs. */
  private notified = false;
  private epoch = 0;

  constructor(
    private readonly lookup: Pick<OrderLookup, 'find'>,
    private readonly options: OrderStatusReaderOptions,
  ) {
    this.cache = options.cacheMs > 0 ? new LRUCache<string, CachedOrder>({ max: options.maxEntries }) : null;
    this.changing = new LRUCache<string, number>({ max: Math.max(1_000, Math.min(options.maxEntries, 100_000)) });
  }

  /** The reader configured by STATUS_CACHE_MS, STATUS_CACHE_MAX_ENTRIES and STATUS_LONG_POLL_MAX_WAITERS. */
  static fromConfig(
    lookup: Pick<OrderLookup, 'find'>,
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
    return this.lookUp(orderNo);
  }

  private lookUp(orderNo: string): Promise<FoundOrder | null> {
    const startedAt = Date.now();
    // Long-lived only if notifications were live for the whole read (no drop in between).
    const epoch = this.notified ? this.epoch : -1;
    const flight = { answer: Promise.resolve<FoundOrder | null>(null) };
    flight.answer = (async () => {
      let source: StatusReadSource = 'database';
      try {
        const deadline = Deadline.in(this.options.readTimeoutMs ?? 10_000);
        const found = await this.lookup.find(orderNo, deadline);
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

  /** Final: for good; else (not PENDING) for the TTL, not while an announced change is due, never past its deadline. */
  private remember(orderNo: string, found: FoundOrder | null, startedAt: number, notified: boolean): void {
    if (!found || !this.cache || found.source === 'workflow') return; // the row is ahead of it
    const status = found.view.status;
    if (status === 'PENDING') return;
    if (isFinal(status)) {
      this.changing.delete(orderNo);
      this.cache.set(orderNo, { order: found, expiresAt: Infinity });
      return;
    }
    // A change was announced and the order still shows open: read again until it shows decided.
    if (status === 'AWAITING_PAYMENT' && this.changing.has(orderNo)) return;
    this.changing.delete(orderNo);
    // Its payment at the provider is on its way (a moment after persisting): read again until it shows.
    if (status === 'AWAITING_PAYMENT' && found.view.paymentProvider && !found.view.paymentIntent) return;
    const bound = status === 'AWAITING_PAYMENT' ? Date.parse(found.view.paymentDeadline) : Infinity;
    const expiresAt = Math.min(startedAt + this.ttl(notified), bound);
    if (expiresAt > Date.now()) this.cache.set(orderNo, { order: found, expiresAt });
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

  /** Long-poll: the order once its status differs from `from` (null: none), else at `timeoutMs`; `signal`: gone. */
  async waitForChange(
    orderNo: string,
    from: OrderStatus,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<{ order: FoundOrder | null; changed: boolean }> {
    if (this.waiters >= this.options.maxWaiters)
      throw new Refusal('UNAVAILABLE', 'too many status waits on this server; retry shortly', undefined, 1);
    this.waiters++;
    this.options.observer?.statusWaiters(this.waiters);
    try {
      const deadline = Date.now() + timeoutMs;
      let order = await this.readWatched(orderNo, signal);
      while (order && order.view.status === from && !this.stopped && !signal?.aborted && Date.now() < deadline) {
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

  /** Shutdown: every wait answers now with the order as it is, and new waits answer at once. */
  stopWaits(): void {
    this.stopped = true;
    for (const wakers of this.wakers.values()) for (const wake of wakers) wake();
  }

  private recheckMs(order: FoundOrder): number {
    const { status, orderNo, paymentDeadline } = order.view;
    const changedAt = this.changing.get(orderNo);
    const sinceChange = changedAt === undefined ? Infinity : Date.now() - changedAt;
    if (sinceChange < CHANGING_FAST_RECHECK_FOR_MS) {
      // Notifications live: the close's announcement wakes the wait; a second apart in case it is lost.
      if (this.notified) return CHANGING_RECHECK_MAX_MS;
      return Math.min(Math.max(sinceChange, CHANGING_RECHECK_MS), CHANGING_RECHECK_MAX_MS);
    }
    if (status === 'PENDING') return PENDING_RECHECK_MS;
    // Final: it never changes; wait for the timeout (or a wake).
    if (isFinal(status)) return Infinity;
    // Look again just after the deadline, then as while PENDING until the order is closed.
    const untilDeadline = status === 'AWAITING_PAYMENT' ? Date.parse(paymentDeadline) - Date.now() : Infinity;
    if (untilDeadline <= 0) return PENDING_RECHECK_MS;
    // Notifications live: a change wakes the wait; the sleep is bounded like a cached answer in case one is lost.
    return Math.min(this.ttl(this.notified) || UNCACHED_RECHECK_MS, untilDeadline + 10);
  }

  private ttl(notified: boolean): number {
    return notified ? (this.options.notifiedCacheMs ?? this.options.cacheMs) : this.options.cacheMs;
  }

  /** A long-poll's read: a change announced meanwhile starts another read (the first may predate it, and take long). */
  async readWatched(orderNo: string, signal?: AbortSignal): Promise<FoundOrder | null> {
    for (;;) {
      const change = this.nextChange(orderNo, signal);
      const reading = this.read(orderNo);
      const woken = await Promise.race([
        reading.catch(() => undefined).then(() => false),
        change.happened.then(() => true),
      ]);
      change.cancel();
      if (!woken || signal?.aborted || this.stopped) return reading;
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

  /** `happened`: the order's next change, the stop or the abort; `cancel` resolves it too and forgets the waker. */
  private nextChange(orderNo: string, signal?: AbortSignal): { happened: Promise<void>; cancel: () => void } {
    const ownWakers = this.wakers.get(orderNo) ?? new Set();
    this.wakers.set(orderNo, ownWakers);
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

/** The shopper's own order: ORDER_NOT_FOUND when there is none (or cannot be), FORBIDDEN when someone else's. */
export async function findOwnOrder(
  orders: OrderStatusReader,
  orderNo: string,
  userId: string,
  /** A long-poll's first read: a change meanwhile is read at once (OrderStatusReader.readWatched). */
  options: { forWait?: boolean } = {},
): Promise<FoundOrder> {
  // A running order that does not answer in time throws DependencyUnavailableError: 503, retry.
  const order = ORDER_NO_PATTERN.test(orderNo)
    ? await (options.forWait ? orders.readWatched(orderNo) : orders.read(orderNo))
    : null;
  if (!order) throw new Refusal('ORDER_NOT_FOUND', `no order ${echo(orderNo)}`);
  if (order.userId !== userId) throw new Refusal('FORBIDDEN', 'this order belongs to another shopper');
  return order;
}

/** Where an order's change is announced; the message is the order number. */
export const ORDER_CHANGED_CHANNEL = 'flash:order-changed';

/** "This order's row changed": readers ask again, so answers that may still change can be cached long. */
export class OrderChangeNotifier {
  constructor(private readonly redis: RedisClient) {}

  async publish(orderNo: string): Promise<void> {
    await this.redis.publish(ORDER_CHANGED_CHANNEL, orderNo);
  }
}
