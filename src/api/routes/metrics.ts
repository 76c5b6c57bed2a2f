import Router from '@koa/router';
import { z } from 'zod';
import { route } from '../documented-route.js';
import type { ApiMetrics } from '../metrics.js';

/**
 * GET /metrics: the API's Prometheus exposition. Unauthenticated, as most exporters are: keep it
 * off the public listener (scrape it inside the network, block it at the load balancer).
 */
export function metricsRoutes(deps: { metrics: ApiMetrics }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'get',
      path: '/metrics',
      operationId: 'getMetrics',
      summary: "The API process's Prometheus metrics (requests, checkout outcomes, reserve and start latency, webhook outcomes)",
      description: 'Unauthenticated, like most exporters: scrape it inside the network and keep it off the public listener.',
      tag: 'operations',
      responses: { 200: { description: 'Prometheus text exposition format', contentType: 'text/plain', schema: z.string() } },
    },
    async (ctx) => {
      const { contentType, body } = await deps.metrics.render();
      ctx.type = contentType;
      ctx.body = body;
    },
  );
  return router;
}
