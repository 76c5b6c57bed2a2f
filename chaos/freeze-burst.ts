/**
 * `npx tsx chaos/freeze-burst.ts [--freeze redis|temporal|mysql] [--freeze-ms 20000] [--freeze-after-ms 500]
 *   [--connections 256] [--rate R] [--seconds 30] [--max-in-flight N] [--out FILE]`
 *
 * What a hung server costs the API process under a checkout burst: its memory and open requests. On a stack of its own
 * it runs one API and one worker (as `npm start` does, rate limits off), puts the default burst's sale on (1,000 units,
 * limit 1, 20,000 shoppers), and sends checkouts (toolkit/http-client.ts) for `seconds`: `connections` connections,
 * each sending its next checkout when the last is answered (closed loop, the benchmark's default burst), or with
 * `--rate` R checkouts a second whatever the answers, each on a connection of its own (open loop: shoppers keep
 * arriving).
 * `freeze-after-ms` into the burst, before the sale sells out, the server is frozen (SIGSTOP) for `freeze-ms`. The
 * API's resident memory (its process group, from /proc) is sampled every 100 ms. MAX_IN_FLIGHT_REQUESTS is
 * `--max-in-flight` (0: load shedding off).
 *
 * Prints and writes (`--out`) the API's RSS before, at its peak during the freeze and after, the
 * answers by status, the slowest answer, the requests it shed, and what Redis holds at the end:
 * every reserved unit is a promise (a 202, or a 503 OUTCOME_UNKNOWN whose reserve ran), started by
 * the API's starter once Temporal answers, so the promises pending at the thaw are counted, and
 * at the end (every promise started, the orders persisted) no unit may be reserved without an order.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ShopperAuth } from '../src/api/auth.js';
import { SalesService } from '../src/sales/sales-service.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import { startStack, type RunningStack, type StackServer } from '../stack/index.js';
import { spawnAppProcess, startAppProcess } from '../stack/app-processes.js';
import { freePort, type ManagedProcess } from '../stack/process.js';
import { rssKbOfGroup } from '../stack/cpu.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import { HttpClient, type Answer } from '../toolkit/http-client.js';
import { scrapeApiCounters } from './gray.js';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    freeze: { type: 'string', default: 'redis' },
    'freeze-ms': { type: 'string', default: '20000' },
    'freeze-after-ms': { type: 'string', default: '500' },
    connections: { type: 'string', default: '256' },
    rate: { type: 'string' },
    seconds: { type: 'string', default: '30' },
    'max-in-flight': { type: 'string' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const frozenServer = args.freeze as StackServer;
if (!['redis', 'temporal', 'mysql'].includes(frozenServer))
  throw new Error('--freeze is one of redis, temporal, mysql');
const settings = {
  freeze: frozenServer,
  freezeMs: Number(args['freeze-ms']),
  freezeAfterMs: Number(args['freeze-after-ms']),
  connections: Number(args.connections),
  rate: args.rate ? Number(args.rate) : null,
  seconds: Number(args.seconds),
  maxInFlight: args['max-in-flight'] ?? 'default',
  stock: 1_000,
  users: 20_000,
};
const say = (line: string) => console.log(`[freeze-burst] ${line}`);
const workDir = mkdtempSync(join(tmpdir(), 'flash-freeze-burst-'));
const started: ManagedProcess[] = [];
let stack: RunningStack | undefined;

async function main(): Promise<void> {
  stack = await startStack({ dataDir: join(workDir, 'stack'), ports: 'free', ephemeral: true, env: {}, log: say });
  const port = await freePort();
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
    PORT: String(port),
    TEMPORAL_TASK_QUEUE: 'freeze-burst',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_CHECKOUT: 'off',
    WORKER_METRICS_PORT: String(await freePort()),
    WORKER_HEALTH_PORT: String(await freePort()),
    ...(args['max-in-flight'] === undefined ? {} : { MAX_IN_FLIGHT_REQUESTS: args['max-in-flight'] }),
  };
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  await migrate(pool);
  const stores = openStores(pool);
  const redis = createRedis(config);
  const bundle = join(workDir, 'workflow-bundle.js');
  await buildWorkflowBundle(bundle);
  // The worker is not waited for (the burst's checkouts need only the API); the API is, on its /healthz.
  started.push(
    spawnAppProcess({
      role: 'worker',
      root,
      logFile: join(workDir, 'worker.log'),
      env: { ...env, WORKFLOW_BUNDLE_PATH: bundle },
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const api = await startAppProcess({ role: 'api', root, logFile: join(workDir, 'api.log'), env });
  started.push(api);

  const sku = `FREEZE-${Date.now().toString(36)}`;
  await SalesService.onClients(stores, redis, config.temporal.taskQueue).create({
    sku,
    name: sku,
    priceCents: 1_000,
    stock: settings.stock,
    perUserLimit: 1,
  });
  const auth = new ShopperAuth(config);
  const tokens = await Promise.all(Array.from({ length: settings.users }, (_, i) => auth.issue(`freeze-shopper-${i}`)));

  const rssMiB = () => rssKbOfGroup(api.pid) / 1024;
  const rssBefore = rssMiB();
  const samples: Array<{ at: number; rss: number }> = [];
  const sampler = setInterval(() => samples.push({ at: Date.now(), rss: rssMiB() }), 100);
  const statuses: Record<string, number> = {};
  let slowestMs = 0;
  let thawedAt = Infinity;
  let acceptedAfterThaw = 0;
  const answered = (status: number, ms: number) => {
    statuses[String(status)] = (statuses[String(status)] ?? 0) + 1;
    if (status === 202 && Date.now() > thawedAt) acceptedAfterThaw++;
    slowestMs = Math.max(slowestMs, ms);
  };
  const checkout = { url, path: '/api/checkout', body: JSON.stringify({ sku, quantity: 1 }), tokens };
  const burstStart = Date.now();
  const done = settings.rate
    ? openLoop(checkout, settings.rate, settings.seconds, answered)
    : closedLoop(checkout, settings.connections, settings.seconds, answered);

  await sleep(settings.freezeAfterMs);
  const target = stack.servers[frozenServer];
  if (!target?.process) throw new Error(`no ${frozenServer} server of this run's own`);
  say(`SIGSTOP ${frozenServer} for ${settings.freezeMs / 1000} s`);
  const frozenAt = Date.now();
  target.kill('SIGSTOP');
  await sleep(settings.freezeMs);
  target.kill('SIGCONT');
  thawedAt = Date.now();
  const promisesPendingAtThaw = await redis.zcard(saleKeys(sku).pending);
  say(`SIGCONT ${frozenServer}; ${promisesPendingAtThaw} promised orders not started or not claimed yet`);
  const result = await done;
  clearInterval(sampler);
  say(`${result.requests} checkouts sent`);
  const during = samples.filter((s) => s.at >= frozenAt && s.at <= thawedAt).map((s) => s.rss);
  const after = samples.filter((s) => s.at > thawedAt).map((s) => s.rss);
  const { shed, transitions, deadlineHits, failures, refusals } = await scrapeApiCounters([url]);
  // What Redis holds once every promise is started and claimed and the orders in flight are
  // persisted (no promise pending, their count stays put for 3 s; at most 2 minutes): reserved
  // units beyond the orders awaiting payment and the promises still pending are reservations
  // nobody owns (none should be: a reserve past its checkout's cutoff reserves nothing).
  const pendingKey = saleKeys(sku).pending;
  let ordersAtEnd = await stores.reports.orderCountsByStatus(sku);
  let promisesPendingAtEnd = await redis.zcard(pendingKey);
  const settleUntil = Date.now() + 120_000;
  for (let stableSince = Date.now(); Date.now() - stableSince < 3_000 && Date.now() < settleUntil;) {
    await sleep(500);
    const now = await stores.reports.orderCountsByStatus(sku);
    promisesPendingAtEnd = await redis.zcard(pendingKey);
    if (now.AWAITING_PAYMENT !== ordersAtEnd.AWAITING_PAYMENT || promisesPendingAtEnd > 0) stableSince = Date.now();
    ordersAtEnd = now;
  }
  const redisAtEnd = await new RedisInventory(redis, config.temporal.taskQueue).getSale(sku);
  // One unit per order in this burst.
  const unownedReservedUnits = (redisAtEnd?.reserved ?? 0) - ordersAtEnd.AWAITING_PAYMENT - promisesPendingAtEnd;
  await Promise.allSettled([pool.end(), redis.quit()]);
  const report = {
    date: new Date().toISOString(),
    settings,
    rssMiB: {
      before: round(rssBefore),
      peakDuringFreeze: round(Math.max(...during)),
      peakAfterThaw: round(Math.max(...after, 0)),
    },
    requests: result.requests,
    statuses,
    timeouts: result.timeouts,
    errors: result.errors,
    slowestMs: Math.round(slowestMs),
    shed,
    breakerTransitions: transitions,
    deadlineHits,
    failures,
    breakerRefusals: refusals,
    acceptedAfterThaw,
    redisAtEnd,
    ordersAtEnd,
    promisesPendingAtThaw,
    promisesPendingAtEnd,
    unownedReservedUnits,
    seconds: round((Date.now() - burstStart) / 1000),
  };
  console.log(JSON.stringify(report, null, 2));
  if (args.out) writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);
}

interface CheckoutRequest {
  /** The API's origin. */
  url: string;
  path: string;
  body: string;
  tokens: string[];
}

