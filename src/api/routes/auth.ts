import Router from '@koa/router';
import type { ShopperAuth } from '../auth.js';
import { ApiError } from '../errors.js';
import { jsonBody } from '../http.js';
import type { RateLimits } from '../rate-limit.js';
import { devLoginSchema } from '../schemas.js';

/** POST /api/auth/dev-login: a shopper token for any user id, only with AUTH_DEV_LOGIN=true. */
export function authRoutes(deps: { auth: ShopperAuth; devLogin: boolean; limits?: RateLimits }): Router {
  const router = new Router();
  router.post('/api/auth/dev-login', async (ctx) => {
    if (!deps.devLogin) throw new ApiError(404, 'NOT_FOUND', 'dev login is disabled (AUTH_DEV_LOGIN=false)');
    await deps.limits?.consume('login', ctx.ip);
    const { userId } = devLoginSchema.parse(jsonBody(ctx));
    ctx.body = { token: await deps.auth.issue(userId), userId };
  });
  return router;
}
