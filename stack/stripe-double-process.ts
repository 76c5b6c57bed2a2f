/**
 * The Stripe double (./stripe-double.ts) as a process of its own, for runs that measure each process's CPU (the
 * benchmark's --provider stripe, the soak): over stripe-mock, its rate limit off (the runs measure the app, not
 * Stripe's test-mode budget), its events signed with `webhookSecret` and sent to `webhookUrl`.
 */
import { join } from 'node:path';
import { spawnLogged, waitUntilReady, type ManagedProcess } from './process.js';

export async function spawnStripeDouble(options: {
  root: string;
  workDir: string;
  stripeMockUrl: string;
  port: number;
  webhookUrl: string;
  webhookSecret: string;
  /** The key its readiness probe authenticates with (any sk_test_ key). */
  secretKey: string;
}): Promise<ManagedProcess> {
  const { root, workDir, port, secretKey } = options;
  const double = spawnLogged(
    'stripe-double',
    join(root, 'node_modules', '.bin', 'tsx'),
    [join(root, 'stack', 'stripe-double.ts')],
    {
      logFile: join(workDir, 'stripe-double.log'),
      cwd: root,
      env: {
        ...process.env,
        STRIPE_MOCK_URL: options.stripeMockUrl,
        STRIPE_DOUBLE_PORT: String(port),
        STRIPE_DOUBLE_RATE_LIMIT: '0',
        STRIPE_DOUBLE_WEBHOOK_URL: options.webhookUrl,
        STRIPE_WEBHOOK_SECRET: options.webhookSecret,
      },
    },
  );
  try {
    await waitUntilReady(
      double,
      async () =>
        (await fetch(`http://127.0.0.1:${port}/v1/balance`, { headers: { authorization: `Bearer ${secretKey}` } })).ok,
      60_000,
    );
  } catch (err) {
    await double.stop();
    throw err;
  }
  return double;
}
