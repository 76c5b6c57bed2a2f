/** Gives every request an id (echoed in `X-Request-Id`, errors included) and records its answer by route template. */
import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import type { Context, Middleware, Next } from 'koa';
import type { Logger } from '../infra/logger.js';
import { echo } from '../infra/refusal.js';
import { UNMATCHED_ROUTE, type ApiMetrics } from './metrics.js';

export const REQUEST_ID_HEADER = 'X-Request-Id';

/** Safe to log and echo; long enough for UUIDs and trace ids. */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(incoming: string): string {
  return incoming && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** One answered request, as the access log and the HTTP metrics record it. */
interface AnsweredRequest {
  requestId: string;
  method: string;
  /** The route template, or UNMATCHED_ROUTE (then `path` says what was asked). */
  route: string;
  path: string;
  status: number;
  code: string | undefined;
  ms: number;
}

/** SOLD_OUT logged 1 in `soldOutSampleEvery`, so a sold-out flood is no log flood; the sold-out door shares it. */
export class AccessLog {
  private soldOutSkipped = 0;
  private soldOutSeen = 0;

  constructor(private readonly deps: { logger: Logger; metrics: ApiMetrics; soldOutSampleEvery: number }) {}

  record(answer: AnsweredRequest): void {
    const { logger, metrics, soldOutSampleEvery } = this.deps;
    metrics.observeRequest(answer.method, answer.route, answer.status, answer.ms / 1000);
    let sampled: { every: number; skipped: number } | undefined;
    if (answer.code === 'SOLD_OUT') {
      if (soldOutSampleEvery <= 0 || this.soldOutSeen++ % soldOutSampleEvery !== 0) {
        this.soldOutSkipped++;
        return;
      }
      sampled = { every: soldOutSampleEvery, skipped: this.soldOutSkipped };
      this.soldOutSkipped = 0;
    }
    if (!logger.isLevelEnabled('info')) return;
    const { requestId, method, route, status, code, ms } = answer;
    logger.info(
      {
        reqId: requestId,
        method,
        route,
        ...(route === UNMATCHED_ROUTE ? { path: echo(answer.path) } : {}),
        status,
        ...(code ? { code } : {}),
        ms: Math.round(ms * 100) / 100,
        ...(sampled ? { sampled } : {}),
      },
      'request',
    );
  }
}

export function requestLogMiddleware(accessLog: AccessLog, metrics: ApiMetrics) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const startedAt = metrics.now();
    // errorMiddleware, inside, sets errorCode on an error answer, so the access log names the code.
    const state = ctx.state as { requestId?: string; errorCode?: string };
    const requestId = requestIdOf(ctx.get(REQUEST_ID_HEADER));
    state.requestId = requestId;
    ctx.set(REQUEST_ID_HEADER, requestId);
    try {
      await next();
    } finally {
      accessLog.record({
        requestId,
        method: ctx.method,
        route: routeTemplateOf(ctx),
        path: ctx.path,
        status: ctx.status,
        code: state.errorCode,
        ms: metrics.now() - startedAt,
      });
    }
  };
}

/** The matched template (a 405's too), else UNMATCHED_ROUTE: never the raw path, so labels stay bounded. */
function routeTemplateOf(ctx: Context): string {
  const routed = ctx as { _matchedRoute?: string | RegExp; matched?: { path: string | RegExp; methods: string[] }[] };
  if (typeof routed._matchedRoute === 'string') return routed._matchedRoute;
  const layer = routed.matched?.find((candidate) => candidate.methods.length > 0 && typeof candidate.path === 'string');
  return typeof layer?.path === 'string' ? layer.path : UNMATCHED_ROUTE;
}

/** With tracing on: names each request's span after its route, and answers its trace id in `X-Trace-Id`. */
export function requestSpanMiddleware(): Middleware {
  return async (ctx, next) => {
    const span = trace.getActiveSpan();
    if (!span) return next();
    const { traceId, traceFlags } = span.spanContext();
    // Sampled only: an unsampled trace was never exported, and its id would lead nowhere.
    if (traceFlags & 1) ctx.set('X-Trace-Id', traceId);
    try {
      await next();
    } finally {
      // @koa/router's matched pattern; unmatched paths keep the method-only name (no unbounded names).
      const route = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
      if (typeof route === 'string') {
        span.updateName(`${ctx.method} ${route}`);
        span.setAttribute('http.route', route);
      }
    }
  };
}
