/**
 * `npm run chaos [-- --quick] [--faults api-kill,worker-kill,...] [--out DIR]`: the fault suite.
 *
 * On a real local stack (Temporal dev server, Redis with its AOF, MariaDB) with two API processes
 * and one worker, all supervised (a killed process is restarted, as in production), it runs a
 * burst of shoppers with payments and cancels flowing and injects one fault per round:
 *   api-kill       SIGKILL of one API mid-burst (clients retry on the other)
 *   worker-kill    SIGKILL of the worker while orders are being persisted
 *   mariadb-kill   SIGKILL of MariaDB, back after 10 s
 *   redis-kill     SIGKILL of Redis, restarted from its append-only file
 *   redis-aof-tail-lost  SIGKILL of Redis and the last second of its append-only file cut off
 *                  before the restart: what a disk that loses its last writes (or a machine crash
 *                  under appendfsync everysec) leaves behind, repaired by the protocol
 *   temporal-kill  SIGKILL of the Temporal dev server, restarted on its SQLite file
 * Duplicate, wrong-amount, second, early and late webhooks flow during every fault. After each,
 * it waits until the sale is quiet (a reconcile run included), checks the invariants against
 * what the API answered, prints a table fault × check, writes chaos/results/latest.json and exits
 * non-zero on any violation.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { ShopperAuth } from '../src/api/auth.js';
import { SalesService } from '../src/api/sales.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { Store } from '../src/db/store.js';
import { createRedis } from '../src/infra/redis.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { OrderClient } from '../src/orders/order-client.js';
import { startStack, type RunningStack, type StackServer } from '../src/stack/index.js';
import { freePort, spawnLogged } from '../src/stack/process.js';
import { Supervised } from '../src/stack/supervisor.js';
import { waitFor } from '../src/util/wait-for.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import { CHAOS_CHECKS, checkAfterFault, waitForQuiescence, waitForRepair, type ChaosVerdict } from './checks.js';
import { runTraffic } from './shoppers.js';

const FAULTS = ['api-kill', 'worker-kill', 'mariadb-kill', 'redis-kill', 'redis-aof-tail-lost', 'temporal-kill'] as const;
type Fault = (typeof FAULTS)[number];

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, faults: { type: 'string' }, out: { type: 'string' }, keep: { type: 'boolean', default: false } },
});
const quick = args.quick ?? false;
const faults = (args.faults?.split(',') ?? [...FAULTS]) as Fault[];
for (const fault of faults) if (!FAULTS.includes(fault)) throw new Error(`unknown fault ${fault}; choose from ${FAULTS.join(', ')}`);
const outDir = resolve(args.out ?? join(root, 'chaos', 'results'));
const settings = {
  // More shoppers than units, arriving over a few seconds, so the fault lands mid-burst.
  shoppers: quick ? 160 : 600,
  stock: quick ? 110 : 420,
  concurrency: quick ? 24 : 48,
  arrivalsPerSecond: quick ? 80 : 100,
  paymentWindow: quick ? '8s' : '15s',
  reconcileInterval: '3s',
  reservationGrace: '5s',
  /** When the fault hits, after the burst starts. */
  faultAfterMs: quick ? 700 : 2_000,
  quiescenceTimeoutMs: 150_000,
  quick,
};
const say = (line: string) => console.log(`[chaos] ${line}`);

interface FaultResult extends ChaosVerdict {
  ok: boolean;
  fault: Fault;
  seconds: { burst: number; storesAgreeAfterFault: number; quiet: number };
}

const workDir = mkdtempSync(join(tmpdir(), 'flash-chaos-'));
let stack: RunningStack | undefined;
const apps: Supervised[] = [];

