/** With tracing on: names each request's span after its route, and answers its trace id in `X-Trace-Id`. */
import { trace } from '@opentelemetry/api';
import type { Middleware } from 'koa';

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
