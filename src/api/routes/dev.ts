/** The development helpers (AUTH_DEV_LOGIN=true only) and the pages that use them: the dashboard and the line demo. */
import Router from '@koa/router';
import type { AppConfig } from '../../config/index.js';
import { findOwnOrder, type OrderStatusReader } from '../../order/status-reads.js';
import { webhookAnswerSchema } from '../../payments/receiver.js';
import type { PaymentReceiver } from '../../payments/receiver.js';
import type { ShopperAuth } from '../auth.js';
import { ApiError } from '../errors.js';
import type { RateLimits } from '../rate-limit.js';
import { devConfigSchema, devLoginAnswerSchema } from '../response-schemas.js';
import { route } from '../route.js';
import { devLoginSchema, simulatePaymentSchema } from '../schemas.js';
import { pageRoute } from '../scripted-pages.js';

/** ADMIN_TOKEN's default (test/admin.test.ts checks it), a literal: the page may be told it, never a real one. */
export const DEV_DEFAULT_ADMIN_TOKEN = 'dev-admin-token';

export function devRoutes(deps: {
  config: Pick<AppConfig, 'authDevLogin' | 'temporalUiUrl' | 'temporal' | 'adminToken'>;
  auth: ShopperAuth;
  limits: RateLimits;
  statusReader: OrderStatusReader;
  webhook: PaymentReceiver;
}): Router {
  const { config } = deps;
  const router = new Router();
  route(router, {
    at: 'POST /api/auth/dev-login',
    operationId: 'devLogin',
    summary: 'A shopper token for any user id (development only)',
    description:
      'Only with AUTH_DEV_LOGIN=true. In production, shopper tokens come from the identity provider with the same claims.',
    tag: 'auth',
    body: devLoginSchema,
    responses: { 200: { description: 'A shopper token for userId', schema: devLoginAnswerSchema } },
    errors: ['INVALID_REQUEST', 'NOT_FOUND', 'RATE_LIMITED'],
    errorDescriptions: {
      404: '`NOT_FOUND`: dev login is disabled (AUTH_DEV_LOGIN=false)',
      429: '`RATE_LIMITED`: too many logins from this client IP (RATE_LIMIT_LOGIN); see Retry-After',
    },
    async handler(ctx, input) {
      if (!config.authDevLogin) throw new ApiError('NOT_FOUND', 'dev login is disabled (AUTH_DEV_LOGIN=false)');
      await deps.limits.consume('login', ctx.ip);
      const { userId } = input.body();
      ctx.body = { token: await deps.auth.issue(userId), userId };
    },
  });

  route(router, {
    at: 'POST /api/dev/simulate-payment',
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
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'ORDER_NOT_FOUND', 'UNAVAILABLE'],
    errorDescriptions: {
      404: '`NOT_FOUND`: dev helpers are disabled (AUTH_DEV_LOGIN=false); `ORDER_NOT_FOUND`: no such order',
    },
    async handler(ctx, input) {
      if (!config.authDevLogin) throw new ApiError('NOT_FOUND', 'dev helpers are disabled (AUTH_DEV_LOGIN=false)');
      const userId = await deps.auth.authenticate(ctx);
      const { orderNo } = input.body();
      const order = await findOwnOrder(deps.statusReader, orderNo, userId);
      const answer = await deps.webhook.handle({
        eventId: `evt_demo_${orderNo}_${Date.now()}`,
        orderNo,
        amountCents: order.view.totalCents,
      });
      if (answer.outcome === 'RECEIVED') ctx.status = 202;
      ctx.body = { received: true, ...answer };
    },
  });

  pageRoute(router, 'index.html', {
    path: '/',
    operationId: 'getDashboard',
    summary: 'The live sale dashboard (HTML)',
    tag: 'dev',
    answer: 'The dashboard page',
  });
  pageRoute(router, 'line-demo.html', {
    path: '/line-demo',
    operationId: 'getLineDemoPage',
    summary: "A shopper's place in a sale's waiting line, counting down (HTML; its buttons need dev login)",
    tag: 'dev',
    answer: 'The waiting line demo page',
  });
  route(router, {
    at: 'GET /api/dev/config',
    operationId: 'getDevConfig',
    summary: "The Web UI's URL and namespace for the dashboard's links (development only)",
    description: 'Only with AUTH_DEV_LOGIN=true. Names the admin token only when it is the dev default.',
    tag: 'dev',
    responses: { 200: { description: 'What the dashboard needs', schema: devConfigSchema } },
    errors: ['NOT_FOUND'],
    errorDescriptions: { 404: '`NOT_FOUND`: dev helpers are disabled (AUTH_DEV_LOGIN=false)' },
    handler(ctx) {
      if (!config.authDevLogin) throw new ApiError('NOT_FOUND', 'dev helpers are disabled (AUTH_DEV_LOGIN=false)');
      ctx.body = {
        temporalUiUrl: config.temporalUiUrl,
        namespace: config.temporal.namespace,
        devAdminToken: config.adminToken === DEV_DEFAULT_ADMIN_TOKEN ? DEV_DEFAULT_ADMIN_TOKEN : null,
      };
    },
  });
  return router;
}
