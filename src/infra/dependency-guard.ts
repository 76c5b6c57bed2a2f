/**
 * Every answer is bounded: a call to a dependency on a request path runs under a deadline and
 * behind that dependency's circuit breaker (cockatiel). A dependency that hangs (SIGSTOP, a GC
 * pause, a stalled disk) costs a request at most its deadline; once it has failed
 * `failureThreshold` times in a row and answered no call at all for `noSuccessForMs`, its breaker
 * opens and requests that need it fail at once, until a single probe call after `halfOpenAfterMs`
 * finds it well again.
 *
 * A call that ran out of time may still take effect later (the command sits in the hung server's
 * socket): callers treat its outcome as unknown (docs/fault-tolerance.md, "A hung dependency").
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

/** The servers the API talks to: what its readiness probe checks (src/api/routes/operations.ts). */
export const SERVER_NAMES = ['redis', 'mysql', 'temporal'] as const;
export type ServerName = (typeof SERVER_NAMES)[number];

/** What the API depends on: the three servers, and the order workflows answering (the worker). */
export const DEPENDENCY_NAMES = [...SERVER_NAMES, 'workflows'] as const;
export type DependencyName = (typeof DEPENDENCY_NAMES)[number];

export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
export type BreakerState = (typeof BREAKER_STATES)[number];

/**
 * Why a dependency could not be used: it ran out of time, its breaker is open, it failed, or this
 * process already has as many calls to it under way as it allows (busy).
 */
export type UnavailableReason = 'deadline' | 'breaker-open' | 'failed' | 'busy';

/** An absolute time by which an answer is due. */
export class Deadline {
  constructor(readonly at: number) {}

  /** The deadline `ms` from now. */
  static in(ms: number): Deadline {
    return new Deadline(Date.now() + ms);
  }

  remainingMs(now = Date.now()): number {
    return Math.max(0, this.at - now);
  }

  /** The earlier of this deadline and `ms` from now: a step's own bound inside the request's. */
  capped(ms: number | undefined): Deadline {
    if (ms === undefined) return this;
    const cap = Date.now() + ms;
    return cap < this.at ? new Deadline(cap) : this;
  }

  /** `ms` earlier: time kept back for a step that must still run after this one (a compensation). */
  minus(ms: number): Deadline {
    return new Deadline(this.at - ms);
  }
}

/**
 * The dependency did not answer in time, is known to be failing, or failed: answer 503 with Retry-After.
 * Quiet (no stack of its own; a deadline's or a failure's cause keeps its stack): an open breaker
 * refuses thousands of calls a second, and each stack cost more than the refusal (docs/performance.md).
 */
export class DependencyUnavailableError extends QuietError {
  constructor(
    readonly dependency: DependencyName,
    readonly reason: UnavailableReason,
    /** When a retry has a chance: the time left until the breaker lets a probe through, at least 1 s. */
    readonly retryAfterSeconds: number,
    cause?: unknown,
  ) {
    super(`${dependency} is unavailable (${reason})`, cause === undefined ? undefined : { cause });
    this.name = 'DependencyUnavailableError';
  }
}

/** Told of breaker state changes, deadline hits, failures and calls refused by an open breaker (the metrics). */
export interface DependencyObserver {
  breakerStateChanged(dependency: DependencyName, state: BreakerState): void;
  deadlineHit(dependency: DependencyName): void;
  /**
   * A call failed in a way that says the dependency is unwell (not a deadline: a refused connection, an error status).
   */
  failed(dependency: DependencyName): void;
  refusedByBreaker(dependency: DependencyName): void;
}

export interface DependencyGuardOptions {
  /** Consecutive failures (deadline hits included) that open the breaker… */
  failureThreshold: number;
  /** …once the dependency has also answered no call successfully for this long (default 0). */
  noSuccessForMs?: number;
  /** How long the breaker stays open before one call may probe the dependency. */
  halfOpenAfterMs: number;
  /** Each call's own bound, inside whatever deadline the caller gives (e.g. one Redis command). */
  callTimeoutMs?: number;
  /**
   * Which errors say the dependency is unwell (default: all). Answers that are part of the
   * protocol (a workflow not found, an Update refused by its validator) must not open the breaker.
   */
  isFailure?: (err: unknown) => boolean;
  observer?: DependencyObserver;
  /** One line per state change, never one per request. */
  log?: (line: { dependency: DependencyName; state: BreakerState; cause?: string }) => void;
}

/** The bound of a call given no deadline by a guard without a per-call timeout. */
const UNBOUNDED_CALL_TIMEOUT_MS = 10_000;

