/**
 * The local stack shared by `npm start`, `npm test` and `npm run bench`: Temporal dev server
 * (with Web UI), Redis and MariaDB. A server whose address is already in the environment
 * (TEMPORAL_ADDRESS, REDIS_URL, MYSQL_URL) is used as it is and none is started for it.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LOCAL_STACK_PORTS } from '../config/index.js';
import { freePort } from './process.js';
import { loadToolPaths, startMariaDb, startRedis, startTemporalDevServer, type RunningService } from './services.js';

export interface StackOptions {
  /** Root of the servers' data directories (`.data/` for npm start, a temp dir for tests). */
  dataDir: string;
  /** 'local' uses the fixed ports of the README's local stack; 'free' picks free ones so stacks can run side by side. */
  ports: 'local' | 'free';
  ephemeral: boolean;
  /** Environment that may name external servers; defaults to process.env. */
  env?: Record<string, string | undefined>;
  log?: (line: string) => void;
}

export interface RunningStack {
  /** TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, REDIS_URL, MYSQL_URL for the app's processes. */
  env: Record<string, string>;
  /** The Web UI, when this stack started the Temporal dev server. */
  temporalUiUrl?: string;
  services: RunningService[];
  stop(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<RunningStack> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const tools = loadToolPaths();
  const pick = async (fixed: number) => (options.ports === 'local' ? fixed : freePort());
  mkdirSync(options.dataDir, { recursive: true });

  const started: RunningService[] = [];
  const stackEnv: Record<string, string> = {};
  let temporalUiUrl: string | undefined;
  const stop = async () => {
    // Reverse order, one at a time: each gets SIGTERM and a grace period before SIGKILL.
    for (const service of [...started].reverse()) await service.process.stop();
  };

  const timed = async (name: string, start: () => Promise<RunningService>) => {
    const t0 = Date.now();
    const service = await start();
    started.push(service);
    Object.assign(stackEnv, service.env);
    log(`${name} ready in ${Date.now() - t0} ms (${Object.values(service.env).join(', ')}; log ${service.process.logFile})`);
  };

  try {
    const tasks: Promise<void>[] = [];
    if (env.TEMPORAL_ADDRESS) {
      log(`Temporal: using external ${env.TEMPORAL_ADDRESS}`);
    } else {
      const [port, uiPort, metricsPort] = [await pick(LOCAL_STACK_PORTS.temporal), await pick(LOCAL_STACK_PORTS.temporalUi), await freePort()];
      temporalUiUrl = `http://127.0.0.1:${uiPort}`;
      tasks.push(
        timed('Temporal dev server', () =>
          startTemporalDevServer({ tools, dataDir: join(options.dataDir, 'temporal'), port, uiPort, metricsPort, namespace: env.TEMPORAL_NAMESPACE || 'default' }),
        ),
      );
    }
    if (env.REDIS_URL) {
      log(`Redis: using external ${env.REDIS_URL}`);
    } else {
      const port = await pick(LOCAL_STACK_PORTS.redis);
      tasks.push(timed('Redis', () => startRedis({ tools, dataDir: join(options.dataDir, 'redis'), port })));
    }
    if (env.MYSQL_URL) {
      log(`MySQL: using external ${env.MYSQL_URL.replace(/\/\/([^:]+):[^@]*@/, '//$1:***@')}`);
    } else {
      const port = await pick(LOCAL_STACK_PORTS.mysql);
      tasks.push(
        timed('MariaDB', () =>
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
  return { env: stackEnv, temporalUiUrl, services: started, stop };
}
