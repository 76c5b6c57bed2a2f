/**
 * The checkout's figures the dashboard reads from GET /metrics: answers per second by outcome
 * (flash_checkout_outcomes_total) and the p99 of its latency (http_request_duration_seconds of
 * POST /api/checkout). Nothing sale-wide records these (a sold-out answer often never reaches
 * Redis), so they are the API processes' own counters, for every sale at once.
 *
 * A counter only grows, so a figure is the difference between two scrapes of one process. Behind
 * a load balancer consecutive scrapes may reach different processes: a scrape is known by its
 * process_start_time_seconds, each process is differenced with its own previous scrape, and the
 * figures are summed over the processes that answered lately.
 *
 * It imports nothing and touches no DOM, so the browser bundle and node tests share it.
 */

/** How the API's error codes are grouped on the chart (docs/api.md, POST /api/checkout). */
export const OUTCOME_CLASSES = ['accepted', 'soldOut', 'limit', 'refused', 'unavailable'] as const;
export type OutcomeClass = (typeof OUTCOME_CLASSES)[number];

/** 503s: Redis did not reserve, or did not answer in time; INTERNAL is a 500. */
const UNAVAILABLE_CODES = new Set(['UNAVAILABLE', 'OUTCOME_UNKNOWN', 'INTERNAL']);

export function outcomeClassOf(code: string): OutcomeClass {
  if (code === 'ACCEPTED') return 'accepted';
  if (code === 'SOLD_OUT') return 'soldOut';
  if (code === 'PURCHASE_LIMIT_EXCEEDED') return 'limit';
  if (UNAVAILABLE_CODES.has(code)) return 'unavailable';
  // SALE_NOT_ACTIVE, RATE_LIMITED, INVALID_REQUEST, UNAUTHORIZED, IDEMPOTENCY_KEY_REUSED, …
  return 'refused';
}

/** Cumulative histogram buckets: upper bound in seconds (Infinity for +Inf) → requests at or below it. */
export type Buckets = Map<number, number>;

/** What one scrape of one process says about the checkout. */
export interface Scrape {
  /** process_start_time_seconds: tells the processes behind a load balancer apart. */
  process: string;
  atMs: number;
  outcomes: Record<OutcomeClass, number>;
  /** Every checkout answer, and the accepted ones (201, 202) alone. */
  latency: { all: Buckets; accepted: Buckets };
}

export interface CheckoutFigures {
  perSecond: Record<OutcomeClass, number>;
  p99Ms: { all: number | null; accepted: number | null };
  /** The processes the figures are summed over. */
  processes: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const CHECKOUT_ROUTE = '/api/checkout';

const zeroOutcomes = (): Record<OutcomeClass, number> => ({
  accepted: 0,
  soldOut: 0,
  limit: 0,
  refused: 0,
  unavailable: 0,
});

/** The checkout's series of a Prometheus text exposition (the rest is skipped unread). */
export function parseScrape(text: string, atMs: number): Scrape {
  const scrape: Scrape = {
    process: 'unknown',
    atMs,
    outcomes: zeroOutcomes(),
    latency: { all: new Map(), accepted: new Map() },
  };
  for (const line of text.split('\n')) {
    // Only the three series below; the other few hundred lines are not worth a regex each.
    if (
      !line.startsWith('flash_checkout_outcomes_total{') &&
      !line.startsWith('http_request_duration_seconds_bucket{') &&
      !line.startsWith('process_start_time_seconds')
    ) {
      continue;
    }
    const match = LINE.exec(line);
    if (!match) continue;
    const [, name, labelText = '', valueText = ''] = match;
    const value = Number(valueText);
    if (!Number.isFinite(value)) continue;
    if (name === 'process_start_time_seconds') {
      scrape.process = valueText;
      continue;
    }
    const labels: Record<string, string> = {};
    for (const [, key, labelValue] of labelText.matchAll(LABEL))
      if (key !== undefined && labelValue !== undefined) labels[key] = labelValue;
    if (name === 'flash_checkout_outcomes_total') {
      scrape.outcomes[outcomeClassOf(labels.code ?? '')] += value;
    } else if (
      name === 'http_request_duration_seconds_bucket' &&
      labels.method === 'POST' &&
      labels.route === CHECKOUT_ROUTE &&
      labels.le !== undefined
    ) {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      add(scrape.latency.all, le, value);
      if (labels.status === '201' || labels.status === '202') add(scrape.latency.accepted, le, value);
    }
  }
  return scrape;
}

function add(buckets: Buckets, le: number, count: number): void {
  buckets.set(le, (buckets.get(le) ?? 0) + count);
}

/**
 * The q-quantile of cumulative buckets, interpolated within its bucket as Prometheus'
 * histogram_quantile does; in the +Inf bucket, the largest finite bound. Null without requests.
 */
export function quantile(q: number, buckets: Buckets): number | null {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? buckets.get(bounds[bounds.length - 1] ?? Infinity) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const count = buckets.get(le) ?? 0;
    if (count >= rank) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * ((rank - below) / Math.max(count - below, 1e-9));
    }
    lower = le;
    below = count;
  }
  return lower;
}

