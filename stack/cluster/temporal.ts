/**
 * Temporal server as separate services on loopback: frontend, history, matching and worker, each
 * its own process of the same server binary and configuration, persisting to PostgreSQL.
 *
 * Server v1.29.1 has no --config-file flag: the configuration is a directory, read as
 * `<root>/<config>/<env>.yaml` then `<env>_<zone>.yaml`. The launcher writes one shared
 * `cluster.yaml` and, per service, a `cluster_<service>.yaml` overlay that only sets the service's
 * metrics port, and starts each service as
 *   server --root <dir> --config config --env cluster --zone <service> --allow-no-auth start --service <service>
 * (the zone only selects that overlay file; nothing else in the server reads it).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import { loadConfig } from '../../src/config/index.js';
import { temporalDataConverter } from '../../src/infra/data-converter.js';
import { ensureSearchAttributes } from '../../src/workers/worker-connection.js';
import { spawnLogged, waitUntilReady, type ManagedProcess } from '../process.js';
import { pollUntil, run, startRole, type RoleHandle } from './role.js';
import type { ClusterToolPaths } from './tools.js';

export const TEMPORAL_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
export type TemporalService = (typeof TEMPORAL_SERVICES)[number];

export interface TemporalPorts {
  frontendGrpc: number;
  frontendHttp: number;
  frontendMembership: number;
  historyGrpc: number;
  historyMembership: number;
  matchingGrpc: number;
  matchingMembership: number;
  workerGrpc: number;
  workerMembership: number;
  /** Prometheus scrape endpoint per service: http://127.0.0.1:<port>/metrics */
  metrics: Record<TemporalService, number>;
}

export interface TemporalClusterOptions {
  tools: ClusterToolPaths;
  dataDir: string;
  ports: TemporalPorts;
  postgres: { port: number; user: string; password: string };
  namespace: string;
  numHistoryShards: number;
  logLevel: string;
  /** Extra dynamic config, merged over the defaults below (key → value). */
  dynamicConfig?: Record<string, unknown>;
  /** Runs one SQL statement in the `temporal` database, returning psql's unaligned output. */
  queryTemporalDb: (sql: string) => Promise<string>;
  log?: (line: string) => void;
  timeoutMs?: number;
}

const HEALTH_SERVICE_NAME: Record<Exclude<TemporalService, 'worker'>, string> = {
  frontend: 'temporal.api.workflowservice.v1.WorkflowService',
  history: 'temporal.api.workflowservice.v1.HistoryService',
  matching: 'temporal.api.workflowservice.v1.MatchingService',
};
/** Namespace of the readiness and fault-test probe workflows, registered next to the app's. */
export const PROBE_NAMESPACE = 'cluster-stack-probe';
const SERVING = proto.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING;

/**
 * Dynamic config a local cluster needs: the dev server's own defaults (temporal CLI start-dev) plus
 * development-sql.yaml's ID length limit.
 */
export const DEFAULT_DYNAMIC_CONFIG: Record<string, unknown> = {
  'limit.maxIDLength': 255,
  // New search attributes are visible at once (the dev server does the same); costs persistence QPS…
  'system.forceSearchAttributesCacheRefreshOnRead': true,
  // …so the persistence rate limits go up accordingly (the dev server's numbers).
  'frontend.persistenceMaxQPS': 10000,
  'history.persistenceMaxQPS': 45000,
  'frontend.namespaceRPS.visibility': 100,
  'history.hostLevelCacheMaxSize': 8096,
  'frontend.enableUpdateWorkflowExecution': true,
  'frontend.enableExecuteMultiOperation': true,
  // The owner of starts asks for eager starts (the first workflow task back with the start); the
  // default changed between server versions, so it is said here.
  'system.enableEagerWorkflowStart': true,
  // Worker Versioning (docs/operations.md, "Deploying during a sale"): on in 1.29.1, said here; the drainage check at
  // the dev server's pace, so the cluster suite's rollout sees a replaced version drained in seconds.
  'system.enableDeploymentVersions': true,
  'frontend.workerVersioningWorkflowAPIs': true,
  'matching.wv.VersionDrainageStatusRefreshInterval': '5s',
  'matching.wv.VersionDrainageStatusVisibilityGracePeriod': '5s',
};

