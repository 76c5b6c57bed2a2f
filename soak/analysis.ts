/**
 * The soak's arithmetic, pure so that test/soak-plumbing.test.ts can check it on known inputs: what one sample
 * holds, the least-squares heap slope, when the warm-up ends, and the verdict.
 */
import type { SoakLimits } from './args.js';

/** The node processes the soak probes (soak/probe.ts) and judges. */
export const NODE_PROCESSES = ['api', 'worker'] as const;
export type NodeProcess = (typeof NODE_PROCESSES)[number];

/** The servers the soak started, whose RSS it reads from /proc/<pid>/status (VmRSS). */
export const SERVERS = ['temporal', 'mysql', 'redis', 'stripe-mock', 'stripe-double'] as const;
export type ServerName = (typeof SERVERS)[number];

export interface NodeFigures {
  /** After a forced full GC: the lowest of the minute's readings (soak/sample.ts, HeapFloor), the judged figure. */
  heapUsedMb: number;
  /** The sample's own post-GC reading, and how many readings the minute had. */
  heapUsedAtSampleMb: number;
  heapReadings: number;
  heapTotalMb: number;
  externalMb: number;
  rssMb: number;
  /** Over the minute before the sample. */
  loopDelayMs: { p50: number; p99: number; max: number };
  /** Worker threads' heaps (the Temporal worker's workflow thread), not GC'd. */
  threadsHeapUsedMb: number[];
  /** MB used in each V8 heap space after the GC, at the lowest reading. */
  heapSpacesMb: Record<string, number>;
  /** HTTP requests the process began so far. */
  requests: number;
  /** CPU seconds so far (/proc). */
  cpuSeconds: number;
  gcForced: boolean;
}

export interface ServerFigures {
  rssMb: number | null;
  cpuSeconds: number | null;
}

export type SamplePhase = 'start' | 'load' | 'drain' | 'after';

export interface Sample {
  /** Minutes since the load began (0: just before it). */
  minute: number;
  at: string;
  phase: SamplePhase;
  api: NodeFigures | null;
  worker: NodeFigures | null;
  servers: Record<ServerName, ServerFigures>;
  /** The load generator itself: its RSS and loop delay, to tell its own hiccups from the app's. */
  loadgen: { rssMb: number; heapUsedMb: number; loopDelayMs: { p99: number; max: number }; cpuSeconds: number };
  /** Running OrderWorkflows (Temporal visibility). */
  openWorkflows: number | null;
  /** temporal_sticky_cache_size of the worker (its Prometheus endpoint). */
  stickyCacheSize: number | null;
  redisKeys: number | null;
  mysqlOrders: number | null;
  mysqlPayments: number | null;
  mysqlPaymentIntents: number | null;
  /** Checkouts answered 202 or 201 so far. */
  accepted: number;
}

// ---- the heap slope --------------------------------------------------------------------------------------------

export interface LinearFit {
  /** Units of y per unit of x. */
  slope: number;
  intercept: number;
  /** Coefficient of determination; null when every y is the same. */
  r2: number | null;
}

/** Ordinary least squares of y on x; null with fewer than two distinct x. */
export function linearFit(points: ReadonlyArray<readonly [number, number]>): LinearFit | null {
  const n = points.length;
  if (n < 2) return null;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const [x, y] of points) {
    sxx += (x - meanX) ** 2;
    sxy += (x - meanX) * (y - meanY);
    syy += (y - meanY) ** 2;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  return { slope, intercept: meanY - slope * meanX, r2: syy === 0 ? null : (sxy * sxy) / (sxx * syy) };
}

/** The steady samples: from the one that ended the warm-up to the last one under load. */
export function steadySamples(samples: readonly Sample[], warmupEndMinute: number): Sample[] {
  return samples.filter((s) => s.phase === 'load' && s.minute >= warmupEndMinute);
}

/** MB per hour of a node process's post-GC heap over `samples` (minutes on x); null below two samples. */
export function heapSlopeMbPerHour(samples: readonly Sample[], process: NodeProcess): number | null {
  const points = samples.flatMap((s): [number, number][] => {
    const figures = s[process];
    return figures ? [[s.minute / 60, figures.heapUsedMb]] : [];
  });
  return linearFit(points)?.slope ?? null;
}

// ---- the warm-up -------------------------------------------------------------------------------------------------

export type WarmupReason = 'cache-full' | 'open-workflows-plateau' | 'cap';

export interface WarmupEnd {
  minute: number;
  reason: WarmupReason;
}

