/** Workflow starts in lanes, as the pipeline benchmark's phases fire them (ours and the floor alike). */

export interface TimedStarts<T> {
  /** What each start returned, in the order they completed. */
  started: T[];
  /** Each start's round trip, in ms. */
  startMs: number[];
  firstStartAt: number;
  lastStartAt: number;
}

/**
 * Runs `count` starts, `concurrency` at a time. `prepare(i)` runs first and is not timed (ours
 * reserves stock there, as the API does before it starts a workflow); `start` is timed.
 */
export async function timedStarts<P, T>(
  count: number,
  concurrency: number,
  prepare: (i: number) => Promise<P>,
  start: (prepared: P) => Promise<T>,
): Promise<TimedStarts<T>> {
  const started: T[] = [];
  const startMs: number[] = [];
  let next = 0;
  let firstStartAt = 0;
  let lastStartAt = 0;
  const lane = async () => {
    while (next < count) {
      const prepared = await prepare(next++);
      const at = performance.now();
      firstStartAt ||= Date.now();
      const result = await start(prepared);
      startMs.push(performance.now() - at);
      lastStartAt = Date.now();
      started.push(result);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { started, startMs, firstStartAt, lastStartAt };
}
