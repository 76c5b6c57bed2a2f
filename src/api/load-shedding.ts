/**
 * Beyond `maxInFlight`, 503 before the body is read: a stalled dependency holds bounded memory. Long-polls are bounded
 * by STATUS_LONG_POLL_MAX_WAITERS instead. Outermost: a shed request costs a counter, not an access-log line.
 */
import type { Context, Middleware, Next } from 'koa';
import type { Logger } from '../infra/logger.js';
import type { ApiMetrics } from './metrics.js';

const ALWAYS_ANSWERED = new Set(['/livez', '/readyz', '/healthz', '/metrics']);

/** Shedding ends below this share of the bound, so the log does not flap. */
const RESUME_BELOW = 0.8;

export function loadShedding(deps: { maxInFlight: number; metrics: ApiMetrics; logger: Logger }): Middleware {
  const { maxInFlight, metrics, logger } = deps;
  let inFlight = 0;
  let shedding: { since: number; shed: number } | undefined;
  return async (ctx: Context, next: Next): Promise<void> => {
    if (maxInFlight === 0 || isExempt(ctx)) return next();
    if (inFlight >= maxInFlight) {
      metrics.requestShed();
      if (shedding) shedding.shed++;
      else {
        shedding = { since: Date.now(), shed: 1 };
        logger.warn(
          { inFlight, maxInFlight },
          'load shedding: requests beyond MAX_IN_FLIGHT_REQUESTS are answered 503',
        );
      }
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.set('Connection', 'close');
      ctx.body = { error: { code: 'UNAVAILABLE', message: 'this server is at capacity; retry shortly' } };
      return;
    }
    inFlight++;
    metrics.setInFlight(inFlight);
    try {
      await next();
    } finally {
      inFlight--;
      metrics.setInFlight(inFlight);
      if (shedding && inFlight < maxInFlight * RESUME_BELOW) {
        logger.info({ shed: shedding.shed, ms: Date.now() - shedding.since }, 'load shedding ended');
        shedding = undefined;
      }
    }
  };
}

function isExempt(ctx: Context): boolean {
  if (ALWAYS_ANSWERED.has(ctx.path)) return true;
  return ctx.method === 'GET' && ctx.querystring.includes('waitForChange=');
}
