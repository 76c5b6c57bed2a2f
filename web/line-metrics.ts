/**
 * The waiting line's figures the dashboard works out itself (its "Waiting line" panel): the ETA's error from GET
 * /metrics (flash_line_eta_error_seconds, a histogram each API process keeps of how far the first wait it told a place
 * was from when that place was admitted), the admissions measured per second from successive readings of the line's
 * `admitted` counter, and the time to sold out.
 *
 * The histogram is labelled by SKU: the figures are the watched sale's. Each process's histogram only grows, so the
 * figures are over the newest scrape of each process answered lately, summed (as CheckoutRates tells processes apart,
 * by process_start_time_seconds).
 *
 * Like checkout-metrics.ts it touches no DOM and imports only that module, so the browser bundle and node tests
 * share it.
 */
import { quantile, type Buckets } from './checkout-metrics.js';

export const ETA_ERROR_METRIC = 'flash_line_eta_error_seconds';

/** What one scrape of one process says about the ETA's error. */
export interface EtaErrorScrape {
  process: string;
  atMs: number;
  /** Cumulative buckets: upper bound in seconds (Infinity for +Inf) → places at or below it. */
  buckets: Buckets;
  count: number;
  sumSeconds: number;
}

export interface EtaErrorFigures {
  /** Places admitted whose first wait was told by one of the processes. */
  count: number;
  p50Seconds: number | null;
  p90Seconds: number | null;
  meanSeconds: number | null;
  processes: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LE = /(?:^|,)le="([^"]*)"/;

/** The ETA error's series of one sale in a Prometheus text exposition (the rest is skipped unread). */
export function parseEtaError(text: string, atMs: number, sku: string): EtaErrorScrape {
  const ofSale = `sku="${sku.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  const scrape: EtaErrorScrape = { process: 'unknown', atMs, buckets: new Map(), count: 0, sumSeconds: 0 };
  for (const line of text.split('\n')) {
    if (!line.startsWith(ETA_ERROR_METRIC) && !line.startsWith('process_start_time_seconds')) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const [, name, labels = '', valueText = ''] = match;
    if (name !== 'process_start_time_seconds' && !labels.split(',').includes(ofSale)) continue;
    const value = Number(valueText);
    if (!Number.isFinite(value)) continue;
    if (name === 'process_start_time_seconds') scrape.process = valueText;
    else if (name === `${ETA_ERROR_METRIC}_count`) scrape.count = value;
    else if (name === `${ETA_ERROR_METRIC}_sum`) scrape.sumSeconds = value;
    else if (name === `${ETA_ERROR_METRIC}_bucket`) {
      const le = LE.exec(labels)?.[1];
      if (le !== undefined) scrape.buckets.set(le === '+Inf' ? Infinity : Number(le), value);
    }
  }
  return scrape;
}

/** Scrapes in, the ETA error over every process answered lately out (p50 and p90 estimated from the buckets). */
export class EtaErrors {
  private readonly latest = new Map<string, EtaErrorScrape>();

  constructor(private readonly freshMs = 30_000) {}

  add(scrape: EtaErrorScrape): EtaErrorFigures {
    this.latest.set(scrape.process, scrape);
    for (const [process, { atMs }] of this.latest) if (scrape.atMs - atMs > this.freshMs) this.latest.delete(process);
    const buckets: Buckets = new Map();
    let count = 0;
    let sum = 0;
    for (const each of this.latest.values()) {
      for (const [le, n] of each.buckets) buckets.set(le, (buckets.get(le) ?? 0) + n);
      count += each.count;
      sum += each.sumSeconds;
    }
    return {
      count,
      p50Seconds: quantile(0.5, buckets),
      p90Seconds: quantile(0.9, buckets),
      meanSeconds: count > 0 ? sum / count : null,
      processes: this.latest.size,
    };
  }
}

/**
 * Admissions per second as measured: the line's `admitted` counter (sale-wide, Redis) over the readings of the last
 * `windowMs`. Null until two readings of the same line are that far apart at least `minSpanMs`.
 */
export class AdmissionRate {
  private readings: Array<{ atMs: number; admitted: number }> = [];

  constructor(
    private readonly windowMs = 5_000,
    private readonly minSpanMs = 900,
  ) {}

  reset(): void {
    this.readings = [];
  }

  add(atMs: number, admitted: number): number | null {
    const newest = this.readings.at(-1);
    // A counter that went down is another line (or a line defined again): start over.
    if (newest && (admitted < newest.admitted || atMs <= newest.atMs)) this.readings = [];
    this.readings.push({ atMs, admitted });
    while (this.readings.length > 2 && atMs - (this.readings[1]?.atMs ?? atMs) >= this.windowMs) this.readings.shift();
    const oldest = this.readings[0];
    if (!oldest || atMs - oldest.atMs < this.minSpanMs) return null;
    return ((admitted - oldest.admitted) * 1_000) / (atMs - oldest.atMs);
  }
}

/**
 * Seconds from the sale's start to the moment it sold out (the line's `soldOutAt`); a sale without `startsAt` started
 * when it was created. Null while not sold out.
 */
export function secondsToSoldOut(
  line: { soldOutAt: string | null; startsAt: string | null },
  createdAt: string | null,
): { seconds: number; from: 'startsAt' | 'createdAt' } | null {
  if (!line.soldOutAt) return null;
  const from = line.startsAt ? 'startsAt' : 'createdAt';
  const start = line.startsAt ?? createdAt;
  if (!start) return null;
  return { seconds: Math.max(0, (Date.parse(line.soldOutAt) - Date.parse(start)) / 1_000), from };
}
