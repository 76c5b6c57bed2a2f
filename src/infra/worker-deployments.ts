/**
 * Temporal's Worker Deployment APIs over raw gRPC (the TypeScript client does not wrap them yet), for the worker,
 * the rollout script and the admin views (docs/operations.md, "Deploying during a sale").
 */
import proto from '@temporalio/proto';
import { ORDER_WORKFLOW_TYPE } from '../model/order-workflow.js';
import { PINNED_WORKFLOW_TYPES } from '../model/workflow-types.js';
import { int, named } from '../infra/schema-fields.js';
import { z } from 'zod';

type WorkflowService = proto.temporal.api.workflowservice.v1.WorkflowService;
const { WorkerDeploymentVersionStatus, VersionDrainageStatus, TaskQueueKind, TaskQueueType } =
  proto.temporal.api.enums.v1;

/** A client Connection or a worker's NativeConnection. */
export interface HasWorkflowService {
  readonly workflowService: WorkflowService;
}

export interface WorkerVersion {
  deploymentName: string;
  buildId: string;
}

const VERSION_STATUSES = ['INACTIVE', 'CURRENT', 'RAMPING', 'DRAINING', 'DRAINED'] as const;
/** Routing status; DRAINED: all its pinned workflows have closed. */
export type VersionStatus = (typeof VERSION_STATUSES)[number];

const routing = {
  deploymentName: z.string().meta({ description: 'The Worker Deployment (WORKER_DEPLOYMENT_NAME).' }),
  currentBuildId: z.string().nullable().meta({ description: 'The build new orders start on; null before any.' }),
  rampingBuildId: z.string().nullable().meta({ description: 'A build taking a percentage of new orders, if any.' }),
  rampingPercentage: z.number(),
};
type Routing = z.infer<z.ZodObject<typeof routing>>;

interface DeploymentDescription extends Routing {
  versions: { buildId: string; status: VersionStatus }[];
  /** When its first worker polled: orders started before it are unversioned. */
  createdAt: string | null;
}

/** GET /api/admin/deployment and `npm run rollout -- status`. */
export const deploymentStatusSchema = named('DeploymentStatus', {
  ...routing,
  versions: z.array(
    z.object({
      buildId: z.string(),
      status: z.enum(VERSION_STATUSES).meta({
        description:
          "Temporal's routing status: DRAINED once no run pinned to it is open, of any type (its workers can stop).",
      }),
      openOrders: int.meta({ description: 'OrderWorkflows open on this build (visibility).' }),
      openRuns: z.record(z.string(), int).meta({
        description:
          'Open runs pinned to this build, by workflow type (orders included): the build drains once all are 0.',
      }),
    }),
  ),
  unversionedOpenOrders: int.meta({
    description:
      'Orders started before versioning (they run on the current build); not new ones awaiting a first task.',
  }),
});

export type DeploymentStatus = z.infer<typeof deploymentStatusSchema>;

/** The runs that keep a version draining: each open type with its count ("OrderWorkflow 3, RefundWorkflow 1"). */
export function describeOpenRuns(version: Pick<DeploymentStatus['versions'][number], 'openRuns'>): string {
  const open = Object.entries(version.openRuns).filter(([, count]) => count > 0);
  return open.length > 0 ? open.map(([type, count]) => `${type} ${count}`).join(', ') : 'no open runs';
}

