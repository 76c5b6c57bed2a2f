/** The worker's /livez (503 once failed) and /readyz (503 unless RUNNING: routing stops once the drain starts). */
import { createServer, type Server } from 'node:http';
import type { State } from '@temporalio/worker';
import type { ShownClocks } from '../infra/clocks.js';

/** The Worker's state, or STARTING before the Worker exists (bundle loading, connecting). */
export type WorkerHealthState = State | 'STARTING';

export async function startWorkerHealthServer(options: {
  port: number;
  state: () => WorkerHealthState;
  clocks?: () => ShownClocks;
}) {
  const server: Server = createServer((req, res) => {
    const state = options.state();
    const path = (req.url ?? '').split('?')[0];
    let status: number;
    if (req.method !== 'GET' && req.method !== 'HEAD') status = 405;
    else if (path === '/livez') status = state === 'FAILED' ? 503 : 200;
    else if (path === '/readyz') status = state === 'RUNNING' ? 200 : 503;
    else status = 404;
    const shown =
      status === 200 || status === 503
        ? { status: status === 200 ? 'ok' : 'unavailable', state }
        : { error: 'not found' };
    const body = path === '/readyz' && options.clocks ? { ...shown, clocks: options.clocks() } : shown;
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
  });
  // Probes must not keep a draining process alive.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(options.port, '0.0.0.0', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
