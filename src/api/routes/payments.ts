import Router from '@koa/router';
import { jsonBody, rawBody } from '../http.js';
import type { PaymentWebhook } from '../payments.js';
import { paymentWebhookSchema } from '../schemas.js';

/** POST /api/payments/webhook: the provider's signed payment events. */
export function paymentRoutes(deps: { webhook: PaymentWebhook }): Router {
  const router = new Router();
  router.post('/api/payments/webhook', async (ctx) => {
    deps.webhook.verify(rawBody(ctx), ctx.get('payment-signature') || undefined);
    const event = paymentWebhookSchema.parse(jsonBody(ctx));
    ctx.body = { received: true, ...(await deps.webhook.handle(event)) };
  });
  return router;
}
