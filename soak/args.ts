/**
 * The soak's command line (soak/run.ts): `npm run soak -- --minutes N [--rate R] [--plant-leak] [--out DIR]
 * [--payment-window 60s] [--warmup-max-minutes M] [--sale-minutes S] [--shoppers N]
 * [--status-cache-entries N|default] [--leak-mb-per-hour 20] [--no-build] [--log-level info] [--keep]`.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import ms from 'ms';

export interface SoakArgs {
  /** How long the steady load runs, in whole minutes (one sample a minute, and one at the start). */
  minutes: number;
  /**
   * Checkouts per second the load generator starts (each a whole journey). Default 3: about half of what two cores
   * sustain with every process on them, ~0.3 s of CPU per order over the API, worker, Temporal and the rest, measured
   * (a persist alone costs ~50 ms; docs/performance.md).
   */
  rate: number;
  /** The pool of shoppers (tokens) the journeys cycle through; default: two minutes of arrivals. */
  shoppers: number;
  /**
   * STATUS_CACHE_MAX_ENTRIES of the API, default two minutes of orders (so that it fills within the warm-up); null:
   * the product's default (50,000 entries, hours of orders at the soak's rate).
   */
  statusCacheEntries: number | null;
  /** Preload soak/planted-leak.ts into the API, sized to `leakMbPerHour`: the run must then fail. */
  plantLeak: boolean;
  leakMbPerHour: number;
  /** PAYMENT_WINDOW of the run, short so that orders cycle. */
  paymentWindow: string;
  paymentWindowMs: number;
  /** The warm-up ends at this sample at the latest (minutes from the start of the load). */
  warmupMaxMinutes: number;
  /** A new sale (SKU) every this many minutes, so none sells out and per-sale state comes and goes. */
  saleMinutes: number;
  /** Run `npm run build` first (else reuse dist/ as it is, said in the results). */
  build: boolean;
  logLevel: string;
  /** Keep the work folder (servers' data, every process's log) instead of removing it. */
  keep: boolean;
  outDir: string;
  /** The verdict's bounds. */
  limits: SoakLimits;
}

export interface SoakLimits {
  /** Post-warm-up heap slope of each Node process (API, worker), MB per hour. */
  heapSlopeMbPerHour: number;
  /** Event-loop delay p99 of each Node process in each post-warm-up minute, ms. */
  loopDelayP99Ms: number;
  /** How much later than its documented deadline an answer may come (the load generator shares the cores). */
  answerSlackMs: number;
}

export const DEFAULT_LIMITS: SoakLimits = { heapSlopeMbPerHour: 10, loopDelayP99Ms: 50, answerSlackMs: 1_000 };

export function parseSoakArgs(argv: string[], root: string): SoakArgs {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      rate: { type: 'string' },
      shoppers: { type: 'string' },
      'status-cache-entries': { type: 'string' },
      'plant-leak': { type: 'boolean', default: false },
      'leak-mb-per-hour': { type: 'string' },
      'payment-window': { type: 'string', default: '60s' },
      'warmup-max-minutes': { type: 'string' },
      'sale-minutes': { type: 'string' },
      'no-build': { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
      keep: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const number = (name: string, value: string | undefined, fallback: number, min: number, whole = true) => {
    const n = value === undefined ? fallback : Number(value);
    if (!Number.isFinite(n) || n < min || (whole && !Number.isInteger(n)))
      throw new Error(`--${name} must be a ${whole ? 'whole ' : ''}number ≥ ${min}`);
    return n;
  };
  const minutes = number('minutes', args.minutes, 30, 2);
  const windowMs = ms(args['payment-window'] as Parameters<typeof ms>[0]);
  if (typeof windowMs !== 'number' || !Number.isFinite(windowMs) || windowMs < 10_000)
    throw new Error('--payment-window must be a duration of at least 10s (e.g. 60s, 2m)');
  const warmupMaxMinutes = number(
    'warmup-max-minutes',
    args['warmup-max-minutes'],
    Math.max(1, Math.round(minutes / 3)),
    1,
  );
  if (warmupMaxMinutes > minutes - 1)
    throw new Error('--warmup-max-minutes must leave at least one minute after it (two samples to fit a slope)');
  const rate = number('rate', args.rate, 3, 0.1, false);
  const twoMinutesOfOrders = Math.ceil(rate * 120);
  const cacheEntries = args['status-cache-entries'];
  return {
    minutes,
    rate,
    shoppers: number('shoppers', args.shoppers, twoMinutesOfOrders, 1),
    statusCacheEntries:
      cacheEntries === 'default' ? null : number('status-cache-entries', cacheEntries, twoMinutesOfOrders, 1),
    plantLeak: args['plant-leak'] === true,
    leakMbPerHour: number(
      'leak-mb-per-hour',
      args['leak-mb-per-hour'],
      2 * DEFAULT_LIMITS.heapSlopeMbPerHour,
      1,
      false,
    ),
    paymentWindow: args['payment-window'] ?? '60s',
    paymentWindowMs: windowMs,
    warmupMaxMinutes,
    saleMinutes: number('sale-minutes', args['sale-minutes'], 10, 1),
    build: args['no-build'] !== true,
    logLevel: args['log-level'] ?? 'info',
    keep: args.keep === true,
    outDir: resolve(args.out ?? join(root, 'soak', 'results')),
    limits: DEFAULT_LIMITS,
  };
}
