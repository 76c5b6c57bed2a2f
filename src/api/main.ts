/**
 * API process (`npm run api`): serves until SIGTERM/SIGINT, then drains (not ready, still serving,
 * for SHUTDOWN_DRAIN), then closes its server and clients.
 */
import { loadConfig } from '../config/index.js';
import { startApi } from './server.js';

const api = await startApi(loadConfig());
let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // "on", not "once": npm (or tsx, from source) may forward a second signal, which must not kill the drain half-way.
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    void api
      .drain()
      .then(() => api.close())
      .then(() => process.exit(0));
  });
}