interface LoadResult {
  /** Checkouts sent. */
  requests: number;
  /** Checkouts with no answer within their 30 s. */
  timeouts: number;
  /** Checkouts with no answer for another reason (refused, connection dropped). */
  errors: number;
}

/** Each shopper's headers, made once before the burst so that sending allocates none. */
const headersOf = (tokens: readonly string[]) =>
  tokens.map((token) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}` }));

/** Counts an answer into `result` (no answer) or hands its status and latency to `answered`. */
function counter(result: LoadResult, answered: (status: number, ms: number) => void): (answer: Answer) => void {
  return (answer) => {
    if (answer.failure === null) answered(answer.status, answer.ms);
    else if (answer.failure.kind === 'timeout') result.timeouts++;
    else result.errors++;
  };
}

/**
 * The benchmark's default burst: `connections` connections, each sending its next checkout once the last is answered,
 * until `seconds` have passed; resolves once the last is answered (each given 30 s).
 */
function closedLoop(
  request: CheckoutRequest,
  connections: number,
  seconds: number,
  answered: (status: number, ms: number) => void,
): Promise<LoadResult> {
  const client = new HttpClient(request.url, { connections, timeoutMs: 30_000 });
  const headers = headersOf(request.tokens);
  const result: LoadResult = { requests: 0, timeouts: 0, errors: 0 };
  const count = counter(result, answered);
  const until = Date.now() + seconds * 1_000;
  let inFlight = 0;
  return new Promise((resolveDone) => {
    const onAnswer = (answer: Answer) => {
      inFlight--;
      count(answer);
      if (Date.now() < until) sendNext();
      else if (inFlight === 0) {
        client.close();
        resolveDone(result);
      }
    };
    const sendNext = () => {
      inFlight++;
      client.send('POST', request.path, headers[result.requests++ % headers.length]!, request.body, onAnswer);
    };
    for (let i = 0; i < connections; i++) sendNext();
  });
}

/**
 * Shoppers who arrive whatever the answers: `rate` checkouts a second for `seconds`, each on a
 * connection of its own when none is free (no bound), each given 30 s. What a flash sale's crowd
 * does, and what a hung dependency meets: the requests pile up unless the API answers them.
 */
async function openLoop(
  request: CheckoutRequest,
  rate: number,
  seconds: number,
  answered: (status: number, ms: number) => void,
): Promise<LoadResult> {
  // No connection limit: a checkout that finds every connection busy opens one more.
  const client = new HttpClient(request.url, { timeoutMs: 30_000 });
  const headers = headersOf(request.tokens);
  const result: LoadResult = { requests: 0, timeouts: 0, errors: 0 };
  const count = counter(result, answered);
  let inFlight = 0;
  let allAnswered: (() => void) | undefined;
  const onAnswer = (answer: Answer) => {
    count(answer);
    if (--inFlight === 0) allAnswered?.();
  };
  const started = Date.now();
  while (Date.now() - started < seconds * 1_000) {
    const due = Math.floor(((Date.now() - started) * rate) / 1_000);
    while (result.requests < due) {
      inFlight++;
      client.send('POST', request.path, headers[result.requests++ % headers.length]!, request.body, onAnswer);
    }
    await sleep(5);
  }
  if (inFlight > 0) await new Promise<void>((resolveAll) => (allAnswered = resolveAll));
  client.close();
  return result;
}

const round = (value: number) => Math.round(value * 10) / 10;

let code = 1;
try {
  await main();
  code = 0;
} catch (err) {
  console.error('[freeze-burst] failed:', err);
} finally {
  for (const name of ['temporal', 'redis', 'mysql'] as const) stack?.servers[name]?.kill('SIGCONT');
  for (const proc of started.reverse()) await proc.stop();
  await stack?.stop();
  if (args.keep) console.log(`[freeze-burst] logs kept in ${workDir}`);
  else rmSync(workDir, { recursive: true, force: true });
}
process.exit(code);
