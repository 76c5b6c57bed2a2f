/** Readiness goes through the breakers: an open one shows down at once, and the probe is its half-open probe. */
import Router from '@koa/router';
import type { Client } from '@temporalio/client';
import type { Context } from 'koa';
import { z } from 'zod';
import type { ReportStore } from '../../db/reports.js';
import {
  Deadline,
  DEPENDENCY_NAMES,
  SERVER_NAMES,
  type DependencyGuards,
  type ServerName,
} from '../../infra/dependency-guard.js';
import { shownClocks, type ClockOffset } from '../../infra/clocks.js';
import type { RedisClient } from '../../infra/redis.js';
import type { ApiMetrics } from '../metrics.js';
import { healthDownSchema, healthOkSchema, livenessSchema } from '../response-schemas.js';
import { route } from '../route.js';

/** Whether this process should be sent traffic; from SIGTERM on it drains, still serving what arrives. */
export class Readiness {
  draining = false;
  /** Why to take no traffic though the dependencies answer (e.g. this clock against Redis's), or null. */
  problem: () => string | null = () => null;
  /** Shown with the checks. */
  clocks: () => Record<string, ClockOffset> = () => ({});
}

const PROBE_MS = 1_500;

/** /livez asks no dependency: a restart would not help them. /metrics, like most exporters, is unauthenticated. */
export function operationsRoutes(deps: {
  redis: RedisClient;
  stores: { reports: Pick<ReportStore, 'ping'> };
  temporal: Client;
  guards: DependencyGuards;
  readiness: Readiness;
  metrics: ApiMetrics;
}): Router {
  const router = new Router();
  const probes: Record<ServerName, () => Promise<unknown>> = {
    redis: () => deps.redis.ping(),
    mysql: () => deps.stores.reports.ping(),
    // A gRPC deadline too: else the client retries past the probe, into a maybe closed channel ("has been shut down").
    temporal: () =>
      deps.temporal.connection.withDeadline(Date.now() + PROBE_MS, () =>
        deps.temporal.workflowService.getSystemInfo({}),
      ),
  };
  route(router, {
    at: 'GET /livez',
    operationId: 'getLiveness',
    summary: 'The process serves (asks no dependency)',
    tag: 'operations',
    responses: { 200: { description: 'Alive', schema: livenessSchema } },
    handler(ctx) {
      ctx.body = { status: 'ok' };
    },
  });
  const ready = async (ctx: Context) => {
    if (deps.readiness.draining) {
      ctx.status = 503;
      ctx.body = {
        error: { code: 'UNAVAILABLE', message: 'draining: this process is shutting down and takes no new traffic' },
      };
      return;
    }
    const up = await Promise.all(
      SERVER_NAMES.map((name) =>
        deps.guards[name].call(Deadline.in(PROBE_MS), probes[name]).then(
          () => true,
          () => false,
        ),
      ),
    );
    const checks = Object.fromEntries(SERVER_NAMES.map((name, i) => [name, up[i] ? 'up' : 'down']));
    const down = SERVER_NAMES.filter((_, i) => !up[i]);
    const breakers = Object.fromEntries(DEPENDENCY_NAMES.map((name) => [name, deps.guards[name].state]));
    const problem = deps.readiness.problem();
    const clocks = shownClocks(deps.readiness.clocks());
    const ok = down.length === 0 && !problem;
    ctx.status = ok ? 200 : 503;
    ctx.body = ok
      ? { status: 'ok', checks, breakers, clocks }
      : {
          error: {
            code: 'UNAVAILABLE',
            message: [down.length > 0 ? `down: ${down.join(', ')}` : null, problem].filter(Boolean).join('; '),
          },
          checks,
          breakers,
          clocks,
        };
  };
  for (const [path, operationId, summary] of [
    [
      '/readyz',
      'getReadiness',
      "Ready for traffic: Redis, MySQL and Temporal answer and the process is not draining; with each dependency's breaker",
    ],
    ['/healthz', 'getHealth', 'The same as /readyz, kept for the tools that poll it'],
  ] as const) {
    route(router, {
      at: `GET ${path}`,
      operationId,
      summary,
      tag: 'operations',
      responses: { 200: { description: 'Every dependency answers', schema: healthOkSchema } },
      errors: ['UNAVAILABLE'],
      errorDescriptions: {
        503: '`UNAVAILABLE`: a dependency is down (the message and the checks name it), or the process is draining after SIGTERM',
      },
      errorSchemas: { 503: healthDownSchema },
      handler: ready,
    });
  }

  route(router, {
    at: 'GET /metrics',
    operationId: 'getMetrics',
    summary:
      "The API process's Prometheus metrics (requests, checkout outcomes, reserve and start latency, webhook outcomes)",
    description:
      'Unauthenticated, like most exporters: scrape it inside the network and keep it off the public listener.',
    tag: 'operations',
    responses: {
      200: { description: 'Prometheus text exposition format', contentType: 'text/plain', schema: z.string() },
    },
    async handler(ctx) {
      const { contentType, body } = await deps.metrics.render();
      ctx.type = contentType;
      ctx.body = body;
    },
  });
  return router;
}
