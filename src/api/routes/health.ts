import Router from '@koa/router';
import type { Client } from '@temporalio/client';
import type { RedisClient } from '../../infra/redis.js';
import type { Store } from '../../db/store.js';
import { checkHealth } from '../health.js';

/** GET /healthz: 200 when Redis, MySQL and Temporal answer, else 503 naming what is down. */
export function healthRoutes(deps: { redis: RedisClient; store: Store; temporal: Client }): Router {
  const router = new Router();
  router.get('/healthz', async (ctx) => {
    const report = await checkHealth(deps);
    ctx.status = report.ok ? 200 : 503;
    ctx.body = report.ok
      ? { status: 'ok', checks: report.checks }
      : { error: { code: 'UNAVAILABLE', message: `down: ${report.down.join(', ')}` }, checks: report.checks };
  });
  return router;
}
