/**
 * The local stack shared by `npm start`, `npm test`, `npm run bench` and `npm run chaos`: Temporal
 * dev server (with Web UI, its payloads decoded by the codec server at CODEC_SERVER_PORT), Redis and
 * MariaDB. A server whose address is already in the environment (TEMPORAL_ADDRESS, REDIS_URL,
 * MYSQL_URL) is used as it is and none is started for it. Each server this starts is supervised:
 * with `supervise`, a crashed server is started again on the same port and data (npm start, the
 * fault suite); without, it is only watched.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { LOCAL_STACK_PORTS } from '../src/config/index.js';
import { freePort } from './process.js';
import { loadToolPaths, startMariaDb, startRedis, startTemporalDevServer, type RunningService } from './services.js';
import { Supervised, type SupervisorOptions } from './supervisor.js';

export type StackServer = 'temporal' | 'redis' | 'mysql';

export interface StackOptions {
  /** Root of the servers' data directories (`.data/` for npm start, a temp dir for tests). */
  dataDir: string;
  /**
   * 'local' uses the fixed ports of the README's local stack; 'free' picks free ones so stacks can run side by side.
   */
  ports: 'local' | 'free';
  ephemeral: boolean;
  /** Environment that may name external servers; defaults to process.env. */
  env?: Record<string, string | undefined>;
  log?: (line: string) => void;
  /** Restart a server that crashes, with these settings; without it a crash is not repaired. */
  supervise?: SupervisorOptions;
  /** Redis's fsync policy for its append-only file (default always; see startRedis). */
  redisAppendfsync?: 'everysec' | 'always';
}

export interface RunningStack {
  /**
   * TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, REDIS_URL, MYSQL_URL for the app's processes; with the dev server, also
   * CODEC_SERVER_PORT and CODEC_SERVER_ORIGINS: where its Web UI expects the codec server, and the UI's origins.
   */
  env: Record<string, string>;
  /** The Web UI, when this stack started the Temporal dev server. */
  temporalUiUrl?: string;
  /**
   * The codec server the Web UI calls (--ui-codec-endpoint), when this stack started the dev server. The stack does not
   * run it: the app's launcher does (scripts/start.ts), or a test (src/api/codec-server.ts) on CODEC_SERVER_PORT.
   */
  codecServerUrl?: string;
  /** The Temporal dev server's Prometheus endpoint, when this stack started it. */
  temporalMetricsUrl?: string;
  /** The servers this stack started (not the external ones), by role. */
  servers: Partial<Record<StackServer, Supervised>>;
  stop(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<RunningStack> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const tools = loadToolPaths();
  const pick = async (fixed: number) => (options.ports === 'local' ? fixed : freePort());
  mkdirSync(options.dataDir, { recursive: true });

  const servers: Partial<Record<StackServer, Supervised>> = {};
  const started: Supervised[] = [];
  const stackEnv: Record<string, string> = {};
  let temporalUiUrl: string | undefined;
  let temporalMetricsUrl: string | undefined;
  let codecServerUrl: string | undefined;
  const stop = async () => {
    // Reverse order, one at a time: each gets SIGTERM and a grace period before SIGKILL.
    for (const server of [...started].reverse()) await server.stop();
  };

  const supervise = async (role: StackServer, name: string, launch: () => Promise<RunningService>) => {
    const t0 = Date.now();
    let first: RunningService | undefined;
    const supervised = new Supervised(
      name,
      async () => {
        const service = await launch();
        first ??= service;
        return service.process;
      },
      { log, ...(options.supervise ?? { restart: false }) },
    );
    const proc = await supervised.start();
    servers[role] = supervised;
    started.push(supervised);
    Object.assign(stackEnv, first?.env);
    log(`${name} ready in ${Date.now() - t0} ms (${Object.values(first?.env ?? {}).join(', ')}; log ${proc.logFile})`);
  };

  try {
    const tasks: Promise<void>[] = [];
    if (env.TEMPORAL_ADDRESS) {
      log(`Temporal: using external ${env.TEMPORAL_ADDRESS}`);
    } else {
      const [port, uiPort, metricsPort] = [
        await pick(LOCAL_STACK_PORTS.temporal),
        await pick(LOCAL_STACK_PORTS.temporalUi),
        await freePort(),
      ];
      temporalUiUrl = `http://127.0.0.1:${uiPort}`;
      temporalMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
      // The codec server's port is fixed here, before the UI is told it; CODEC_SERVER_PORT=0 (npm start): none.
      const codecPort =
        options.ports === 'local' ? Number(env.CODEC_SERVER_PORT || LOCAL_STACK_PORTS.codecServer) : await freePort();
      if (codecPort) {
        codecServerUrl = `http://127.0.0.1:${codecPort}`;
        // The UI's pages call it from the browser: the codec server answers the UI's origins, as it is reached.
        stackEnv.CODEC_SERVER_PORT = String(codecPort);
        stackEnv.CODEC_SERVER_ORIGINS =
          env.CODEC_SERVER_ORIGINS || `http://127.0.0.1:${uiPort},http://localhost:${uiPort}`;
      }
      const namespace = env.TEMPORAL_NAMESPACE || 'default';
      tasks.push(
        supervise('temporal', 'Temporal dev server', () =>
          startTemporalDevServer({
            tools,
            dataDir: join(options.dataDir, 'temporal'),
            port,
            uiPort,
            metricsPort,
            namespace,
            ...(codecServerUrl ? { codecEndpoint: codecServerUrl } : {}),
          }),
        ),
      );
    }
    if (env.REDIS_URL) {
      log(`Redis: using external ${env.REDIS_URL}`);
    } else {
      const port = await pick(LOCAL_STACK_PORTS.redis);
      tasks.push(
        supervise('redis', 'Redis', () =>
          startRedis({
            tools,
            dataDir: join(options.dataDir, 'redis'),
            port,
            ...(options.redisAppendfsync ? { appendfsync: options.redisAppendfsync } : {}),
          }),
        ),
      );
    }
    if (env.MYSQL_URL) {
      log(`MySQL: using external ${env.MYSQL_URL.replace(/\/\/([^:]+):[^@]*@/, '//$1:***@')}`);
    } else {
      const port = await pick(LOCAL_STACK_PORTS.mysql);
      tasks.push(
        supervise('mysql', 'MariaDB', () =>
          startMariaDb({
            tools,
            dataDir: join(options.dataDir, 'mariadb'),
            port,
            ephemeral: options.ephemeral,
            credentials: { database: 'flash', user: 'flash', password: 'flash' },
          }),
        ),
      );
    }
    // The three start in parallel; if one fails, the others are still awaited so none is orphaned.
    const results = await Promise.allSettled(tasks);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    env: stackEnv,
    servers,
    stop,
    ...(temporalUiUrl ? { temporalUiUrl } : {}),
    ...(temporalMetricsUrl ? { temporalMetricsUrl } : {}),
    ...(codecServerUrl ? { codecServerUrl } : {}),
  };
}

/**
 * Gives the stack's MySQL user `password` (production refuses the published `flash`) and answers `mysqlUrl` with it.
 * For a stack of the caller's own: every user of the stack's database reads the URL this answers.
 */
export async function setMysqlPassword(mysqlUrl: string, password: string): Promise<string> {
  const connection = await mysql.createConnection(mysqlUrl);
  try {
    await connection.query('SET PASSWORD = PASSWORD(?)', [password]);
  } finally {
    await connection.end();
  }
  const url = new URL(mysqlUrl);
  url.password = encodeURIComponent(password);
  return url.toString();
}
