/**
 * The worker process as a version of a Worker Deployment (docs/operations.md, "Deploying during a sale"): its version,
 * the Worker option that says it, and promoting it where the worker promotes itself.
 */
import { createHash } from 'node:crypto';
import type { WorkerDeploymentOptions } from '@temporalio/worker';
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
export function workerVersionOf(
  config: Pick<AppConfig, 'temporal' | 'payloadCodec'>,
  bundlePath?: string,
): WorkerVersion | null {
  const versioning = config.temporal.versioning;
  if (!versioning) return null;
  return {
    deploymentName: versioning.deploymentName,
    buildId: versioning.buildId ?? workerBuildId(config, bundlePath),
  };
}

/**
 * The bundle's build id and the payload codec's mode and key ids (never the keys): a worker that reads or writes
 * other payloads is another version, so a key's rollout shows in the deployment as a build to drain before the next
 * step (docs/operations.md, "Payload encryption").
 */
export function workerBuildId(config: Pick<AppConfig, 'payloadCodec'>, bundlePath?: string): string {
  const { mode, keys } = config.payloadCodec;
  const codec = createHash('sha256')
    .update([mode, ...keys.map((key) => key.id)].join('\n'))
    .digest('hex')
    .slice(0, 6);
  return `${workflowBuildId(bundlePath)}-${codec}`;
}

/**
 * Every workflow type is Pinned by this default, so a change ships as a new build, not a patch. Not set per workflow:
 * the server refuses a versioning behaviour from an unversioned worker, failing every workflow task.
 */
export function deploymentOptions(version: WorkerVersion | null): {
  workerDeploymentOptions?: WorkerDeploymentOptions;
} {
  if (!version) return {};
  return { workerDeploymentOptions: { version, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' } };
}

/** Makes `version` current once its workers poll every one of `taskQueues`, within `timeoutMs`; idempotent. */
export async function promoteWhenPolling(
  deployments: WorkerDeployments,
  version: WorkerVersion,
  taskQueues: readonly string[],
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const described = await deployments.untilPolling(version, taskQueues, timeoutMs);
    if (described.status === 'CURRENT') return;
    try {
      await deployments.setCurrent(version);
      return;
    } catch (err) {
      // Another worker of the same version promoted it meanwhile (a stale conflict token): look again.
      if (Date.now() > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/**
 * Makes this worker's version current once its Workers poll both queues, where it promotes itself (WORKER_PROMOTE
 * on-start: a developer's stack, the tests; first-only: a deployment's first build); else `npm run rollout` does.
 */
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
  await promoteWhenPolling(deployments, version, workers.taskQueues());
  logger.info({ version: versionString(version) }, 'this version made current (on start)');
}