/** Growth below this share between two samples counts as not growing (visibility counts move with the load). */
export const PLATEAU_TOLERANCE = 0.05;

/**
 * Whether the warm-up ends at the last of `samples` (every sample so far, in order): the worker's sticky cache is full
 * (WORKER_MAX_CACHED_WORKFLOWS), or the open workflows grew by less than PLATEAU_TOLERANCE over each of the last two
 * minutes under load, or the cap is reached. Null: not yet.
 */
export function warmupEndsAt(
  samples: readonly Pick<Sample, 'minute' | 'phase' | 'openWorkflows' | 'stickyCacheSize'>[],
  options: { maxCachedWorkflows: number; maxMinutes: number },
): WarmupEnd | null {
  const last = samples.at(-1);
  if (!last || last.phase !== 'load') return null;
  if (last.stickyCacheSize !== null && last.stickyCacheSize >= options.maxCachedWorkflows)
    return { minute: last.minute, reason: 'cache-full' };
  const underLoad = samples.filter((s) => s.phase === 'load');
  if (underLoad.length >= 3) {
    const [a, b, c] = underLoad.slice(-3).map((s) => s.openWorkflows);
    const notGrowing = (before: number | null | undefined, after: number | null | undefined) =>
      before !== null && before !== undefined && after !== null && after !== undefined && before > 0
        ? after <= before * (1 + PLATEAU_TOLERANCE)
        : false;
    if (notGrowing(a, b) && notGrowing(b, c)) return { minute: last.minute, reason: 'open-workflows-plateau' };
  }
  if (last.minute >= options.maxMinutes) return { minute: last.minute, reason: 'cap' };
  return null;
}

// ---- requests ----------------------------------------------------------------------------------------------------

