/** The worker's starter of pending starts: one per sale (a lease), woken by reserve.lua; paced; it releases nothing. */
import { randomUUID } from 'node:crypto';
import { Deadline } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import type { ChannelListener } from '../infra/redis-subscription.js';
import { inTrace } from '../infra/tracing.js';
import type { PromiseQueue } from '../redis/promise-queue.js';
import type { Promised, RedisInventory } from '../redis/inventory.js';
import type { OrderWorkflowClient } from './workflow-client.js';
import type { StartPacing } from './start-pacing.js';

/** `eager`: asked per start; an eager start takes its first task here and pins the order to this worker's version. */
export type PromiseStarterOptions = { eager: () => boolean };

/** How often the pipeline's active sales are visited without being woken, and the task queue's backlog age read. */
const INTERVAL_MS = 1_000;
const BACKLOG_EVERY_MS = 2_000;
const START_TIMEOUT_MS = 5_000;
/** A sale's lease: renewed at every visit, so another process takes over within this after its owner dies. */
const LEASE_MS = 5_000;

/** A pending start handed out is due again after this, should its start never report (the process died). */
const RECHECK_MS = 10_000;
/** A pending start older than this is started only once the stores say the order has no row. */
const STALE_PROMISE_MS = 10 * 60_000;
/** Backoff of a pending start whose start failed: 1 s doubling to 10 s. */
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 10_000;
/** Sales that reserved within this are visited; older pending starts are the reconciler's (to start or expire). */
const HORIZON_MS = 15 * 60_000;

export interface PromiseStarterObserver {
  /** One start this starter sent: its outcome, how long it took, whether Temporal handed the first task back too. */
  started(outcome: 'STARTED' | 'ALREADY_CLOSED' | 'FAILED', ms: number, eager: boolean): void;
  /** Pending starts in the sales this starter holds the lease of (as of each visit). */
  pending(count: number): void;
  /** The pacing's limit and the task backlog's age, as last read. */
  pacing(limit: number, backlogAgeMs: number): void;
}

export class PromiseStarter {
  private readonly owner = `starter-${randomUUID()}`;
  /** Sales being visited now; `again`: woken meanwhile, so visited once more. */
  private readonly visiting = new Map<string, { again: boolean }>();
  /** Sales left alone until then (every start failed: another process may do better). */
  private readonly pausedUntil = new Map<string, number>();
  private readonly pendingBySale = new Map<string, number>();
  private readonly attempts = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(
    private readonly deps: {
      /** Unguarded: the starter's calls are its own, bounded by the client's command timeout. */
      inventory: RedisInventory;
      promises: PromiseQueue;
      /** On the worker's own connection, so its starts can be eager. */
      orders: OrderWorkflowClient;
      pacing: StartPacing;
      /** The task queue's backlog age in ms (DescribeTaskQueue), read every BACKLOG_EVERY_MS. */
      backlogAgeMs: () => Promise<number>;
      /** Asked before a stale pending start is sent: an order with a row is not started again. */
      hasOrderRow: (orderNo: string) => Promise<boolean>;
      logger: Logger;
      observer?: PromiseStarterObserver;
    },
    private readonly options: PromiseStarterOptions,
  ) {}

  /** Visits every active sale now, then every INTERVAL_MS, and reads the backlog's age. */
  start(): void {
    if (this.timers.length > 0 || this.stopped) return;
    const every = (ms: number, run: () => void) => this.timers.push(setInterval(run, ms).unref());
    every(INTERVAL_MS, () => void this.visitActiveSales());
    every(BACKLOG_EVERY_MS, () => void this.readBacklog());
    void this.visitActiveSales();
  }

  /** Stops visiting; starts already sent are waited for. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    await Promise.allSettled([...this.inFlight]);
  }

  /** A new pending start of `sku` (reserve.lua's message): visited at once. */
  wake(sku: string): void {
    if (this.stopped || (this.pausedUntil.get(sku) ?? 0) > Date.now()) return;
    const visit = this.visiting.get(sku);
    if (visit) visit.again = true;
    else void this.track(this.visit(sku));
  }

  /** What the starter needs from the worker's Redis subscription: wakes, and a full visit when it is live again. */
  listener(): ChannelListener {
    return {
      message: (sku) => this.wake(sku),
      listening: (live) => {
        if (live) void this.visitActiveSales();
      },
    };
  }

