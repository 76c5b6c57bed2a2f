/**
 * The worker's workflow cache figures for the dashboard: every few seconds each worker puts its cache's size and bound
 * and Core's sticky-cache counters since last time on the task queue's Redis board (src/inventory/worker-figures.ts).
 * A board, not the API scraping workers: workers come and go unknown to the API, and Redis is what both share. An entry
 * expires by Redis's clock, so a stopped worker is absent within one TTL.
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Worker } from '@temporalio/worker';
import { boundBy, Deadline } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import type { WorkerCacheFigures, WorkerFiguresBoard } from '../inventory/worker-figures.js';

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

export interface CacheCounters {
  hits: number;
  misses: number;
  forcedEvictions: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** One task queue's cache counters in Prometheus text, summed over other labels; one not yet incremented is 0. */
export function parseCacheCounters(text: string, taskQueue: string): CacheCounters {
  const counters: CacheCounters = { hits: 0, misses: 0, forcedEvictions: 0 };
  const field = new Map<string, keyof CacheCounters>([
    [STICKY_CACHE_METRICS.hits, 'hits'],
    [STICKY_CACHE_METRICS.misses, 'misses'],
    [STICKY_CACHE_METRICS.forcedEvictions, 'forcedEvictions'],
  ]);
  for (const line of text.split('\n')) {
    if (!line.startsWith('temporal_sticky_cache_')) continue;
    const [, name = '', labels = '', value = ''] = SAMPLE.exec(line) ?? [];
    const key = field.get(name);
    if (!key) continue;
    let queue: string | undefined;
    for (const [, label, labelValue] of labels.matchAll(LABEL))
      if (label === 'task_queue') queue = labelValue?.replace(/\\(.)/g, '$1');
    const count = Number(value);
    if (queue === taskQueue && Number.isFinite(count)) counters[key] += count;
  }
  return counters;
}

interface Reading {
  /** performance.now() of the reading: intervals by a monotonic clock. */
  atMs: number;
  counters: CacheCounters;
}

/** What the counters did between two readings; null if one went down (not the same runtime's counters). */
function cacheInterval(from: Reading, to: Reading): WorkerCacheFigures['interval'] {
  const hits = to.counters.hits - from.counters.hits;
  const misses = to.counters.misses - from.counters.misses;
  const forcedEvictions = to.counters.forcedEvictions - from.counters.forcedEvictions;
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
  /** This worker's name on the board (default: host and pid). */
  workerId?: string;
}

export interface RunningCacheFigures {
  /** Stops publishing (the entry expires on its own); waits for a publication under way. */
  stop(): Promise<void>;
}

/** Publishes at once, then every `everyMs`, one publication at a time. */
export function startCacheFigures(options: CacheFiguresOptions): RunningCacheFigures {
  const everyMs = options.everyMs ?? CACHE_FIGURES_EVERY_MS;
  const workerId = options.workerId ?? `${hostname()}:${process.pid}`;
  const taskQueue = options.worker.options.taskQueue;
  let previous: Reading | null = null;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const counters = async (): Promise<CacheCounters | null> => {
    if (!options.metricsUrl) return null;
    try {
      const response = await fetch(options.metricsUrl, { signal: AbortSignal.timeout(STEP_MS) });
      return response.ok ? parseCacheCounters(await response.text(), taskQueue) : null;
    } catch {
      return null;
    }
  };
  const publish = async (): Promise<void> => {
    const counted = await counters();
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
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
