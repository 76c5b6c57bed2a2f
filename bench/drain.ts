/** Times the drain: how soon after the last win every accepted order is in MySQL (or otherwise done). */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Stores } from '../src/db/stores.js';

/**
 * Counts a SKU's orders awaiting payment in MySQL every 20 ms from the start of the burst, so the
 * moment the last accepted order lands is known even when it lands while the burst still runs.
 */
export function watchPersisted(stores: Stores, sku: string) {
  return watchCount(() => stores.reports.countOrders(sku, 'AWAITING_PAYMENT'));
}

/**
 * Samples `count` (how many are done so far) every 20 ms until told how many to expect; the pipeline
 * benchmark's floor phases count their workflows this way (bench/floor/done-count.ts).
 */
export function watchCount(count: () => Promise<number>) {
  const samples: Array<{ at: number; count: number }> = [];
  let stopped = false;
  let failure: unknown;
  // A failed count ends the watch and is rethrown by until(), never left as an unhandled rejection.
  const polling = (async () => {
    while (!stopped) {
      const done = await count();
      samples.push({ at: Date.now(), count: done });
      await sleep(20);
    }
  })().catch((err: unknown) => {
    failure = err;
  });
  return {
    /**
     * Waits until `expected` are done and times it against the wins: at most 180 s plus 50 ms an order (5,000 orders
     * started at the pace two cores sustain took 180 s, and the invariants were then checked before the last).
     */
    async until(expected: number, firstWinAt: number, lastWinAt: number) {
      const deadline = Date.now() + 180_000 + 50 * expected;
      while (failure === undefined && Date.now() < deadline && (samples.at(-1)?.count ?? 0) < expected) await sleep(20);
      stopped = true;
      await polling;
      if (failure !== undefined) throw failure;
      const reached = samples.find((s) => s.count >= expected) ?? samples.at(-1) ?? { at: Date.now(), count: 0 };
      const totalSeconds = Math.max(0, (reached.at - (firstWinAt || reached.at)) / 1000);
      return {
        orders: reached.count,
        seconds: Math.max(0, (reached.at - (lastWinAt || reached.at)) / 1000),
        totalSeconds,
        ordersPerSecond: totalSeconds > 0 ? reached.count / totalSeconds : reached.count,
        series: drainSeries(samples, firstWinAt, lastWinAt, reached.at),
      };
    },
  };
}

/**
 * How many were done over time, on a regular grid anchored at the last win: the drain picture's line
 * (toolkit/chart.ts).
 */
export interface DrainSeries {
  /** Seconds between points: 0.1, coarser for a long drain so that a series keeps about 120 points, never over 1. */
  stepSeconds: number;
  /** The first point's time relative to the last win: ≤ 0, the series starts at the first win. */
  fromSeconds: number;
  /**
   * How many were done at each point: the last sample's count taken at or before it; the last point is the drain's end.
   */
  persisted: number[];
}

/**
 * Resamples the 20 ms polling onto a grid with a point exactly at the last win, so that every run's
 * line reads against the same "seconds after the last win" axis. Nothing is counted again: the
 * samples are the ones the drain was timed with, so the line and the drain figures cannot disagree.
 */
export function drainSeries(
  samples: ReadonlyArray<{ at: number; count: number }>,
  firstWinAt: number,
  lastWinAt: number,
  endAt: number,
): DrainSeries {
  const anchor = lastWinAt || endAt;
  const start = Math.min(firstWinAt || anchor, anchor);
  const stepMs = Math.min(1_000, Math.max(100, Math.ceil((endAt - start) / 120 / 100) * 100));
  const first = Math.floor((start - anchor) / stepMs);
  // Up to the last win at least: a design that persists before it answers (sync) is done by then.
  const last = Math.max(0, Math.ceil((endAt - anchor) / stepMs));
  const persisted: number[] = [];
  let next = 0;
  let count = 0;
  for (let k = first; k <= last; k++) {
    const at = anchor + k * stepMs;
    while (next < samples.length && samples[next]!.at <= at) count = samples[next++]!.count;
    persisted.push(count);
  }
  return { stepSeconds: stepMs / 1_000, fromSeconds: (first * stepMs) / 1_000, persisted };
}
