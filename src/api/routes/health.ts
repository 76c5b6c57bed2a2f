import Router from '@koa/router';
import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type { Store } from '../../db/store.js';
import { route } from '../documented-route.js';
import { checkHealth } from '../health.js';
import { healthDownSchema, healthOkSchema } from '../response-schemas.js';

/** GET /healthz: 200 when Redis, MySQL and Temporal answer, else 503 naming what is down. */
export function healthRoutes(deps: { redis: Redis; store: Store; temporal: Client }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'get',
      path: '/healthz',
      operationId: 'getHealth',
      summary: 'Whether Redis, MySQL and Temporal answer',
      tag: 'operations',
      responses: { 200: { description: 'Every dependency answers', schema: healthOkSchema } },
      errors: {
        503: { codes: ['UNAVAILABLE'], description: '`UNAVAILABLE`: a dependency is down; the message and the checks name it', schema: healthDownSchema },
      },
    },
    async (ctx) => {
      const report = await checkHealth(deps);
      ctx.status = report.ok ? 200 : 503;
      ctx.body = report.ok
        ? { status: 'ok', checks: report.checks }
        : { error: { code: 'UNAVAILABLE', message: `down: ${report.down.join(', ')}` }, checks: report.checks };
    },
  );
  return router;
}
