/** One webhook route per payment provider configured here; an unconfigured one has none (src/api/app.ts). */
import Router from '@koa/router';
import type { Context } from 'koa';
import { errorCodeOf } from '../errors.js';
import { rawBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import type { RateLimits } from '../rate-limit.js';
import { route } from '../route.js';
import type { StripeWebhookOutcome } from '../../model/order-workflow.js';
import type { ProviderDefinition, WebhookIntake } from '../../payments/providers/definition.js';

export interface MountedProvider {
  definition: ProviderDefinition;
  intake: WebhookIntake;
}

export function providerWebhookRoutes(deps: {
  providers: readonly MountedProvider[];
  metrics: ApiMetrics;
  limits: RateLimits;
}): Router {
  const router = new Router();
  for (const { definition, intake } of deps.providers) {
    const { webhook } = definition;
    route(router, {
      at: `POST ${webhook.path}`,
      operationId: webhook.operationId,
      summary: webhook.summary,
      description: webhook.description,
      tag: 'payments',
      auth: webhook.signature,
      // Declared for the document; the intake's verify reads it itself (INVALID_SIGNATURE, not INVALID_REQUEST).
      headers: webhook.headers,
      body: webhook.body,
      responses: {
        200: { description: webhook.answers[200], schema: webhook.answer },
        202: { description: webhook.answers[202], schema: webhook.answer },
      },
      errors: ['INVALID_SIGNATURE', 'INVALID_REQUEST', 'RATE_LIMITED', 'UNAVAILABLE'],
      errorDescriptions: {
        429: '`RATE_LIMITED`: too many calls from this client IP (RATE_LIMIT_WEBHOOK); see Retry-After',
        503: webhook.unavailable,
      },
      handler: (ctx, input) =>
        answerWebhook(ctx, deps.metrics, async () => {
          // The signature before the body, so a forged call counts against the limit.
          const verified = await onlyForgedCount(deps.limits, ctx.ip, () =>
            intake.verify(rawBody(ctx), ctx.get(webhook.signature.header) || undefined),
          );
          return intake.handle(verified, () => input.body());
        }),
    });
  }
  return router;
}

/** Only a failed signature counts (RATE_LIMIT_WEBHOOK): a provider sends from few addresses and retries a 429 late. */
export async function onlyForgedCount<T>(limits: RateLimits, ip: string, verify: () => T | Promise<T>): Promise<T> {
  try {
    return await verify();
  } catch (err) {
    if (errorCodeOf(err) === 'INVALID_SIGNATURE') await limits.consume('webhook', ip);
    throw err;
  }
}

/** Answers what `handle` found, counted by outcome (an error by its code); 202 when the verdict comes later. */
export async function answerWebhook(
  ctx: Context,
  metrics: Pick<ApiMetrics, 'webhookOutcome'>,
  handle: () => Promise<{ outcome: StripeWebhookOutcome }>,
): Promise<void> {
  let answer;
  try {
    answer = await handle();
  } catch (err) {
    metrics.webhookOutcome(errorCodeOf(err));
    throw err;
  }
  metrics.webhookOutcome(answer.outcome);
  if (answer.outcome === 'RECEIVED') ctx.status = 202;
  ctx.body = { received: true, ...answer };
}
