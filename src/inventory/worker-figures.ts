/**
 * The workers' own figures (their workflow cache), published by each worker process and read by the API for the
 * dashboard, which reaches the API only (lua/worker_figures.lua). One hash per task queue,
 * `flash:worker-figures:<task queue>`, worker id → its latest figures; each entry expires by Redis's clock, so a
 * worker that stopped or cannot reach Redis is simply absent, and any number of workers and API processes share it.
 */
import type { RedisClient } from '../infra/redis.js';
import { luaSource } from './redis-inventory.js';

/** What one worker process says of its workflow cache (the order queue's Worker). */
export interface WorkerCacheFigures {
  /** The worker process: host and pid. */
  worker: string;
  /** When it read them, by its own clock (ISO 8601). */
  at: string;
  /** Workflows in its cache now (Worker.getStatus), and the bound (WORKER_MAX_CACHED_WORKFLOWS). */
  cached: number;
  maxCached: number;
  /**
   * Over its last publishing interval, from the Core runtime's temporal_sticky_cache_* counters: workflow tasks whose
   * workflow was cached (hits) or had to be replayed (misses), and evictions forced by a full cache. Null when its
   * metrics port is off (WORKER_METRICS_PORT=0) or did not answer, and on the first publication.
   */
  interval: { seconds: number; hits: number; misses: number; forcedEvictions: number } | null;
}

/**
 * Sent as EVAL, not as a defined command: a command defined on a client after an auto-pipeline of this tick was opened
 * is missing from that pipeline, and ioredis then throws outside any promise (the compiled worker died of it at
 * start-up). A few hundred bytes every 5 s per worker.
 */
const SCRIPT = 'worker_figures.lua';

export class WorkerFiguresBoard {
  private readonly key: string;

  constructor(
    private readonly redis: RedisClient,
    taskQueue: string,
  ) {
    this.key = `flash:worker-figures:${taskQueue}`;
  }

  /** Publishes a worker's figures, fresh for `ttlMs` by Redis's clock unless published again. */
  async put(figures: WorkerCacheFigures, ttlMs: number): Promise<void> {
    await this.redis.eval(
      luaSource(SCRIPT),
      1,
      this.key,
      'put',
      figures.worker,
      JSON.stringify(figures),
      Math.ceil(ttlMs),
    );
  }

  /** The figures of every worker still publishing, by worker id. */
  async read(): Promise<WorkerCacheFigures[]> {
    const flat = (await this.redis.eval(luaSource(SCRIPT), 1, this.key, 'read')) as string[];
    const figures: WorkerCacheFigures[] = [];
    for (let i = 1; i < flat.length; i += 2) figures.push(JSON.parse(String(flat[i])) as WorkerCacheFigures);
    return figures.sort((a, b) => a.worker.localeCompare(b.worker));
  }
}
