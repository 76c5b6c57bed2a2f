/**
 * `npx tsx chaos/freeze-burst.ts [--freeze redis|temporal|mysql] [--freeze-ms 20000] [--freeze-after-ms 500]
 *   [--connections 256] [--rate R] [--seconds 30] [--max-in-flight N] [--out FILE]`
 *
 * What a hung server costs the API process under a checkout burst: its memory and open requests.
 * On a stack of its own it runs one API and one worker (as `npm start` does, rate limits off), puts
 * the default burst's sale on (1,000 units, limit 1, 20,000 shoppers), and sends checkouts with
 * autocannon for `seconds`: `connections` connections, each sending its next checkout when the last
 * is answered (closed loop, the benchmark's default burst), or with `--rate` at most R a second over
 * the connections (open loop as long as connections last: shoppers keep arriving whatever the
 * answers). `freeze-after-ms` into the burst, before the sale sells out, the server is frozen
 * (SIGSTOP) for `freeze-ms`. The API's resident memory (its process group, from /proc) is sampled
 * every 100 ms. MAX_IN_FLIGHT_REQUESTS is `--max-in-flight` (0: load shedding off).
 *
 * Prints and writes (`--out`) the API's RSS before, at its peak during the freeze and after, the
 * answers by status, the slowest answer, and the requests it shed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { ShopperAuth } from '../src/api/auth.js';
import { SalesService } from '../src/api/sales.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { Store } from '../src/db/store.js';
import { createRedis } from '../src/infra/redis.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { startStack, type RunningStack, type StackServer } from '../src/stack/index.js';
import { freePort, spawnLogged, waitUntilReady, type ManagedProcess } from '../src/stack/process.js';
import { rssKbOfGroup } from '../src/util/cpu.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
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
if (!['redis', 'temporal', 'mysql'].includes(frozenServer)) throw new Error('--freeze is one of redis, temporal, mysql');
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
  const store = new Store(pool);
  const redis = createRedis(config);
  const bundle = join(workDir, 'workflow-bundle.js');
  await buildWorkflowBundle(bundle);
  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const launch = (name: string, script: string, extra: Record<string, string> = {}) => {
    const proc = spawnLogged(name, tsx, [join(root, script)], {
      logFile: join(workDir, `${name}.log`),
      cwd: root,
      env: { ...env, ...extra } as NodeJS.ProcessEnv,
    });
    started.push(proc);
    return proc;
  };
  launch('worker', 'src/workers/main.ts', { WORKFLOW_BUNDLE_PATH: bundle });
  const url = `http://127.0.0.1:${port}`;
  const api = launch('api', 'src/api/main.ts');
  await waitUntilReady(api, async () => (await fetch(`${url}/healthz`)).ok, 60_000);

  const sku = `FREEZE-${Date.now().toString(36)}`;
  await new SalesService(store, new RedisInventory(redis)).create({ sku, name: sku, priceCents: 1_000, stock: settings.stock, perUserLimit: 1 });
  await Promise.allSettled([store.close(), redis.quit()]);
  const auth = new ShopperAuth(config);
  const tokens = await Promise.all(Array.from({ length: settings.users }, (_, i) => auth.issue(`freeze-shopper-${i}`)));

  const rssMiB = () => rssKbOfGroup(api.pid) / 1024;
  const rssBefore = rssMiB();
  const samples: Array<{ at: number; rss: number }> = [];
  const sampler = setInterval(() => samples.push({ at: Date.now(), rss: rssMiB() }), 100);
  const statuses: Record<string, number> = {};
  let next = 0;
  let slowestMs = 0;
  const burstStart = Date.now();
  let finish!: (result: autocannon.Result) => void;
  let fail!: (err: unknown) => void;
  const done = new Promise<autocannon.Result>((resolveDone, rejectDone) => ((finish = resolveDone), (fail = rejectDone)));
  const load = autocannon(
    {
      url: `${url}/api/checkout`,
      method: 'POST',
      connections: settings.connections,
      duration: settings.seconds,
      timeout: 30,
      ...(settings.rate ? { overallRate: settings.rate } : {}),
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sku, quantity: 1 }),
      requests: [
        {
          setupRequest: (request) => {
            request.headers = { ...request.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` };
            return request;
          },
        },
      ],
    },
    (err, result) => (err ? fail(err) : finish(result)),
  );
  let thawedAt = Infinity;
  let acceptedAfterThaw = 0;
  load.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    statuses[String(status)] = (statuses[String(status)] ?? 0) + 1;
    if (status === 202 && Date.now() > thawedAt) acceptedAfterThaw++;
    slowestMs = Math.max(slowestMs, ms);
  });

  await sleep(settings.freezeAfterMs);
  const target = stack.servers[frozenServer];
  if (!target?.process) throw new Error(`no ${frozenServer} server of this run's own`);
  say(`SIGSTOP ${frozenServer} for ${settings.freezeMs / 1000} s`);
  const frozenAt = Date.now();
  target.kill('SIGSTOP');
  await sleep(settings.freezeMs);
  target.kill('SIGCONT');
  thawedAt = Date.now();
  say(`SIGCONT ${frozenServer}`);
  const result = await done;
  clearInterval(sampler);
  const during = samples.filter((s) => s.at >= frozenAt && s.at <= thawedAt).map((s) => s.rss);
  const after = samples.filter((s) => s.at > thawedAt).map((s) => s.rss);
  const { shed, transitions, deadlineHits, failures, refusals } = await scrapeApiCounters([url]);
  const report = {
    date: new Date().toISOString(),
    settings,
    rssMiB: {
      before: round(rssBefore),
      peakDuringFreeze: round(Math.max(...during)),
      peakAfterThaw: round(Math.max(...after, 0)),
    },
    requests: result.requests.total,
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
    seconds: round((Date.now() - burstStart) / 1000),
  };
  console.log(JSON.stringify(report, null, 2));
  if (args.out) writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);
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