  private async visitActiveSales(): Promise<void> {
    try {
      // Marked by the API's clock, which /readyz keeps near Redis's; this process's may be anywhere.
      const sales = await this.deps.inventory.activeSales((await this.deps.inventory.clockMs()) - HORIZON_MS);
      const active = new Set(sales.map((sale) => sale.sku));
      for (const sku of this.pendingBySale.keys()) if (!active.has(sku)) this.pendingBySale.delete(sku);
      for (const sku of active) this.wake(sku);
    } catch (err) {
      this.deps.logger.warn({ err: describe(err) }, 'order starter: could not read the active sales this round');
    }
  }

  /** Starts due pending starts as the pacing has room, until none is due or another process holds the lease. */
  private async visit(sku: string): Promise<void> {
    const state = { again: false };
    this.visiting.set(sku, state);
    const { promises, pacing, logger } = this.deps;
    const starts: Array<Promise<boolean>> = [];
    try {
      for (;;) {
        state.again = false;
        const room = await pacing.room();
        if (this.stopped) return;
        const taken = await promises.takeDueStarts(sku, this.owner, {
          leaseMs: LEASE_MS,
          limit: room,
          recheckMs: RECHECK_MS,
        });
        if (!taken.leased) {
          this.pendingBySale.delete(sku);
          break;
        }
        this.pendingBySale.set(sku, taken.pending);
        this.deps.observer?.pending([...this.pendingBySale.values()].reduce((sum, n) => sum + n, 0));
        for (const promised of taken.due) starts.push(this.track(this.startOne(promised)));
        if (taken.due.length < room && !state.again) break;
      }
    } catch (err) {
      logger.warn({ err: describe(err), sku }, 'order starter: could not take the sale’s promises this round');
    } finally {
      this.visiting.delete(sku);
    }
    // Every start of this visit failed: Temporal does not answer this process; let another one try.
    const outcomes = await Promise.all(starts);
    if (outcomes.length > 0 && outcomes.every((ok) => !ok)) {
      this.pausedUntil.set(sku, Date.now() + 2 * LEASE_MS);
      await promises.releaseStarterLease(sku, this.owner).catch(() => undefined);
    }
  }

  /** In its checkout's trace when sampled; true when the workflow now exists (or has closed). */
  private async startOne({ input, trace }: Promised): Promise<boolean> {
    const { promises, orders, observer, logger } = this.deps;
    const sentAt = Date.now();
    try {
      if (sentAt - Date.parse(input.createdAt) > STALE_PROMISE_MS && (await this.deps.hasOrderRow(input.orderNo))) {
        await promises.dropStartEntry(input.sku, input.orderNo);
        return true;
      }
      const { outcome, eager } = await inTrace(trace, () =>
        orders.startEagerly(input, Deadline.in(START_TIMEOUT_MS), this.options.eager()),
      );
      observer?.started(outcome, Date.now() - sentAt, eager);
      this.attempts.delete(input.orderNo);
      // The workflow exists (or has closed, and the reconciler aligns its reservation): no start is due again.
      await promises.dropStartEntry(input.sku, input.orderNo).catch(() => undefined);
      return true;
    } catch (err) {
      observer?.started('FAILED', Date.now() - sentAt, false);
      const attempt = (this.attempts.get(input.orderNo) ?? 0) + 1;
      this.attempts.set(input.orderNo, attempt);
      if (this.attempts.size > 100_000) this.attempts.clear();
      logger.debug({ orderNo: input.orderNo, attempt, err: describe(err) }, 'order start failed; due again later');
      const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt - 1, 4)) * (0.8 + Math.random() * 0.4);
      await promises.retryStartLater(input.sku, input.orderNo, delay).catch(() => undefined);
      return false;
    }
  }

  private async readBacklog(): Promise<void> {
    try {
      const ageMs = await this.deps.backlogAgeMs();
      this.deps.pacing.backlogAge(ageMs);
      this.deps.observer?.pacing(this.deps.pacing.limit, ageMs);
    } catch (err) {
      this.deps.logger.debug({ err: describe(err) }, 'order starter: could not read the task backlog');
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    void promise.finally(() => this.inFlight.delete(promise)).catch(() => undefined);
    return promise;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