/** Writes config/cluster.yaml, the per-service overlays and dynamicconfig.yaml; returns the config dir. */
export function writeTemporalConfig(opts: TemporalClusterOptions): string {
  const configDir = join(opts.dataDir, 'config');
  mkdirSync(configDir, { recursive: true });
  const p = opts.ports;
  const dynamicConfigFile = join(opts.dataDir, 'dynamicconfig.yaml');
  const datastore = (database: string, maxConns: number) => `
      sql:
        pluginName: "postgres12"
        databaseName: "${database}"
        connectAddr: "127.0.0.1:${opts.postgres.port}"
        connectProtocol: "tcp"
        user: ${JSON.stringify(opts.postgres.user)}
        password: ${JSON.stringify(opts.postgres.password)}
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: "1h"`;
  const service = (grpcPort: number, membershipPort: number, extra = '') => `
    rpc:
      grpcPort: ${grpcPort}
      membershipPort: ${membershipPort}
      bindOnIP: "127.0.0.1"${extra}`;
  writeFileSync(
    join(configDir, 'cluster.yaml'),
    `# Generated by stack/cluster/temporal.ts on each start; edits are overwritten.
log:
  stdout: true
  level: ${JSON.stringify(opts.logLevel)}

persistence:
  # Fixed when the database is first set up: a durable data dir keeps the number it was created with.
  numHistoryShards: ${opts.numHistoryShards}
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  datastores:
    postgres-default:${datastore('temporal', 20)}
    postgres-visibility:${datastore('temporal_visibility', 10)}

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
  pprof:
    port: 0

services:
  frontend:${service(p.frontendGrpc, p.frontendMembership, `\n      httpPort: ${p.frontendHttp}`)}
  history:${service(p.historyGrpc, p.historyMembership)}
  matching:${service(p.matchingGrpc, p.matchingMembership)}
  worker:${service(p.workerGrpc, p.workerMembership)}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:${p.frontendGrpc}"
      httpAddress: "127.0.0.1:${p.frontendHttp}"

dcRedirectionPolicy:
  policy: "noop"

archival:
  history:
    state: "disabled"
  visibility:
    state: "disabled"

namespaceDefaults:
  archival:
    history:
      state: "disabled"
    visibility:
      state: "disabled"

dynamicConfigClient:
  filepath: ${JSON.stringify(dynamicConfigFile)}
  pollInterval: "10s"
`,
  );
  for (const name of TEMPORAL_SERVICES) {
    writeFileSync(
      join(configDir, `cluster_${name}.yaml`),
      `# Overlay for --zone ${name}: only what differs between the service processes.
global:
  metrics:
    prometheus:
      framework: "tally"
      timerType: "histogram"
      listenAddress: "127.0.0.1:${p.metrics[name]}"
`,
    );
  }
  const dynamic = { ...DEFAULT_DYNAMIC_CONFIG, ...opts.dynamicConfig };
  writeFileSync(
    dynamicConfigFile,
    '# Generated by stack/cluster/temporal.ts; the servers re-read it every 10 s.\n' +
      Object.entries(dynamic)
        .map(([key, value]) => `${key}:\n  - value: ${JSON.stringify(value)}\n`)
        .join(''),
  );
  return configDir;
}

/**
 * Creates the `temporal` and `temporal_visibility` databases and brings their schemas to the
 * latest version with temporal-sql-tool (setup-schema -v 0.0, then update-schema -d <versioned dir>).
 * Both steps are idempotent, so a durable data dir is simply brought up to date.
 */
