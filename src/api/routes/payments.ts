import Router from '@koa/router';
import type { PaymentWebhook } from '../../payments/payment-webhook.js';
import { errorCodeOf } from '../errors.js';
import { rawBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import type { RateLimits } from '../rate-limit.js';
import { webhookAnswerSchema } from '../response-schemas.js';
import { route } from '../route.js';
import { paymentWebhookSchema } from '../schemas.js';

/** POST /api/payments/webhook: the provider's signed payment events. */
export function paymentRoutes(deps: { webhook: PaymentWebhook; metrics: ApiMetrics; limits?: RateLimits }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'post',
      path: '/api/payments/webhook',
      operationId: 'paymentWebhook',
      summary: "The payment provider's signed payment event",
      description:
        'Recorded first (the event id is a primary key), then delivered to the order, whose verdict is answered. ' +
        'The same event sent again answers DUPLICATE and changes nothing; a payment that cannot be applied is kept as REFUND_REQUIRED.',
      tag: 'payments',
      auth: 'webhook',
      body: paymentWebhookSchema,
      responses: { 200: { description: "The order's verdict on the event", schema: webhookAnswerSchema } },
      errors: {
        400: { codes: ['INVALID_SIGNATURE', 'INVALID_REQUEST'] },
        404: { codes: ['ORDER_NOT_FOUND'] },
        429: { codes: ['RATE_LIMITED'], description: '`RATE_LIMITED`: too many calls from this client IP (RATE_LIMIT_WEBHOOK); see Retry-After' },
        503: { codes: ['UNAVAILABLE'], description: '`UNAVAILABLE`: the event is recorded but its order did not answer in time; retry' },
      },
    },
    async (ctx, input) => {
      let answer;
      try {
        // Before the signature: a flood of forged calls from one address is refused without HMACs.
        await deps.limits?.consume('webhook', ctx.ip);
        deps.webhook.verify(rawBody(ctx), ctx.get('payment-signature') || undefined);
        answer = await deps.webhook.handle(input.body());
      } catch (err) {
        deps.metrics.webhookOutcome(errorCodeOf(err));
        throw err;
      }
      deps.metrics.webhookOutcome(answer.outcome);
      ctx.body = { received: true, ...answer };
    },
  );
  return router;
}
