/**
 * The owner of promised orders (docs/fault-tolerance.md, "A reservation's owners"): it starts the
 * OrderWorkflow of every reservation whose checkout did not start it, run by each API process (so
 * a frozen worker does not stop it). Two sources, both through the process's start pacing:
 *
 * - `startSoon(input)`: the checkout's own start did not fit its short budget; started in the
 *   background right away, best effort (the process may die: Redis still holds the promise);
 * - Redis: every `intervalMs`, for each sale whose starter lease this process holds (or takes),
 *   the promises due (their handoff passed, or their retry is due), oldest first.
 *
 * A start that failed is due again after a backoff; one answered ALREADY_CLOSED leaves the entry
 * to the reconciler (the order ended; it aligns the reservation with the order's row). Nothing here
 * ever releases a unit: a reserved unit is a promise.
 */
import { randomUUID } from 'node:crypto';
import { Deadline } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import type { Store } from '../db/store.js';
import type { OrderClient } from './client.js';
import type { OrderInput } from './contract.js';

export interface OrderStarterOptions {
  /** How often the sales' promises are looked at. */
  intervalMs: number;
  /** How long one start may take. */
  startTimeoutMs: number;
  /** The starter lease of a sale: renewed every interval, so another process takes over within this after one dies. */
  leaseMs: number;
  /** Promises taken from one sale per interval at most. */
  batch: number;
  /** Background starts (startSoon) held in memory at most; beyond, Redis's entries are the backstop. */
  maxQueued: number;
}

const DEFAULTS: OrderStarterOptions = { intervalMs: 250, startTimeoutMs: 5_000, leaseMs: 5_000, batch: 200, maxQueued: 10_000 };

/** How long before a started order whose workflow has not claimed its reservation is started again (idempotent). */
const START_RECHECK_MS = 30_000;
/** A promise older than this is started only once MySQL says the order has no row. */
const STALE_PROMISE_MS = 10 * 60_000;
/** Backoff of a promise whose start failed. */
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 10_000;
/** Sales that reserved within this are looked at; older promises are the reconciler's (it starts or expires them). */
const STARTER_HORIZON_MS = 15 * 60_000;
/** A sale with nothing pending and no new reservation is looked at again after this. */
const IDLE_SALE_REVISIT_MS = 10_000;

export interface OrderStarterObserver {
  /** A start the starter sent: its outcome. */
  orderStartedByStarter(outcome: 'STARTED' | 'ALREADY_CLOSED' | 'FAILED'): void;
  /** Promises not started yet, summed over the sales this process holds the lease of. */
  promisesPending(count: number): void;
}

export class OrderStarter {
  private readonly options: OrderStarterOptions;
  private readonly owner = `starter-${randomUUID()}`;
  private readonly queued = new Map<string, OrderInput>();
  private readonly attempts = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private draining = false;
  private stopped = false;
  /** Per sale: when this process last took its due promises, and how many were pending then. */
  private readonly visits = new Map<string, { at: number; pending: number; pausedUntil: number }>();

  constructor(
    private readonly deps: {
      /** Unguarded: the starter's calls are its own, not a request's; each is bounded by the client's command timeout. */
      inventory: RedisInventory;
      orders: OrderClient;
      /**
       * Asked before a stale promise (older than STALE_PROMISE_MS) is started: a workflow id can be
       * used again once its closed run is gone from Temporal, so an order with a row is not started.
       */
      store?: Pick<Store, 'getOrder'>;
      logger?: Logger;
      observer?: OrderStarterObserver;
    },
    options: Partial<OrderStarterOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Starts looking at the sales' promises every interval (startApi runs it). */
  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => {
        this.running = undefined;
      });
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** The checkout could not start this order within its budget: start it now, in the background. */
  startSoon(input: OrderInput): void {
    if (this.stopped || this.queued.size >= this.options.maxQueued) return;
    this.queued.set(input.orderNo, input);
    if (!this.draining) void this.drainQueued();
  }

