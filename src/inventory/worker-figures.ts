/**
 * Each worker's workflow-cache figures, published for the API's dashboard (lua/worker_figures.lua): a hash per task
 * queue, worker id → figures, each entry expiring by Redis's clock so a stopped or cut-off worker is simply absent.
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
  /** Last interval's temporal_sticky_cache_* hits, misses, forced evictions; null first, or metrics off/unanswered. */
  interval: { seconds: number; hits: number; misses: number; forcedEvictions: number } | null;
}

/**
 * Sent as EVAL (a few hundred bytes per 5 s), not a defined command: one defined after this tick's auto-pipeline opened
 * is missing from it, and ioredis throws outside any promise (it killed the compiled worker at start-up).
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
    const entry = JSON.stringify(figures);
    await this.redis.eval(luaSource(SCRIPT), 1, this.key, 'put', figures.worker, entry, Math.ceil(ttlMs));
  }

  /** The figures of every worker still publishing, by worker id. */
  async read(): Promise<WorkerCacheFigures[]> {
    const flat = (await this.redis.eval(luaSource(SCRIPT), 1, this.key, 'read')) as string[];
    const figures: WorkerCacheFigures[] = [];
    for (let i = 1; i < flat.length; i += 2) figures.push(JSON.parse(String(flat[i])) as WorkerCacheFigures);
    return figures.sort((a, b) => a.worker.localeCompare(b.worker));
  }
}
