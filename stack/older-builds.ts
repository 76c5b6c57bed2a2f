/**
 * `npm start` across workflow changes (docs/operations.md, "Deploying during a sale"): each start's worker makes its
 * own build current, so the orders a previous start left open stay pinned to that build. The bundle of every build is
 * kept under .data/build/versions/; a drain worker runs each older build that still has open orders until they have
 * all closed, then stops, and drained versions are deleted (a deployment keeps at most 100).
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import type { AppConfig } from '../src/config/index.js';
import { temporalConnectionSettings } from '../src/infra/temporal-connection.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { deleteWorkerVersion } from '../toolkit/worker-versions.js';
import type { ManagedProcess } from './process.js';

export interface OlderBuilds {
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
 * Starts a drain worker (`startDrainWorker`: a worker process on the kept bundle, promoting nothing) for each older
 * build with open orders whose bundle is kept, says how many orders wait on builds that are not, and every `everyMs`
 * stops the drain workers of drained builds and deletes drained versions.
 */
export async function drainOlderBuilds(options: {
  config: AppConfig;
  currentBuildId: string;
  versionsDir: string;
  startDrainWorker: (buildId: string, bundlePath: string) => Promise<ManagedProcess>;
  say: (line: string) => void;
  everyMs?: number;
}): Promise<OlderBuilds> {
  const { config, currentBuildId, versionsDir, say } = options;
  const versioning = config.temporal.versioning;
  if (!versioning) return { stop: async () => {} };
  const connection = await Connection.connect(temporalConnectionSettings(config));
  const deployments = new WorkerDeployments(connection, config.temporal.namespace, 'npm-start');
  const draining = new Map<string, ManagedProcess>();
  let stopped = false;
  let first = true;

  const look = async (): Promise<void> => {
    const status = await deployments.status(versioning.deploymentName, config.temporal.taskQueue);
    for (const version of status.versions) {
      if (version.buildId === currentBuildId) continue;
      const bundle = join(versionsDir, `${version.buildId}.js`);
      const worker = draining.get(version.buildId);
      // DRAINING: the server still counts open workflows pinned to it, of any type (an endpoint's delivery too).
      const pinned = version.openOrders > 0 || version.status === 'DRAINING';
      if (pinned && !worker && !stopped) {
        if (existsSync(bundle)) {
          say(
            `build ${version.buildId}: ${version.status}, ${version.openOrders} open orders pinned to it; ` +
              'a drain worker runs what is pinned to it',
          );
          draining.set(version.buildId, await options.startDrainWorker(version.buildId, bundle));
        } else {
          say(
            `build ${version.buildId}: ${version.openOrders} open orders pinned to it and no bundle of it here; ` +
              `run that checkout's worker with WORKER_BUILD_ID=${version.buildId} WORKER_PROMOTE=by-rollout`,
          );
        }
      } else if (version.openOrders === 0 && version.status === 'DRAINED') {
        if (worker) {
          draining.delete(version.buildId);
          await worker.stop();
          say(`build ${version.buildId}: drained; its drain worker stopped`);
        }
        // Refused while the server still counts its pollers (a few minutes after they stopped): tried again later.
        await deleteWorkerVersion(connection, config.temporal.namespace, 'npm-start', {
          deploymentName: versioning.deploymentName,
          buildId: version.buildId,
        }).then(
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
  const timer = setInterval(() => void look().catch(() => undefined), options.everyMs ?? 30_000);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...draining.values()].map((worker) => worker.stop()));
      await connection.close();
    },
  };
}
