/**
 * `npm start` across workflow changes (docs/operations.md, "Deploying during a sale"): each start's worker makes its
 * own build current, so the runs a previous start left open (orders, refunds, a reconcile) stay pinned to that build.
 * The bundle of every build is kept under .data/build/versions/; a supervised drain worker runs each older build that
 * still has open runs of any type until they have all closed, then stops, and drained versions are deleted (a
 * deployment keeps at most 100).
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import type { AppConfig } from '../src/config/index.js';
import { temporalConnectionSettings } from '../src/infra/temporal-connection.js';
import { describeOpenRuns, openRunsOf, WorkerDeployments } from '../src/infra/worker-deployments.js';
import type { ManagedProcess } from './process.js';
import { Supervised, type SupervisorOptions } from './supervisor.js';

export interface OlderBuilds {
  /** The drain worker of each older build with open runs, by build id. */
  readonly draining: ReadonlyMap<string, Supervised>;
  /** Stops the watch and every drain worker. */
  stop(): Promise<void>;
}

/** Keeps a copy of the bundle under `versionsDir`, named by the build id its worker runs as (`buildId`). */
export function keepBundle(bundlePath: string, versionsDir: string, buildId: string): string {
  mkdirSync(versionsDir, { recursive: true });
  const kept = join(versionsDir, `${buildId}.js`);
  if (!existsSync(kept)) {
    copyFileSync(bundlePath, kept);
    copyFileSync(`${bundlePath}.build-id`, `${kept}.build-id`);
  }
  return buildId;
}

/**
 * Starts a drain worker (`startDrainWorker`: a worker process on the kept bundle, promoting nothing; restarted when it
 * dies, as `supervision` says) for each older build with open runs whose bundle is kept, and resolves once each polls:
 * an API started after it finds every live build served. Says how many runs wait on builds whose bundle is not here.
 * Every `everyMs` it looks again, stops the drain workers of drained builds and deletes drained versions.
 */
export async function drainOlderBuilds(options: {
  config: AppConfig;
  currentBuildId: string;
  versionsDir: string;
  startDrainWorker: (buildId: string, bundlePath: string) => Promise<ManagedProcess>;
  say: (line: string) => void;
  supervision?: SupervisorOptions;
  everyMs?: number;
}): Promise<OlderBuilds> {
  const { config, currentBuildId, versionsDir, say } = options;
  const versioning = config.temporal.versioning;
  if (!versioning) return { draining: new Map(), stop: async () => {} };
  const connection = await Connection.connect(temporalConnectionSettings(config));
  const deployments = new WorkerDeployments(connection, config.temporal.namespace, 'npm-start');
  const draining = new Map<string, Supervised>();
  let stopped = false;
  let first = true;

  const look = async (): Promise<void> => {
    const status = await deployments.status(versioning.deploymentName, config.temporal.taskQueue);
    for (const version of status.versions) {
      if (version.buildId === currentBuildId) continue;
      const bundle = join(versionsDir, `${version.buildId}.js`);
      const worker = draining.get(version.buildId);
      // Open runs of any pinned type, or DRAINING: the server counts them too, after its drainage refresh.
      const open = openRunsOf(version);
      if ((open > 0 || version.status === 'DRAINING') && !worker && !stopped) {
        if (existsSync(bundle)) {
          const drainWorker = new Supervised(
            `drain worker ${version.buildId}`,
            () => options.startDrainWorker(version.buildId, bundle),
            options.supervision,
          );
          draining.set(version.buildId, drainWorker);
          const startedAt = Date.now();
          await drainWorker.start();
          const polling = { deploymentName: versioning.deploymentName, buildId: version.buildId };
          await deployments.untilPolledSince(polling, config.temporal.taskQueue, startedAt, 60_000);
          say(`build ${version.buildId}: ${version.status}, ${describeOpenRuns(version)}; its drain worker polls`);
        } else {
          say(
            `build ${version.buildId}: ${describeOpenRuns(version)} pinned to it and no bundle of it here; ` +
              `run that checkout's worker with WORKER_BUILD_ID=${version.buildId} WORKER_PROMOTE=by-rollout`,
          );
        }
      } else if (open === 0 && version.status === 'DRAINED') {
        if (worker) {
          draining.delete(version.buildId);
          await worker.stop();
          say(`build ${version.buildId}: drained; its drain worker stopped`);
        }
        // Refused while the server still counts its pollers (a few minutes after they stopped): tried again later.
        await deployments.deleteVersion({ deploymentName: versioning.deploymentName, buildId: version.buildId }).then(
          () => say(`build ${version.buildId}: drained version deleted`),
          () => undefined,
        );
      }
    }
    if (first && status.unversionedOpenOrders > 0)
      say(
        `${status.unversionedOpenOrders} open orders started before versioning run on the current build: ` +
          'a build without their patches (any after the first versioned one) fails their tasks; cancel them',
      );
    first = false;
  };

  await look().catch((err: unknown) => say(`could not read the deployment's versions: ${String(err)}`));
  // One look at a time; stop() waits for it: a call the closing connection cut would be retried on a closed channel.
  let looking: Promise<void> | undefined;
  const timer = setInterval(() => {
    looking ??= look()
      .catch(() => undefined)
      .finally(() => {
        looking = undefined;
      });
  }, options.everyMs ?? 30_000);
  timer.unref();
  return {
    draining,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await looking;
      await Promise.all([...draining.values()].map((worker) => worker.stop()));
      await connection.close();
    },
  };
}
