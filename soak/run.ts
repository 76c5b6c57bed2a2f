/**
 * `npm run soak -- --minutes N [--rate R] [--plant-leak] [--out DIR] [--payment-window 60s] [--warmup-max-minutes M]
 * [--sale-minutes S] [--no-build] [--log-level info] [--keep]` (issue 50): hours of steady traffic at about half the
 * pipeline's capacity, to find what only time shows (a leak, a cache that never stops growing, a loop that slows),
 * on the build production runs.
 *
 *  1. `npm run build` and the workflow bundle (dist/workflow-bundle.js), unless --no-build (said in the results);
 *     a stack of its own (Temporal dev server, Redis, MariaDB; ephemeral, in a temp folder: the soak reads their
 *     pids), stripe-mock with the Stripe double in front (its rate limit off, its webhooks to a tap in front
 *     of the API's Stripe route, stack/webhook-tap.ts), then one worker and one API as production runs them,
 *     `node dist/…/main.js`,
 *     with NODE_ENV=production, PAYMENT_PROVIDER=stripe and soak/probe.ts preloaded (and soak/planted-leak.ts into the
 *     API with --plant-leak).
 *  2. N minutes of shoppers (soak/load.ts): checkouts at --rate a second, long-polls, status reads, payments at the
 *     double, cancels, and orders left to time out; a new sale every --sale-minutes.
 *  3. A sample at the start and every minute (soak/sample.ts), also while the last orders close.
 *  4. The warm-up ends when the worker's sticky cache is full, or when the open orders stop growing for two samples,
 *     or at --warmup-max-minutes (analysis.ts, warmupEndsAt); the reason is recorded.
 *  5. Once every order is closed, the invariants of every sale; then the verdict (analysis.ts, verdictOf): heap slope
 *     ≤ 10 MB/h for the API and the worker after the warm-up, loop delay p99 ≤ 50 ms in every minute after it, every
 *     answer within its deadline and none a 5xx, every order closed with nothing reserved, every sale's invariants,
 *     every order ended as its shopper acted. Exit code 1, with the reasons, when it does not hold.
 *  6. latest.json, latest.md and latest.svg in --out (soak/results by default).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { ShopperAuth } from '../src/api/auth.js';
import { loadConfig } from '../src/config/index.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { SalesService } from '../src/sales/sales-service.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import { setMysqlPassword, startStack, type RunningStack } from '../stack/index.js';
import { runThenCleanUp } from '../stack/launcher.js';
import { startAppProcess, type AppRole } from '../stack/app-processes.js';
import { freePort, tailOf, type ManagedProcess } from '../stack/process.js';
import { loadToolPaths } from '../stack/services.js';
import { startStripeMock, type RunningStripeMock } from '../stack/stripe-mock.js';
import {
  leakCharsPerRequest,
  LEAK_OVERHEAD_BYTES,
  verdictOf,
  warmupEndsAt,
  type QuietState,
  type Sample,
  type SamplePhase,
  type WarmupEnd,
} from './analysis.js';
import { parseSoakArgs } from './args.js';
import {
  apiRequestsPerCheckout,
  CANCEL_SHARE,
  LONG_POLL_SECONDS,
  PAY_SHARE,
  REQUEST_CLASSES,
  SoakLoad,
  WAIT_SECONDS,
  WAIT_SHARE,
} from './load.js';
import { rssSlopes, writeSoakReport, type SoakReport } from './report.js';
import { HeapFloor, OPEN_ORDERS, takeSample, type SampleSources } from './sample.js';
import { startWebhookTap, type WebhookTap } from '../stack/webhook-tap.js';
import { spawnStripeDouble } from '../stack/stripe-double-process.js';

const root = resolve(import.meta.dirname, '..');
const args = parseSoakArgs(process.argv.slice(2), root);
const say = (line: string) => console.log(`[soak] ${new Date().toISOString().slice(11, 19)} ${line}`);
const MINUTE_MS = 60_000;
/**
 * V8 drops the bytecode of a function that has not run for 6 major GCs, and with it the large constants it held: the
 * API's start-up code went about 7 minutes into the load, 7 MB at once (5 MB of large objects, 2 MB of bytecode;
 * measured by heap space). A one-time step down in the steady heap reads as a slope: an 8-minute run with a planted
 * 20 MB/h leak held. Kept, start-up code is a constant; code compiled under load stays too, so code that grows per
 * request still shows.
 */
