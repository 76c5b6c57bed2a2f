/**
 * The outermost middleware of the API: gives every request an id (the caller's valid
 * `X-Request-Id`, else a fresh UUID) and returns it in the `X-Request-Id` header, errors included;
 * then, once the answer is known, records the request in the metrics and writes one access-log
 * line. Route labels are the router's templates (`/api/orders/:orderNo`), never raw paths.
 *
 * A sold-out flood must not turn into a logging flood: `409 SOLD_OUT` answers are logged 1 in
 * `soldOutSampleEvery`, each logged line carrying how many were skipped since the previous one
 * (the metrics still count every one). Every other answer is logged.
 */
import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from '../infra/logger.js';
import { echo } from '../infra/refusal.js';
import { UNMATCHED_ROUTE, type ApiMetrics } from './metrics.js';

export const REQUEST_ID_HEADER = 'X-Request-Id';

/** At most 128 characters of [A-Za-z0-9._:-]: safe to log and echo, enough for UUIDs and trace ids. */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The id of the request: the caller's when it is valid, a new UUID otherwise. */
export function requestIdOf(incoming: string): string {
  return incoming && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** What the middleware leaves on ctx.state for the middleware inside it (errorMiddleware). */
export interface RequestLogState {
  requestId?: string;
  /** Set by errorMiddleware on an error answer, so the access log names the code. */
  errorCode?: string;
}

/** One answered request, as the access log and the HTTP metrics record it. */
export interface AnsweredRequest {
  requestId: string;
  method: string;
  /** The route template, or UNMATCHED_ROUTE (then `path` says what was asked). */
  route: string;
  path: string;
  status: number;
  code: string | undefined;
  ms: number;
}

/**
 * Records answered requests: the HTTP metrics for every one, an access-log line for every one but
 * 409 SOLD_OUT, logged 1 in `soldOutSampleEvery`. Shared by the middleware below and the sold-out
 * door (src/api/sold-out-door.ts), so both count and sample alike.
 */
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
    const state = ctx.state as RequestLogState;
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

/**
 * The @koa/router template the request matched; for a known path with a wrong method (405), the
 * path's template; UNMATCHED_ROUTE otherwise. Never the raw path, so label values stay bounded.
 */
function routeTemplateOf(ctx: Context): string {
  const routed = ctx as { _matchedRoute?: string | RegExp; matched?: { path: string | RegExp; methods: string[] }[] };
  if (typeof routed._matchedRoute === 'string') return routed._matchedRoute;
  const layer = routed.matched?.find((candidate) => candidate.methods.length > 0 && typeof candidate.path === 'string');
  return typeof layer?.path === 'string' ? layer.path : UNMATCHED_ROUTE;
}
