/** API process (`npm run api`): serves until SIGTERM/SIGINT, drains for SHUTDOWN_DRAIN, then closes. */
import { startTracing } from '../infra/tracing.js';

// Before the app's modules load: the instrumentations patch ioredis, mysql2 and http as they are first loaded.
const tracing = startTracing('flash-checkout-api');
const { loadConfig } = await import('../config/index.js');
const { startApi } = await import('./server.js');

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
      // The last requests' spans are still buffered.
      .then(() => tracing?.shutdown())
      .then(() => process.exit(0));
  });
}
