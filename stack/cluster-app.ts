/**
 * The application on the cluster layout: the cluster stack (stack/cluster.ts), the schema, N
 * workers and N API processes, nginx in front of the APIs, and the codec server the Web UI
 * decodes through. Shared by `npm run start:cluster` and the cluster suite (`npm run
 * test:cluster`). The app processes, the codec server and the load balancer are
 * supervised (a crashed one is started again with backoff); the servers are the stack's roles.
 * Nothing here is specific to the cluster but configuration: the app gets the stack's env.
 */
import { join, resolve } from 'node:path';
import { loadConfig, type AppConfig } from '../src/config/index.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import { startClusterStack, startLoadBalancer, type ClusterStackOptions, type RunningClusterStack } from './cluster.js';
import { migrateSchema } from './launcher.js';
import { spawnAppProcess, startAppProcess } from './app-processes.js';
import { freePort } from './process.js';
import { startCodecServerProcess } from './services.js';
import { Supervised, type SupervisorOptions } from './supervisor.js';

const root = resolve(import.meta.dirname, '..');

export interface ClusterAppOptions extends ClusterStackOptions {
  /** Where the API and worker logs go: a directory, or 'inherit' (the launcher's own output). */
  appLogs: string | 'inherit';
  /** The app's environment on top of the stack's (PAYMENT_WINDOW, AUTH_DEV_LOGIN, …). */
  env?: Record<string, string | undefined>;
  apis?: number;
  workers?: number;
  /** The load balancer's port; default a free one. */
  port?: number;
  supervise?: SupervisorOptions;
}

export interface RunningClusterApp {
  stack: RunningClusterStack;
  /** The app's configuration (what its processes run with). */
  config: AppConfig;
  env: Record<string, string | undefined>;
  /** The load balancer's URL: what shoppers use. */
  url: string;
  apiUrls: string[];
  /** Each worker's Prometheus endpoint (Temporal SDK metrics and activity outcomes). */
  workerMetricsUrls: string[];
  apis: Supervised[];
  workers: Supervised[];
  loadBalancer: Supervised;
  /** The Web UI's decoder (src/api/codec-server.ts) on loopback; undefined with CODEC_SERVER_PORT=0. */
  codecServer?: Supervised;
  /** API processes, then workers, then the load balancer, then the servers; nothing is left. */
  stop(): Promise<void>;
}

export async function startClusterApp(options: ClusterAppOptions): Promise<RunningClusterApp> {
  const log = options.log ?? (() => {});
  const stack = await startClusterStack(options);
  const apps: Supervised[] = [];
  const stop = async () => {
    for (const app of [...apps].reverse()) await app.stop(15_000);
    await stack.stop();
  };
  try {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env, ...stack.env };
    // The dashboard links each order to its workflow in the Web UI this stack runs.
    if (!env.TEMPORAL_UI_URL && stack.temporalUiUrl) env.TEMPORAL_UI_URL = stack.temporalUiUrl;
    const config = loadConfig(env);
    await migrateSchema(config, log);
    const bundle = join(options.dataDir, 'build', 'workflow-bundle.js');
    log((await buildWorkflowBundle(bundle)) ? 'workflow bundle built' : 'workflow bundle up to date');

    const logFile = (name: string) =>
      options.appLogs === 'inherit' ? 'inherit' : join(options.appLogs, `${name}.log`);
    // Each worker gets its own metrics and health ports (two on one host cannot share the defaults),
    // kept across its restarts so that a scraper's target stays the same.
    const workerPorts = await Promise.all(
      Array.from({ length: options.workers ?? 2 }, async () => ({
        metrics: await freePort(),
        health: await freePort(),
      })),
    );
    const workers = workerPorts.map(
      (ports, i) =>
        new Supervised(
          `worker-${i + 1}`,
          // Spawned only, as before: nothing here waits on a worker's /readyz.
          async () =>
            spawnAppProcess({
              role: 'worker',
              name: `worker-${i + 1}`,
              root,
              logFile: logFile(`worker-${i + 1}`),
              env: {
                ...env,
                WORKFLOW_BUNDLE_PATH: bundle,
                WORKER_METRICS_PORT: String(ports.metrics),
                WORKER_HEALTH_PORT: String(ports.health),
              },
            }),
          options.supervise,
        ),
    );
    const apiPorts = await Promise.all(Array.from({ length: options.apis ?? 2 }, () => freePort()));
    const apiUrls = apiPorts.map((port) => `http://127.0.0.1:${port}`);
    const apis = apiPorts.map(
      (port, i) =>
        new Supervised(
          `api-${i + 1}`,
          // Ready once its /healthz answers 200; 90 s, for a cold start beside the cluster's servers.
          () =>
            startAppProcess({
              role: 'api',
              name: `api-${i + 1}`,
              root,
              logFile: logFile(`api-${i + 1}`),
              env: { ...env, PORT: String(port) },
              readyTimeoutMs: 90_000,
            }),
          options.supervise,
        ),
    );
    const port = options.port ?? (await freePort());
    const loadBalancer = new Supervised(
      'load-balancer',
      async () =>
        (
          await startLoadBalancer({
            dataDir: join(options.dataDir, 'load-balancer'),
            port,
            upstreams: apiPorts.map((p) => `127.0.0.1:${p}`),
          })
        ).process,
      options.supervise,
    );
    const codecUrl = config.codecServer.port ? `http://127.0.0.1:${config.codecServer.port}` : undefined;
    const codecServer = codecUrl
      ? new Supervised(
          'codec-server',
          () =>
            startCodecServerProcess({
              root,
              url: codecUrl,
              logFile: logFile('codec-server'),
              env: env as NodeJS.ProcessEnv,
            }),
          options.supervise,
        )
      : undefined;
    // Stop order is the reverse: APIs first (no new orders), then workers (activities finish), then nginx.
    apps.push(...(codecServer ? [codecServer] : []), loadBalancer, ...workers, ...apis);
    await codecServer?.start();
    await loadBalancer.start();
    await Promise.all(workers.map((w) => w.start()));
    await Promise.all(apis.map((a) => a.start()));
    log(`${apis.length} APIs (${apiUrls.join(', ')}) behind nginx on :${port}, ${workers.length} workers`);
    const workerMetricsUrls = workerPorts.map((ports) => `http://127.0.0.1:${ports.metrics}/metrics`);
    return {
      stack,
      config,
      env,
      url: `http://127.0.0.1:${port}`,
      apiUrls,
      workerMetricsUrls,
      apis,
      workers,
      loadBalancer,
      ...(codecServer ? { codecServer } : {}),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