const NODE_FLAGS = ['--no-flush-bytecode'];

const workDir = mkdtempSync(join(tmpdir(), 'flash-soak-'));
let stack: RunningStack | undefined;
let stripeMock: RunningStripeMock | undefined;
let tap: WebhookTap | undefined;
let load: SoakLoad | undefined;
const processes: ManagedProcess[] = [];
const closers: Array<() => Promise<unknown>> = [];

async function main(): Promise<void> {
  const t0 = Date.now();
  const runId = randomBytes(3).toString('hex');
  const loadAverageAtStart = loadAverage();
  // What dist/ is built from: the commit at the start, and whether src/ differed from it.
  const commit = gitCommit();
  if (args.build) {
    say('npm run build');
    const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
    if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status ?? build.signal})`);
  } else say('--no-build: running dist/ as it is');
  const bundle = join(root, 'dist', 'workflow-bundle.js');
  say(`workflow bundle ${bundle}: ${(await buildWorkflowBundle(bundle)) ? 'built' : 'up to date'}`);

  // Always servers of its own: the soak reads their memory from /proc, so it must know their pids.
  stack = await startStack({
    dataDir: join(workDir, 'stack'),
    ports: 'free',
    ephemeral: true,
    log: say,
    env: { ...process.env, TEMPORAL_ADDRESS: undefined, REDIS_URL: undefined, MYSQL_URL: undefined },
  });
  stripeMock = await startStripeMock({
    tools: loadToolPaths(),
    dataDir: join(workDir, 'stripe-mock'),
    port: await freePort(),
  });

  const [apiPort, apiProbePort, workerProbePort, workerMetricsPort, workerHealthPort, doublePort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const stripeUrl = `http://127.0.0.1:${doublePort}`;
  const secret = () => randomBytes(24).toString('hex');
  // Production's settings (NODE_ENV=production refuses development secrets), a short payment window so that orders
  // cycle, Stripe's live request rate (the default, 20/s, is test mode's: two calls an order, so above --rate 10 the
  // soak would measure that queue).
  const soakEnv: Record<string, string> = {
    TEMPORAL_TASK_QUEUE: `soak-${runId}`,
    NODE_ENV: 'production',
    JWT_SECRET: secret(),
    WEBHOOK_SECRET: secret(),
    ADMIN_TOKEN: secret(),
    EVENTS_SECRET_KEY: secret(),
    EVENTS_CUSTOMER_SECRET: secret(),
    PAYLOAD_CODEC_KEYS: `soak=${randomBytes(32).toString('base64')}`,
    AUTH_DEV_LOGIN: 'false',
    LOG_LEVEL: args.logLevel,
    SHUTDOWN_DRAIN: '0s',
    PAYMENT_WINDOW: args.paymentWindow,
    PAYMENT_PROVIDER: 'stripe',
    STRIPE_API_URL: stripeUrl,
    STRIPE_SECRET_KEY: `sk_test_${secret()}`,
    STRIPE_WEBHOOK_SECRET: `whsec_${secret()}`,
    STRIPE_DEPLOYMENT_TAG: `soak-${runId}`,
    STRIPE_REQUESTS_PER_SECOND: '100',
    // The stack's user's published password is refused too: the soak's own stack, so its password is the soak's.
    MYSQL_URL: await setMysqlPassword(stack.env.MYSQL_URL!, secret()),
    // Bounded caches fill within the warm-up, not over hours (args.ts): a soak looks for growth without a bound.
    ...(args.statusCacheEntries === null ? {} : { STATUS_CACHE_MAX_ENTRIES: String(args.statusCacheEntries) }),
  };
  const env: Record<string, string | undefined> = { ...process.env, ...stack.env, ...soakEnv };
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  const redis = createRedis(config);
  const connection = await Connection.connect({ address: config.temporal.address });
  closers.push(
    () => pool.end(),
    () => redis.quit(),
    () => connection.close(),
  );
  const temporal = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: temporalDataConverter(config),
  });
  const stores = openStores(pool);
  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const sales = SalesService.onClients(stores, redis, config.temporal.taskQueue);
  const auth = new ShopperAuth(config);
  // Set once the schema is in place (the first sale), then moved on every --sale-minutes.
  let currentSku = '';

  load = new SoakLoad({
    apiUrl,
    stripeUrl,
    stripeSecretKey: soakEnv.STRIPE_SECRET_KEY!,
    rate: args.rate,
    shoppers: args.shoppers,
    cancelsPerShopperPerSale:
      config.maxCancelsPerShopper === 0 ? Number.POSITIVE_INFINITY : config.maxCancelsPerShopper - 1,
    paymentWindowMs: args.paymentWindowMs,
    deadlines: config.deadlines,
    slackMs: args.limits.answerSlackMs,
    issueToken: (userId) => auth.issue(userId),
    currentSku: () => currentSku,
    runId,
  });
  const soakLoad = load;
  tap = await startWebhookTap(apiUrl, '/api/payments/stripe', soakLoad.classes.webhook);
  const double = await spawnStripeDouble({
    root,
    workDir,
    stripeMockUrl: stripeMock.url,
    port: doublePort,
    webhookUrl: tap.url,
    webhookSecret: soakEnv.STRIPE_WEBHOOK_SECRET!,
    secretKey: soakEnv.STRIPE_SECRET_KEY!,
  });
  processes.push(double);
  say(`Stripe double at ${stripeUrl} (webhooks through ${tap.url}), stripe-mock at ${stripeMock.url}`);

  const migrate = spawnSync(process.execPath, [join(root, 'dist', 'db', 'main.js')], {
    cwd: root,
    env: env as NodeJS.ProcessEnv,
    encoding: 'utf8',
  });
  if (migrate.status !== 0) throw new Error(`node dist/db/main.js failed: ${migrate.stdout}${migrate.stderr}`);
  say(`schema: ${migrate.stdout.trim()}`);

  // As production runs them, plus the probe (and, with --plant-leak, the leak in the API).
  const probe = join(root, 'soak', 'probe.ts');
  const expectedApiRps = args.rate * apiRequestsPerCheckout(args.paymentWindowMs);
  const leakChars = args.plantLeak ? leakCharsPerRequest(args.leakMbPerHour, expectedApiRps) : 0;
  const start = async (role: AppRole, preloads: string[], extra: Record<string, string>, readyTimeoutMs: number) => {
    const proc = await startAppProcess({
      role,
      from: 'dist',
      root,
      nodeFlags: ['--expose-gc', ...NODE_FLAGS],
      preloads,
      logFile: join(workDir, `${role}.log`),
      env: { ...env, ...extra },
      readyTimeoutMs,
    });
    processes.push(proc);
    return proc;
  };
  const worker = await start(
    'worker',
    [probe],
    {
      WORKFLOW_BUNDLE_PATH: bundle,
      WORKER_METRICS_PORT: String(workerMetricsPort),
      WORKER_HEALTH_PORT: String(workerHealthPort),
      SOAK_PROBE_PORT: String(workerProbePort),
    },
    120_000,
  );
  const api = await start(
    'api',
    args.plantLeak ? [probe, join(root, 'soak', 'planted-leak.ts')] : [probe],
    {
      PORT: String(apiPort),
      SOAK_PROBE_PORT: String(apiProbePort),
      ...(args.plantLeak ? { SOAK_LEAK_BYTES_PER_REQUEST: String(leakChars) } : {}),
    },
    60_000,
  );
  say(
    `API ${apiUrl} (pid ${api.pid}) and worker (pid ${worker.pid}) up from dist/; their probes (a heap snapshot: ` +
      `?snapshot=1) at 127.0.0.1:${apiProbePort} and 127.0.0.1:${workerProbePort}` +
      (args.plantLeak
        ? `; planted leak: ${leakChars} chars per request, for ${args.leakMbPerHour} MB/h at ~${expectedApiRps.toFixed(0)} requests/s`
        : ''),
  );

  // A new sale every --sale-minutes, stocked well beyond what it can sell in its time; the shoppers come back, so each
  // may hold as many units as it can buy in one sale.
  const skus: string[] = [];
  const stockPerSale = Math.ceil(args.rate * args.saleMinutes * 60 * 1.5) + 100;
  const perUserLimit = stockPerSale;
  const newSale = async () => {
    const sku = `SOAK-${runId}-${skus.length + 1}`;
    await sales.create({ sku, name: sku, priceCents: 1_500, stock: stockPerSale, perUserLimit });
    skus.push(sku);
    return sku;
  };
  currentSku = await newSale();

  const sources: SampleSources = {
    probes: {
      api: { url: `http://127.0.0.1:${apiProbePort}/`, pid: api.pid },
      worker: { url: `http://127.0.0.1:${workerProbePort}/`, pid: worker.pid },
    },
    servers: {
      temporal: stack.servers.temporal?.process?.pid,
      mysql: stack.servers.mysql?.process?.pid,
      redis: stack.servers.redis?.process?.pid,
      'stripe-mock': stripeMock.process.pid,
      'stripe-double': double.pid,
    },
    workerMetricsUrl: `http://127.0.0.1:${workerMetricsPort}/metrics`,
    temporal,
    redis,
    pool,
    accepted: () => soakLoad.accepted,
  };
  const samples: Sample[] = [];
  const floor = new HeapFloor(sources.probes);
  closers.push(async () => floor.stop());
  const sample = async (minute: number, phase: SamplePhase) => {
    const taken = await takeSample(sources, minute, phase, floor);
    samples.push(taken);
    const mb = (n: number | null | undefined) => (n === null || n === undefined ? '—' : n.toFixed(1));
    say(
      `minute ${minute} (${phase}): API heap ${mb(taken.api?.heapUsedMb)} MB rss ${mb(taken.api?.rssMb)} loop p99 ${mb(taken.api?.loopDelayMs.p99)} ms | ` +
        `worker heap ${mb(taken.worker?.heapUsedMb)} MB rss ${mb(taken.worker?.rssMb)} loop p99 ${mb(taken.worker?.loopDelayMs.p99)} ms | ` +
        `Temporal ${mb(taken.servers.temporal.rssMb)} MariaDB ${mb(taken.servers.mysql.rssMb)} Redis ${mb(taken.servers.redis.rssMb)} MB | ` +
        `open orders ${taken.openWorkflows ?? '—'}, sticky cache ${taken.stickyCacheSize ?? '—'}, Redis keys ${taken.redisKeys ?? '—'}, ` +
        `rows ${taken.mysqlOrders ?? '—'}/${taken.mysqlPayments ?? '—'}; accepted ${soakLoad.accepted}, journeys open ${soakLoad.open}, amiss ${soakLoad.amiss}`,
    );
    return taken;
  };

  // ---- the load -------------------------------------------------------------------------------------------------
  await sample(0, 'start');
  const loadStart = Date.now();
  soakLoad.start();
  floor.start();
  say(`load: ${args.rate} checkouts/s for ${args.minutes} min on ${currentSku}`);
  const rotation = setInterval(() => {
    newSale().then(
      (sku) => {
        currentSku = sku;
        say(`new sale ${sku}`);
      },
      (err: unknown) => say(`could not create the next sale (shoppers stay on ${currentSku}): ${String(err)}`),
    );
  }, args.saleMinutes * MINUTE_MS);
  let warmup: WarmupEnd | null = null;
  try {
    for (let minute = 1; minute <= args.minutes; minute++) {
      await sleep(Math.max(0, loadStart + minute * MINUTE_MS - Date.now()));
      if (minute === args.minutes) soakLoad.stop();
      await sample(minute, 'load');
      if (!warmup) {
        warmup = warmupEndsAt(samples, {
          maxCachedWorkflows: config.workerMaxCachedWorkflows,
          maxMinutes: args.warmupMaxMinutes,
        });
        if (warmup) say(`warm-up over at minute ${warmup.minute} (${warmup.reason})`);
      }
    }
  } finally {
    clearInterval(rotation);
    soakLoad.stop();
  }
  const warmupEnd: WarmupEnd = warmup ?? { minute: args.warmupMaxMinutes, reason: 'cap' };

  // ---- the drain: every journey ends, every order closes; still sampled each minute ------------------------------
  let draining = true;
  const drainSampler = (async () => {
    for (let minute = args.minutes + 1; draining; minute++) {
      const due = loadStart + minute * MINUTE_MS;
      while (draining && Date.now() < due) await sleep(Math.min(1_000, due - Date.now()));
      if (draining) await sample(minute, 'drain');
    }
  })();
  const drainStart = Date.now();
  const quietTimeoutMs = args.paymentWindowMs + 5 * MINUTE_MS;
  const journeysDone = await soakLoad.drained(args.paymentWindowMs + 4 * MINUTE_MS);
  say(
    `journeys ${journeysDone ? 'all ended' : `still open: ${soakLoad.open}`} ${((Date.now() - drainStart) / 1000).toFixed(0)} s after the load`,
  );
  const quiet = await waitForQuiet(temporal, inventory, skus, drainStart, quietTimeoutMs);
  draining = false;
  await drainSampler;
  floor.stop();
  say(
    quiet.reached
      ? `quiet ${quiet.seconds.toFixed(0)} s after the load: ${quiet.openWorkflows} open orders, ${quiet.reserved} reserved`
      : `NOT quiet after ${quiet.seconds.toFixed(0)} s: ${quiet.openWorkflows ?? '?'} open orders, ${quiet.reserved ?? '?'} reserved`,
  );
  await sample(Math.round(((Date.now() - loadStart) / MINUTE_MS) * 10) / 10, 'after');

  // ---- the sales' invariants, the verdict, the results ------------------------------------------------------------
  const saleChecks = [];
  for (const sku of skus) {
    const accepted = soakLoad.acceptedBySku.get(sku) ?? [];
    const { count: workflowCount } = await temporal.workflow.count(`OrderSku = '${sku}'`);
    const report = await checkSaleInvariants(
      { stores, inventory },
      { sku, perUserLimit, acceptedOrderNos: accepted, workflowCount },
    );
    saleChecks.push({ sku, ok: report.ok, checks: report.checks, figures: report.figures });
    say(
      `${sku}: ${accepted.length} orders; invariants ${report.ok ? 'hold' : `BROKEN ${JSON.stringify(report.checks)}`}`,
    );
  }
  const requests = REQUEST_CLASSES.map((name) => soakLoad.classes[name].figures());
  const verdict = verdictOf({
    samples,
    warmup: warmupEnd,
    limits: args.limits,
    requests,
    sales: saleChecks,
    quiet,
    journeysAmiss: soakLoad.amiss,
    journeysUnfinished: soakLoad.open,
  });
  const lastLoad = samples.filter((s) => s.phase === 'load').at(-1);
  const firstLoad = samples.find((s) => s.phase === 'start');
  const measuredApiRps =
    lastLoad?.api && firstLoad?.api ? (lastLoad.api.requests - firstLoad.api.requests) / (lastLoad.minute * 60) : null;
  const report: SoakReport = {
    date: new Date(t0).toISOString(),
    node: process.version,
    cpu: `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}`,
    commit,
    loadAverage: { start: loadAverageAtStart, end: loadAverage() },
    seconds: Math.round((Date.now() - t0) / 1000),
    settings: {
      minutes: args.minutes,
      rate: args.rate,
      shoppers: args.shoppers,
      paymentWindow: args.paymentWindow,
      saleMinutes: args.saleMinutes,
      warmupMaxMinutes: args.warmupMaxMinutes,
      plantedLeak: args.plantLeak,
      logLevel: args.logLevel,
      built: args.build,
      maxCachedWorkflows: config.workerMaxCachedWorkflows,
      journeys: {
        payShare: PAY_SHARE,
        cancelShare: CANCEL_SHARE,
        waitShare: WAIT_SHARE,
        waitSeconds: WAIT_SECONDS,
        longPollSeconds: LONG_POLL_SECONDS,
      },
      nodeFlags: NODE_FLAGS,
      env: Object.fromEntries(
        Object.entries(soakEnv).filter(([name]) => !/SECRET|TOKEN/.test(name) || name === 'STRIPE_SECRET_KEY'),
      ),
      limits: args.limits,
    },
    leak: args.plantLeak
      ? {
          mbPerHourTarget: args.leakMbPerHour,
          expectedApiRequestsPerSecond: Math.round(expectedApiRps * 10) / 10,
          charsPerRequest: leakChars,
          measuredApiRequestsPerSecond: measuredApiRps === null ? null : Math.round(measuredApiRps * 10) / 10,
          effectiveMbPerHour:
            measuredApiRps === null
              ? null
              : Math.round(((measuredApiRps * 3600 * (leakChars + LEAK_OVERHEAD_BYTES)) / 1024 / 1024) * 10) / 10,
        }
      : null,
    warmup: warmupEnd,
    samples,
    rssSlopeMbPerHour: rssSlopes(samples, warmupEnd.minute),
    requests,
    journeys: {
      started: soakLoad.started,
      accepted: soakLoad.accepted,
      endings: soakLoad.endings,
      amiss: soakLoad.amiss,
      amissExamples: soakLoad.amissExamples,
      unfinished: soakLoad.open,
    },
    sales: saleChecks,
    quiet,
    verdict,
  };
  console.log(`\n${await writeSoakReport(report, args.outDir)}`);
  say(`results in ${join(args.outDir, 'latest.json')}, latest.md and latest.svg`);
  if (!verdict.holds) {
    console.error(`[soak] DOES NOT HOLD:\n${verdict.reasons.map((reason) => `  - ${reason}`).join('\n')}`);
    for (const proc of [api, worker])
      console.error(`[soak] last lines of ${proc.name}'s log:\n${tailOf(proc.logFile, 15)}`);
    process.exitCode = 1;
  }
}