/** What the load generator saw of one class of request over the whole run. */
export interface RequestClassFigures {
  name: string;
  /** The documented bound of its answer, ms; null for a call that is not the API's (Stripe's confirm). */
  deadlineMs: number | null;
  count: number;
  byStatus: Record<string, number>;
  fiveXx: number;
  /** No answer at all (connection error, or the load generator's own timeout). */
  errors: number;
  /** Answered later than deadlineMs + the slack. */
  late: number;
  /** Answered later than deadlineMs itself (informational). */
  overDeadline: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

// ---- the verdict -------------------------------------------------------------------------------------------------

export interface SaleCheck {
  sku: string;
  ok: boolean;
  checks: Record<string, boolean>;
}

export interface QuietState {
  /** Every order closed before the soak gave up waiting. */
  reached: boolean;
  seconds: number;
  openWorkflows: number | null;
  /** Units reserved in Redis over every sale. */
  reserved: number | null;
}

export interface VerdictInput {
  samples: readonly Sample[];
  warmup: WarmupEnd;
  limits: SoakLimits;
  requests: readonly RequestClassFigures[];
  sales: readonly SaleCheck[];
  quiet: QuietState;
  /** Shoppers whose order did not end as they acted (paid and not PAID, cancelled and not CANCELLED, …). */
  journeysAmiss: number;
  /** Journeys still going when the soak stopped waiting for them. */
  journeysUnfinished: number;
}

export interface Verdict {
  holds: boolean;
  /** Why it does not hold, one line each (empty when it holds). */
  reasons: string[];
  heapSlopeMbPerHour: Record<NodeProcess, number | null>;
  /** The highest per-minute loop delay p99 after the warm-up. */
  loopDelayP99MaxMs: Record<NodeProcess, number | null>;
  steadySamples: number;
  checks: {
    heapSlope: boolean;
    loopDelay: boolean;
    deadlines: boolean;
    noServerErrors: boolean;
    quiet: boolean;
    invariants: boolean;
    journeys: boolean;
  };
}

const fixed = (n: number, digits = 1) => n.toFixed(digits);

export function verdictOf(input: VerdictInput): Verdict {
  const { limits } = input;
  const steady = steadySamples(input.samples, input.warmup.minute);
  const reasons: string[] = [];
  const heapSlope = {} as Record<NodeProcess, number | null>;
  const loopP99 = {} as Record<NodeProcess, number | null>;
  for (const name of NODE_PROCESSES) {
    heapSlope[name] = heapSlopeMbPerHour(steady, name);
    const p99s = steady.flatMap((s) => (s[name] ? [s[name].loopDelayMs.p99] : []));
    loopP99[name] = p99s.length > 0 ? Math.max(...p99s) : null;
  }
  const checks: Verdict['checks'] = {
    heapSlope: true,
    loopDelay: true,
    deadlines: true,
    noServerErrors: true,
    quiet: input.quiet.reached,
    invariants: true,
    journeys: input.journeysAmiss === 0 && input.journeysUnfinished === 0,
  };
  for (const name of NODE_PROCESSES) {
    const slope = heapSlope[name];
    if (slope === null) {
      checks.heapSlope = false;
      reasons.push(`${name}: no heap slope (fewer than two samples of it after the warm-up)`);
    } else if (slope > limits.heapSlopeMbPerHour) {
      checks.heapSlope = false;
      reasons.push(
        `${name}: heap grows ${fixed(slope)} MB/h after the warm-up (post-GC heapUsed, ${steady.length} samples from minute ${input.warmup.minute}), over ${limits.heapSlopeMbPerHour} MB/h`,
      );
    }
    const p99 = loopP99[name];
    if (p99 === null) {
      checks.loopDelay = false;
      reasons.push(`${name}: no event-loop delay samples after the warm-up`);
    } else if (p99 > limits.loopDelayP99Ms) {
      checks.loopDelay = false;
      const minutes = steady
        .filter((s) => (s[name]?.loopDelayMs.p99 ?? 0) > limits.loopDelayP99Ms)
        .map((s) => s.minute);
      reasons.push(
        `${name}: event-loop delay p99 ${fixed(p99)} ms over ${limits.loopDelayP99Ms} ms (minute ${minutes.join(', ')})`,
      );
    }
  }
  for (const c of input.requests) {
    if (c.late > 0 || c.errors > 0) {
      checks.deadlines = false;
      reasons.push(
        `${c.name}: ${c.late} of ${c.count} answered later than ${c.deadlineMs} ms + ${limits.answerSlackMs} ms, ${c.errors} not answered (max ${c.maxMs === null ? '—' : fixed(c.maxMs, 0)} ms)`,
      );
    }
    if (c.fiveXx > 0) {
      checks.noServerErrors = false;
      reasons.push(
        `${c.name}: ${c.fiveXx} answered 5xx (${Object.entries(c.byStatus)
          .filter(([status]) => status.startsWith('5'))
          .map(([status, n]) => `${status} ×${n}`)
          .join(', ')})`,
      );
    }
  }
  if (!input.quiet.reached)
    reasons.push(
      `not quiet ${fixed(input.quiet.seconds, 0)} s after the load: ${input.quiet.openWorkflows ?? '?'} OrderWorkflows running, ${input.quiet.reserved ?? '?'} units reserved`,
    );
  else if (input.quiet.openWorkflows !== 0 || input.quiet.reserved !== 0) {
    checks.quiet = false;
    reasons.push(
      `at rest: ${input.quiet.openWorkflows ?? '?'} OrderWorkflows running, ${input.quiet.reserved ?? '?'} units reserved`,
    );
  }
  for (const sale of input.sales) {
    if (sale.ok) continue;
    checks.invariants = false;
    const broken = Object.entries(sale.checks)
      .filter(([, ok]) => !ok)
      .map(([name]) => name);
    reasons.push(`${sale.sku}: invariants broken: ${broken.join(', ')}`);
  }
  if (input.sales.length === 0) {
    checks.invariants = false;
    reasons.push('no sale was checked');
  }
  if (input.journeysAmiss > 0) reasons.push(`${input.journeysAmiss} orders did not end as their shopper acted`);
  if (input.journeysUnfinished > 0) reasons.push(`${input.journeysUnfinished} shopper journeys never ended`);
  return {
    holds: Object.values(checks).every(Boolean),
    reasons,
    heapSlopeMbPerHour: heapSlope,
    loopDelayP99MaxMs: loopP99,
    steadySamples: steady.length,
    checks,
  };
}

// ---- the planted leak --------------------------------------------------------------------------------------------

/** What one retained string costs beyond its characters: V8's string header and the array's slot (64-bit). */
export const LEAK_OVERHEAD_BYTES = 24;

/**
 * Characters per request that retain `mbPerHour` at `requestsPerSecond` (the API's expected rate); at least 2. The
 * soak states the expected and the measured leak rate in its results.
 */
export function leakCharsPerRequest(mbPerHour: number, requestsPerSecond: number): number {
  const bytesPerRequest = (mbPerHour * 1024 * 1024) / (requestsPerSecond * 3600);
  return Math.max(2, Math.round(bytesPerRequest - LEAK_OVERHEAD_BYTES));
}
