import Router from '@koa/router';
import { jsonBody, rawBody } from '../http.js';
import type { PaymentWebhook } from '../payments.js';
import type { RateLimits } from '../rate-limit.js';
import { paymentWebhookSchema } from '../schemas.js';

/** POST /api/payments/webhook: the provider's signed payment events. */
export function paymentRoutes(deps: { webhook: PaymentWebhook; limits?: RateLimits }): Router {
  const router = new Router();
  router.post('/api/payments/webhook', async (ctx) => {
    // Before the signature: a flood of forged calls from one address is refused without HMACs.
    await deps.limits?.consume('webhook', ctx.ip);
    deps.webhook.verify(rawBody(ctx), ctx.get('payment-signature') || undefined);
    const event = paymentWebhookSchema.parse(jsonBody(ctx));
    ctx.body = { received: true, ...(await deps.webhook.handle(event)) };
  });
  return router;
}
