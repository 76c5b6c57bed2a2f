/**
 * `npm start`'s app processes on a running stack: the checkout's workflow bundle, its worker (made current), a drain
 * worker for every older build with open runs, the codec server and the API, each supervised. The API starts last:
 * when it answers, a worker of every live build polls, so a cancel of an order pinned to an older build is served.
 */
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import type { AppConfig } from '../src/config/index.js';
import { temporalConnectionSettings } from '../src/infra/temporal-connection.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import { workerBuildId } from '../src/workers/versioning.js';
import { spawnAppProcess, startAppProcess } from './app-processes.js';
import { drainOlderBuilds, keepBundle, type OlderBuilds } from './older-builds.js';
import { Supervised, type SupervisorOptions } from './supervisor.js';

export interface LocalApps {
  /** The build this start runs as (current once it returns). */
  buildId: string;
  worker: Supervised;
  api: Supervised;
  codecServer: Supervised | undefined;
  olderBuilds: OlderBuilds;
  /** The API first (no new orders), then the workers (in-flight activities finish). */
  stop(): Promise<void>;
}

export async function startLocalApps(options: {
  /** The checkout whose src/ is bundled and whose processes run. */
  root: string;
  /** Where the bundle of every build is kept (.data/ for npm start). */
  dataDir: string;
  /** The processes' environment; `config` is read from it. */
  env: Readonly<Record<string, string | undefined>>;
  config: AppConfig;
  say: (line: string) => void;
  supervision: SupervisorOptions;
  /** Where the current worker, the API and the codec server write: default the launcher's own output. */
  logFile?: string;
  /** How often older builds are looked at again (their drain workers stopped once drained); default 30 s. */
  drainWatchMs?: number;
}): Promise<LocalApps> {
  const { root, dataDir, env, config, say, supervision } = options;
  const logFile = options.logFile ?? 'inherit';
  const bundle = join(dataDir, 'build', 'workflow-bundle.js');
  const startedAt = Date.now();
  say(
    (await buildWorkflowBundle(bundle, { checkout: root }))
      ? `workflow bundle built in ${Date.now() - startedAt} ms`
      : 'workflow bundle up to date',
  );
  // Every build's bundle is kept: runs an earlier start left open are pinned to theirs (stack/older-builds.ts).
  const versionsDir = join(dataDir, 'build', 'versions');
  const buildId = keepBundle(bundle, versionsDir, workerBuildId(config, bundle));

  // Spawned only: the worker's health port may be off (WORKER_HEALTH_PORT=0); its polling is what is waited for.
  const worker = new Supervised(
    'worker',
    async () =>
      spawnAppProcess({
        role: 'worker',
        root,
        logFile,
        env: {
          ...env,
          WORKFLOW_BUNDLE_PATH: bundle,
          WORKER_METRICS_PORT: String(config.workerMetricsPort),
          WORKER_HEALTH_PORT: String(config.workerHealthPort),
        },
      }),
    supervision,
  );
  const started: { stop(graceMs?: number): Promise<void> }[] = [worker];
  try {
    const startedAt = Date.now();
    await worker.start();
    const versioning = config.temporal.versioning;
    if (versioning) {
      const connection = await Connection.connect(temporalConnectionSettings(config));
      try {
        const deployments = new WorkerDeployments(connection, config.temporal.namespace, 'npm-start');
        const version = { deploymentName: versioning.deploymentName, buildId };
        await deployments.untilPolledSince(version, config.temporal.taskQueue, startedAt, 120_000);
      } finally {
        await connection.close();
      }
    }
    const olderBuilds = await drainOlderBuilds({
      config,
      currentBuildId: buildId,
      versionsDir,
      say,
      supervision,
      ...(options.drainWatchMs ? { everyMs: options.drainWatchMs } : {}),
      startDrainWorker: async (id, bundlePath) =>
        spawnAppProcess({
          role: 'worker',
          name: `worker ${id}`,
          root,
          logFile: join(dataDir, 'build', `drain-worker-${id}.log`),
          env: {
            ...env,
            WORKFLOW_BUNDLE_PATH: bundlePath,
            WORKER_BUILD_ID: id,
            WORKER_PROMOTE: 'by-rollout',
            WORKER_METRICS_PORT: '0',
            WORKER_HEALTH_PORT: '0',
          },
        }),
    });
    started.push(olderBuilds);
    // The Web UI's decoder (src/api/codec-server.ts): on loopback, answering the stack's UI origins (stack.env).
    const codecServer = config.codecServer.port
      ? new Supervised('codec-server', () => startAppProcess({ role: 'codec-server', root, logFile, env }), supervision)
      : undefined;
    if (codecServer) started.push(codecServer);
    await codecServer?.start();
    const api = new Supervised('api', () => startAppProcess({ role: 'api', root, logFile, env }), supervision);
    started.push(api);
    await api.start();
    return {
      buildId,
      worker,
      api,
      codecServer,
      olderBuilds,
      async stop() {
        for (const app of [api, ...(codecServer ? [codecServer] : []), worker]) await app.stop(15_000);
        await olderBuilds.stop();
      },
    };
  } catch (err) {
    // A start that fails half-way leaves nothing running behind it.
    for (const app of started.reverse()) await app.stop(15_000).catch(() => undefined);
    throw err;
  }
}
