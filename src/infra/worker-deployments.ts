/**
 * Temporal's Worker Deployment APIs (Worker Versioning), as the worker, the rollout script and the admin views use
 * them: one place that speaks the gRPC calls, since the TypeScript client has no wrapper for them yet. A worker is a
 * version (deployment name + build id) of a deployment; the deployment's current version gets new workflows, and a
 * Pinned workflow runs to its end on the version it started on (docs/operations.md, "Deploying during a sale").
 */
import proto from '@temporalio/proto';
import { ORDER_WORKFLOW_TYPE } from '../model/order-workflow.js';

type WorkflowService = proto.temporal.api.workflowservice.v1.WorkflowService;
const { WorkerDeploymentVersionStatus, VersionDrainageStatus } = proto.temporal.api.enums.v1;

/** Anything with the frontend's gRPC service: a client Connection or a worker's NativeConnection. */
export interface HasWorkflowService {
  readonly workflowService: WorkflowService;
}

export interface WorkerVersion {
  deploymentName: string;
  buildId: string;
}

/** What the server says of one version: its routing status, and whether its pinned workflows have all closed. */
export type VersionStatus = 'INACTIVE' | 'CURRENT' | 'RAMPING' | 'DRAINING' | 'DRAINED';

export interface VersionDescription extends WorkerVersion {
  status: VersionStatus;
  /** The task queues this version's workers poll (name, then WORKFLOW or ACTIVITY). */
  taskQueues: { name: string; type: 'WORKFLOW' | 'ACTIVITY' | 'OTHER' }[];
  rampPercentage: number;
}

export interface DeploymentDescription {
  deploymentName: string;
  currentBuildId: string | null;
  rampingBuildId: string | null;
  rampingPercentage: number;
  versions: { buildId: string; status: VersionStatus; createdAt: string | null }[];
  /** When the deployment's first worker polled: orders started before it started before versioning. */
  createdAt: string | null;
}

export interface DeploymentStatus {
  deploymentName: string;
  currentBuildId: string | null;
  rampingBuildId: string | null;
  rampingPercentage: number;
  /** Each version, its routing status and the OrderWorkflows still open on it. */
  versions: { buildId: string; status: VersionStatus; openOrders: number }[];
  /**
   * Orders started before versioning (on no version, started before the deployment existed): they run on whichever
   * version is current. Not the orders started since and waiting for their first task, also on no version yet.
   */
  unversionedOpenOrders: number;
}

/** The APIs' version string, `<deployment name>.<build id>`, as the Web UI shows it. */
export function versionString(version: WorkerVersion): string {
  return `${version.deploymentName}.${version.buildId}`;
}

const STATUS_NAMES: Record<number, VersionStatus> = {
  [WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE]: 'INACTIVE',
  [WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT]: 'CURRENT',
  [WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING]: 'RAMPING',
  [WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING]: 'DRAINING',
  [WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED]: 'DRAINED',
};

/**
 * A version's status. The server reports DRAINING until its drainage check (matching.wv.VersionDrainageStatus*
 * intervals) has seen no open pinned workflow; drainageInfo says DRAINED first, so either counts.
 */
function statusOf(status: number | null | undefined, drainage: number | null | undefined): VersionStatus {
  if (drainage === VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED) return 'DRAINED';
  return STATUS_NAMES[status ?? 0] ?? 'INACTIVE';
}

/** gRPC's NOT_FOUND, as both connections' errors carry it. */
function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 5;
}

export class WorkerDeployments {
  constructor(
    private readonly connection: HasWorkflowService,
    private readonly namespace: string,
    /** Who asks, as the deployment's history and the Web UI show it. */
    private readonly identity: string,
  ) {}

  private get service(): WorkflowService {
    return this.connection.workflowService;
  }

  /**
   * Refuses loudly where the server has no Worker Deployment APIs (older than 1.28, or turned off): versioned
   * workers would poll and never be given a task. NOT_FOUND (no such deployment yet) is the answer of a server
   * that has them.
   */
  async assertAvailable(deploymentName: string): Promise<void> {
    try {
      await this.service.describeWorkerDeployment({ namespace: this.namespace, deploymentName });
    } catch (err) {
      if (isNotFound(err)) return;
      const detail = err instanceof Error ? err.message : String(err);
      throw new Error(
        `Temporal's Worker Deployment APIs did not answer (${detail}): versioned workers need server 1.29.1 or later ` +
          '(CLI 1.4.1 or later for the dev server) with them enabled, or WORKER_VERSIONING=false for unversioned workers',
      );
    }
  }

