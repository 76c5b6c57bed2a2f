/** Workers' workflow-cache figures for the dashboard; each expires by Redis's clock, so a stopped worker is absent. */
import type { RedisClient } from '../infra/redis.js';
import { luaSource } from './layout.js';
import { z } from 'zod';
import { int, isoTime, named } from '../infra/schema-fields.js';

/** GET /api/admin/workers: each worker still publishing its workflow cache's figures (the order queue's Worker). */
export const workerFiguresSchema = named('WorkerFigures', {
  workers: z.array(
    z.object({
      worker: z.string().meta({ description: 'The worker process: host and pid.' }),
      at: isoTime.meta({ description: 'When it read these, by its own clock (it publishes every 5 s).' }),
      cached: int.meta({ description: 'Workflows in its cache now (Worker.getStatus).' }),
      maxCached: int.meta({ description: 'Its bound (WORKER_MAX_CACHED_WORKFLOWS).' }),
      interval: z
        .object({
          seconds: z.number(),
          hits: int,
          misses: int,
          forcedEvictions: int,
        })
        .nullable()
        .meta({
          description:
            "Since its previous publication, from its Core runtime's temporal_sticky_cache_* counters: tasks of a cached workflow (hits), of one replayed (misses), evictions forced by a full cache. Null with its metrics port off.",
        }),
    }),
  ),
});

/** What one worker process says of its workflow cache. */
export type WorkerCacheFigures = z.infer<typeof workerFiguresSchema>['workers'][number];

/** EVAL, not a defined command: one defined mid auto-pipeline throws outside any promise (it killed the worker). */
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
