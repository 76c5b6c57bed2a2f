/**
 * The "cluster layout" of the local stack, on loopback:
 *   - Temporal server as separate services (frontend, history, matching, worker) on PostgreSQL,
 *     plus the Web UI server;
 *   - a Redis Cluster of 3 masters + 3 replicas;
 *   - one MariaDB (startMariaDb of services.ts, as in the single-node stack);
 *   - and, for the app's API processes, startLoadBalancer (nginx).
 * Every server process is a restartable role, so a fault test can SIGKILL e.g. the history service
 * or a Redis master and start it again with the same configuration, ports and data.
 *
 * Needs scripts/install-tools.sh and scripts/install-cluster-tools.sh to have run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedProcess } from './process.js';
import { freePort } from './process.js';
import { loadToolPaths, startMariaDb, type RunningService } from './services.js';
import { startPostgres } from './cluster/postgres.js';
import { startRedisCluster, type RunningRedisCluster } from './cluster/redis.js';
import { roleFromService, type RoleHandle } from './cluster/role.js';
import {
  setupTemporalSchema,
  startTemporalCluster,
  startTemporalUi,
  TEMPORAL_SERVICES,
  type RunningTemporalCluster,
  type TemporalPorts,
} from './cluster/temporal.js';
import { loadClusterToolPaths } from './cluster/tools.js';
import { freePortInRange } from './cluster/ports.js';

export { startLoadBalancer, renderNginxConfig, type LoadBalancerOptions } from './cluster/nginx.js';
export { loadClusterToolPaths, type ClusterToolPaths } from './cluster/tools.js';
export type { RoleHandle } from './cluster/role.js';
export type { RunningRedisCluster, RedisNode, RedisClusterNodeView } from './cluster/redis.js';
export { redisCommand } from './cluster/redis.js';
export type { RunningTemporalCluster, TemporalService } from './cluster/temporal.js';

export const REDIS_ROLES = ['redis-1', 'redis-2', 'redis-3', 'redis-4', 'redis-5', 'redis-6'] as const;
export type ClusterRole =
  | 'postgres'
  | 'temporal-history'
  | 'temporal-matching'
  | 'temporal-frontend'
  | 'temporal-worker'
  | 'temporal-ui'
  | (typeof REDIS_ROLES)[number]
  | 'mariadb';

/** A ClusterRole, or a role name as returned by stack.redis.masters(); checked when used. */
export type AnyRole = ClusterRole | (string & {});

/** Stop order: dependants before what they depend on. */
const STOP_ORDER: ClusterRole[] = [
  'temporal-ui',
  'temporal-worker',
  'temporal-frontend',
  'temporal-matching',
  'temporal-history',
  'postgres',
  ...[...REDIS_ROLES].reverse(),
  'mariadb',
];

export interface ClusterStackOptions {
  /** Root of the servers' data directories. */
  dataDir: string;
  /**
   * Throw-away stack (tests): PostgreSQL without fsync, MariaDB with relaxed flushing, fresh ports.
   * A durable stack keeps full durability and reuses the ports saved in <dataDir>/cluster-ports.json
   * (a Redis Cluster's nodes.conf names its peers by port).
   */
  ephemeral: boolean;
  log?: (line: string) => void;
  namespace?: string;
  /** Default 4; fixed once PostgreSQL holds the cluster metadata. */
  numHistoryShards?: number;
  /** Start the Web UI server (default: when installed). */
  ui?: boolean;
  /** Temporal services' log level (default warn; logs go to <dataDir>/temporal/<service>.log). */
  temporalLogLevel?: string;
  /** Extra Temporal dynamic config (key → value), over the defaults of cluster/temporal.ts. */
  temporalDynamicConfig?: Record<string, unknown>;
  /** Redis cluster-node-timeout, i.e. how soon a replica takes over a dead master (default 5000). */
  redisNodeTimeoutMs?: number;
}

export interface ClusterPorts {
  postgres: number;
  temporal: TemporalPorts;
  temporalUi: number;
  /** Where the Web UI expects the codec server (the app's launcher runs it: stack/cluster-app.ts). */
  codecServer: number;
  redis: number[];
  mysql: number;
}