/** Until no OrderWorkflow runs and no sale holds a reserved unit (every order closed), or the timeout. */
async function waitForQuiet(
  temporal: Client,
  inventory: RedisInventory,
  skus: readonly string[],
  since: number,
  timeoutMs: number,
): Promise<QuietState> {
  let openWorkflows: number | null = null;
  let reserved: number | null = null;
  for (;;) {
    try {
      openWorkflows = (await temporal.workflow.count(OPEN_ORDERS)).count;
      reserved = 0;
      for (const sku of skus) reserved += (await inventory.getSale(sku))?.reserved ?? 0;
    } catch {
      openWorkflows = null;
      reserved = null;
    }
    const seconds = (Date.now() - since) / 1000;
    if (openWorkflows === 0 && reserved === 0) return { reached: true, seconds, openWorkflows, reserved };
    if (Date.now() - since > timeoutMs) return { reached: false, seconds, openWorkflows, reserved };
    await sleep(2_000);
  }
}

/** The 1, 5 and 15 minutes' load averages: how busy the shared cores were besides the soak. */
function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').trim().split(/\s+/).slice(0, 3).join(' ');
}

function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' });
    return dirty.trim() ? `${commit} (src/ with uncommitted changes)` : commit;
  } catch {
    return 'unknown';
  }
}

async function cleanup(): Promise<void> {
  load?.close();
  await tap?.close();
  for (const proc of [...processes].reverse()) await proc.stop(10_000);
  for (const close of closers) await close().catch(() => undefined);
  await stripeMock?.process.stop();
  await stack?.stop();
  if (args.keep) say(`kept ${workDir} (servers' data, every process's log)`);
  else rmSync(workDir, { recursive: true, force: true });
}

await runThenCleanUp('soak', main, cleanup);
