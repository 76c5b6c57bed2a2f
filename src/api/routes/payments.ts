/**
 * The payment providers' webhooks, one route per registered provider (src/payments/providers/registry.ts), as each
 * declares it: POST /api/payments/webhook (the generic signed event), POST /api/payments/stripe (Stripe's), …. Each
 * verifies the signature (a forged call counts against the per-address limit), hands the event to its provider's
 * intake and answers its verdict; a provider registered but not configured here answers 404.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { ApiError, errorCodeOf } from '../errors.js';
import { rawBody } from '../http.js';
import type { ApiMetrics } from '../metrics.js';
import type { RateLimits } from '../rate-limit.js';
import { route } from '../route.js';
import type { StripeWebhookOutcome } from '../../model/order-workflow.js';
import type { ProviderDefinition, WebhookIntake } from '../../payments/providers/definition.js';

/** A registered provider, and its intake where it is configured here (null: its route answers 404). */
export interface MountedProvider {
  definition: ProviderDefinition;
  intake: WebhookIntake | null;
}

/** POST <each provider's webhook path>: its signed events. */
export function providerWebhookRoutes(deps: {
  providers: readonly MountedProvider[];
  metrics: ApiMetrics;
  limits?: RateLimits;
}): Router {
  const router = new Router();
  for (const { definition, intake } of deps.providers) {
    const { webhook } = definition;
    route(
      router,
      {
        method: 'post',
        path: webhook.path,
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
        errors: {
          400: { codes: ['INVALID_SIGNATURE', 'INVALID_REQUEST'] },
          // A provider that may be left unconfigured answers 404 where it is.
          ...(webhook.notConfigured ? { 404: { codes: ['NOT_FOUND'], description: webhook.notConfigured } } : {}),
          429: {
            codes: ['RATE_LIMITED'],
            description: '`RATE_LIMITED`: too many calls from this client IP (RATE_LIMIT_WEBHOOK); see Retry-After',
          },
          503: { codes: ['UNAVAILABLE'], description: webhook.unavailable },
        },
      },
      (ctx, input) =>
        answerWebhook(ctx, deps.metrics, async () => {
          if (!intake) throw new ApiError(404, 'NOT_FOUND', `${definition.name} is not configured here`);
          // The signature first (forged calls count against the per-address limit), then the event.
          const verified = await onlyForgedCount(deps.limits, ctx.ip, () =>
            intake.verify(rawBody(ctx), ctx.get(webhook.signature.header) || undefined),
          );
          return intake.handle(verified, () => input.body());
        }),
    );
  }
  return router;
}

/**
 * Runs a webhook's signature check; a call that fails it counts against RATE_LIMIT_WEBHOOK for its
 * address (past the limit: 429 RATE_LIMITED instead of 400). Verified calls are not counted: the
 * provider delivers from a few addresses and retries a 429 late, so a limit meant for shoppers
 * would hold back its payments at a sale's peak.
 */
export async function onlyForgedCount<T>(
  limits: RateLimits | undefined,
  ip: string,
  verify: () => T | Promise<T>,
): Promise<T> {
  try {
    return await verify();
  } catch (err) {
    if (limits && errorCodeOf(err) === 'INVALID_SIGNATURE') await limits.consume('webhook', ip);
    throw err;
  }
}

/**
 * Answers a payment webhook (the generic one, a provider's): what `handle` found, counted by outcome (an error by its
 * code), 202 when the verdict comes later.
 */
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