export async function setupTemporalSchema(
  opts: Pick<TemporalClusterOptions, 'tools' | 'postgres' | 'log'>,
): Promise<void> {
  const log = opts.log ?? (() => {});
  const common = [
    '--plugin',
    'postgres12',
    '--ep',
    '127.0.0.1',
    '-p',
    String(opts.postgres.port),
    '-u',
    opts.postgres.user,
    '--pw',
    opts.postgres.password,
  ];
  await Promise.all(
    (
      [
        ['temporal', 'temporal'],
        ['temporal_visibility', 'visibility'],
      ] as const
    ).map(async ([database, schema]) => {
      const t0 = Date.now();
      const args = [...common, '--db', database];
      // create-database fails when the database exists (durable data dir): -q keeps the exit status 0.
      await run(opts.tools.temporalSqlTool, [...args, '-q', 'create-database']);
      await run(opts.tools.temporalSqlTool, [...args, 'setup-schema', '-v', '0.0']);
      await run(opts.tools.temporalSqlTool, [
        ...args,
        'update-schema',
        '-d',
        join(opts.tools.temporalSchemaDir, schema, 'versioned'),
      ]);
      log(`temporal schema: ${database} up to date (${Date.now() - t0} ms)`);
    }),
  );
}

export interface RunningTemporalCluster {
  address: string;
  roles: Record<TemporalService, RoleHandle>;
  /**
   * Starts a workflow (no worker needed), terminates and deletes it: history and matching work.
   * Runs in the probe namespace PROBE_NAMESPACE, so that the app's namespace never lists probes.
   */
  checkWorkflowRoundTrip(): Promise<void>;
  /** The app's namespace is known to frontend and history (a start would not get NamespaceNotFound). */
  checkNamespaceUsable(): Promise<void>;
  /**
   * Polls both checks above until they pass (after a service was restarted, shards and caches take
   * a moment); resolves with the wait in ms, rejects after `timeoutMs` (default 60 s).
   */
  waitUntilWorking(timeoutMs?: number): Promise<number>;
}

/** Spawns the four services, registers the namespace and search attributes, waits until they work. */
export async function startTemporalCluster(opts: TemporalClusterOptions): Promise<RunningTemporalCluster> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? 120_000;
  writeTemporalConfig(opts);
  const address = `127.0.0.1:${opts.ports.frontendGrpc}`;
  const grpcPort: Record<Exclude<TemporalService, 'worker'>, number> = {
    frontend: opts.ports.frontendGrpc,
    history: opts.ports.historyGrpc,
    matching: opts.ports.matchingGrpc,
  };

  const roles: Partial<Record<TemporalService, RoleHandle>> = {};
  // Every process spawned during the first start, so that one failure stops the others at once
  // instead of leaving them to time out.
  let spawned: ManagedProcess[] | undefined = [];
  const startService = (name: TemporalService) =>
    startRole({
      role: `temporal-${name}`,
      spawn: () => {
        const proc = spawnLogged(
          `temporal ${name}`,
          opts.tools.temporalServer,
          [
            '--root',
            opts.dataDir,
            '--config',
            'config',
            '--env',
            'cluster',
            '--zone',
            name,
            '--allow-no-auth',
            'start',
            '--service',
            name,
          ],
          // GOGC=400 as for the dev server (docs/performance.md): fewer GC cycles under a burst.
          { logFile: join(opts.dataDir, `${name}.log`), env: { ...process.env, GOGC: process.env.GOGC ?? '400' } },
        );
        spawned?.push(proc);
        return proc;
      },
      ready: async (proc: ManagedProcess) => {
        const spawnedAt = Date.now();
        await waitUntilReady(
          proc,
          name === 'worker'
            ? () => systemWorkerPolling(address, opts.ports.workerMembership, spawnedAt, opts.queryTemporalDb)
            : () => grpcServing(`127.0.0.1:${grpcPort[name]}`, HEALTH_SERVICE_NAME[name]),
          timeoutMs,
        );
        log(`temporal ${name} ready in ${Date.now() - spawnedAt} ms (pid ${proc.pid}, log ${proc.logFile})`);
      },
    }).then((handle) => {
      roles[name] = handle;
    });
  const starting: Promise<void>[] = [];
  try {
    // The first process to start writes the cluster metadata record; processes starting at the same
    // moment race for it and the losers exit ("Failed to apply cluster metadata"). So history starts
    // alone until the record is in PostgreSQL, then the other three join it; they find each other
    // through membership, so the order does not matter beyond that.
    starting.push(startService('history'));
    const metadataWritten = async () =>
      Number(await opts.queryTemporalDb('SELECT count(*) FROM cluster_metadata_info')) > 0;
    await Promise.race([starting[0]!, pollUntil('temporal cluster metadata record', metadataWritten, timeoutMs)]);
    for (const name of TEMPORAL_SERVICES) if (name !== 'history') starting.push(startService(name));
    await Promise.all(starting);

    const t0 = Date.now();
    const connection = await Connection.connect({ address, connectTimeout: '5s' });
    try {
      await registerNamespace(connection, opts.namespace);
      await registerNamespace(connection, PROBE_NAMESPACE);
      await ensureSearchAttributes(connection, opts.namespace);
    } finally {
      await connection.close();
    }
    log(
      `temporal namespaces ${opts.namespace} + ${PROBE_NAMESPACE} and search attributes registered in ${Date.now() - t0} ms`,
    );
  } catch (err) {
    for (const proc of [...(spawned ?? [])].reverse()) await proc.stop(5_000);
    await Promise.allSettled(starting);
    throw err;
  }

  spawned = undefined; // restarts later on are not part of the first start
  const cluster: RunningTemporalCluster = {
    address,
    roles: roles as Record<TemporalService, RoleHandle>,
    checkWorkflowRoundTrip: () => workflowRoundTrip(address, PROBE_NAMESPACE),
    checkNamespaceUsable: () => namespaceUsable(address, opts.namespace),
    waitUntilWorking: (wait = 60_000) =>
      pollUntil(
        `temporal: namespace ${opts.namespace} usable and a probe workflow starts and terminates`,
        async () => (await cluster.checkNamespaceUsable(), await cluster.checkWorkflowRoundTrip(), true),
        wait,
      ),
  };
  try {
    // Namespace caches refresh every few seconds: retried until a workflow really starts.
    const took = await cluster.waitUntilWorking(timeoutMs);
    log(`temporal accepts workflows (probe took ${took} ms)`);
  } catch (err) {
    for (const name of [...TEMPORAL_SERVICES].reverse()) await roles[name]?.stop();
    throw err;
  }
  return cluster;
}

