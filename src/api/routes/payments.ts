import Router from '@koa/router';
import { toApiError } from '../errors.js';
import { jsonBody, rawBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import type { PaymentWebhook } from '../payments.js';
import { paymentWebhookSchema } from '../schemas.js';

/** POST /api/payments/webhook: the provider's signed payment events. */
export function paymentRoutes(deps: { webhook: PaymentWebhook; metrics: ApiMetrics }): Router {
  const router = new Router();
  router.post('/api/payments/webhook', async (ctx) => {
    let answer;
    try {
      deps.webhook.verify(rawBody(ctx), ctx.get('payment-signature') || undefined);
      const event = paymentWebhookSchema.parse(jsonBody(ctx));
      answer = await deps.webhook.handle(event);
    } catch (err) {
      deps.metrics.webhookOutcome(toApiError(err).code);
      throw err;
    }
    deps.metrics.webhookOutcome(answer.outcome);
    ctx.body = { received: true, ...answer };
  });
  return router;
}