async function main(): Promise<number> {
  const supervision = { initialDelayMs: 500, maxDelayMs: 5_000, log: (line: string) => say(`supervisor: ${line}`) };
  stack = await startStack({ dataDir: join(workDir, 'stack'), ports: 'free', ephemeral: true, env: {}, log: say, supervise: supervision });
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
    TEMPORAL_TASK_QUEUE: `chaos-${process.pid}`,
    PAYMENT_WINDOW: settings.paymentWindow,
    RECONCILE_INTERVAL: settings.reconcileInterval,
    RESERVATION_GRACE: settings.reservationGrace,
    AUTH_DEV_LOGIN: 'false',
    LOG_LEVEL: 'warn',
    // The simulated payment provider sends every webhook (hundreds a second in the api-kill rush)
    // from 127.0.0.1, and a 429 would end its delivery: the suite tests faults, not budgets. The
    // shoppers stay under the default checkout limit (one purchase each, retried with backoff).
    RATE_LIMIT_WEBHOOK: 'off',
    // No load balancer to drain from: an API stops at once.
    SHUTDOWN_DRAIN: '0s',
  };
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  await migrate(pool);
  const store = new Store(pool);
  const redis = createRedis(config, { maxRetriesPerRequest: 20 });
  redis.on('error', () => {});
  const connection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({ connection, namespace: config.temporal.namespace });
  const bundle = join(workDir, 'workflow-bundle.js');
  await buildWorkflowBundle(bundle);

  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const app = (name: string, script: string, extraEnv: Record<string, string>, ready: (logFile: string) => Promise<void>) =>
    new Supervised(
      name,
      async () => {
        const proc = spawnLogged(name, tsx, [join(root, script)], {
          logFile: join(workDir, `${name}.log`),
          cwd: root,
          env: { ...env, ...extraEnv } as NodeJS.ProcessEnv,
        });
        await ready(proc.logFile);
        return proc;
      },
      supervision,
    );
  const apiPorts = [await freePort(), await freePort()];
  const apiUrls = apiPorts.map((port) => `http://127.0.0.1:${port}`);
  const worker = app(
    'worker',
    'src/workers/main.ts',
    // Free ports for the worker's metrics and health: a running `npm start` holds the defaults.
    { WORKFLOW_BUNDLE_PATH: bundle, WORKER_METRICS_PORT: String(await freePort()), WORKER_HEALTH_PORT: String(await freePort()) },
    async () => {},
  );
  const apis = apiPorts.map((port, i) =>
    app(`api-${i + 1}`, 'src/api/main.ts', { PORT: String(port) }, async () => {
      await waitFor(async () => (await fetch(`${apiUrls[i]}/healthz`)).ok, {
        what: `api-${i + 1} healthy`,
        timeoutMs: 60_000,
        intervalMs: 100,
        retryErrors: true,
      });
    }),
  );
  apps.push(worker, ...apis);
  await Promise.all(apps.map((a) => a.start()));
  say(`stack, 2 APIs (${apiUrls.join(', ')}) and a worker up; logs under ${workDir}`);

  const sales = new SalesService(store, new RedisInventory(redis));
  const orders = new OrderClient(temporal, store, config.temporal.taskQueue);
  const auth = new ShopperAuth(config);
  const servers = stack.servers;
  const results: FaultResult[] = [];
  try {
    for (const fault of faults) {
      say(`── ${fault} ──`);
      const sku = `CHAOS-${fault.toUpperCase()}-${Date.now().toString(36)}`;
      await sales.create({ sku, name: sku, priceCents: 1_500, stock: settings.stock, perUserLimit: 1 });
      const t0 = Date.now();
      // The API kill comes in a rush of checkouts (as in a real flash sale), so that some are
      // caught between their reservation and their workflow's start: the orphans to reclaim.
      const rush = fault === 'api-kill';
      const aofWatch = fault === 'redis-aof-tail-lost' ? watchAofSize(join(workDir, 'stack', 'redis')) : undefined;
      const traffic = runTraffic({
        sku,
        priceCents: 1_500,
        shoppers: settings.shoppers,
        concurrency: rush ? settings.concurrency * 4 : settings.concurrency,
        arrivalsPerSecond: rush ? settings.arrivalsPerSecond * 10 : settings.arrivalsPerSecond,
        apiUrls,
        tokenFor: (userId) => auth.issue(userId),
        webhookSecret: config.webhookSecret,
        paymentWindowMs: config.paymentWindowMs,
        retryForMs: 60_000,
      });
      // The AOF cut needs a second of history to cut back to.
      await sleep(rush ? settings.faultAfterMs / 3 : aofWatch ? settings.faultAfterMs + 1_000 : settings.faultAfterMs);
      const faultAt = Date.now();
      await inject(fault, { apis, worker, servers, say, aofWatch });
      // How long after the fault Redis again holds exactly what the running orders hold, and has as
      // many units available as MySQL (orphans released, lost writes repaired), once checkouts end.
      await traffic.checkoutsDone;
      const repairedSeconds = await waitForRepair({ store, redis, temporal }, sku, faultAt, settings.quiescenceTimeoutMs, orders);
      const result = await traffic.done;
      const burstSeconds = (Date.now() - t0) / 1000;
      const accepted = result.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
      say(`traffic done in ${burstSeconds.toFixed(1)} s: ${accepted.length} accepted; waiting for the sale to be quiet`);
      const quietSeconds = await waitForQuiescence({ store, redis, temporal }, sku, accepted, settings.quiescenceTimeoutMs);
      const verdict = await checkAfterFault({ store, redis, temporal }, sku, 1, result, new Date(t0));
      const ok = CHAOS_CHECKS.every((check) => verdict.checks[check]);
      results.push({
        fault,
        ok,
        ...verdict,
        seconds: { burst: round(burstSeconds), storesAgreeAfterFault: round(repairedSeconds), quiet: round(quietSeconds) },
      });
      say(
        `${fault}: ${ok ? 'all invariants hold' : `VIOLATED: ${CHAOS_CHECKS.filter((c) => !verdict.checks[c]).join(', ')}`} (quiet after ${quietSeconds.toFixed(1)} s)`,
      );
      say(`  ${JSON.stringify(verdict.figures)}`);
    }
  } finally {
    await Promise.allSettled([store.close(), redis.quit(), connection.close()]);
  }
  const report = {
    date: new Date().toISOString(),
    settings,
    restarts: Object.fromEntries([...apps, ...Object.values(servers)].map((s) => [s.name, s.restarts])),
    faults: Object.fromEntries(results.map((r) => [r.fault, { ok: r.ok, checks: r.checks, figures: r.figures, seconds: r.seconds }])),
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${table(results)}`);
  say(`results in ${join(outDir, 'latest.json')}`);
  return results.every((r) => r.ok) && results.length === faults.length ? 0 : 1;
}

interface Targets {
  apis: Supervised[];
  worker: Supervised;
  servers: Partial<Record<StackServer, Supervised>>;
  say: (line: string) => void;
  aofWatch: AofWatch | undefined;
}

interface AofWatch {
  /** The incremental AOF file and its size about `ms` ago. */
  sizeAgo(ms: number): { file: string; size: number } | undefined;
  stop(): void;
}

/** Samples the size of Redis's incremental append-only file every 50 ms. */
function watchAofSize(redisDir: string): AofWatch {
  const samples: Array<{ at: number; file: string; size: number }> = [];
  const timer = setInterval(() => {
    const dir = join(redisDir, 'appendonlydir');
    const incr = readdirSync(dir)
      .filter((name) => name.endsWith('.incr.aof'))
      .sort()
      .at(-1);
    if (incr) samples.push({ at: Date.now(), file: join(dir, incr), size: statSync(join(dir, incr)).size });
  }, 50);
  return {
    sizeAgo(ms) {
      const cutoff = Date.now() - ms;
      return [...samples].reverse().find((sample) => sample.at <= cutoff);
    },
    stop: () => clearInterval(timer),
  };
}

async function inject(fault: Fault, { apis, worker, servers, say: log, aofWatch }: Targets): Promise<void> {
  const server = (role: StackServer) => {
    const found = servers[role];
    if (!found) throw new Error(`the ${role} server is external: the fault suite needs its own`);
    return found;
  };
  const kill = (target: Supervised) => {
    log(`SIGKILL ${target.name} (pid ${target.process?.pid})`);
    target.kill('SIGKILL');
  };
  switch (fault) {
    case 'api-kill':
      return kill(apis[0] as Supervised);
    case 'worker-kill':
      return kill(worker);
    case 'mariadb-kill': {
      const mariadb = server('mysql');
      mariadb.holdRestarts(10_000);
      return kill(mariadb);
    }
    case 'redis-kill':
      return kill(server('redis'));
    case 'redis-aof-tail-lost': {
      // What a disk that loses its last writes, or a machine crash under everysec, leaves behind.
      const redisServer = server('redis');
      const before = aofWatch?.sizeAgo(1_000);
      aofWatch?.stop();
      redisServer.holdRestarts(1_500);
      kill(redisServer);
      await redisServer.process?.exited;
      if (!before) throw new Error('no AOF size sample to cut back to');
      const now = statSync(before.file).size;
      truncateSync(before.file, before.size);
      log(`cut ${now - before.size} bytes (the last second of writes) off ${before.file}`);
      return;
    }
    case 'temporal-kill':
      return kill(server('temporal'));
  }
}

function table(results: FaultResult[]): string {
  const head = `| fault | ${CHAOS_CHECKS.join(' | ')} | accepted | paid / cancelled / failed | orphans released | repaired (adopted / aligned) | payments applied / refund | retried requests | stores agree after fault | quiet after |`;
  const rule = `|---|${CHAOS_CHECKS.map(() => ':-:').join('|')}|---:|---|---:|---:|---|---:|---:|---:|`;
  const rows = results.map((r) => {
    const f = r.figures as {
      accepted: number;
      orders: { paid: number; cancelled: number; failed: number };
      orphansReleased: number;
      repairs: { adopted: number; aligned: number };
      paymentEvents: { applied: number; refundRequired: number };
      retriedRequests: number;
    };
    return `| ${r.fault} | ${CHAOS_CHECKS.map((c) => (r.checks[c] ? 'ok' : '**FAIL**')).join(' | ')} | ${f.accepted} | ${f.orders.paid} / ${f.orders.cancelled} / ${f.orders.failed} | ${f.orphansReleased} | ${f.repairs.adopted} / ${f.repairs.aligned} | ${f.paymentEvents.applied} / ${f.paymentEvents.refundRequired} | ${f.retriedRequests} | ${r.seconds.storesAgreeAfterFault} s | ${r.seconds.quiet} s |`;
  });
  return [head, rule, ...rows].join('\n');
}

const round = (value: number) => Math.round(value * 10) / 10;

async function cleanup(): Promise<void> {
  for (const a of [...apps].reverse()) await a.stop(5_000);
  await stack?.stop();
  if (!args.keep) rmSync(workDir, { recursive: true, force: true });
}

process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
let code = 1;
try {
  code = await main();
} catch (err) {
  console.error('[chaos] failed:', err);
} finally {
  await cleanup();
}
process.exit(code);