/** gRPC health of one service (history and matching answer on their own ports). */
export async function grpcServing(address: string, service: string): Promise<boolean> {
  // connect() asks for GetSystemInfo, which history and matching do not implement: UNIMPLEMENTED is ignored.
  const connection = await Connection.connect({ address, connectTimeout: '1s' });
  try {
    const { status } = await connection.healthService.check({ service });
    return status === SERVING;
  } finally {
    await connection.close();
  }
}

/**
 * The worker service has no gRPC server. It is up when this process has joined the membership ring
 * (its row in cluster_membership has a session that began after the spawn) and a poll of its system
 * task queue began after that session started (a killed predecessor's polls can look recent).
 */
async function systemWorkerPolling(
  frontend: string,
  membershipPort: number,
  spawnedAt: number,
  query: (sql: string) => Promise<string>,
): Promise<boolean> {
  // session_start is a UTC timestamp without time zone: extract(epoch) reads it as UTC.
  const sessionStart = Number(
    (
      await query(
        `SELECT coalesce(floor(extract(epoch FROM max(session_start)) * 1000), 0) FROM cluster_membership WHERE rpc_port = ${membershipPort}`,
      )
    ).trim(),
  );
  if (sessionStart < spawnedAt) return false;
  const connection = await Connection.connect({ address: frontend, connectTimeout: '1s' });
  try {
    const { pollers } = await connection.workflowService.describeTaskQueue({
      namespace: 'temporal-system',
      taskQueue: { name: 'default-worker-tq', kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    return (pollers ?? []).some(
      (p) =>
        Number(p.lastAccessTime?.seconds ?? 0) * 1000 + Math.floor((p.lastAccessTime?.nanos ?? 0) / 1e6) >=
        sessionStart,
    );
  } finally {
    await connection.close();
  }
}

async function registerNamespace(connection: Connection, namespace: string): Promise<void> {
  try {
    await connection.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs('1 day'),
    });
  } catch (err) {
    // ALREADY_EXISTS (gRPC 6): a durable data dir registered it on an earlier start.
    if ((err as { code?: number }).code !== 6) throw err;
  }
  await pollUntil(
    `temporal: namespace ${namespace} visible`,
    async () => (await connection.workflowService.describeNamespace({ namespace }), true),
    30_000,
  );
}

/**
 * Describes a workflow that does not exist: NOT_FOUND about the workflow means frontend and history
 * both know the namespace; NOT_FOUND about the namespace means their caches have not caught up yet.
 */
async function namespaceUsable(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    await connection.workflowService.describeWorkflowExecution({
      namespace,
      execution: { workflowId: 'cluster-stack-no-such-workflow' },
    });
  } catch (err) {
    const { code, message } = err as { code?: number; message?: string };
    if (code === 5 && !/namespace/i.test(message ?? '')) return;
    throw err;
  } finally {
    await connection.close();
  }
}

