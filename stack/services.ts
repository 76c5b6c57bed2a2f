/**
 * The three servers of the local stack: Temporal's dev server, Redis, MariaDB. Each gets its own
 * port and data directory, logs to a file inside it, and is waited for by a real readiness check.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { provisionDatabase, type MysqlCredentials } from '../src/db/provision.js';
import { ORDER_SEARCH_ATTRIBUTES } from '../src/model/order-workflow.js';
import { startAppProcess } from './app-processes.js';
import { spawnLogged, waitUntilReady, type ManagedProcess } from './process.js';

export interface ToolPaths {
  temporalCli: string;
  temporalTestServer: string | undefined;
  /** Zipkin's server (the local trace viewer), installed for the tests and for a traced `npm start`. */
  zipkinJar: string | undefined;
  /** stripe-mock (Stripe's API as Stripe mocks it), for the tests and `PAYMENT_PROVIDER=stripe npm start`. */
  stripeMock: string | undefined;
  redisServer: string;
  mariadbd: string;
  mariadbInstallDb: string;
}

export function toolsCacheDir(): string {
  return (
    process.env.FLASH_TOOLS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flash-checkout')
  );
}

/**
 * A KEY=path file an install script writes into the tools cache: its values, and `get`, which insists the path exists.
 */
export interface ToolsEnvFile {
  values: Record<string, string | undefined>;
  get(key: string): string;
}

/**
 * Reads `fileName` from the tools cache; a missing file or tool names `installScript`, which writes
 * it, and `runBy`, the commands that run that script themselves.
 */
export function readToolsEnvFile(fileName: string, installScript: string, runBy?: string): ToolsEnvFile {
  const file = join(toolsCacheDir(), fileName);
  if (!existsSync(file))
    throw new Error(`${file} is missing: run 'bash ${installScript}'${runBy ? ` (${runBy} do)` : ''} first`);
  const values: Record<string, string | undefined> = Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  const get = (key: string): string => {
    const value = values[key];
    if (!value || !existsSync(value))
      throw new Error(`${key} in ${file} does not point at an installed tool; rerun ${installScript}`);
    return value;
  };
  return { values, get };
}

/** Paths resolved by scripts/install-tools.sh, which writes them to tools.env in the cache. */
export function loadToolPaths(): ToolPaths {
  const { values, get } = readToolsEnvFile('tools.env', 'scripts/install-tools.sh', 'npm start and npm test');
  return {
    temporalCli: get('TEMPORAL_CLI'),
    temporalTestServer: values.TEMPORAL_TEST_SERVER ? get('TEMPORAL_TEST_SERVER') : undefined,
    zipkinJar: values.ZIPKIN_JAR ? get('ZIPKIN_JAR') : undefined,
    stripeMock: values.STRIPE_MOCK ? get('STRIPE_MOCK') : undefined,
    redisServer: get('REDIS_SERVER'),
    mariadbd: get('MARIADBD'),
    mariadbInstallDb: get('MARIADB_INSTALL_DB'),
  };
}

export interface RunningService {
  process: ManagedProcess;
  /** The environment variable(s) through which the app finds this server. */
  env: Record<string, string>;
}

/**
 * The dev server's dynamic config (docs/performance.md has the measurements). The environment can
 * add or override keys for an experiment: TEMPORAL_DEV_DYNAMIC_CONFIG='{"key": value, ...}'.
 */
const DEV_SERVER_DYNAMIC_CONFIG: Record<string, string | number | boolean> = {
  // The CLI turns this on so that a search attribute added at run time is usable at once; ours are
  // all registered at launch (--search-attribute above), so reading them from the cache is safe and
  // saves ~17 % of the server's CPU per order (docs/performance.md).
  'system.forceSearchAttributesCacheRefreshOnRead': false,
  // The owner of starts asks for eager starts (the first workflow task back with the start, no
  // matching for it); the default changed between server versions, so it is said here.
  'system.enableEagerWorkflowStart': true,
  // The CLI caps the history service's cache of workflows at 8,096, below a sale's open orders and the ones just
  // closed: past it every payment's Signal reloads its order from the database (0.82 loads per payment at 5,000 open,
  // docs/performance.md). The server's own default, as a cluster runs it.
  'history.hostLevelCacheMaxSize': 128_000,
  // Worker Versioning: how soon a replaced version shows DRAINED once its last pinned order closed. The server's
  // defaults (3 minutes each) suit a cluster; one developer's stack and the tests watch a rollout end in seconds.
  'matching.wv.VersionDrainageStatusRefreshInterval': '5s',
  'matching.wv.VersionDrainageStatusVisibilityGracePeriod': '5s',
};

function withoutOtelVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith('OTEL_')));
}

function devServerDynamicConfig(): Record<string, string | number | boolean> {
  const extra = process.env.TEMPORAL_DEV_DYNAMIC_CONFIG;
  if (!extra) return DEV_SERVER_DYNAMIC_CONFIG;
  const parsed: unknown = JSON.parse(extra);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error('TEMPORAL_DEV_DYNAMIC_CONFIG must be a JSON object');
  return { ...DEV_SERVER_DYNAMIC_CONFIG, ...(parsed as Record<string, string | number | boolean>) };
}

export async function startTemporalDevServer(opts: {
  tools: ToolPaths;
  dataDir: string;
  port: number;
  uiPort: number;
  metricsPort: number;
  namespace: string;
  /** The codec server the Web UI sends the payloads it shows to (from the browser: CORS applies); none: as stored. */
  codecEndpoint?: string;
  timeoutMs?: number;
}): Promise<RunningService> {
  mkdirSync(opts.dataDir, { recursive: true });
  // Flags and their values stay in pairs:
  // prettier-ignore
  const args = [
    'server',
    'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(opts.port),
    '--ui-port', String(opts.uiPort),
    '--metrics-port', String(opts.metricsPort),
    ...(opts.codecEndpoint ? ['--ui-codec-endpoint', opts.codecEndpoint] : []),
    '--db-filename', join(opts.dataDir, 'temporal.sqlite'),
    // "default" always exists; any other namespace has to be created at launch.
    ...(opts.namespace === 'default' ? [] : ['--namespace', opts.namespace]),
    '--log-level', 'warn',
    // WAL lets the history writer and readers overlap; NORMAL sync is durable across process crashes.
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    // Memory only, durability unchanged: a 64 MiB page cache, temp tables in memory, reads through
    // mmap. Status queries of 1,000 live orders: 241-288 -> 325-354/s (docs/performance.md).
    '--sqlite-pragma', 'cache_size=-65536',
    '--sqlite-pragma', 'temp_store=memory',
    '--sqlite-pragma', 'mmap_size=268435456',
    // Registered at launch so operators can filter orders in the Web UI from the first order on.
    ...ORDER_SEARCH_ATTRIBUTES.flatMap(({ name }) => ['--search-attribute', `${name}=Keyword`]),
    ...Object.entries(devServerDynamicConfig()).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${JSON.stringify(value)}`]),
  ];
  const proc = spawnLogged('temporal dev server', opts.tools.temporalCli, args, {
    logFile: join(opts.dataDir, 'temporal.log'),
    // Fewer Go GC cycles: ~10 % less server CPU under a checkout burst (docs/performance.md).
    // Without the app's OTEL_* variables: the server reads them too, and refuses to start on an
    // exporter it does not know (OTEL_TRACES_EXPORTER=zipkin).
    env: { ...withoutOtelVariables(process.env), GOGC: process.env.GOGC ?? '400' },
  });
  const address = `127.0.0.1:${opts.port}`;
  await waitUntilReady(
    proc,
    async () => {
      const connection = await Connection.connect({ address, connectTimeout: '1s' });
      try {
        // Ready means the frontend answers and the namespace is registered, not just that the port is open.
        await connection.workflowService.describeNamespace({ namespace: opts.namespace });
        return true;
      } finally {
        await connection.close();
      }
    },
    opts.timeoutMs ?? 60_000,
  );
  return { process: proc, env: { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: opts.namespace } };
}

/**
 * Redis with its append-only file, fsynced before every reply (appendfsync always): no write Redis
 * acknowledged is lost, even by a machine crash. Measured, it costs the checkout burst nothing
 * (only reservations, releases and confirms write, and they are bounded by the stock); `everysec`
 * would lose up to a second on a machine crash, which the reconciler then repairs
 * (docs/fault-tolerance.md, docs/performance.md).
 */
export async function startRedis(opts: {
  tools: ToolPaths;
  dataDir: string;
  port: number;
  appendfsync?: 'everysec' | 'always';
  /** The port of a master on 127.0.0.1 this Redis replicates (a replica for tests of replication). */
  replicaOf?: number;
  timeoutMs?: number;
}): Promise<RunningService> {
  mkdirSync(opts.dataDir, { recursive: true });
  // Flags and their values stay in pairs:
  // prettier-ignore
  const args = [
    '--port', String(opts.port),
    '--bind', '127.0.0.1',
    '--dir', opts.dataDir,
    '--appendonly', 'yes',
    '--appendfsync', opts.appendfsync ?? 'always',
    '--save', '',
    '--daemonize', 'no',
    '--logfile', join(opts.dataDir, 'redis.log'),
    '--pidfile', join(opts.dataDir, 'redis.pid'),
    ...(opts.replicaOf ? ['--replicaof', '127.0.0.1', String(opts.replicaOf)] : []),
  ];
  const proc = spawnLogged('redis', opts.tools.redisServer, args, { logFile: join(opts.dataDir, 'redis.stdout.log') });
  await waitUntilReady(proc, () => redisPing(opts.port), opts.timeoutMs ?? 20_000);
  return { process: proc, env: { REDIS_URL: `redis://127.0.0.1:${opts.port}` } };
}

/** PING over a raw socket: +PONG means ready; -LOADING (AOF replay) means not yet. */
function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000, () => socket.destroy(new Error('PING timed out')));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.end();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', reject);
  });
}

