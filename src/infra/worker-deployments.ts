/**
 * Temporal's Worker Deployment APIs over raw gRPC (the TypeScript client does not wrap them yet), for the worker,
 * the rollout script and the admin views (docs/operations.md, "Deploying during a sale").
 */
import proto from '@temporalio/proto';
import { ORDER_WORKFLOW_TYPE } from '../model/order-workflow.js';

type WorkflowService = proto.temporal.api.workflowservice.v1.WorkflowService;
const { WorkerDeploymentVersionStatus, VersionDrainageStatus } = proto.temporal.api.enums.v1;

/** A client Connection or a worker's NativeConnection. */
export interface HasWorkflowService {
  readonly workflowService: WorkflowService;
}

export interface WorkerVersion {
  deploymentName: string;
  buildId: string;
}

/** Routing status; DRAINED: all its pinned workflows have closed. */
export type VersionStatus = 'INACTIVE' | 'CURRENT' | 'RAMPING' | 'DRAINING' | 'DRAINED';

export interface VersionDescription extends WorkerVersion {
  status: VersionStatus;
  /** The task queues this version's workers poll. */
  taskQueues: { name: string; type: 'WORKFLOW' | 'ACTIVITY' | 'OTHER' }[];
  rampPercentage: number;
}

export interface DeploymentDescription {
  deploymentName: string;
  currentBuildId: string | null;
  rampingBuildId: string | null;
  rampingPercentage: number;
  versions: { buildId: string; status: VersionStatus; createdAt: string | null }[];
  /** When its first worker polled: orders started before it are unversioned. */
  createdAt: string | null;
}

export interface DeploymentStatus {
  deploymentName: string;
  currentBuildId: string | null;
  rampingBuildId: string | null;
  rampingPercentage: number;
  versions: { buildId: string; status: VersionStatus; openOrders: number }[];
  /** Orders started before versioning (they run on the current version); not new ones awaiting a first task. */
  unversionedOpenOrders: number;
}

/** `<deployment name>.<build id>`, as the APIs and the Web UI write it. */
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

/** DRAINING lasts until a drainage check (matching.wv.VersionDrainageStatus*); drainageInfo is DRAINED first. */
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

  /** Without these APIs versioned workers poll and never get a task; NOT_FOUND means the server has them. */
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

  /** Null until one of its workers has polled. */
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

  /** A version cannot be made current before its workers poll every one of `taskQueues`. */
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

  /** Null while no worker of it has polled. */
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

  /** Ends any ramp. Returns once every task queue partition starts new orders on it (the ms that took). */
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

  /** The server propagates a switch asynchronously; one that does not report the state counts as done. */
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

  /** The rest go to the current version; returns once routed, as setCurrent. */
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

  /** For a drained version with no pollers left: a deployment keeps at most 100 versions. */
  async deleteVersion(version: WorkerVersion): Promise<void> {
    await this.service.deleteWorkerDeploymentVersion({
      namespace: this.namespace,
      deploymentVersion: version,
      identity: this.identity,
    });
  }

  /** What an operator watches drain; the task queue scopes the unversioned count to this deployment's orders. */
  async openWorkflowsByVersion(
    deploymentName: string,
    buildIds: readonly string[],
    workflowType: string,
    taskQueue: string,
    /** Workflows on no version started after it only wait for their first task. */
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

  /** The open orders that keep `version` draining. */
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

  /** What rollouts print and admins see. */
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
