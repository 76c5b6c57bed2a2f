/**
 * The burst benchmark, run by bench/run.ts without --pipeline.
 * `npm run bench [-- --quick] [--requests N --users N --connections N --stock N --limit N]
 *                  [--variants ours,ceiling,sync,queue] [--wait [--wait-seconds N]] [--out DIR] [--profile DIR]
 *                  [--layout shared|split | --layouts shared,split] [--before <commit>] [--pay-within S]
 *                  [--provider generic|stripe]`
 *
 * Fires one flash-sale burst of checkouts over HTTP at four servers in turn, on the same machine and
 * stack, and compares them:
 *   ours     the product: Lua reservation + OrderWorkflow start (src/api, src/workers)
 *   ceiling  the same Koa setup answering a constant: what the machine allows at all
 *   sync     checkout as one MySQL transaction (SELECT … FOR UPDATE), the classic design
 *   queue    the same Lua reservation + LPUSH onto a Redis list drained by one consumer (the usual queue design)
 * With --wait, ours runs a second time as ours-wait: the same burst with `Prefer: wait=N`, each
 * checkout answered once its order is persisted (201) or after N s (202).
 * With --before <commit>, that commit's API and worker run too, as "before", right before ours: a
 * change measured against the code it replaced, in the same run (bench/before.ts).
 * With --layouts, the whole comparison runs once per CPU layout (bench/cpu-layout.ts), on the same
 * stack: `split` pins the load generator and the front door to one CPU and what stands behind it to
 * another.
 * Then it measures how fast accepted orders reach MySQL, checks the invariants (docs/fault-tolerance.md)
 * after every variant, lets ours' (and before's) winners pay within --pay-within seconds (bench/payments.ts),
 * and writes bench/results/latest.{json,md,svg} plus a dated copy.
 * With --provider stripe, ours (and ours-wait, before) run with PAYMENT_PROVIDER=stripe against the Stripe double
 * (stripe-mock behind it, started once for the run) and its winners pay by confirming their PaymentIntents there;
 * the other variants are the same either way.
 *
 * This file orchestrates; each job has its own module: args.ts (command line), processes.ts (the
 * servers of a variant), load.ts (the burst), drain.ts (orders reaching MySQL), visibility.ts
 * (workflow start latency), cpu-layout.ts (taskset pinning), report.ts (JSON, Markdown, SVG).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ShopperAuth } from '../src/api/auth.js';
import { SalesService } from '../src/sales/sales-service.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { startClusterApp, type RunningClusterApp } from '../stack/cluster-app.js';
import { startStack, type RunningStack } from '../stack/index.js';
import { runThenCleanUp } from '../stack/launcher.js';
import { cpuSecondsOfGroup, rssKbOfGroup } from '../stack/cpu.js';
import type { ManagedProcess } from '../stack/process.js';
import { parseBenchArgs, type BenchRun, type Variant } from './args.js';
import { cpuAffinity, pinGroup, pinProcess, planCpuLayouts, reniceGroup, type LayoutCpus } from './cpu-layout.js';
import { watchPersisted } from './drain.js';
import { requestsPerPayment, scrapeTemporalRequests } from './temporal-requests.js';
import { burst, summarise, type VariantResult } from './load.js';
import { startBeforeVariant, startStripeProvider, startVariant, type StripeProvider } from './processes.js';
import { prepareBefore } from './before.js';
import { buildLayoutsReport, writeReport, type LayoutRun } from './report.js';
import { fmt } from './stats.js';
import { runningOrderWorkflows, workflowStartLatency } from './visibility.js';
import { awaitingOrders, describePaymentPhase, payWithinSpread, paymentPhaseFaults, saleSettling } from './payments.js';
import { logMark, temporalErrorsSince } from './temporal-log.js';
import { subscribeReceiver } from './events-receiver.js';
import { internalErrorsLogged } from '../stack/internal-errors.js';

const root = resolve(import.meta.dirname, '..');
const {
  settings,
  variants,
  outDir,
  profileDir,
  redisAppendfsync,
  waitSeconds,
  cluster,
  layouts,
  before,
  eventsReceiver,
} = parseBenchArgs(process.argv.slice(2), root);
// Checked before anything starts: a missing taskset or a single CPU fails at once, with its reason.
const layoutPlans = planCpuLayouts(layouts);
const say = (line: string) => console.log(`[bench] ${line}`);

const workDir = mkdtempSync(join(tmpdir(), 'flash-bench-'));
let stack: RunningStack | undefined;
let clusterApp: RunningClusterApp | undefined;
let stripe: StripeProvider | undefined;
const processes: ManagedProcess[] = [];

async function main(): Promise<void> {
  const t0 = Date.now();
  const runId = randomBytes(3).toString('hex');
  // Before any server starts: a commit that cannot be checked out or installed fails at once.
  const beforeCheckout = before ? prepareBefore(root, before, say) : undefined;
  if (beforeCheckout) say(`before: ${beforeCheckout.commit.slice(0, 7)} on Node ${beforeCheckout.node}`);
  const appEnv = { TEMPORAL_TASK_QUEUE: `bench-${runId}`, LOG_LEVEL: 'warn', AUTH_DEV_LOGIN: 'false' };
  if (cluster) {
    // --cluster: the app on the cluster layout; the burst goes through nginx to both APIs.
    clusterApp = await startClusterApp({
      dataDir: join(workDir, 'cluster'),
      ephemeral: true,
      ui: false,
      log: say,
      appLogs: workDir,
      env: appEnv,
    });
  } else {
    stack = await startStack({
      dataDir: join(workDir, 'stack'),
      ports: 'free',
      ephemeral: true,
      log: say,
      redisAppendfsync,
    });
  }
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...(clusterApp?.stack.env ?? stack?.env),
    TEMPORAL_TASK_QUEUE: `bench-${runId}`,
    // BENCH_LOG_LEVEL=info measures the servers with their production log level (access log on).
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    AUTH_DEV_LOGIN: 'false',
    // The API runs with its default rate limits, so that their cost is measured. Shoppers are taken
    // round-robin: each sends at most 4 checkouts (1 warm-up, 3 in the burst; default and --quick),
    // under the default 10 per 10 s per shopper. With far fewer users than requests, 429s show as
    // "rate limited" below; set RATE_LIMIT_CHECKOUT in the environment to change the budget.
    // No load balancer to drain from: the API stops at once.
    SHUTDOWN_DRAIN: '0s',
    // --events-receiver: the receiver listens on loopback, which the sender refuses unless allowed.
    ...(eventsReceiver ? { EVENTS_ALLOWED_RANGES: '127.0.0.0/8' } : {}),
  };
  if (settings.provider === 'stripe' && variants.includes('ours')) {
    stripe = await startStripeProvider({ root, workDir, runId });
    say(`Stripe double at ${stripe.url} (stripe-mock behind it): ours pays through it`);
  }
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  const stores = openStores(pool);
  const redis = createRedis(config);
  await migrate(pool);
  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const sales = SalesService.onClients(stores, redis, config.temporal.taskQueue);
  const auth = new ShopperAuth(config);
  say(`signing ${settings.users} shopper tokens`);
  const tokens = await Promise.all(
    Array.from({ length: settings.users }, (_, i) => auth.issue(`bench-${runId}-u${i}`)),
  );

  // ours-wait runs right after ours, before right before it, on fresh servers of the same kind, with the same burst.
  type Run = { name: BenchRun; variant: Variant; wait: number };
  const runs = variants.flatMap((variant): Run[] => [
    ...(variant === 'ours' && beforeCheckout ? [{ name: 'before' as const, variant, wait: 0 }] : []),
    { name: variant, variant, wait: 0 },
    ...(variant === 'ours' && waitSeconds > 0 ? [{ name: 'ours-wait' as const, variant, wait: waitSeconds }] : []),
    ...(variant === 'ours' && eventsReceiver ? [{ name: 'ours-events' as const, variant, wait: 0 }] : []),
  ]);
  const layoutRuns: LayoutRun[] = [];
  try {
    for (const layout of layouts) {
      const cpus = layoutPlans.get(layout);
      if (layouts.length > 1 || cpus)
        say(
          `════ layout ${layout}${cpus?.layout === 'split' ? ` (front door on CPU ${cpus.front}, behind it on CPU ${cpus.back})` : ` (the pipeline at nice ${cpus?.backNice ?? 0})`} ════`,
        );
      if (cpus) applyLayout(cpus);
      layoutRuns.push(await runComparison(layout, cpus));
    }
  } finally {
    await Promise.allSettled([pool.end(), redis.quit()]);
  }

  /** Every variant (and ours-wait) in turn, in one layout; each run's SKUs are named after it. */
  async function runComparison(layout: LayoutRun['layout'], cpus: LayoutCpus | undefined): Promise<LayoutRun> {
    const results: Partial<Record<BenchRun, VariantResult>> = {};
    let workflowStart: LayoutRun['workflowStart'];
    const tag = layouts.length > 1 ? `${layout}-` : '';
    for (const { name, variant, wait } of runs) {
      say(`── ${name}${wait ? ` (Prefer: wait=${wait})` : ''} ──`);
      // Stripe for ours' kind only (ours, ours-wait, before): the baselines never pay.
      const stripeRun = variant === 'ours' ? stripe : undefined;
      const runEnv = stripeRun ? { ...env, ...stripeRun.env } : env;
      const servers = clusterApp
        ? { url: clusterApp.url, processes: [] }
        : name === 'before' && beforeCheckout
          ? await startBeforeVariant(beforeCheckout, { workDir, env: runEnv, ...(cpus ? { cpus } : {}) })
          : await startVariant(variant, { root, workDir, env: runEnv, profileDir, ...(cpus ? { cpus } : {}) });
      processes.push(...servers.processes);
      stripeRun?.deliverTo(servers.url);
      // The double and stripe-mock work for this run's orders: their CPU is counted with its servers'.
      const measured = stripeRun ? [...servers.processes, ...stripeRun.processes] : servers.processes;
      try {
        // Warm-up on its own SKU: JIT, connection pools and Temporal's caches, never measured.
        const warm = `BENCH-${runId}-${tag}${name}-warm`;
        await sales.create({
          sku: warm,
          name: warm,
          priceCents: 1_000,
          stock: Math.max(10, Math.floor(settings.stock / 10)),
          perUserLimit: settings.perUserLimit,
        });
        const warmWatch = variant === 'ceiling' ? undefined : watchPersisted(stores, warm);
        const warmShot = await burst(
          servers.url,
          warm,
          tokens,
          settings.warmupRequests,
          Math.min(settings.connections, 64),
          false,
          say,
          wait,
        );
        // Its orders reach MySQL before the measured burst, so no variant's burst meets a pipeline still
        // persisting the warm-up (ours took seconds to, the queue's consumer a tenth of one).
        if (warmWatch) await warmWatch.until(warmShot.accepted.length, warmShot.firstWinAt, warmShot.lastWinAt);

        const sku = `BENCH-${runId}-${tag}${name}`;
        await sales.create({
          sku,
          name: sku,
          priceCents: 1_000,
          stock: settings.stock,
          perUserLimit: settings.perUserLimit,
        });
        // MySQL is watched from the first request on, so the drain is timed while the burst still runs.
        const watch = variant === 'ceiling' ? undefined : watchPersisted(stores, sku);
        const temporalMetrics = stack?.temporalMetricsUrl;
        const temporalBefore = await scrapeTemporalRequests(temporalMetrics, config.temporal.namespace);
        const cpuBefore = cpuSnapshot(measured);
        const shot = await burst(servers.url, sku, tokens, settings.requests, settings.connections, true, say, wait);
        const cpuAtBurstEnd = cpuSnapshot(measured);
        const result = summarise(shot);
        if (watch) {
          // Every unit Redis holds is an order on its way, answered 202 or not (a 503 OUTCOME_UNKNOWN's promise is
          // started later): the invariants are checked once all of them are rows, not once the 202s are.
          const held = variant === 'sync' ? null : await inventory.getSale(sku);
          const expected = Math.max(shot.accepted.length, held ? held.reserved + held.sold : 0);
          result.drain = await watch.until(expected, shot.firstWinAt, shot.lastWinAt);
        }
        result.cpuSeconds = cpuSince(cpuBefore, cpuSnapshot(measured));
        const temporalAfter = await scrapeTemporalRequests(temporalMetrics, config.temporal.namespace);
        if (temporalBefore && temporalAfter && shot.accepted.length > 0)
          result.temporalRequestsPerOrder = requestsPerPayment(temporalBefore, temporalAfter, shot.accepted.length);
        result.burstCpuSeconds = cpuSince(cpuBefore, cpuAtBurstEnd);
        // Read while every process still runs, after the burst: threads started during it count too.
        if (cpus) result.cpuAffinity = affinitySnapshot(servers.processes);
        say(
          `CPU seconds, burst and drain: ${Object.entries(result.cpuSeconds)
            .map(([name, seconds]) => `${name} ${seconds.toFixed(1)}`)
            .join(', ')}${
            result.temporalRequestsPerOrder
              ? `; Temporal requests per won order ${Object.entries(result.temporalRequestsPerOrder)
                  .map(([operation, count]) => `${operation} ${count}`)
                  .join(', ')}`
              : ''
          }`,
        );
        if (watch) {
          let workflowCount: number | undefined;
          if (name === 'ours' || name === 'before') {
            const latency = await workflowStartLatency(config, stores, sku, shot.accepted.length);
            result.workflowStart = latency;
            if (name === 'ours') workflowStart = latency;
            workflowCount = latency.count;
          }
          result.invariants = await checkSaleInvariants(
            { stores, ...(variant === 'sync' ? {} : { inventory }) },
            {
              sku,
              perUserLimit: settings.perUserLimit,
              acceptedOrderNos: shot.accepted,
              ...(workflowCount === undefined ? {} : { workflowCount }),
            },
          );
          say(
            `invariants: ${Object.entries(result.invariants.checks)
              .map(([name, ok]) => `${name}=${ok}`)
              .join(' ')}`,
          );
        }
        // The winners pay while the rest of the window runs (ours and before: the same phase against each).
        if (settings.payWithinSeconds > 0 && (name === 'ours' || name === 'before' || name === 'ours-events')) {
          const temporalLog = stack ? join(workDir, 'stack', 'temporal', 'temporal.log') : undefined;
          const temporalLogMark = temporalLog ? logMark(temporalLog) : 0;
          // ours-events: a merchant subscribed to every order event for this phase only.
          const subscribed =
            name === 'ours-events' ? await subscribeReceiver({ apiUrl: servers.url, config, stores }) : undefined;
          const phaseStartedAt = Date.now();
          const running = await runningOrderWorkflows(config);
          result.payments = await payWithinSpread({
            url: servers.url,
            orders: await awaitingOrders(stores, sku),
            withinMs: settings.payWithinSeconds * 1_000,
            webhookSecret: config.webhookSecret,
            taskQueue: config.temporal.taskQueue,
            tokenOf: (userId) => auth.issue(userId),
            runId: `${runId}-${tag}${name}`,
            ...(servers.workerMetricsUrl ? { workerMetricsUrl: servers.workerMetricsUrl } : {}),
            ...(process.env.BENCH_WORKER_PROBE_PORT
              ? { workerProbeUrl: `http://127.0.0.1:${process.env.BENCH_WORKER_PROBE_PORT}/` }
              : {}),
            ...(stripeRun
              ? { stripe: { url: stripeRun.url, secretKey: stripeRun.secretKey, observe: stripeRun.observe } }
              : {}),
            cpuSeconds: () => cpuSnapshot(measured),
            // Nothing lost: every payment lands in MySQL and every order is closed by its workflow (those answered 202
            // by the API's owner loop, later), and the sale's invariants hold again once they have.
            settling: saleSettling(stores, inventory, sku, running.count),
            ...(stack?.temporalMetricsUrl
              ? { temporal: { metricsUrl: stack.temporalMetricsUrl, namespace: config.temporal.namespace } }
              : {}),
            rssMb: () =>
              Object.fromEntries(
                [...measured.map((proc) => [proc.name, proc.pid] as const), ...stackPids()].map(([name, pid]) => [
                  name,
                  Math.round(rssKbOfGroup(pid) / 1024),
                ]),
              ),
            say,
          }).finally(() => running.close());
          if (result.invariants) {
            const { perUserLimit } = settings;
            const after = await checkSaleInvariants({ stores, inventory }, { sku, perUserLimit });
            for (const [check, ok] of Object.entries(after.checks))
              if (!ok) result.invariants.checks[check as keyof typeof after.checks] = false;
          }
          if (subscribed) result.payments.events = await subscribed.finish({ sku, lastSentAt: Date.now() });
          // A 500 is a bug: what the API logged of it is kept with the figures (its answer names no cause).
          const internalErrors = internalErrorsLogged(workDir, phaseStartedAt);
          if (internalErrors.length > 0) result.payments.internalErrors = internalErrors;
          // A wedged dev server shows as a slow app in every other figure: say so beside them.
          if (temporalLog) result.payments.temporalLog = temporalErrorsSince(temporalLog, temporalLogMark);
          say(`payment phase: ${describePaymentPhase(result.payments)}`);
          const faults = paymentPhaseFaults(result.payments);
          if (faults.length > 0) {
            result.payments.faults = faults;
            console.error(`[bench] PAYMENT PHASE FAULT (${name}): ${faults.join('; ')}`);
            process.exitCode = 1;
          }
        }
        results[name] = result;
        say(
          `${fmt(result.rps, 0)} req/s; p50 ${fmt(result.p50Ms)} ms, p99 ${fmt(result.p99Ms)} ms; won ${result.won}, sold out ${result.soldOut}, over limit ${result.limitExceeded}, rate limited ${shot.statuses.get('429') ?? 0}, errors ${result.errors} (${result.errorsWhileUnitsLeft} while units were left${result.serverErrors ? `; ${JSON.stringify(result.serverErrors)}` : ''})` +
            (result.drain
              ? `; all ${result.drain.orders} orders in MySQL ${fmt(result.drain.seconds, 2)} s after the last win`
              : '') +
            (result.persistedInWait === undefined
              ? ''
              : `; ${result.persistedInWait} answered persisted (201), ${result.orderFailed ?? 0} ORDER_FAILED`),
        );
      } finally {
        // Never to a port a later run's server may take.
        stripeRun?.deliverTo(null);
        for (const proc of servers.processes.reverse()) await proc.stop();
      }
    }
    return { layout, ...(cpus ? { cpus } : {}), results, ...(workflowStart ? { workflowStart } : {}) };
  }

  const report = buildLayoutsReport(settings, layoutRuns, Date.now() - t0);
  console.log(`\n${writeReport(report, outDir)}`);
  say(`results in ${join(outDir, 'latest.json')}, latest.md and latest.svg`);
  const failed = Object.entries(report.invariants).filter(([, ok]) => ok === false);
  if (failed.length > 0) {
    console.error(`[bench] INVARIANT VIOLATED: ${failed.map(([name]) => name).join(', ')}`);
    process.exitCode = 1;
  }
}