export async function startMariaDb(opts: {
  tools: ToolPaths;
  dataDir: string;
  port: number;
  credentials: MysqlCredentials;
  /** Throw-away stacks trade crash durability for speed; the durable local stack keeps full fsync. */
  ephemeral: boolean;
  timeoutMs?: number;
}): Promise<RunningService> {
  const datadir = join(opts.dataDir, 'data');
  const socket = join(opts.dataDir, 'mysqld.sock');
  const asRoot = process.getuid?.() === 0;
  mkdirSync(opts.dataDir, { recursive: true });
  if (!existsSync(join(datadir, 'mysql'))) {
    const init = spawnLogged(
      'mariadb-install-db',
      opts.tools.mariadbInstallDb,
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...(asRoot ? ['--user=root'] : []),
      ],
      { logFile: join(opts.dataDir, 'install-db.log') },
    );
    const code = await init.exited;
    if (code !== 0) throw new Error(`mariadb-install-db failed with code ${code}; see ${init.logFile}`);
  }
  // Flags and their values stay in pairs:
  // prettier-ignore
  const args = [
    '--no-defaults',
    `--datadir=${datadir}`,
    `--socket=${socket}`,
    `--port=${opts.port}`,
    '--bind-address=127.0.0.1',
    `--pid-file=${join(opts.dataDir, 'mariadb.pid')}`,
    `--log-error=${join(opts.dataDir, 'mariadb.log')}`,
    '--skip-name-resolve',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_unicode_ci',
    '--max-connections=500',
    '--innodb-buffer-pool-size=256M',
    ...(opts.ephemeral ? ['--innodb-flush-log-at-trx-commit=2', '--innodb-doublewrite=0'] : []),
    ...(asRoot ? ['--user=root'] : []),
  ];
  const proc = spawnLogged('mariadb', opts.tools.mariadbd, args, { logFile: join(opts.dataDir, 'mariadb.stdout.log') });
  await waitUntilReady(
    proc,
    async () => {
      await provisionDatabase(socket, opts.credentials);
      return true;
    },
    opts.timeoutMs ?? 60_000,
  );
  return {
    process: proc,
    env: {
      MYSQL_URL: `mysql://${opts.credentials.user}:${encodeURIComponent(opts.credentials.password)}@127.0.0.1:${opts.port}/${opts.credentials.database}`,
    },
  };
}

/**
 * The codec server (src/api/codec-main.ts) from source in `root`'s checkout, ready once it answers a preflight on
 * `env`'s CODEC_SERVER_PORT (stack/app-processes.ts); for the cluster layout.
 */
export function startCodecServerProcess(opts: {
  root: string;
  /** Its URL as the caller shows it; readiness is asked where `env` puts it (CODEC_SERVER_PORT), the same place. */
  url?: string;
  logFile: string;
  env: NodeJS.ProcessEnv;
}): Promise<ManagedProcess> {
  return startAppProcess({ role: 'codec-server', root: opts.root, logFile: opts.logFile, env: opts.env });
}
