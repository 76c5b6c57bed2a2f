import Router from '@koa/router';
import type { AppConfig } from '../../config/index.js';
import { PAGES_DIR, pageRoute } from '../scripted-pages.js';
import { route } from '../route.js';
import { ApiError } from '../errors.js';
import { devConfigSchema } from '../response-schemas.js';

/**
 * ADMIN_TOKEN's default (test/admin.test.ts checks they agree): the page may be told that one, never a real one. A
 * literal, so serving the page never depends on how the configuration treats an empty environment.
 */
export const DEV_DEFAULT_ADMIN_TOKEN = 'dev-admin-token';

/** The dashboard at /, the waiting line's demo at /line-demo, and GET /api/dev/config for their Web UI links. */
export function dashboardRoutes(deps: {
  config: Pick<AppConfig, 'authDevLogin' | 'temporalUiUrl' | 'temporal' | 'adminToken'>;
}): Router {
  const { config } = deps;
  const router = new Router();
  pageRoute(router, PAGES_DIR, 'index.html', {
    path: '/',
    operationId: 'getDashboard',
    summary: 'The live sale dashboard (HTML)',
    tag: 'dev',
    answer: 'The dashboard page',
  });
  pageRoute(router, PAGES_DIR, 'line-demo.html', {
    path: '/line-demo',
    operationId: 'getLineDemoPage',
    summary: "A shopper's place in a sale's waiting line, counting down (HTML; its buttons need dev login)",
    tag: 'dev',
    answer: 'The waiting line demo page',
  });
  route(
    router,
    {
      method: 'get',
      path: '/api/dev/config',
      operationId: 'getDevConfig',
      summary: "The Web UI's URL and namespace for the dashboard's links (development only)",
      description: 'Only with AUTH_DEV_LOGIN=true. Names the admin token only when it is the dev default.',
      tag: 'dev',
      responses: { 200: { description: 'What the dashboard needs', schema: devConfigSchema } },
      errors: {
        404: { codes: ['NOT_FOUND'], description: '`NOT_FOUND`: dev helpers are disabled (AUTH_DEV_LOGIN=false)' },
      },
    },
    (ctx) => {
      if (!config.authDevLogin) throw new ApiError(404, 'NOT_FOUND', 'dev helpers are disabled (AUTH_DEV_LOGIN=false)');
      ctx.body = {
        temporalUiUrl: config.temporalUiUrl,
        namespace: config.temporal.namespace,
        devAdminToken: config.adminToken === DEV_DEFAULT_ADMIN_TOKEN ? DEV_DEFAULT_ADMIN_TOKEN : null,
      };
    },
  );
  return router;
}