export interface RunningClusterStack {
  /** TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, REDIS_URL (all six nodes, comma-separated), MYSQL_URL. */
  env: Record<string, string>;
  temporalUiUrl?: string;
  /** One entry per role; `process` is always the current one (a new one after a restart). */
  services: RunningService[];
  /** By role (see ClusterRole); each property reads the role's current process. */
  processes: Record<string, ManagedProcess>;
  /** By role: kill / start / stop / restart one server. */
  roles: Record<string, RoleHandle>;
  ports: ClusterPorts;
  temporal: RunningTemporalCluster;
  redis: RunningRedisCluster;
  /** Sends `signal` (default SIGKILL) to the role's process group and waits for it to exit. */
  kill(role: AnyRole, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped or killed role again (same config, ports, data) and waits until it is ready. */
  start(role: AnyRole): Promise<void>;
  /** Graceful stop (SIGTERM, then SIGKILL) and start. */
  restart(role: AnyRole): Promise<void>;
  /** Stops every role in STOP_ORDER; nothing is left running afterwards. */
  stop(): Promise<void>;
}

async function pickPorts(dataDir: string, ephemeral: boolean): Promise<ClusterPorts> {
  const file = join(dataDir, 'cluster-ports.json');
  if (!ephemeral && existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<ClusterPorts>;
    // A file saved before the codec server had no port for it.
    if (saved.codecServer === undefined) {
      saved.codecServer = await freePort();
      writeFileSync(file, JSON.stringify(saved, null, 2));
    }
    return saved as ClusterPorts;
  }
  const taken = new Set<number>();
  // freePort() asks the OS, which may hand out the same port twice in a row while nothing listens yet.
  const next = async (): Promise<number> => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  // Membership ports go into a SMALLINT column of Temporal's PostgreSQL schema: below 32768.
  const low = async (): Promise<number> => {
    const port = await freePortInRange(20_000, 32_767, taken);
    taken.add(port);
    return port;
  };
  const ports: ClusterPorts = {
    postgres: await next(),
    temporal: {
      frontendGrpc: await next(),
      frontendHttp: await next(),
      frontendMembership: await low(),
      historyGrpc: await next(),
      historyMembership: await low(),
      matchingGrpc: await next(),
      matchingMembership: await low(),
      workerGrpc: await next(),
      workerMembership: await low(),
      metrics: { frontend: await next(), history: await next(), matching: await next(), worker: await next() },
    },
    temporalUi: await next(),
    codecServer: await next(),
    redis: [await next(), await next(), await next(), await next(), await next(), await next()],
    mysql: await next(),
  };
  if (!ephemeral) writeFileSync(file, JSON.stringify(ports, null, 2));
  return ports;
}

export async function startClusterStack(options: ClusterStackOptions): Promise<RunningClusterStack> {
  const log = options.log ?? (() => {});
  const tools = { ...loadToolPaths(), ...loadClusterToolPaths() };
  const namespace = options.namespace ?? 'default';
  const pg = { user: 'temporal', password: 'temporal' };
  mkdirSync(options.dataDir, { recursive: true });
  const ports = await pickPorts(options.dataDir, options.ephemeral);
  const withUi = (options.ui ?? true) && !!tools.temporalUiServer;
  if ((options.ui ?? true) && !tools.temporalUiServer) log('temporal ui: not installed, skipped');

  const roles: Partial<Record<ClusterRole, RoleHandle>> = {};
  let temporal: RunningTemporalCluster | undefined;
  let redis: RunningRedisCluster | undefined;
  const stop = async () => {
    for (const role of STOP_ORDER) {
      const handle = roles[role];
      if (!handle) continue;
      const t0 = Date.now();
      await handle.stop();
      log(`${role} stopped in ${Date.now() - t0} ms`);
    }
  };
  const timed = async <T>(name: string, start: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    const result = await start();
    log(`${name} ready in ${Date.now() - t0} ms`);
    return result;
  };

  try {
    const temporalChain = async () => {
      const postgres = await timed('postgres', () =>
        startPostgres({
          tools,
          dataDir: join(options.dataDir, 'postgres'),
          port: ports.postgres,
          ...pg,
          ephemeral: options.ephemeral,
          log,
        }),
      );
      roles.postgres = postgres.handle;
      await timed('temporal schema', () =>
        setupTemporalSchema({ tools, postgres: { port: ports.postgres, ...pg }, log }),
      );
      temporal = await timed('temporal services', () =>
        startTemporalCluster({
          tools,
          dataDir: join(options.dataDir, 'temporal'),
          ports: ports.temporal,
          postgres: { port: ports.postgres, ...pg },
          namespace,
          numHistoryShards: options.numHistoryShards ?? 4,
          logLevel: options.temporalLogLevel ?? 'warn',
          dynamicConfig: options.temporalDynamicConfig,
          queryTemporalDb: (sql) => postgres.psql(sql, 'temporal'),
          log,
        }),
      );
      for (const name of TEMPORAL_SERVICES) roles[`temporal-${name}`] = temporal.roles[name];
      if (withUi) {
        roles['temporal-ui'] = await timed('temporal ui', () =>
          startTemporalUi({
            tools,
            dataDir: join(options.dataDir, 'temporal-ui'),
            port: ports.temporalUi,
            frontend: temporal!.address,
            namespace,
            codecEndpoint: `http://127.0.0.1:${ports.codecServer}`,
          }),
        );
      }
    };
    const redisChain = async () => {
      redis = await timed('redis cluster', () =>
        startRedisCluster({
          tools,
          dataDir: join(options.dataDir, 'redis-cluster'),
          ports: ports.redis,
          nodeTimeoutMs: options.redisNodeTimeoutMs,
          log,
        }),
      );
      for (const node of redis.nodes) roles[node.role as ClusterRole] = node.handle;
    };
    const mariadbChain = async () => {
      roles.mariadb = await timed('mariadb', () =>
        roleFromService('mariadb', () =>
          startMariaDb({
            tools,
            dataDir: join(options.dataDir, 'mariadb'),
            port: ports.mysql,
            ephemeral: options.ephemeral,
            credentials: { database: 'flash', user: 'flash', password: 'flash' },
          }),
        ),
      );
    };
    // The three chains start in parallel; if one fails the others are still awaited so none is orphaned.
    const results = await Promise.allSettled([temporalChain(), redisChain(), mariadbChain()]);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  } catch (err) {
    await stop();
    throw err;
  }

  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: temporal!.address,
    TEMPORAL_NAMESPACE: namespace,
    REDIS_URL: redis!.nodes.map((n) => n.url).join(','),
    // Every master has a replica: a 202 whose start did not answer waits until one holds its promise.
    REDIS_WAIT_REPLICAS: '1',
    MYSQL_URL: `mysql://flash:flash@127.0.0.1:${ports.mysql}/flash`,
    // The codec server the Web UI calls from the browser, answering the UI's origins.
    CODEC_SERVER_PORT: String(ports.codecServer),
    CODEC_SERVER_ORIGINS: `http://127.0.0.1:${ports.temporalUi},http://localhost:${ports.temporalUi}`,
  };
  const roleEnv: Partial<Record<ClusterRole, Record<string, string>>> = {
    'temporal-frontend': { TEMPORAL_ADDRESS: env.TEMPORAL_ADDRESS!, TEMPORAL_NAMESPACE: namespace },
    mariadb: { MYSQL_URL: env.MYSQL_URL! },
  };
  const handles = roles as Record<string, RoleHandle>;
  const processes = {} as Record<string, ManagedProcess>;
  const services: RunningService[] = [];
  for (const [role, handle] of Object.entries(handles)) {
    Object.defineProperty(processes, role, { enumerable: true, get: () => handle.process });
    const redisNode = redis!.nodes.find((n) => n.role === role);
    services.push({
      get process() {
        return handle.process;
      },
      env: roleEnv[role as ClusterRole] ?? (redisNode ? { REDIS_NODE_URL: redisNode.url } : {}),
    });
  }
  const handleOf = (role: AnyRole): RoleHandle => {
    const handle = handles[role];
    if (!handle) throw new Error(`no role ${role} in this cluster stack (roles: ${Object.keys(handles).join(', ')})`);
    return handle;
  };

  return {
    env,
    temporalUiUrl: withUi ? `http://127.0.0.1:${ports.temporalUi}` : undefined,
    services,
    processes,
    roles: handles,
    ports,
    temporal: temporal!,
    redis: redis!,
    kill: (role, signal) => handleOf(role).kill(signal),
    start: (role) => handleOf(role).start(),
    restart: (role) => handleOf(role).restart(),
    stop,
  };
}