  /** The version as the server knows it; null until one of its workers has polled. */
  async describeVersion(version: WorkerVersion): Promise<VersionDescription | null> {
    try {
      const { workerDeploymentVersionInfo: info } = await this.service.describeWorkerDeploymentVersion({
        namespace: this.namespace,
        deploymentVersion: version,
      });
      if (!info) return null;
      const { TASK_QUEUE_TYPE_WORKFLOW, TASK_QUEUE_TYPE_ACTIVITY } = proto.temporal.api.enums.v1.TaskQueueType;
      return {
        ...version,
        status: statusOf(info.status, info.drainageInfo?.status),
        taskQueues: (info.taskQueueInfos ?? []).map((queue) => ({
          name: queue.name ?? '',
          type:
            queue.type === TASK_QUEUE_TYPE_WORKFLOW
              ? 'WORKFLOW'
              : queue.type === TASK_QUEUE_TYPE_ACTIVITY
                ? 'ACTIVITY'
                : 'OTHER',
        })),
        rampPercentage: info.rampPercentage ?? 0,
      };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /**
   * Waits until the server has seen `version`'s workers poll every one of `taskQueues` (a version cannot be made
   * current before), bounded by `timeoutMs`; its description then.
   */
  async untilPolling(
    version: WorkerVersion,
    taskQueues: readonly string[],
    timeoutMs: number,
  ): Promise<VersionDescription> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const described = await this.describeVersion(version);
      const polled = new Set(described?.taskQueues.map((queue) => queue.name));
      if (described && taskQueues.every((queue) => polled.has(queue))) return described;
      if (Date.now() > until)
        throw new Error(
          `no worker of ${versionString(version)} polls ${taskQueues.filter((queue) => !polled.has(queue)).join(', ')} ` +
            `after ${timeoutMs} ms: start that build's workers first`,
        );
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** The deployment's routing and its versions; null while no worker of it has polled. */
  async describeDeployment(deploymentName: string): Promise<DeploymentDescription | null> {
    const described = await this.describeRaw(deploymentName);
    if (!described) return null;
    const info = described.workerDeploymentInfo;
    const routing = info?.routingConfig;
    return {
      deploymentName,
      currentBuildId: routing?.currentDeploymentVersion?.buildId || null,
      rampingBuildId: routing?.rampingDeploymentVersion?.buildId || null,
      rampingPercentage: routing?.rampingVersionPercentage ?? 0,
      versions: (info?.versionSummaries ?? []).map((summary) => ({
        buildId: summary.deploymentVersion?.buildId ?? '',
        status: statusOf(summary.status, summary.drainageInfo?.status),
        createdAt: timestampIso(summary.createTime),
      })),
      createdAt: timestampIso(info?.createTime),
    };
  }

  /**
   * Makes `version` the deployment's current one: new workflows start on it (the ramp, if any, ends). Returns once
   * the routing reached every task queue partition (the milliseconds that took): before, a partition still starts
   * new orders on the previous version.
   */
  async setCurrent(version: WorkerVersion): Promise<number> {
    const described = await this.describeRaw(version.deploymentName);
    await this.service.setWorkerDeploymentCurrentVersion({
      namespace: this.namespace,
      deploymentName: version.deploymentName,
      buildId: version.buildId,
      identity: this.identity,
      ...(described?.conflictToken ? { conflictToken: described.conflictToken } : {}),
    });
    return this.untilRouted(version.deploymentName);
  }

  /**
   * Waits until the deployment's routing has reached every partition of its task queues (the server propagates a
   * switch asynchronously), bounded; the milliseconds it took. A server that does not report the state counts as done.
   */
  private async untilRouted(deploymentName: string, timeoutMs = 60_000): Promise<number> {
    const started = Date.now();
    const { ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS } = proto.temporal.api.enums.v1.RoutingConfigUpdateState;
    for (;;) {
      const described = await this.describeRaw(deploymentName);
      if (described?.workerDeploymentInfo?.routingConfigUpdateState !== ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS)
        return Date.now() - started;
      if (Date.now() - started > timeoutMs)
        throw new Error(`the routing of ${deploymentName} has not reached every task queue after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Sends `percentage` of new workflows to `version`, the rest to the current one, once routed (as setCurrent). */
  async setRamping(version: WorkerVersion, percentage: number): Promise<number> {
    const described = await this.describeRaw(version.deploymentName);
    await this.service.setWorkerDeploymentRampingVersion({
      namespace: this.namespace,
      deploymentName: version.deploymentName,
      buildId: version.buildId,
      percentage,
      identity: this.identity,
      ...(described?.conflictToken ? { conflictToken: described.conflictToken } : {}),
    });
    return this.untilRouted(version.deploymentName);
  }

  /** Forgets a drained version with no pollers left (a deployment keeps at most 100 versions). */
  async deleteVersion(version: WorkerVersion): Promise<void> {
    await this.service.deleteWorkerDeploymentVersion({
      namespace: this.namespace,
      deploymentVersion: version,
      identity: this.identity,
    });
  }

  /**
   * Running workflows of `workflowType` on `taskQueue` pinned to each of `buildIds` (visibility's
   * TemporalWorkerDeploymentVersion), and those on no version (started before versioning): what an operator watches
   * drain. The task queue scopes the unversioned count to this deployment's orders, not the namespace's.
   */
  async openWorkflowsByVersion(
    deploymentName: string,
    buildIds: readonly string[],
    workflowType: string,
    taskQueue: string,
    /** The deployment's creation: workflows on no version started after it only wait for their first task. */
    deploymentCreatedAt: string | null,
  ): Promise<{ byBuildId: Record<string, number>; unversioned: number }> {
    const count = async (versionClause: string): Promise<number> => {
      const { count: found } = await this.service.countWorkflowExecutions({
        namespace: this.namespace,
        query:
          `WorkflowType = '${workflowType}' AND TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running' ` +
          `AND ${versionClause}`,
      });
      return Number(found ?? 0);
    };
    // Visibility keeps the version as `<deployment name>:<build id>` (server 1.32), not as the APIs' dotted string.
    const counted = await Promise.all(
      buildIds.map(
        async (buildId) =>
          [buildId, await count(`TemporalWorkerDeploymentVersion = '${deploymentName}:${buildId}'`)] as const,
      ),
    );
    const startedBefore = deploymentCreatedAt ? ` AND StartTime < '${deploymentCreatedAt}'` : '';
    return {
      byBuildId: Object.fromEntries(counted),
      unversioned: await count(`TemporalWorkerDeploymentVersion IS NULL${startedBefore}`),
    };
  }

  /** Up to `limit` workflow ids of the open orders on `orderTaskQueue` pinned to `version`: which keep it draining. */
  async openOrderIds(version: WorkerVersion, orderTaskQueue: string, limit: number): Promise<string[]> {
    const { executions } = await this.service.listWorkflowExecutions({
      namespace: this.namespace,
      pageSize: limit,
      query:
        `WorkflowType = '${ORDER_WORKFLOW_TYPE}' AND TaskQueue = '${orderTaskQueue}' AND ExecutionStatus = 'Running' ` +
        `AND TemporalWorkerDeploymentVersion = '${version.deploymentName}:${version.buildId}'`,
    });
    return (executions ?? []).slice(0, limit).map((execution) => execution.execution?.workflowId ?? '');
  }

  /** The deployment's versions with their open orders on `orderTaskQueue`: what rollouts print and admins see. */
  async status(deploymentName: string, orderTaskQueue: string): Promise<DeploymentStatus> {
    const described = (await this.describeDeployment(deploymentName)) ?? {
      deploymentName,
      currentBuildId: null,
      rampingBuildId: null,
      rampingPercentage: 0,
      versions: [],
      createdAt: null,
    };
    const buildIds = described.versions.map((version) => version.buildId);
    const open = await this.openWorkflowsByVersion(
      deploymentName,
      buildIds,
      ORDER_WORKFLOW_TYPE,
      orderTaskQueue,
      described.createdAt,
    );
    return {
      deploymentName,
      currentBuildId: described.currentBuildId,
      rampingBuildId: described.rampingBuildId,
      rampingPercentage: described.rampingPercentage,
      versions: described.versions.map(({ buildId, status }) => ({
        buildId,
        status,
        openOrders: open.byBuildId[buildId] ?? 0,
      })),
      unversionedOpenOrders: open.unversioned,
    };
  }

  private async describeRaw(
    deploymentName: string,
  ): Promise<proto.temporal.api.workflowservice.v1.DescribeWorkerDeploymentResponse | null> {
    try {
      return await this.service.describeWorkerDeployment({ namespace: this.namespace, deploymentName });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }
}

function timestampIso(stamp: { seconds?: unknown; nanos?: number | null } | null | undefined): string | null {
  if (!stamp?.seconds) return null;
  return new Date(Number(stamp.seconds) * 1_000 + Math.floor((stamp.nanos ?? 0) / 1e6)).toISOString();
}
