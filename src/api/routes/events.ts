import Router from '@koa/router';
import type { OrderEventFeed } from '../../events/order-events.js';
import { requireEventsReader } from '../auth.js';
import { orderEventPageSchema } from '../response-schemas.js';
import { route } from '../route.js';
import { orderEventsQuerySchema } from '../schemas.js';

/** GET /api/admin/events: the order events feed, for the merchant's systems to catch up from (docs/api.md). */
export function eventRoutes(deps: {
  feed: Pick<OrderEventFeed, 'read'>;
  tokens: { adminToken: string; eventsReadToken: string | null };
}): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'get',
      path: '/api/admin/events',
      operationId: 'listOrderEvents',
      summary: 'Order events after a cursor, in the order they were written; none skipped by a late commit',
      tag: 'admin',
      auth: 'eventsReader',
      query: orderEventsQuerySchema,
      responses: { 200: { description: 'The events ready after the cursor', schema: orderEventPageSchema } },
      errors: {
        400: { codes: ['INVALID_REQUEST'] },
        401: { codes: ['UNAUTHORIZED'] },
        410: { codes: ['CURSOR_EXPIRED'] },
      },
    },
    async (ctx, input) => {
      requireEventsReader(ctx, deps.tokens);
      ctx.body = await deps.feed.read(input.query());
    },
  );
  return router;
}