async function workflowRoundTrip(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    // As every client of the checkout: its codec (the defaults' key, under .data/); the probe's start carries no data.
    const client = new Client({ connection, namespace, dataConverter: temporalDataConverter(loadConfig({})) });
    const workflowId = `cluster-stack-probe-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    const handle = await client.workflow.start('ClusterStackProbe', {
      taskQueue: 'cluster-stack-probe',
      workflowId,
      args: [],
      workflowExecutionTimeout: '1 minute',
    });
    await handle.terminate('cluster stack readiness probe');
    const { status } = await handle.describe();
    if (status.name !== 'TERMINATED') throw new Error(`probe workflow is ${status.name}, not TERMINATED`);
    // Deleted again so that tests listing the namespace's workflows do not see the probes.
    // Deleted again (asynchronously: it stays listed for ~30 s) so that probes do not pile up.
    await connection.workflowService.deleteWorkflowExecution({
      namespace,
      workflowExecution: { workflowId, runId: handle.firstExecutionRunId },
    });
  } finally {
    await connection.close();
  }
}

/** The Web UI server pointed at the frontend. */
export async function startTemporalUi(opts: {
  tools: ClusterToolPaths;
  dataDir: string;
  port: number;
  frontend: string;
  namespace: string;
  /** The codec server the UI's pages send payloads to (from the browser); unset: payloads shown as stored. */
  codecEndpoint?: string;
  timeoutMs?: number;
}): Promise<RoleHandle> {
  if (!opts.tools.temporalUiServer)
    throw new Error('TEMPORAL_UI_SERVER is not installed (scripts/install-cluster-tools.sh)');
  const configDir = join(opts.dataDir, 'config');
  mkdirSync(configDir, { recursive: true });
  // No sign-in here: no access token to pass, no cookies to send.
  const codec = opts.codecEndpoint
    ? `codec:\n  endpoint: ${JSON.stringify(opts.codecEndpoint)}\n  passAccessToken: false\n  includeCredentials: false\n`
    : '';
  writeFileSync(
    join(configDir, 'cluster.yaml'),
    `# Generated by stack/cluster/temporal.ts.
temporalGrpcAddress: "${opts.frontend}"
host: "127.0.0.1"
port: ${opts.port}
enableUi: true
defaultNamespace: ${JSON.stringify(opts.namespace)}
showTemporalSystemNamespace: false
notifyOnNewVersion: false
refreshInterval: 1m
cors:
  cookieInsecure: true
  unsafeAllowAllOrigins: true
forwardHeaders:
  - X-Forwarded-For
${codec}`,
  );
  const url = `http://127.0.0.1:${opts.port}`;
  return startRole({
    role: 'temporal-ui',
    spawn: () =>
      spawnLogged(
        'temporal ui',
        opts.tools.temporalUiServer!,
        ['--root', opts.dataDir, '--config', 'config', '--env', 'cluster', 'start'],
        {
          logFile: join(opts.dataDir, 'ui.log'),
        },
      ),
    ready: (proc) =>
      waitUntilReady(
        proc,
        async () => {
          // The API route proves the UI server reaches the frontend, not just that it listens.
          const res = await fetch(`${url}/api/v1/namespaces/${encodeURIComponent(opts.namespace)}`, {
            signal: AbortSignal.timeout(2_000),
          });
          return res.ok;
        },
        opts.timeoutMs ?? 30_000,
      ),
  });
}