/** setTimeout's longest delay (about 24.8 days); longer ones would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A call ran past its deadline (boundBy); through a guard it surfaces as DependencyUnavailableError. */
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
  /** A guard that classifies failures as `isFailure` says but never opens: calls bounded by their deadlines only. */
  static neverOpen(name: DependencyName, isFailure: (err: unknown) => boolean): DependencyGuard {
    return new DependencyGuard(name, { failureThreshold: Number.MAX_SAFE_INTEGER, halfOpenAfterMs: 0, isFailure });
  }

  get state(): BreakerState {
    return breakerStateName(this.breaker.state);
  }

  /** Whether the breaker is closed: the dependency is believed well (no probe pending). */
  get closed(): boolean {
    return this.breaker.state === CircuitState.Closed;
  }

  /** Seconds until the open breaker lets a probe through (at least 1): the Retry-After of a 503. */
  get retryAfterSeconds(): number {
    const untilProbe = this.openedAt + this.options.halfOpenAfterMs - Date.now();
    return Math.max(1, Math.ceil(untilProbe / 1_000));
  }

  /**
   * Throws DependencyUnavailableError at once while the breaker is open or its probe is under way:
   * for a request that needs this dependency later, so that it touches nothing before failing.
   * Once the breaker may probe, one request per halfOpenAfterMs passes, to become the probe.
   */
  assertAvailable(): void {
    const state = this.breaker.state;
    if (state === CircuitState.Closed) return;
    const now = Date.now();
    if (
      state === CircuitState.Open &&
      now - this.openedAt >= this.options.halfOpenAfterMs &&
      now - this.probeAdmittedAt >= this.options.halfOpenAfterMs
    ) {
      this.probeAdmittedAt = now;
      return;
    }
    throw this.refused();
  }

  /**
   * Runs `call` under the breaker, bounded by `deadline` (and by callTimeoutMs; `undefined`: by
   * callTimeoutMs alone, or 10 s for a guard without one). Past the deadline, refused by
   * the breaker, or failing as `isFailure` says: DependencyUnavailableError. Other errors (the
   * dependency's answers) pass through as they are.
   *
   * `evenWhenOpen`: a call worth its wait whatever the breaker says (a payment's delivery): while
   * the breaker refuses, it still runs, bounded by its deadline, without counting for the breaker.
   */
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

  /** A deadline hit or a failure as DependencyUnavailableError; the dependency's own answers as they are. */
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

  /**
   * Closed: yes. Open: only once halfOpenAfterMs has passed (that call becomes the probe).
   * Half-open: no; cockatiel would queue the call behind the probe, and a request must not wait.
   */
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

/**
 * Opens on `threshold` consecutive failures, but only while the dependency answers nothing: a hung
 * server fails every call and succeeds at none, while an overloaded but working one, whose slowest
 * calls miss their deadline, still answers most calls. Tripping on failures alone (cockatiel's
 * ConsecutiveBreaker) turned a few dozen load-induced deadline hits of the default burst into
 * thousands of refusals (docs/fault-tolerance.md, "A hung dependency").
 */
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

/** The four guards of an API process, built from one configuration. */
export type DependencyGuards = Record<DependencyName, DependencyGuard>;

/** The names of `T`'s methods that return a promise: the only calls a guard can bound. */
export type AsyncMethodName<T> = {
  [K in keyof T]-?: T[K] extends (...args: never[]) => Promise<unknown> ? K : never;
}[keyof T];

/**
 * `T` seen through a guard (see `guarded`): the methods `K` and nothing else, each of them a
 * guarded call. A method that is not wrapped is not on the type, so code holding a Guarded view
 * cannot reach the dependency around its deadline and breaker.
 */
export type Guarded<T, K extends AsyncMethodName<T>> = Pick<T, K>;

/**
 * `target` seen through `guard`: each method named in `methods` runs as one guarded call bounded
 * by `timeoutMs` (its internal calls to its own methods are not guarded again). The API reaches
 * the inventory and the store through such views, so every Redis and MySQL call of a request is
 * bounded without each call site saying so.
 *
 * The methods are listed, and the compiler checks that each returns a promise: a Proxy that
 * wrapped whatever was declared `async` let a method returning a promise without `async` escape
 * its deadline and breaker unnoticed.
 */
export function guarded<T extends object, K extends AsyncMethodName<T>>(
  target: T,
  guard: DependencyGuard,
  timeoutMs: number,
  methods: readonly K[],
): Guarded<T, K> {
  const view: Partial<Pick<T, K>> = {};
  for (const name of methods) {
    // AsyncMethodName makes T[K] a method returning a promise; TypeScript cannot follow that into the body.
    const method = target[name] as (...args: unknown[]) => Promise<unknown>;
    const call = (...args: unknown[]) => guard.call(Deadline.in(timeoutMs), () => method.apply(target, args));
    view[name] = call as T[K];
  }
  return view as Guarded<T, K>;
}

/**
 * Runs `call` and rejects with DeadlineExceededError once `deadline` passes, whether or not the
 * call ever settles. For waits that must not count against a breaker.
 *
 * A late timer is not a late dependency: when the event loop was busy (a saturated machine), the
 * deadline's timer and the answer that came in time may be due in the same turn, and timers run
 * first. So the deadline is declared only after the loop has read what I/O is waiting
 * (setImmediate runs after the poll phase): an answer already there wins. A live Redis answering
 * a busy API is slow, not down, and must not open its breaker.
 */
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
