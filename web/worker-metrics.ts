/**
 * The dashboard's "Worker" panel figures: the workers' workflow cache as GET /api/admin/workers relays it (each worker
 * publishes its own through Redis, src/workers/cache-figures.ts), and the payment Signal's latency from GET /metrics
 * (flash_payment_signal_seconds, the histogram each API process keeps of the Signals its webhooks send).
 *
 * The cache's hit rate and evictions are over each worker's last publishing interval (it differences its own
 * counters), summed over the workers reporting. The Signal's quantiles are over the last few minutes: each API
 * process's newest scrape against its scrape of `windowMs` before (or its first), summed over the processes answered
 * lately, as CheckoutRates tells them apart (process_start_time_seconds).
 *
 * Like checkout-metrics.ts it touches no DOM and imports only that module, so the browser bundle and node tests
 * share it.
 */
import { difference, quantile, type Buckets } from './checkout-metrics.js';

/** One worker's cache figures as the route answers them (the OpenAPI `WorkerFigures` schema), as far as read here. */
export interface WorkerCacheReport {
  worker: string;
  cached: number;
  maxCached: number;
  interval: { seconds: number; hits: number; misses: number; forcedEvictions: number } | null;
}

export interface WorkerCacheTotals {
  workers: number;
  cached: number;
  maxCached: number;
  /** hits / (hits + misses) over the workers' last intervals; null without a task in them (or without counters). */
  hitRate: number | null;
  /** Forced evictions per second, summed over the workers; null when none has counted an interval. */
  evictionsPerSecond: number | null;
}

export function workerCacheTotals(workers: readonly WorkerCacheReport[]): WorkerCacheTotals {
  let cached = 0;
  let maxCached = 0;
  let hits = 0;
  let lookups = 0;
  let evictionsPerSecond: number | null = null;
  for (const worker of workers) {
    cached += worker.cached;
    maxCached += worker.maxCached;
    const interval = worker.interval;
    if (!interval || interval.seconds <= 0) continue;
    hits += interval.hits;
    lookups += interval.hits + interval.misses;
    evictionsPerSecond = (evictionsPerSecond ?? 0) + interval.forcedEvictions / interval.seconds;
  }
  return {
    workers: workers.length,
    cached,
    maxCached,
    hitRate: lookups > 0 ? hits / lookups : null,
    evictionsPerSecond,
  };
}

export const PAYMENT_SIGNAL_METRIC = 'flash_payment_signal_seconds';
/** The histogram's outcomes (src/order/workflow-client.ts, PaymentSignalOutcome). */
export const PAYMENT_SIGNAL_OUTCOMES = ['signalled', 'no_workflow', 'timeout', 'error'] as const;
export type PaymentSignalOutcome = (typeof PAYMENT_SIGNAL_OUTCOMES)[number];

/** What one scrape of one API process says of its payment Signals: cumulative buckets by outcome. */
export interface PaymentSignalScrape {
  process: string;
  atMs: number;
  buckets: Record<PaymentSignalOutcome, Buckets>;
}

export interface PaymentSignalFigures {
  /** Signals in the window by outcome. */
  counts: Record<PaymentSignalOutcome, number>;
  /** Of the Signals sent: the time a payment took to reach its workflow (timeouts only say the deadline). */
  p50Seconds: number | null;
  p99Seconds: number | null;
  /** The longest window over which a process was differenced (0 on the first scrape). */
  spanSeconds: number;
  processes: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const BUCKET = `${PAYMENT_SIGNAL_METRIC}_bucket`;

const noBuckets = (): Record<PaymentSignalOutcome, Buckets> => ({
  signalled: new Map(),
  no_workflow: new Map(),
  timeout: new Map(),
  error: new Map(),
});

/** The payment Signal's buckets in a Prometheus text exposition (the rest is skipped unread). */
export function parsePaymentSignals(text: string, atMs: number): PaymentSignalScrape {
  const scrape: PaymentSignalScrape = { process: 'unknown', atMs, buckets: noBuckets() };
  for (const line of text.split('\n')) {
    if (!line.startsWith(BUCKET) && !line.startsWith('process_start_time_seconds')) continue;
    const [, name, labelText = '', valueText = ''] = SAMPLE.exec(line) ?? [];
    const value = Number(valueText);
    if (!Number.isFinite(value)) continue;
    if (name === 'process_start_time_seconds') {
      scrape.process = valueText;
      continue;
    }
    if (name !== BUCKET) continue;
    const labels: Record<string, string> = {};
    for (const [, key, labelValue] of labelText.matchAll(LABEL))
      if (key !== undefined && labelValue !== undefined) labels[key] = labelValue;
    const outcome = PAYMENT_SIGNAL_OUTCOMES.find((known) => known === labels.outcome);
    if (!outcome || labels.le === undefined) continue;
    scrape.buckets[outcome].set(labels.le === '+Inf' ? Infinity : Number(labels.le), value);
  }
  return scrape;
}

/** The total of cumulative buckets: the +Inf bucket's count. */
const countOf = (buckets: Buckets) => buckets.get(Infinity) ?? 0;

/** Scrapes in, the payment Signal over the last `windowMs` out. */
export class PaymentSignalLatency {
  /** Per process, its scrapes oldest first: the first is the window's start. */
  private readonly scrapes = new Map<string, PaymentSignalScrape[]>();

  constructor(
    private readonly windowMs = 300_000,
    private readonly freshMs = 30_000,
  ) {}

  add(scrape: PaymentSignalScrape): PaymentSignalFigures {
    const kept = this.scrapes.get(scrape.process) ?? [];
    kept.push(scrape);
    // Keep the newest scrape at least windowMs old as the start: the window spans windowMs once it is that long.
    while (kept.length > 2 && scrape.atMs - (kept[1]?.atMs ?? scrape.atMs) >= this.windowMs) kept.shift();
    this.scrapes.set(scrape.process, kept);
    for (const [process, list] of this.scrapes)
      if (scrape.atMs - (list.at(-1)?.atMs ?? 0) > this.freshMs) this.scrapes.delete(process);

    const counts: Record<PaymentSignalOutcome, number> = { signalled: 0, no_workflow: 0, timeout: 0, error: 0 };
    const sent: Buckets = new Map();
    let spanSeconds = 0;
    for (const [process, list] of this.scrapes) {
      const first = list[0];
      const last = list.at(-1);
      if (!first || !last) continue;
      const window = noBuckets();
      let wentDown = false;
      for (const outcome of PAYMENT_SIGNAL_OUTCOMES) {
        const buckets = difference(first.buckets[outcome], last.buckets[outcome]);
        if (buckets) window[outcome] = buckets;
        else wentDown = true;
      }
      if (wentDown) {
        // Not the same counters (a process id reused): start this process's window over.
        this.scrapes.set(process, [last]);
        continue;
      }
      for (const outcome of PAYMENT_SIGNAL_OUTCOMES) counts[outcome] += countOf(window[outcome]);
      // A Signal sent (timeouts would only say the deadline).
      for (const [le, count] of window.signalled) sent.set(le, (sent.get(le) ?? 0) + count);
      spanSeconds = Math.max(spanSeconds, (last.atMs - first.atMs) / 1_000);
    }
    return {
      counts,
      p50Seconds: quantile(0.5, sent),
      p99Seconds: quantile(0.99, sent),
      spanSeconds,
      processes: this.scrapes.size,
    };
  }
}
