/** Deletes a drained version with no pollers left (a deployment keeps at most 100): `npm start` and `rollout prune`. */
import type { HasWorkflowService, WorkerVersion } from '../src/infra/worker-deployments.js';

export async function deleteWorkerVersion(
  connection: HasWorkflowService,
  namespace: string,
  identity: string,
  version: WorkerVersion,
): Promise<void> {
  await connection.workflowService.deleteWorkerDeploymentVersion({ namespace, deploymentVersion: version, identity });
}
