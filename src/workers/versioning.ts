/** The worker process as a version of a Worker Deployment (docs/operations.md, "Deploying during a sale"). */
import { createHash, createHmac } from 'node:crypto';
import type { WorkerOptions } from '@temporalio/worker';
import type { AppConfig } from '../config/index.js';
import {
  WorkerDeployments,
  versionString,
  type HasWorkflowService,
  type WorkerVersion,
} from '../infra/worker-deployments.js';
import type { Logger } from '../infra/logger.js';
import { workflowBuildId } from './bundle.js';

/** This worker's version: null where workers run unversioned (WORKER_VERSIONING=false, the time-skipping server). */
export function workerVersionOf(config: AppConfig, bundlePath: string): WorkerVersion | null {
  const { versioning } = config.temporal;
  return versioning
    ? { deploymentName: versioning.deploymentName, buildId: versioning.buildId ?? workerBuildId(config, bundlePath) }
    : null;
}

/**
 * The bundle's build id plus the codec's mode and keys: a key's rollout is a build to drain (docs/operations.md). Each
 * key by id and HMAC fingerprint (one-way): an id reused with another key is a new build.
 */
export function workerBuildId(config: Pick<AppConfig, 'payloadCodec'>, bundlePath: string): string {
  const { mode, keys } = config.payloadCodec;
  const fingerprint = (secret: Buffer) => createHmac('sha256', secret).update('flash-checkout/build-id').digest('hex');
  const codec = createHash('sha256')
    .update([mode, ...keys.map((key) => `${key.id}:${fingerprint(key.secret)}`)].join('\n'))
    .digest('hex')
    .slice(0, 6);
  return `${workflowBuildId(bundlePath)}-${codec}`;
}

// Pinned by default: a change ships as a new build. Not per workflow: an unversioned worker naming one fails its tasks.
export function deploymentOptions(version: WorkerVersion | null): Pick<WorkerOptions, 'workerDeploymentOptions'> {
  if (!version) return {};
  return { workerDeploymentOptions: { version, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' } };
}

/** Makes this version current once both queues poll (WORKER_PROMOTE on-start, or first-only's first build). */
export async function promoteOnStart(
  workers: { version: WorkerVersion | null; taskQueues(): string[] },
  connection: HasWorkflowService,
  config: Pick<AppConfig, 'temporal'>,
  logger: Logger,
): Promise<void> {
  const { version } = workers;
  const promote = config.temporal.versioning?.promote;
  if (!version || !promote || promote === 'by-rollout') return;
  const deployments = new WorkerDeployments(connection, config.temporal.namespace, `worker-${process.pid}`);
  // first-only (production's default): the first build of a deployment takes traffic at once; later ones by rollout.
  if (promote === 'first-only' && (await deployments.describeDeployment(version.deploymentName))?.currentBuildId)
    return;
  const until = Date.now() + 30_000;
  for (;;) {
    const described = await deployments.untilPolling(version, workers.taskQueues(), 30_000);
    if (described.status === 'CURRENT') break;
    try {
      await deployments.setCurrent(version);
      break;
    } catch (err) {
      // Another worker of the same version promoted it meanwhile (a stale conflict token): look again.
      if (Date.now() > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  logger.info({ version: versionString(version) }, 'this version made current (on start)');
}
