/**
 * `npm start`: the local stack with durable data under .data/, the schema, the worker, the API and the codec server
 * (the Web UI decodes the encrypted payloads through it, on loopback).
 * Every process is supervised: one that crashes is started again with backoff and the restart is
 * logged, as a container restart policy would do. Runs until Ctrl-C, then stops everything in
 * order: API, worker, then the servers.
 */
import { join, resolve } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { startStack, type RunningStack } from '../stack/index.js';
import { migrateSchema, shutdownOnSignals } from '../stack/launcher.js';
import { traceExporterFromEnv } from '../src/infra/tracing.js';
import { startLocalApps, type LocalApps } from '../stack/local-apps.js';
import { loadToolPaths } from '../stack/services.js';
import { startZipkin, type RunningZipkin } from '../stack/zipkin.js';
import { startStripeMock, type RunningStripeMock } from '../stack/stripe-mock.js';
import { startStripeDouble, type StripeDouble } from '../stack/stripe-double.js';
import { settingsOf } from '../toolkit/provider-config.js';
import { stripe as stripeProvider } from '../src/payments/providers/stripe/definition.js';

/** The local walk-through's Stripe keys: the Stripe double takes any test key; it signs its events with the secret. */
const LOCAL_STRIPE_KEYS = {
  STRIPE_SECRET_KEY: 'sk_test_localstripemock',
  STRIPE_WEBHOOK_SECRET: 'whsec_localstripemock',
} as const;

const root = resolve(import.meta.dirname, '..');
const dataDir = join(root, '.data');
const say = (line: string) => console.log(`[start] ${line}`);
const t0 = Date.now();
const supervision = { log: (line: string) => say(`supervisor: ${line}`) };

let stack: RunningStack | undefined;
let zipkin: RunningZipkin | undefined;
let stripeMock: RunningStripeMock | undefined;
let stripeDouble: StripeDouble | undefined;
let apps: LocalApps | undefined;
const { shutdown } = shutdownOnSignals(say, async () => {
  // API first (no new orders), then the workers (in-flight activities finish), then the servers.
  await apps?.stop();
  await zipkin?.process.stop();
  await stripeDouble?.stop();
  await stripeMock?.process.stop();
  await stack?.stop();
});

try {
  stack = await startStack({ dataDir, ports: 'local', ephemeral: false, log: say, supervise: supervision });
  // The local stack is for trying the service by hand: dev login and the dashboard's payment simulator are on.
  // SHUTDOWN_DRAIN: no load balancer in front of the local API, so Ctrl-C need not wait for one.
  const env = {
    ...process.env,
    AUTH_DEV_LOGIN: process.env.AUTH_DEV_LOGIN ?? 'true',
    // Order events may reach a receiver on this machine (refused elsewhere unless an operator allows the range).
    EVENTS_ALLOWED_RANGES: process.env.EVENTS_ALLOWED_RANGES ?? '127.0.0.0/8,::1/128',
    SHUTDOWN_DRAIN: process.env.SHUTDOWN_DRAIN ?? '0s',
    ...stack.env,
  };
  // The dashboard links each order to its workflow in the Web UI the stack runs.
  const temporalUiUrl = process.env.TEMPORAL_UI_URL || stack.temporalUiUrl;
  if (temporalUiUrl) Object.assign(env, { TEMPORAL_UI_URL: temporalUiUrl });
  // Tracing (docs/operations.md#tracing): OTEL_TRACES_EXPORTER=zipkin without an endpoint of one's
  // own runs Zipkin's server here, on its usual port, as the viewer.
  const tracing = traceExporterFromEnv(process.env);
  if (tracing === 'zipkin' && !process.env.OTEL_EXPORTER_ZIPKIN_ENDPOINT) {
    zipkin = await startZipkin({ tools: loadToolPaths(), dataDir: join(dataDir, 'zipkin'), port: 9411 });
    Object.assign(env, zipkin.env);
  }
  // PAYMENT_PROVIDER=stripe without an API of one's own: the Stripe double (stack/stripe-double.md) on 12111, in front
  // of stripe-mock, with local test keys; it sends its signed events to the API's Stripe webhook.
  if (process.env.PAYMENT_PROVIDER === 'stripe' && !process.env.STRIPE_API_URL) {
    stripeMock = await startStripeMock({ tools: loadToolPaths(), dataDir: join(dataDir, 'stripe-mock'), port: 12112 });
    stripeDouble = await startStripeDouble({ stripeMockUrl: stripeMock.url, port: 12111 });
    Object.assign(
      env,
      { ...LOCAL_STRIPE_KEYS, STRIPE_API_URL: stripeDouble.url },
      pickSet(process.env, Object.keys(LOCAL_STRIPE_KEYS)),
    );
  }
  const config = loadConfig(env);

  await migrateSchema(config, say);

  const apiUrl = `http://127.0.0.1:${config.port}`;
  const codecUrl = config.codecServer.port ? `http://127.0.0.1:${config.codecServer.port}` : undefined;
  apps = await startLocalApps({ root, dataDir, env, config, say, supervision });
  const { buildId } = apps;

  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  say(`  API + dashboard  ${apiUrl}/`);
  say(`  Temporal Web UI  ${stack.temporalUiUrl ?? `(external Temporal at ${config.temporal.address})`}`);
  say(
    `  codec server     ${codecUrl ? `${codecUrl} (the Web UI decodes payloads through it; CLI: temporal --codec-endpoint ${codecUrl})` : '(off: CODEC_SERVER_PORT=0)'}`,
  );
  say(`  data             ${dataDir}`);
  say(`  workflow build   ${buildId} (current; npm run rollout -- status lists the others)`);
  say(
    `  traces           ${zipkin ? `${zipkin.url}/zipkin/ (Zipkin)` : tracing ? `OTEL_TRACES_EXPORTER=${tracing}` : '(off: OTEL_TRACES_EXPORTER=zipkin npm start turns them on)'}`,
  );
  if (stripeDouble) {
    stripeDouble.setWebhook(`${apiUrl}/api/payments/stripe`, settingsOf(config, stripeProvider)?.webhookSecret ?? '');
    say(
      `  Stripe (double)  ${stripeDouble.url} (PAYMENT_PROVIDER=stripe; its events go to ${apiUrl}/api/payments/stripe)`,
    );
  }
  say('Metrics (Prometheus text format; keep them off public networks):');
  say(`  API              ${apiUrl}/metrics`);
  say(
    `  worker           ${config.workerMetricsPort ? `http://127.0.0.1:${config.workerMetricsPort}/metrics` : '(off: WORKER_METRICS_PORT=0)'}`,
  );
  if (config.workerHealthPort) say(`  worker readiness http://127.0.0.1:${config.workerHealthPort}/readyz`);
  say(`  Temporal server  ${stack.temporalMetricsUrl ?? '(external Temporal: see its own metrics endpoint)'}`);
  say('A process that crashes is restarted. Ctrl-C stops everything.');
} catch (err) {
  console.error(`[start] failed: ${err instanceof Error ? err.message : String(err)}`);
  await shutdown(1);
}

/** The variables of `names` that are set in `env`. */
function pickSet(env: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((name) => (env[name] ? [[name, env[name]]] : [])));
}
