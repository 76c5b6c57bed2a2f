/**
 * The pace of workflow starts one process sends to Temporal: every start (the checkout's own, the
 * starter's, Update-with-Start's start half) takes one of `limit` slots, and the limit follows what
 * Temporal can take. It grows by one per `limit` starts answered within `targetLatencyMs`, and is
 * halved (at most once a second) when a start runs out of time, is answered RESOURCE_EXHAUSTED, or
 * takes longer than `slowLatencyMs`: additive increase, multiplicative decrease, between
 * `minLimit` and MAX_CONCURRENT_STARTS. A start answered between the two holds the limit: under a
 * burst the whole machine is slow, and halving then only lowered the rate Temporal was keeping up
 * with (measured: docs/performance.md, "Starts after a burst").
 *
 * A start waits for a slot until its deadline leaves too little time to be worth sending; one that
 * was never sent fails with reason `busy`, one that was sent and ran out of time keeps the guard's
 * own reason (`deadline`): only the first is certain not to have reached Temporal.
 */
import { DependencyUnavailableError, type Deadline } from '../infra/dependency-guard.js';

/** gRPC status RESOURCE_EXHAUSTED: Temporal's rate limits and full queues answer it. */
const GRPC_RESOURCE_EXHAUSTED = 8;

/** A start is sent only with this much of its deadline left. */
export const MIN_START_BUDGET_MS = 200;

/** The limit is halved at most this often: one burst of timeouts is one signal, not many. */
const DECREASE_EVERY_MS = 1_000;

export interface StartPacingOptions {
  /** The most starts in flight (MAX_CONCURRENT_STARTS). */
  maxLimit: number;
  /** The fewest; the limit starts here too. */
  minLimit?: number;
  /** A start answered within this counts towards a larger limit. */
  targetLatencyMs?: number;
  /** A start answered later than this counts as overload, as a timeout does. */
  slowLatencyMs?: number;
}

interface Waiter {
  grant: () => void;
}

export class StartPacing {
  private limitValue: number;
  private active = 0;
  private readonly waiters: Waiter[] = [];
  private lastDecreaseAt = 0;
  private readonly minLimit: number;
  private readonly targetLatencyMs: number;
  private readonly slowLatencyMs: number;

  constructor(private readonly options: StartPacingOptions) {
    this.minLimit = Math.max(1, Math.min(options.minLimit ?? 4, options.maxLimit));
    this.targetLatencyMs = options.targetLatencyMs ?? 500;
    this.slowLatencyMs = options.slowLatencyMs ?? 2_000;
    this.limitValue = Math.max(this.minLimit, Math.min(options.maxLimit, 8));
  }

  /** Starts that may be in flight now. */
  get limit(): number {
    return Math.floor(this.limitValue);
  }

  /**
   * Sends `start` in a slot, once one is free by `admitBy` (default: while `deadline`, the call's
   * own, leaves at least MIN_START_BUDGET_MS); otherwise fails with
   * DependencyUnavailableError('temporal', 'busy') without sending it. A caller that stops waiting
   * sooner than the call may take (the checkout) admits by its own wait and lets the call go on.
   */
  async run<T>(deadline: Deadline, start: () => Promise<T>, admitBy: Deadline = deadline.minus(MIN_START_BUDGET_MS)): Promise<T> {
    await this.acquire(admitBy);
    if (deadline.remainingMs() < MIN_START_BUDGET_MS) {
      this.release();
      throw new DependencyUnavailableError('temporal', 'busy', 1);
    }
    const sentAt = Date.now();
    try {
      const result = await start();
      this.answered(Date.now() - sentAt);
      return result;
    } catch (err) {
      if (isOverloadSignal(err)) this.overloaded();
      throw err;
    } finally {
      this.release();
    }
  }

  private acquire(admitBy: Deadline): Promise<void> {
    if (this.active < this.limit && this.waiters.length === 0) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          clearTimeout(timer);
          this.active++;
          resolve();
        },
      };
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new DependencyUnavailableError('temporal', 'busy', 1));
      }, admitBy.remainingMs());
      this.waiters.push(waiter);
    });
  }

  private release(): void {
    this.active--;
    while (this.active < this.limit && this.waiters.length > 0) this.waiters.shift()?.grant();
  }

  private answered(latencyMs: number): void {
    if (latencyMs <= this.targetLatencyMs) this.limitValue = Math.min(this.options.maxLimit, this.limitValue + 1 / this.limitValue);
    else if (latencyMs > this.slowLatencyMs) this.overloaded();
  }

  private overloaded(): void {
    const now = Date.now();
    if (now - this.lastDecreaseAt < DECREASE_EVERY_MS) return;
    this.lastDecreaseAt = now;
    this.limitValue = Math.max(this.minLimit, this.limitValue / 2);
  }
}

/** A start that ran out of time, or Temporal saying it takes no more now. */
function isOverloadSignal(err: unknown): boolean {
  if (err instanceof DependencyUnavailableError) return err.reason === 'deadline';
  for (let current: unknown = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if ((current as { code?: unknown }).code === GRPC_RESOURCE_EXHAUSTED || /\bRESOURCE_EXHAUSTED\b/.test(current.message)) return true;
  }
  return false;
}