/**
 * Pins what runs across the whole comparison: this process (the load generator, all its threads)
 * to the front door's CPUs, the stack servers the benchmark started to the CPUs behind it. Each
 * variant's processes are started pinned (processes.ts), so they never inherit this process's CPUs.
 */
function applyLayout(cpus: LayoutCpus): void {
  if (cpus.front) pinProcess(process.pid, cpus.front);
  for (const [role, server] of Object.entries(stack?.servers ?? {})) {
    if (!server.process) continue;
    if (cpus.back) pinGroup(server.process.pid, cpus.back);
    // Redis answers shoppers: it keeps the front door's priority wherever it runs.
    reniceGroup(server.process.pid, role === 'redis' ? 0 : cpus.backNice);
  }
  const external = (['temporal', 'redis', 'mysql'] as const).filter((role) => !stack?.servers[role]);
  if (external.length > 0) say(`not pinned (external, not started by the benchmark): ${external.join(', ')}`);
}

/**
 * The CPUs every thread of each process was allowed to run on: the stack's servers, the variant's, the load generator.
 */
function affinitySnapshot(variantProcesses: ManagedProcess[]): Record<string, string> {
  const snapshot: Record<string, string> = {};
  for (const [role, server] of Object.entries(stack?.servers ?? {}))
    if (server.process) snapshot[role] = cpuAffinity({ pgid: server.process.pid });
  for (const proc of variantProcesses) snapshot[proc.name] = cpuAffinity({ pgid: proc.pid });
  snapshot.loadgen = cpuAffinity({ pid: process.pid });
  return snapshot;
}

