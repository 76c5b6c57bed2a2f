import Router from '@koa/router';
import type { PaymentWebhook } from '../../payments/payment-webhook.js';
import { errorCodeOf } from '../errors.js';
import { rawBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import type { RateLimits } from '../rate-limit.js';
import { webhookAnswerSchema } from '../response-schemas.js';
import { route } from '../route.js';
import { paymentSignatureHeadersSchema, paymentWebhookSchema } from '../schemas.js';

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
        'Recorded first (the event id is a primary key; MySQL stamps when it arrived), then delivered to the order. ' +
        "200: the order's verdict, APPLIED or REFUND_REQUIRED (kept for a refund), or DUPLICATE for an event already judged. " +
        '202 RECEIVED: recorded, but the order did not judge it within half of WRITE_DEADLINE; the service delivers it until it does ' +
        '(no retry needed; a retry answers the verdict once there is one). A payment is judged by when it arrived: ' +
        "recorded at or before the order's paymentDeadline with the full amount, it pays the order however late it is delivered. " +
        '503: not recorded; retry.',
      tag: 'payments',
      auth: 'webhook',
      // Declared for the document; the signature check reads it itself (INVALID_SIGNATURE, not INVALID_REQUEST).
      headers: paymentSignatureHeadersSchema,
      body: paymentWebhookSchema,
      responses: {
        200: { description: "The order's verdict on the event (APPLIED, REFUND_REQUIRED), or DUPLICATE", schema: webhookAnswerSchema },
        202: { description: 'RECEIVED: recorded; the verdict comes later, without a retry', schema: webhookAnswerSchema },
      },
      errors: {
        400: { codes: ['INVALID_SIGNATURE', 'INVALID_REQUEST'] },
        429: { codes: ['RATE_LIMITED'], description: '`RATE_LIMITED`: too many calls from this client IP (RATE_LIMIT_WEBHOOK); see Retry-After' },
        503: { codes: ['UNAVAILABLE'], description: '`UNAVAILABLE`: the event could not be recorded (MySQL did not answer in time); retry after Retry-After' },
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
      if (answer.outcome === 'RECEIVED') ctx.status = 202;
      ctx.body = { received: true, ...answer };
    },
  );
  return router;
}
