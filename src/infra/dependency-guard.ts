/**
 * Deadlines and per-dependency circuit breakers (cockatiel) for calls on a request's path. A timed-out call may
 * still take effect later: callers treat its outcome as unknown (docs/fault-tolerance.md, "A hung dependency").
 */
import {
  BrokenCircuitError,
  CircuitState,
  circuitBreaker,
  handleWhen,
  type CircuitBreakerPolicy,
  type IBreaker,
} from 'cockatiel';
import { QuietError } from './refusal.js';

/** What the API's readiness probe checks. */
export const SERVER_NAMES = ['redis', 'mysql', 'temporal'] as const;
export type ServerName = (typeof SERVER_NAMES)[number];

/** `workflows`: the worker answering the order workflows. */
export const DEPENDENCY_NAMES = [...SERVER_NAMES, 'workflows'] as const;
export type DependencyName = (typeof DEPENDENCY_NAMES)[number];

export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
export type BreakerState = (typeof BREAKER_STATES)[number];

/** `busy`: this process already has as many calls to it under way as it allows. */
export type UnavailableReason = 'deadline' | 'breaker-open' | 'failed' | 'busy';

/** An absolute time by which an answer is due. */
export class Deadline {
  constructor(readonly at: number) {}

  static in(ms: number): Deadline {
    return new Deadline(Date.now() + ms);
  }

  remainingMs(now = Date.now()): number {
    return Math.max(0, this.at - now);
  }

  /** The earlier of this and `ms` from now: a step's own bound inside the request's. */
  capped(ms: number | undefined): Deadline {
    if (ms === undefined) return this;
    const cap = Date.now() + ms;
    return cap < this.at ? new Deadline(cap) : this;
  }

  /** Keeps `ms` back for a step that must still run after this one (a compensation). */
  minus(ms: number): Deadline {
    return new Deadline(this.at - ms);
  }
}

/** Answered 503 + Retry-After. No stack (its cause keeps one): an open breaker refuses thousands a second. */
export class DependencyUnavailableError extends QuietError {
  constructor(
    readonly dependency: DependencyName,
    readonly reason: UnavailableReason,
    /** Until the breaker lets a probe through, at least 1 s. */
    readonly retryAfterSeconds: number,
    cause?: unknown,
  ) {
    super(`${dependency} is unavailable (${reason})`, cause === undefined ? undefined : { cause });
    this.name = 'DependencyUnavailableError';
  }
}

/** Implemented by the metrics. */
export interface DependencyObserver {
  breakerStateChanged(dependency: DependencyName, state: BreakerState): void;
  deadlineHit(dependency: DependencyName): void;
  /** Unwell other than by a deadline: a refused connection, an error status. */
  failed(dependency: DependencyName): void;
  refusedByBreaker(dependency: DependencyName): void;
}

export interface DependencyGuardOptions {
  /** Consecutive failures (deadline hits included) that open the breaker… */
  failureThreshold: number;
  /** …once the dependency has also answered no call successfully for this long (default 0). */
  noSuccessForMs?: number;
  halfOpenAfterMs: number;
  /** Each call's own bound, inside the caller's deadline. */
  callTimeoutMs?: number;
  /** Default: all. Protocol answers (workflow not found, Update refused) must not open the breaker. */
  isFailure?: (err: unknown) => boolean;
  observer?: DependencyObserver;
  /** One line per state change, never one per request. */
  log?: (line: { dependency: DependencyName; state: BreakerState; cause?: string }) => void;
}

/** For a call given no deadline; callTimeoutMs may cap it lower. */
const UNBOUNDED_CALL_TIMEOUT_MS = 10_000;

/** setTimeout's longest delay (~24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** From boundBy; through a guard it surfaces as DependencyUnavailableError. */
export class DeadlineExceededError extends Error {
  constructor() {
    super('deadline exceeded');
    this.name = 'DeadlineExceededError';
  }
}

export class DependencyGuard {
  private readonly breaker: CircuitBreakerPolicy;
  private openedAt = 0;
  private probeAdmittedAt = 0;

  constructor(
    readonly name: DependencyName,
    private readonly options: DependencyGuardOptions,
  ) {
    const isFailure = options.isFailure ?? (() => true);
    this.breaker = circuitBreaker(
      handleWhen((err) => err instanceof DeadlineExceededError || isFailure(err)),
      {
        halfOpenAfter: options.halfOpenAfterMs,
        breaker: new StalledBreaker(options.failureThreshold, options.noSuccessForMs ?? 0),
      },
    );
    this.breaker.onStateChange((state) => {
      const named = breakerStateName(state);
      if (named === 'open') this.openedAt = Date.now();
      options.observer?.breakerStateChanged(name, named);
      const failure = this.breaker.lastFailure;
      const cause = named === 'open' && failure && 'error' in failure ? describe(failure.error) : undefined;
      options.log?.({ dependency: name, state: named, ...(cause ? { cause } : {}) });
    });
  }
  /** Never opens: calls are bounded by their deadlines only. */
  static neverOpen(name: DependencyName, isFailure: (err: unknown) => boolean): DependencyGuard {
    return new DependencyGuard(name, { failureThreshold: Number.MAX_SAFE_INTEGER, halfOpenAfterMs: 0, isFailure });
  }

