/** Times the drain: how soon after the last win every accepted order is in MySQL (or otherwise done). */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../src/db/store.js';

/**
 * Counts a SKU's orders awaiting payment in MySQL every 20 ms from the start of the burst, so the
 * moment the last accepted order lands is known even when it lands while the burst still runs.
 */
export function watchPersisted(store: Store, sku: string) {
  return watchCount(() => store.countOrders(sku, 'AWAITING_PAYMENT'));
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
    /** Waits (at most 180 s) until `expected` are done and times it against the wins. */
    async until(expected: number, firstWinAt: number, lastWinAt: number) {
      const deadline = Date.now() + 180_000;
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
      };
    },
  };
}
