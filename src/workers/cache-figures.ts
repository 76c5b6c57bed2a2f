// The worker's cache figures on Redis for the dashboard: the API knows no workers; entries expire by Redis's clock.
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Worker } from '@temporalio/worker';
import { boundBy, Deadline } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import type { WorkerCacheFigures, WorkerFiguresBoard } from '../redis/worker-figures.js';

/** How often a worker publishes; its entry lives three times as long, so one late publication does not hide it. */
export const CACHE_FIGURES_EVERY_MS = 5_000;
/** The bound of each step: reading the worker's own metrics, writing to Redis. */
const STEP_MS = 1_000;

/** The Core runtime's cache counters, as its Prometheus exporter names them (docs/operations.md, "Metrics"). */
export const STICKY_CACHE_METRICS = {
  size: 'temporal_sticky_cache_size',
  hits: 'temporal_sticky_cache_hit',
  misses: 'temporal_sticky_cache_miss',
  forcedEvictions: 'temporal_sticky_cache_total_forced_eviction',
} as const;

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const COUNTERS = ['hits', 'misses', 'forcedEvictions'] as const;
export type CacheCounters = Record<(typeof COUNTERS)[number], number>;

/** One task queue's cache counters in Prometheus text, summed over other labels; one not yet incremented is 0. */
export function parseCacheCounters(text: string, taskQueue: string): CacheCounters {
  const counters: CacheCounters = { hits: 0, misses: 0, forcedEvictions: 0 };
  for (const line of text.split('\n')) {
    if (!line.startsWith('temporal_sticky_cache_')) continue;
    const [, name = '', labels = '', value = ''] = SAMPLE.exec(line) ?? [];
    const key = COUNTERS.find((counter) => STICKY_CACHE_METRICS[counter] === name);
    const queue = [...labels.matchAll(LABEL)].find(([, label]) => label === 'task_queue')?.[2]?.replace(/\\(.)/g, '$1');
    const count = Number(value);
    if (key && queue === taskQueue && Number.isFinite(count)) counters[key] += count;
  }
  return counters;
}

/** The counters at a reading, and its performance.now(): intervals by a monotonic clock. */
type Reading = { atMs: number; counters: CacheCounters };

/** What the counters did between two readings; null if one went down (not the same runtime's counters). */
function cacheInterval(from: Reading, to: Reading): WorkerCacheFigures['interval'] {
  const [hits = 0, misses = 0, forcedEvictions = 0] = COUNTERS.map((key) => to.counters[key] - from.counters[key]);
  if (hits < 0 || misses < 0 || forcedEvictions < 0 || to.atMs <= from.atMs) return null;
  return { seconds: (to.atMs - from.atMs) / 1_000, hits, misses, forcedEvictions };
}

export interface CacheFiguresOptions {
  board: Pick<WorkerFiguresBoard, 'put'>;
  /** The order queue's Worker: the one that runs workflows, so the one with a cache. */
  worker: Pick<Worker, 'getStatus' | 'options'>;
  /** This process's Core runtime metrics on loopback (WORKER_METRICS_PORT), or null when they are off. */
  metricsUrl: string | null;
  logger: Pick<Logger, 'warn' | 'info'>;
  everyMs?: number;
}

export type RunningCacheFigures = ReturnType<typeof startCacheFigures>;

/** Publishes at once, then every `everyMs`, one publication at a time. */
export function startCacheFigures(options: CacheFiguresOptions) {
  const everyMs = options.everyMs ?? CACHE_FIGURES_EVERY_MS;
  const workerId = `${hostname()}:${process.pid}`;
  const taskQueue = options.worker.options.taskQueue;
  let previous: Reading | null = null;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const publish = async (): Promise<void> => {
    const counted = options.metricsUrl
      ? await fetch(options.metricsUrl, { signal: AbortSignal.timeout(STEP_MS) })
          .then(async (response) => (response.ok ? parseCacheCounters(await response.text(), taskQueue) : null))
          .catch(() => null)
      : null;
    const reading = counted ? { atMs: performance.now(), counters: counted } : null;
    const interval = previous && reading ? cacheInterval(previous, reading) : null;
    previous = reading;
    const figures: WorkerCacheFigures = {
      worker: workerId,
      at: new Date().toISOString(),
      cached: options.worker.getStatus().numCachedWorkflows,
      maxCached: options.worker.options.maxCachedWorkflows,
      interval,
    };
    try {
      await boundBy(Deadline.in(STEP_MS), () => options.board.put(figures, everyMs * 3));
      if (failing) options.logger.info('worker cache figures published again');
      failing = false;
    } catch (err) {
      // Once per episode: the dashboard shows this worker absent meanwhile, which is all it means.
      if (!failing) options.logger.warn({ err }, 'could not publish the worker cache figures; retrying');
      failing = true;
    }
  };
  const loop = (): void => {
    if (stopped) return;
    running = publish()
      .catch((err: unknown) => options.logger.warn({ err }, 'could not read the worker cache figures'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, everyMs).unref();
      });
  };
  loop();
  return {
    /** Stops publishing (the entry expires on its own); waits for a publication under way. */
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
