/**
 * stripe-mock, Stripe's own mock of its API (`PAYMENT_PROVIDER=stripe npm start`, the Stripe
 * adapter's tests): every endpoint of Stripe's OpenAPI spec, answering with fixtures, keeping no
 * state. Installed by scripts/install-tools.sh with `go install`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnLogged, waitUntilReady } from './process.js';
import type { RunningService, ToolPaths } from './services.js';

export interface RunningStripeMock extends RunningService {
  /** The API's base URL (STRIPE_API_URL). */
  url: string;
}

export async function startStripeMock(opts: {
  tools: ToolPaths;
  dataDir: string;
  port: number;
  timeoutMs?: number;
}): Promise<RunningStripeMock> {
  if (!opts.tools.stripeMock) {
    throw new Error(
      "stripe-mock is not installed: run 'PAYMENT_PROVIDER=stripe bash scripts/install-tools.sh' (npm test installs it too)",
    );
  }
  mkdirSync(opts.dataDir, { recursive: true });
  // Loopback only. It serves HTTPS too, on 12112 unless told otherwise: a port the system picks.
  const args = ['-http-addr', `127.0.0.1:${opts.port}`, '-https-addr', '127.0.0.1:'];
  const proc = spawnLogged('stripe-mock', opts.tools.stripeMock, args, {
    logFile: join(opts.dataDir, 'stripe-mock.log'),
  });
  const url = `http://127.0.0.1:${opts.port}`;
  await waitUntilReady(
    proc,
    async () =>
      (
        await fetch(`${url}/v1/balance`, {
          headers: { authorization: 'Bearer sk_test_ready' },
          signal: AbortSignal.timeout(1_000),
        })
      ).ok,
    opts.timeoutMs ?? 30_000,
  );
  return { process: proc, url, env: { STRIPE_API_URL: url } };
}
