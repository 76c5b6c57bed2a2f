import Router from '@koa/router';
import type { Client } from '@temporalio/client';
import type { Context } from 'koa';
import type { RedisClient } from '../../infra/redis.js';
import type { Store } from '../../db/store.js';
import { route } from '../documented-route.js';
import type { DependencyGuards } from '../../infra/dependency-guard.js';
import { breakerStates, checkHealth, type Readiness } from '../health.js';
import { healthDownSchema, healthOkSchema, livenessSchema } from '../response-schemas.js';

/**
 * GET /livez: the process serves (no dependency is asked; a restart would not help them).
 * GET /readyz: 200 when Redis, MySQL and Temporal answer and the process is not draining, else 503
 * naming why; either way with each dependency's breaker. GET /healthz: the same as /readyz, kept
 * for the tools that poll it.
 */
export function healthRoutes(deps: { redis: RedisClient; store: Store; temporal: Client; guards: DependencyGuards; readiness?: Readiness }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'get',
      path: '/livez',
      operationId: 'getLiveness',
      summary: 'The process serves (asks no dependency)',
      tag: 'operations',
      responses: { 200: { description: 'Alive', schema: livenessSchema } },
    },
    (ctx) => {
      ctx.body = { status: 'ok' };
    },
  );
  const ready = async (ctx: Context) => {
    if (deps.readiness?.draining) {
      ctx.status = 503;
      ctx.body = { error: { code: 'UNAVAILABLE', message: 'draining: this process is shutting down and takes no new traffic' } };
      return;
    }
    const report = await checkHealth(deps);
    // The breakers say what this process's requests meet now; the checks, what a round trip finds.
    const breakers = breakerStates(deps.guards);
    ctx.status = report.ok ? 200 : 503;
    ctx.body = report.ok
      ? { status: 'ok', checks: report.checks, breakers }
      : { error: { code: 'UNAVAILABLE', message: `down: ${report.down.join(', ')}` }, checks: report.checks, breakers };
  };
  for (const [path, operationId, summary] of [
    ['/readyz', 'getReadiness', "Ready for traffic: Redis, MySQL and Temporal answer and the process is not draining; with each dependency's breaker"],
    ['/healthz', 'getHealth', 'The same as /readyz, kept for the tools that poll it'],
  ] as const) {
    route(
      router,
      {
        method: 'get',
        path,
        operationId,
        summary,
        tag: 'operations',
        responses: { 200: { description: 'Every dependency answers', schema: healthOkSchema } },
        errors: {
          503: {
            codes: ['UNAVAILABLE'],
            description: '`UNAVAILABLE`: a dependency is down (the message and the checks name it), or the process is draining after SIGTERM',
            schema: healthDownSchema,
          },
        },
      },
      ready,
    );
  }
  return router;
}
