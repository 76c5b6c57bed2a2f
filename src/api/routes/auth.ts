import Router from '@koa/router';
import type { ShopperAuth } from '../auth.js';
import { ApiError } from '../errors.js';
import { jsonBody } from '../http.js';
import { devLoginSchema } from '../schemas.js';

/** POST /api/auth/dev-login: a shopper token for any user id, only with AUTH_DEV_LOGIN=true. */
export function authRoutes(deps: { auth: ShopperAuth; devLogin: boolean }): Router {
  const router = new Router();
  router.post('/api/auth/dev-login', async (ctx) => {
    if (!deps.devLogin) throw new ApiError(404, 'NOT_FOUND', 'dev login is disabled (AUTH_DEV_LOGIN=false)');
    const { userId } = devLoginSchema.parse(jsonBody(ctx));
    ctx.body = { token: await deps.auth.issue(userId), userId };
  });
  return router;
}
