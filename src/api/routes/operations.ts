/**
 * Liveness, readiness (a bounded round trip to each dependency) and metrics. Round trips go through the breakers: an
 * open one shows as down at once, and the readiness probe is its half-open probe, so it closes with no shopper traffic.
 */
import Router from '@koa/router';
import type { Client } from '@temporalio/client';
import type { Context } from 'koa';
import { z } from 'zod';
import type { ReportStore } from '../../db/reports.js';
import {
  Deadline,
  DEPENDENCY_NAMES,
  SERVER_NAMES,
  type BreakerState,
  type DependencyGuards,
  type DependencyName,
  type ServerName,
} from '../../infra/dependency-guard.js';
import { shownClocks, type ClockOffset } from '../../infra/clocks.js';
import type { RedisClient } from '../../infra/redis.js';
import type { ApiMetrics } from '../metrics.js';
import { healthDownSchema, healthOkSchema, livenessSchema } from '../response-schemas.js';
import { route } from '../route.js';

export interface HealthReport {
  ok: boolean;
  checks: Record<ServerName, 'up' | 'down'>;
  down: ServerName[];
}

/** Each dependency's breaker as it stands. */
export function breakerStates(guards: DependencyGuards): Record<DependencyName, BreakerState> {
  return Object.fromEntries(DEPENDENCY_NAMES.map((name) => [name, guards[name].state])) as Record<
    DependencyName,
    BreakerState
  >;
}

const TIMEOUT_MS = 1_500;

export async function checkHealth(deps: {
  redis: RedisClient;
  stores: { reports: Pick<ReportStore, 'ping'> };
  temporal: Client;
  guards?: DependencyGuards;
}): Promise<HealthReport> {
  const probes: Record<ServerName, () => Promise<unknown>> = {
    redis: () => deps.redis.ping(),
    mysql: () => deps.stores.reports.ping(),
    // A gRPC deadline too, else the client retries after the probe gave up, into a connection that may be closed by
    // then (an uncaught "Channel has been shut down").
    temporal: () =>
      deps.temporal.connection.withDeadline(Date.now() + TIMEOUT_MS, () =>
        deps.temporal.workflowService.getSystemInfo({}),
      ),
  };
  const results = await Promise.all(
    SERVER_NAMES.map((name) => {
      const guard = deps.guards?.[name];
      const probe = guard ? guard.call(Deadline.in(TIMEOUT_MS), probes[name]) : withTimeout(probes[name]());
      return probe.then(
        () => true,
        () => false,
      );
    }),
  );
  const checks = Object.fromEntries(
    SERVER_NAMES.map((name, i) => [name, results[i] ? 'up' : 'down']),
  ) as HealthReport['checks'];
  const down = SERVER_NAMES.filter((name) => checks[name] === 'down');
  return { ok: down.length === 0, checks, down };
}

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether this process should be sent traffic; from SIGTERM on it drains, still serving what arrives. */
export class Readiness {
  private drainingSince: number | undefined;
  /** Why to take no traffic though the dependencies answer (e.g. this clock against Redis's), or null. */
  private problemOf: () => string | null = () => null;
  private clocksOf: () => Record<string, ClockOffset> = () => ({});

  /** Unready while `problem` returns a reason; `clocks` are shown with it. */
  watch(problem: () => string | null, clocks?: () => Record<string, ClockOffset>): void {
    this.problemOf = problem;
    if (clocks) this.clocksOf = clocks;
  }

  get clocks(): Record<string, ClockOffset> {
    return this.clocksOf();
  }

  get problem(): string | null {
    return this.problemOf();
  }

  startDraining(now = Date.now()): void {
    this.drainingSince ??= now;
  }

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }
}

/** GET /livez (asks no dependency: a restart would not help them), GET /readyz and its alias /healthz. */
export function healthRoutes(deps: {
  redis: RedisClient;
  stores: { reports: Pick<ReportStore, 'ping'> };
  temporal: Client;
  guards: DependencyGuards;
  readiness: Readiness;
}): Router {
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
    if (deps.readiness.draining) {
      ctx.status = 503;
      ctx.body = {
        error: { code: 'UNAVAILABLE', message: 'draining: this process is shutting down and takes no new traffic' },
      };
      return;
    }
    const report = await checkHealth(deps);
    const breakers = breakerStates(deps.guards);
    const problem = deps.readiness.problem;
    const clocks = shownClocks(deps.readiness.clocks ?? {});
    ctx.status = report.ok && !problem ? 200 : 503;
    ctx.body =
      report.ok && !problem
        ? { status: 'ok', checks: report.checks, breakers, clocks }
        : {
            error: {
              code: 'UNAVAILABLE',
              message: [report.ok ? null : `down: ${report.down.join(', ')}`, problem].filter(Boolean).join('; '),
            },
            checks: report.checks,
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
            description:
              '`UNAVAILABLE`: a dependency is down (the message and the checks name it), or the process is draining after SIGTERM',
            schema: healthDownSchema,
          },
        },
      },
      ready,
    );
  }
  return router;
}

/** GET /metrics, unauthenticated like most exporters: keep it off the public listener. */
export function metricsRoutes(deps: { metrics: ApiMetrics }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'get',
      path: '/metrics',
      operationId: 'getMetrics',
      summary:
        "The API process's Prometheus metrics (requests, checkout outcomes, reserve and start latency, webhook outcomes)",
      description:
        'Unauthenticated, like most exporters: scrape it inside the network and keep it off the public listener.',
      tag: 'operations',
      responses: {
        200: { description: 'Prometheus text exposition format', contentType: 'text/plain', schema: z.string() },
      },
    },
    async (ctx) => {
      const { contentType, body } = await deps.metrics.render();
      ctx.type = contentType;
      ctx.body = body;
    },
  );
  return router;
}
