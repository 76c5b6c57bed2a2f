import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import type { AppConfig } from '../../config/index.js';
import { ApiError } from '../errors.js';

const DASHBOARD_PAGE = join(dirname(fileURLToPath(import.meta.url)), '..', 'public', 'index.html');
/**
 * ADMIN_TOKEN's default in src/config/index.ts (test/admin.test.ts checks they agree): the page may
 * be told that one, never a real one. A literal, not loadConfig({}), so that serving the page never
 * depends on how the configuration treats an empty environment.
 */
export const DEV_DEFAULT_ADMIN_TOKEN = 'dev-admin-token';

/**
 * The live sale dashboard at / (plain HTML and JS, src/api/public/index.html), and GET
 * /api/dev/config, which tells it the Temporal Web UI's URL and namespace for its links to each
 * order's workflow, and the admin token when it is the dev default (only with AUTH_DEV_LOGIN=true).
 */
export function dashboardRoutes(deps: { config: Pick<AppConfig, 'authDevLogin' | 'temporalUiUrl' | 'temporal' | 'adminToken'> }): Router {
  const { config } = deps;
  const router = new Router();
  router.get('/', (ctx) => {
    ctx.type = 'html';
    ctx.body = readFileSync(DASHBOARD_PAGE);
  });
  router.get('/api/dev/config', (ctx) => {
    if (!config.authDevLogin) throw new ApiError(404, 'NOT_FOUND', 'dev helpers are disabled (AUTH_DEV_LOGIN=false)');
    ctx.body = {
      temporalUiUrl: config.temporalUiUrl,
      namespace: config.temporal.namespace,
      devAdminToken: config.adminToken === DEV_DEFAULT_ADMIN_TOKEN ? DEV_DEFAULT_ADMIN_TOKEN : null,
    };
  });
  return router;
}
