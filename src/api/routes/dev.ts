import Router from '@koa/router';
import { findOwnOrder, type OrderStatusReader } from '../../order/status-reads.js';
import type { ShopperAuth } from '../auth.js';
import { route } from '../route.js';
import { ApiError } from '../errors.js';
import type { PaymentReceiver } from '../../payments/receiver.js';
import { webhookAnswerSchema } from '../response-schemas.js';
import { simulatePaymentSchema } from '../schemas.js';

/** POST /api/dev/simulate-payment: pays the shopper's own order as the provider would (AUTH_DEV_LOGIN=true only). */
export function devRoutes(deps: {
  auth: ShopperAuth;
  orders: OrderStatusReader;
  webhook: PaymentReceiver;
  enabled: boolean;
}): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'post',
      path: '/api/dev/simulate-payment',
      operationId: 'simulatePayment',
      summary: "Pay the shopper's own order as the provider would (development only)",
      description:
        'Only with AUTH_DEV_LOGIN=true: the dashboard\'s "Pay" button. Pays the order\'s total through the webhook service.',
      tag: 'dev',
      auth: 'shopper',
      body: simulatePaymentSchema,
      responses: {
        200: { description: "The webhook's answer", schema: webhookAnswerSchema },
        202: {
          description: "The webhook's answer when the order has no row yet (RECEIVED): decided as its row is written",
          schema: webhookAnswerSchema,
        },
      },
      errors: {
        400: { codes: ['INVALID_REQUEST'] },
        401: { codes: ['UNAUTHORIZED'] },
        403: { codes: ['FORBIDDEN'] },
        404: {
          codes: ['NOT_FOUND', 'ORDER_NOT_FOUND'],
          description: '`NOT_FOUND`: dev helpers are disabled (AUTH_DEV_LOGIN=false); `ORDER_NOT_FOUND`: no such order',
        },
        503: { codes: ['UNAVAILABLE'] },
      },
    },
    async (ctx, input) => {
      if (!deps.enabled) throw new ApiError(404, 'NOT_FOUND', 'dev helpers are disabled (AUTH_DEV_LOGIN=false)');
      const userId = await deps.auth.authenticate(ctx);
      const { orderNo } = input.body();
      const order = await findOwnOrder(deps.orders, orderNo, userId);
      const answer = await deps.webhook.handle({
        eventId: `evt_demo_${orderNo}_${Date.now()}`,
        orderNo,
        amountCents: order.view.totalCents,
      });
      if (answer.outcome === 'RECEIVED') ctx.status = 202;
      ctx.body = { received: true, ...answer };
    },
  );

  return router;
}