  get state(): BreakerState {
    return breakerStateName(this.breaker.state);
  }

  /** Believed well, no probe pending. */
  get closed(): boolean {
    return this.breaker.state === CircuitState.Closed;
  }

  /** A 503's Retry-After: until the open breaker lets a probe through, at least 1. */
  get retryAfterSeconds(): number {
    const untilProbe = this.openedAt + this.options.halfOpenAfterMs - Date.now();
    return Math.max(1, Math.ceil(untilProbe / 1_000));
  }

  /** Fails a request before it touches anything; once the breaker may probe, one per halfOpenAfterMs passes. */
  assertAvailable(): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.admits() || now - this.probeAdmittedAt < this.options.halfOpenAfterMs) throw this.refused();
    this.probeAdmittedAt = now;
  }

  /** The dependency's answers pass through. `evenWhenOpen` (a payment): runs despite the breaker, uncounted. */
  async call<T>(
    deadline: Deadline | undefined,
    call: () => Promise<T>,
    options: { evenWhenOpen?: boolean } = {},
  ): Promise<T> {
    const bound = (deadline ?? Deadline.in(UNBOUNDED_CALL_TIMEOUT_MS)).capped(this.options.callTimeoutMs);
    if (!this.admits()) {
      if (!options.evenWhenOpen) throw this.refused();
      return boundBy(bound, call).catch((err: unknown) => {
        throw this.unavailableOr(err);
      });
    }
    try {
      return await this.breaker.execute(() => boundBy(bound, call));
    } catch (err) {
      if (err instanceof BrokenCircuitError) throw this.refused();
      throw this.unavailableOr(err);
    }
  }

  private unavailableOr(err: unknown): unknown {
    if (err instanceof DeadlineExceededError) {
      this.options.observer?.deadlineHit(this.name);
      return new DependencyUnavailableError(this.name, 'deadline', 1, err);
    }
    if ((this.options.isFailure ?? (() => true))(err)) {
      this.options.observer?.failed(this.name);
      return new DependencyUnavailableError(this.name, 'failed', 1, err);
    }
    return err;
  }

  // Half-open: no, cockatiel would queue the call behind the probe and a request must not wait.
  private admits(): boolean {
    const state = this.breaker.state;
    if (state === CircuitState.Closed) return true;
    if (state === CircuitState.Open) return Date.now() - this.openedAt >= this.options.halfOpenAfterMs;
    return false;
  }

  private refused(): DependencyUnavailableError {
    this.options.observer?.refusedByBreaker(this.name);
    return new DependencyUnavailableError(this.name, 'breaker-open', this.retryAfterSeconds);
  }
}

// Opens on `threshold` failures in a row only while none succeeds: an overloaded server answers most, a hung one none.
class StalledBreaker implements IBreaker {
  private consecutiveFailures = 0;
  private lastSuccessAt = Date.now();

  constructor(
    private readonly threshold: number,
    private readonly noSuccessForMs: number,
  ) {}

  get state(): unknown {
    return { consecutiveFailures: this.consecutiveFailures, lastSuccessAt: this.lastSuccessAt };
  }

  set state(value: unknown) {
    Object.assign(this, value);
  }

  success(): void {
    this.consecutiveFailures = 0;
    this.lastSuccessAt = Date.now();
  }

  failure(state: CircuitState): boolean {
    this.consecutiveFailures++;
    // A failed probe reopens at once.
    if (state !== CircuitState.Closed) return true;
    return this.consecutiveFailures >= this.threshold && Date.now() - this.lastSuccessAt >= this.noSuccessForMs;
  }
}

/** An API process's guards, built from one configuration. */
export type DependencyGuards = Record<DependencyName, DependencyGuard>;

/** Only calls returning a promise can be bounded. */
export type AsyncMethodName<T> = {
  [K in keyof T]-?: T[K] extends (...args: never[]) => Promise<unknown> ? K : never;
}[keyof T];

/** Each listed method guarded, none else on the type: a Proxy over `async` methods misses a promise-returning one. */
export function guarded<T extends object, K extends AsyncMethodName<T>>(
  target: T,
  guard: DependencyGuard,
  timeoutMs: number,
  methods: readonly K[],
): Pick<T, K> {
  const view: Partial<Pick<T, K>> = {};
  for (const name of methods) {
    // TypeScript cannot follow AsyncMethodName into the body.
    const method = target[name] as (...args: unknown[]) => Promise<unknown>;
    const call = (...args: unknown[]) => guard.call(Deadline.in(timeoutMs), () => method.apply(target, args));
    view[name] = call as T[K];
  }
  return view as Pick<T, K>;
}

/** For waits no breaker counts; the deadline is set after the poll phase (setImmediate): an answer already in wins. */
export async function boundBy<T>(deadline: Deadline, call: () => Promise<T>): Promise<T> {
  const remaining = deadline.remainingMs();
  if (remaining <= 0) throw new DeadlineExceededError();
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => setImmediate(() => settled || reject(new DeadlineExceededError())),
      Math.min(remaining, MAX_TIMER_MS),
    );
  });
  try {
    return await Promise.race([call(), expired]);
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}

function breakerStateName(state: CircuitState): BreakerState {
  if (state === CircuitState.Closed) return 'closed';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'open';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 200) : String(err).slice(0, 200);
}
