/**
 * One process's starts to Temporal in AIMD slots; an answer between the two latencies holds the limit, as halving
 * under a burst only lowered the rate Temporal kept up with (docs/performance.md). Only `busy` surely never ran.
 */
import { DependencyUnavailableError, type Deadline } from '../infra/dependency-guard.js';
import { hasGrpcStatus } from '../infra/temporal-connection.js';

/** A start is sent only with this much of its deadline left. */
const MIN_START_BUDGET_MS = 200;
/** The limit is halved at most this often: one burst of timeouts is one signal, not many. */
const DECREASE_EVERY_MS = 1_000;
/** The fewest starts in flight (the most is MAX_CONCURRENT_STARTS); the limit starts at 8 at most. */
const MIN_LIMIT = 4;
/** A start answered within this counts towards a larger limit; later than SLOW_MS, as overload (as a timeout does). */
const TARGET_LATENCY_MS = 500;
const SLOW_MS = 2_000;
/** A task backlog older than this counts as overload. */
const MAX_BACKLOG_AGE_MS = 2_000;

export class StartPacing {
  private limitValue: number;
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  private lastDecreaseAt = 0;
  private readonly minLimit: number;

  constructor(private readonly options: { maxLimit: number }) {
    this.minLimit = Math.max(1, Math.min(MIN_LIMIT, options.maxLimit));
    this.limitValue = Math.max(this.minLimit, Math.min(options.maxLimit, 8));
  }

  get limit(): number {
    return Math.floor(this.limitValue);
  }

  /** Sends `start` in a slot free by `admitBy`, else throws DependencyUnavailableError('temporal', 'busy') unsent. */
  async run<T>(
    deadline: Deadline,
    start: () => Promise<T>,
    admitBy: Deadline = deadline.minus(MIN_START_BUDGET_MS),
  ): Promise<T> {
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
      // It ran out of time, or Temporal says it takes no more now.
      const overload =
        err instanceof DependencyUnavailableError
          ? err.reason === 'deadline'
          : hasGrpcStatus(err, 'RESOURCE_EXHAUSTED');
      if (overload) this.overloaded();
      throw err;
    } finally {
      this.release();
    }
  }

  /** Free slots once at least one is (in arrival order with waiting starts): how many pending starts to take now. */
  async room(): Promise<number> {
    if (this.active >= this.limit || this.waiters.length > 0)
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    return Math.max(1, this.limit - this.active);
  }

  /** Temporal's approximate backlog age: past MAX_BACKLOG_AGE_MS the pipeline is behind, and fewer starts are sent. */
  backlogAge(ageMs: number): void {
    if (ageMs > MAX_BACKLOG_AGE_MS) this.overloaded();
  }

  private acquire(admitBy: Deadline): Promise<void> {
    if (this.active < this.limit && this.waiters.length === 0) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = () => {
        clearTimeout(timer);
        this.active++;
        resolve();
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
    this.grant();
  }

  /** Lets waiters in while there is room (a room() waiter takes no slot: those are all told at once). */
  private grant(): void {
    while (this.active < this.limit && this.waiters.length > 0) this.waiters.shift()?.();
  }

  private answered(latencyMs: number): void {
    if (latencyMs <= TARGET_LATENCY_MS) {
      this.limitValue = Math.min(this.options.maxLimit, this.limitValue + 1 / this.limitValue);
      this.grant();
    } else if (latencyMs > SLOW_MS) this.overloaded();
  }

  private overloaded(): void {
    const now = Date.now();
    if (now - this.lastDecreaseAt < DECREASE_EVERY_MS) return;
    this.lastDecreaseAt = now;
    this.limitValue = Math.max(this.minLimit, this.limitValue / 2);
  }
}
