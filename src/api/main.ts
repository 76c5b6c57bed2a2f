/** API process (`npm run api`): serves until SIGTERM/SIGINT, then drains and closes its clients. */
import { loadConfig } from '../config/index.js';
import { startApi } from './server.js';

const api = await startApi(loadConfig());
let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (closing) return;
    closing = true;
    void api.close().then(() => process.exit(0));
  });
}
