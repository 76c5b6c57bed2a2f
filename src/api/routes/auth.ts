import Router from '@koa/router';
import type { ShopperAuth } from '../auth.js';
import { route } from '../route.js';
import { ApiError } from '../errors.js';
import { devLoginAnswerSchema } from '../response-schemas.js';
import type { RateLimits } from '../rate-limit.js';
import { devLoginSchema } from '../schemas.js';

/** POST /api/auth/dev-login: a shopper token for any user id, only with AUTH_DEV_LOGIN=true. */
export function authRoutes(deps: { auth: ShopperAuth; devLogin: boolean; limits?: RateLimits }): Router {
  const router = new Router();
  route(
    router,
    {
      method: 'post',
      path: '/api/auth/dev-login',
      operationId: 'devLogin',
      summary: 'A shopper token for any user id (development only)',
      description:
        'Only with AUTH_DEV_LOGIN=true. In production, shopper tokens come from the identity provider with the same claims.',
      tag: 'auth',
      body: devLoginSchema,
      responses: { 200: { description: 'A shopper token for userId', schema: devLoginAnswerSchema } },
      errors: {
        400: { codes: ['INVALID_REQUEST'] },
        404: { codes: ['NOT_FOUND'], description: '`NOT_FOUND`: dev login is disabled (AUTH_DEV_LOGIN=false)' },
        429: {
          codes: ['RATE_LIMITED'],
          description: '`RATE_LIMITED`: too many logins from this client IP (RATE_LIMIT_LOGIN); see Retry-After',
        },
      },
    },
    async (ctx, input) => {
      if (!deps.devLogin) throw new ApiError(404, 'NOT_FOUND', 'dev login is disabled (AUTH_DEV_LOGIN=false)');
      await deps.limits?.consume('login', ctx.ip);
      const { userId } = input.body();
      ctx.body = { token: await deps.auth.issue(userId), userId };
    },
  );
  return router;
}