/** CPU seconds so far of the stack's servers, the variant's processes and this load generator. */
function cpuSnapshot(variantProcesses: ManagedProcess[]): Record<string, number> {
  const snapshot: Record<string, number> = {};
  for (const [role, server] of Object.entries(stack?.servers ?? {}))
    if (server.process) snapshot[role] = cpuSecondsOfGroup(server.process.pid);
  for (const proc of variantProcesses) snapshot[proc.name] = cpuSecondsOfGroup(proc.pid);
  if (clusterApp) {
    for (const [role, proc] of Object.entries(clusterApp.stack.processes)) snapshot[role] = cpuSecondsOfGroup(proc.pid);
    for (const app of [...clusterApp.apis, ...clusterApp.workers])
      if (app.process) snapshot[app.name] = cpuSecondsOfGroup(app.process.pid);
  }
  const own = process.cpuUsage();
  snapshot.loadgen = (own.user + own.system) / 1e6;
  return snapshot;
}

/** The stack's servers the benchmark started, by role, with their process group. */
function stackPids(): Array<readonly [string, number]> {
  return Object.entries(stack?.servers ?? {}).flatMap(([role, server]) =>
    server.process ? [[role, server.process.pid] as const] : [],
  );
}

function cpuSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after).map(([name, seconds]) => [name, Math.round((seconds - (before[name] ?? 0)) * 100) / 100]),
  );
}

async function cleanup(): Promise<void> {
  for (const proc of processes) await proc.stop(5_000);
  await stripe?.stop();
  await stack?.stop();
  await clusterApp?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

await runThenCleanUp('bench', main, cleanup);