  private async drainQueued(): Promise<void> {
    this.draining = true;
    try {
      while (this.queued.size > 0 && !this.stopped) {
        // As many at once as the pacing lets through; each waits for its slot.
        const batch = [...this.queued.values()].slice(0, this.options.batch);
        for (const input of batch) this.queued.delete(input.orderNo);
        await Promise.all(batch.map((input) => this.startOne(input, { rescheduleOnFailure: false })));
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * One round over the sales: the promises due in each sale this process holds (or takes) the
   * lease of. A process whose Temporal is unavailable takes no lease; one whose starts of a sale all
   * failed this round gives its lease up and leaves the sale alone for two leases, so a process
   * whose Temporal answers takes it over.
   */
  async tick(): Promise<void> {
    const { inventory, orders, logger, observer } = this.deps;
    let pending = 0;
    try {
      for (const sku of await this.salesToVisit()) {
        if (this.stopped) return;
        if (!orders.temporalAvailable()) break;
        const taken = await inventory.takeDueStarts(sku, this.owner, { leaseMs: this.options.leaseMs, limit: this.options.batch, recheckMs: START_RECHECK_MS });
        if (!taken.leased) {
          this.visits.set(sku, { at: Date.now(), pending: 0, pausedUntil: 0 });
          continue;
        }
        pending += taken.pending;
        const started = await Promise.all(taken.due.map((input) => this.startOne(input, { rescheduleOnFailure: true })));
        const allFailed = started.length > 0 && started.every((ok) => !ok);
        if (allFailed) await inventory.releaseStarterLease(sku, this.owner);
        this.visits.set(sku, { at: Date.now(), pending: taken.pending, pausedUntil: allFailed ? Date.now() + 2 * this.options.leaseMs : 0 });
      }
      observer?.promisesPending(pending);
    } catch (err) {
      logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'order starter: could not read the promises this round');
    }
  }

  /**
   * The sales worth a look this round: those with promises pending at the last look, those that
   * reserved since, and the others every IDLE_SALE_REVISIT_MS (a sale another process holds the
   * lease of is idle here, so its owner's death is noticed within that).
   */
  private async salesToVisit(): Promise<string[]> {
    const now = Date.now();
    const sales = await this.deps.inventory.activeSales(now - STARTER_HORIZON_MS);
    const active = new Set(sales.map((sale) => sale.sku));
    for (const sku of this.visits.keys()) if (!active.has(sku)) this.visits.delete(sku);
    return sales
      .filter(({ sku, lastReservedAtMs }) => {
        const visit = this.visits.get(sku);
        if (visit && now < visit.pausedUntil) return false;
        return !visit || visit.pending > 0 || lastReservedAtMs >= visit.at - 1_000 || now - visit.at >= IDLE_SALE_REVISIT_MS;
      })
      .map((sale) => sale.sku);
  }

  /** Starts one promised order; whether the start succeeded (or found the order closed). */
  private async startOne(input: OrderInput, { rescheduleOnFailure }: { rescheduleOnFailure: boolean }): Promise<boolean> {
    const { inventory, orders, logger, observer, store } = this.deps;
    try {
      if (Date.now() - Date.parse(input.createdAt) > STALE_PROMISE_MS) {
        if (!store) throw new Error('a stale promise is started only after its row is looked up');
        if (await store.getOrder(input.orderNo)) {
          await inventory.dropStartEntry(input.sku, input.orderNo);
          return true;
        }
      }
      const outcome = await orders.start(input, Deadline.in(this.options.startTimeoutMs));
      this.attempts.delete(input.orderNo);
      observer?.orderStartedByStarter(outcome);
      // Closed before it claimed its reservation (or a restart of a finished order): nothing to
      // start; the reconciler aligns the reservation with the order's row.
      if (outcome === 'ALREADY_CLOSED') await inventory.dropStartEntry(input.sku, input.orderNo).catch(() => undefined);
      return true;
    } catch (err) {
      observer?.orderStartedByStarter('FAILED');
      const attempt = (this.attempts.get(input.orderNo) ?? 0) + 1;
      this.attempts.set(input.orderNo, attempt);
      if (this.attempts.size > this.options.maxQueued) this.attempts.clear();
      logger?.debug({ orderNo: input.orderNo, attempt, err: err instanceof Error ? err.message : String(err) }, 'order start failed; due again later');
      if (rescheduleOnFailure) {
        const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt - 1, 4)) * (0.8 + Math.random() * 0.4);
        await inventory.retryStartLater(input.sku, input.orderNo, delay).catch(() => undefined);
      }
      return false;
    }
  }
}
