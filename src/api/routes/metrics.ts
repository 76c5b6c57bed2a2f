import Router from '@koa/router';
import type { ApiMetrics } from '../metrics.js';

/**
 * GET /metrics: the API's Prometheus exposition. Unauthenticated, as most exporters are: keep it
 * off the public listener (scrape it inside the network, block it at the load balancer).
 */
export function metricsRoutes(deps: { metrics: ApiMetrics }): Router {
  const router = new Router();
  router.get('/metrics', async (ctx) => {
    const { contentType, body } = await deps.metrics.render();
    ctx.type = contentType;
    ctx.body = body;
  });
  return router;
}