/** How many runs are pinned to a version and open, of every type. */
export function openRunsOf(version: Pick<DeploymentStatus['versions'][number], 'openRuns'>): number {
  return Object.values(version.openRuns).reduce((sum, count) => sum + count, 0);
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

/** A routing read's usable age plus a start's way to the server: a switch away from a version is done only after it. */
export const EAGER_ROUTING_SETTLE_MS = 5_000;
const ROUTING_READ_MAX_AGE_MS = 3_000;

/** Whether `version` is current, unramped, by recent reads: an eager start pins the asker's version, so waits on it. */
export class CurrentVersionWatch {
  /** The newest answered read (by the order reads were issued): when it was issued, and whether it said current. */
  private newest = { seq: 0, issuedAt: 0, current: false };
  private issued = 0;
  /** What the newest answered read said, however old: this version current (unramped), as far as this watch knows. */
  private routed = false;

  /** `becameCurrent`: told on a promotion seen (again after a rollback), to start what the current build alone does. */
  constructor(
    private readonly deployments: Pick<WorkerDeployments, 'describeDeployment'>,
    private readonly version: WorkerVersion,
    private readonly becameCurrent: () => void = () => {},
  ) {}

  /** One read; a failed one counts as "not current". Answers arriving out of order keep the newest. */
  async read(withDeadline: <T>(call: () => Promise<T>) => Promise<T>): Promise<void> {
    const seq = ++this.issued;
    const issuedAt = Date.now();
    let current = false;
    let answered = true;
    try {
      const routing = await withDeadline(() => this.deployments.describeDeployment(this.version.deploymentName));
      current = routing?.currentBuildId === this.version.buildId && !routing.rampingBuildId;
    } catch {
      current = false;
      answered = false;
    }
    if (seq <= this.newest.seq) return;
    const was = this.routed;
    this.newest = { seq, issuedAt, current };
    // A failed read says nothing of the routing: it stops eager starts, not what the current build keeps.
    if (answered) this.routed = current;
    if (this.routed && !was) this.becameCurrent();
  }

  /** Current as the newest answered read said, however old (what the current build keeps: its schedules). */
  isRouted(): boolean {
    return this.routed;
  }

  isCurrent(now = Date.now()): boolean {
    return this.newest.current && now - this.newest.issuedAt <= ROUTING_READ_MAX_AGE_MS;
  }
}

/** Null on gRPC's NOT_FOUND, as both connections' errors carry it. */
function unlessNotFound<T>(call: Promise<T>): Promise<T | null> {
  return call.catch((err: unknown) => {
    if (typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 5) return null;
    throw err;
  });
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
      await this.describeRaw(deploymentName);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      throw new Error(
        `Temporal's Worker Deployment APIs did not answer (${detail}): versioned workers need server 1.29.1 or later ` +
          '(CLI 1.4.1 or later for the dev server) with them enabled, or WORKER_VERSIONING=false for unversioned workers',
      );
    }
  }

  /** A version cannot be made current before its workers poll every one of `taskQueues`. */
  async untilPolling(
    version: WorkerVersion,
    taskQueues: readonly string[],
    timeoutMs: number,
  ): Promise<{ status: VersionStatus }> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const described = await unlessNotFound(
        this.service.describeWorkerDeploymentVersion({ namespace: this.namespace, deploymentVersion: version }),
      );
      const info = described?.workerDeploymentVersionInfo;
      const polled = new Set((info?.taskQueueInfos ?? []).map((queue) => queue.name));
      if (info && taskQueues.every((queue) => polled.has(queue)))
        return { status: statusOf(info.status, info.drainageInfo?.status) };
      if (Date.now() > until)
        throw new Error(
          `no worker of ${versionString(version)} polls ${taskQueues.filter((queue) => !polled.has(queue)).join(', ')} ` +
            `after ${timeoutMs} ms: start that build's workers first`,
        );
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** The order queue's workflow pollers as the server lists them (a dead one for minutes), with their last poll. */
  async orderQueuePollers(orderTaskQueue: string): Promise<{ version: WorkerVersion | null; lastPollMs: number }[]> {
    const { pollers } = await this.service.describeTaskQueue({
      namespace: this.namespace,
      taskQueue: { name: orderTaskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    return (pollers ?? []).map(({ deploymentOptions: of, lastAccessTime }) => ({
      version: of?.buildId ? { deploymentName: of.deploymentName ?? '', buildId: of.buildId } : null,
      lastPollMs: Date.parse(timestampIso(lastAccessTime) ?? '') || 0,
    }));
  }

  /**
   * Waits (0: one look) for a poll of `version` on the order queue arrived at `since` or later: the server lists a dead
   * worker for minutes, but its last poll stays older. `since` is by this machine's clock: for a process started here.
   */
  async untilPolledSince(version: WorkerVersion, orderTaskQueue: string, since: number, timeoutMs: number) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const polls = (await this.orderQueuePollers(orderTaskQueue)).some(
        (poller) =>
          poller.version?.deploymentName === version.deploymentName &&
          poller.version.buildId === version.buildId &&
          poller.lastPollMs >= since,
      );
      if (polls) return;
      if (Date.now() >= until)
        throw new Error(
          `no worker of ${versionString(version)} has polled ${orderTaskQueue} since ${new Date(since).toISOString()}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Deletes a drained version with no pollers left (a deployment keeps at most 100): npm start and `rollout prune`. */
  async deleteVersion(version: WorkerVersion): Promise<void> {
    await this.service.deleteWorkerDeploymentVersion({
      namespace: this.namespace,
      deploymentVersion: version,
      identity: this.identity,
    });
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
      })),
      createdAt: timestampIso(info?.createTime),
    };
  }

  /** Ends any ramp; returns (the ms it took) once every partition routes to it and no old starter starts eagerly. */
  async setCurrent(version: WorkerVersion): Promise<number> {
    return this.route(version, (request) => this.service.setWorkerDeploymentCurrentVersion(request));
  }

  /** The rest go to the current version; returns once routed, as setCurrent. */
  async setRamping(version: WorkerVersion, percentage: number): Promise<number> {
    return this.route(version, (request) => this.service.setWorkerDeploymentRampingVersion({ ...request, percentage }));
  }

  /** The server propagates a switch asynchronously; one that does not report the state counts as done. */
  private async route(
    version: WorkerVersion,
    change: (
      request: WorkerVersion & { namespace: string; identity: string; conflictToken?: Uint8Array },
    ) => Promise<unknown>,
    timeoutMs = 60_000,
  ): Promise<number> {
    const { deploymentName } = version;
    const described = await this.describeRaw(deploymentName);
    const routing = described?.workerDeploymentInfo?.routingConfig;
    // Routing moves away from a version whose starters may start eagerly on it until their reads catch up.
    const movesAway =
      (!!routing?.currentDeploymentVersion?.buildId && routing.currentDeploymentVersion.buildId !== version.buildId) ||
      (!!routing?.rampingDeploymentVersion?.buildId && routing.rampingDeploymentVersion.buildId !== version.buildId);
    await change({
      deploymentName,
      buildId: version.buildId,
      namespace: this.namespace,
      identity: this.identity,
      ...(described?.conflictToken ? { conflictToken: described.conflictToken } : {}),
    });
    const started = Date.now();
    const { ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS } = proto.temporal.api.enums.v1.RoutingConfigUpdateState;
    for (;;) {
      const now = await this.describeRaw(deploymentName);
      if (now?.workerDeploymentInfo?.routingConfigUpdateState !== ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS) {
        if (movesAway) await new Promise((resolve) => setTimeout(resolve, EAGER_ROUTING_SETTLE_MS));
        return Date.now() - started;
      }
      if (Date.now() - started > timeoutMs)
        throw new Error(`the routing of ${deploymentName} has not reached every task queue after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The open orders that keep `version` draining. */
  async openOrderIds(version: WorkerVersion, orderTaskQueue: string, limit: number): Promise<string[]> {
    const { executions } = await this.service.listWorkflowExecutions({
      namespace: this.namespace,
      pageSize: limit,
      query: `${openOrdersQuery(orderTaskQueue)} AND ${versionClause(version)}`,
    });
    return (executions ?? []).slice(0, limit).map((execution) => execution.execution?.workflowId ?? '');
  }

  /** What rollouts print and admins see; the task queue scopes the unversioned count to this deployment's orders. */
  async status(deploymentName: string, orderTaskQueue: string): Promise<DeploymentStatus> {
    const { versions, createdAt, ...routing } = (await this.describeDeployment(deploymentName)) ?? {
      deploymentName,
      currentBuildId: null,
      rampingBuildId: null,
      rampingPercentage: 0,
      versions: [],
      createdAt: null,
    };
    const count = async (query: string): Promise<number> => {
      const { count: found } = await this.service.countWorkflowExecutions({ namespace: this.namespace, query });
      return Number(found ?? 0);
    };
    // Orders on no version started after the deployment only wait for their first task.
    const startedBefore = createdAt ? ` AND StartTime < '${createdAt}'` : '';
    return {
      ...routing,
      versions: await Promise.all(
        versions.map(async ({ buildId, status }) => {
          const onIt = versionClause({ deploymentName, buildId });
          const counts = await Promise.all(
            PINNED_WORKFLOW_TYPES.map((type) =>
              count(`WorkflowType = '${type}' AND ExecutionStatus = 'Running' AND ${onIt}`),
            ),
          );
          return {
            buildId,
            status,
            openOrders: await count(`${openOrdersQuery(orderTaskQueue)} AND ${onIt}`),
            openRuns: Object.fromEntries(PINNED_WORKFLOW_TYPES.map((type, i) => [type, counts[i]!])),
          };
        }),
      ),
      unversionedOpenOrders: await count(
        `${openOrdersQuery(orderTaskQueue)} AND TemporalWorkerDeploymentVersion IS NULL${startedBefore}`,
      ),
    };
  }

  private describeRaw(deploymentName: string) {
    return unlessNotFound(this.service.describeWorkerDeployment({ namespace: this.namespace, deploymentName }));
  }
}

function timestampIso(stamp: { seconds?: unknown; nanos?: number | null } | null | undefined): string | null {
  if (!stamp?.seconds) return null;
  return new Date(Number(stamp.seconds) * 1_000 + Math.floor((stamp.nanos ?? 0) / 1e6)).toISOString();
}

function openOrdersQuery(orderTaskQueue: string): string {
  return `WorkflowType = '${ORDER_WORKFLOW_TYPE}' AND TaskQueue = '${orderTaskQueue}' AND ExecutionStatus = 'Running'`;
}

// Visibility keeps the version as `<deployment name>:<build id>` (server 1.32), not as the APIs' dotted string.
function versionClause(version: WorkerVersion): string {
  return `TemporalWorkerDeploymentVersion = '${version.deploymentName}:${version.buildId}'`;
}
