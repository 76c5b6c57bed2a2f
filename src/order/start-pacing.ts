/**
 * StartPacing: the starts one process sends to Temporal, in `limit` slots (AIMD between `minLimit` and `maxLimit`),
 * halved on a timeout, RESOURCE_EXHAUSTED, a slow answer or an old task backlog. An answer between the two latencies
 * holds the limit: under a burst halving only lowered the rate Temporal kept up with (docs/performance.md).
 * A start never sent fails `busy`; one sent that ran out of time keeps `deadline`: only a `busy` one surely never ran.
 */
import { DependencyUnavailableError, type Deadline } from '../infra/dependency-guard.js';
import { hasGrpcStatus } from '../infra/temporal-connection.js';

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
  /** A task backlog older than this counts as overload. */
  maxBacklogAgeMs?: number;
}

export class StartPacing {
  private limitValue: number;
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  private lastDecreaseAt = 0;
  private readonly minLimit: number;
  private readonly targetLatencyMs: number;
  private readonly slowLatencyMs: number;
  private readonly maxBacklogAgeMs: number;

  constructor(private readonly options: StartPacingOptions) {
    this.minLimit = Math.max(1, Math.min(options.minLimit ?? 4, options.maxLimit));
    this.targetLatencyMs = options.targetLatencyMs ?? 500;
    this.slowLatencyMs = options.slowLatencyMs ?? 2_000;
    this.maxBacklogAgeMs = options.maxBacklogAgeMs ?? 2_000;
    this.limitValue = Math.max(this.minLimit, Math.min(options.maxLimit, 8));
  }

  /** Starts that may be in flight now. */
  get limit(): number {
    return Math.floor(this.limitValue);
  }

  /** Starts in flight now. */
  get inFlight(): number {
    return this.active;
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
      if (isOverloadSignal(err)) this.overloaded();
      throw err;
    } finally {
      this.release();
    }
  }

  /** Free slots once at least one is (in arrival order with waiting starts): how many promises to take now. */
  async room(): Promise<number> {
    if (this.active >= this.limit || this.waiters.length > 0)
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    return Math.max(1, this.limit - this.active);
  }

  /** Temporal's approximate backlog age: past maxBacklogAgeMs the pipeline is behind, and fewer starts are sent. */
  backlogAge(ageMs: number): void {
    if (ageMs > this.maxBacklogAgeMs) this.overloaded();
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
    if (latencyMs <= this.targetLatencyMs) {
      this.limitValue = Math.min(this.options.maxLimit, this.limitValue + 1 / this.limitValue);
      this.grant();
    } else if (latencyMs > this.slowLatencyMs) this.overloaded();
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
  return hasGrpcStatus(err, 'RESOURCE_EXHAUSTED');
}