/** b − a, bucket by bucket; null when a counter went down (another process, or a restart). */
export function difference(a: Buckets, b: Buckets): Buckets | null {
  const out: Buckets = new Map();
  for (const [le, count] of b) {
    const delta = count - (a.get(le) ?? 0);
    if (delta < 0) return null;
    out.set(le, delta);
  }
  return out;
}

interface Interval {
  atMs: number;
  seconds: number;
  outcomes: Record<OutcomeClass, number>;
  latency: { all: Buckets; accepted: Buckets };
}

/** Scrapes in, figures out: each process differenced with its own previous scrape. */
export class CheckoutRates {
  private readonly last = new Map<string, Scrape>();
  private readonly intervals = new Map<string, Interval>();

  /**
   * `freshMs`: a process not scraped for that long (gone, or no longer reached) is left out of the
   * sums. `minIntervalMs`: a scrape closer than that to the process's previous one is skipped, as a
   * rate over a few milliseconds is noise.
   */
  constructor(
    private readonly freshMs = 10_000,
    private readonly minIntervalMs = 500,
  ) {}

  /** The figures once a scrape follows another of the same process; null before. */
  add(scrape: Scrape): CheckoutFigures | null {
    const previous = this.last.get(scrape.process);
    if (!previous || scrape.atMs - previous.atMs >= this.minIntervalMs) {
      this.last.set(scrape.process, scrape);
      const interval = previous ? this.between(previous, scrape) : null;
      if (interval) this.intervals.set(scrape.process, interval);
      else this.intervals.delete(scrape.process);
    }
    for (const [process, { atMs }] of this.intervals)
      if (scrape.atMs - atMs > this.freshMs) this.intervals.delete(process);
    for (const [process, { atMs }] of this.last) if (scrape.atMs - atMs > this.freshMs) this.last.delete(process);
    if (this.intervals.size === 0) return null;

    const perSecond = zeroOutcomes();
    const all: Buckets = new Map();
    const accepted: Buckets = new Map();
    for (const interval of this.intervals.values()) {
      for (const outcome of OUTCOME_CLASSES) perSecond[outcome] += interval.outcomes[outcome] / interval.seconds;
      for (const [le, count] of interval.latency.all) add(all, le, count);
      for (const [le, count] of interval.latency.accepted) add(accepted, le, count);
    }
    const ms = (seconds: number | null) => (seconds === null ? null : seconds * 1000);
    return {
      perSecond,
      p99Ms: { all: ms(quantile(0.99, all)), accepted: ms(quantile(0.99, accepted)) },
      processes: this.intervals.size,
    };
  }

  private between(a: Scrape, b: Scrape): Interval | null {
    const seconds = (b.atMs - a.atMs) / 1000;
    if (seconds <= 0) return null;
    const outcomes = zeroOutcomes();
    for (const outcome of OUTCOME_CLASSES) {
      outcomes[outcome] = b.outcomes[outcome] - a.outcomes[outcome];
      if (outcomes[outcome] < 0) return null;
    }
    const all = difference(a.latency.all, b.latency.all);
    const accepted = difference(a.latency.accepted, b.latency.accepted);
    if (!all || !accepted) return null;
    return { atMs: b.atMs, seconds, outcomes, latency: { all, accepted } };
  }
}
