/**
 * `npm run bench -- --pipeline [--quick] [--orders N] [--concurrency C] [--live-orders L]
 *                               [--readers R] [--read-seconds S] [--rounds K] [--workers W]
 *                               [--cluster] [--out DIR] [--profile DIR]`
 *
 * The order pipeline alone, without HTTP, against the floor: what the Temporal server, the workers,
 * MariaDB and Redis do per order, and what the cheapest workflow of an order's shape costs on the
 * same stack (bench/floor/: a client start, one no-op local activity, a 30-minute durable wait, a
 * status query). On its own stack (or the servers named in the environment) it runs phases in
 * turn, floor and ours interleaved (floor, ours, floor; --rounds K: K rounds of floor then ours,
 * closed by a floor phase; --quick: floor, ours), each with W fresh worker processes (default 1)
 * on its own task queue, the same warm-up, then N workflows started C at a time through one client.
 * The stack is the single-node one (Temporal dev server) or, with --cluster, the cluster layout
 * (bench/pipeline-stack.ts: Temporal's four services on PostgreSQL, a Redis Cluster, MariaDB), whose
 * every Temporal service, PostgreSQL and Redis node is measured on its own.
 *
 * An ours phase puts a sale on sale and for each order reserves stock in Redis exactly as the API
 * does (RedisInventory.reserve) and starts its OrderWorkflow through the OrderWorkflowClient; a floor phase
 * starts floor workflows. Measured per phase (bench/phase.ts): starts/s and start latency, done per
 * second (ours: the sale's AWAITING_PAYMENT rows in MySQL; the floor: its local activities run,
 * counted by the floor workers), CPU ms per order of each server process and of each of the phase's
 * workers (their CPU during the phase / N, read from /proc). Then the ratios of ours to the floor
 * (CPU of Temporal + the workers per order, done/s).
 *
 * The last ours phase goes on to the reads: R readers calling OrderWorkflowClient.find (the raw cost of one
 * status read to Temporal and the worker) on random live orders for S seconds, then the API's read
 * path: the same R readers through an OrderStatusReader (single-flight and the status cache,
 * STATUS_CACHE_MS from the environment) serving shoppers who each poll their order every 500 ms
 * (readLikeShoppers), and the workers' resident memory per live order. Every ours phase's sale is
 * checked against its invariants (docs/fault-tolerance.md). The run fails (exit 1) on a violated invariant
 * or a status read answering wrong; a read that times out (the API's 503 UNAVAILABLE) is counted
 * and reported, not a failure.
 *
 * The orders are left AWAITING_PAYMENT (their 30-minute payment window is never reached) and the
 * floor workflows waiting: the stack is thrown away, and on external servers each phase's task
 * queue has no worker once the phase ends, so nothing else ever sees them.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';
import { createRedis } from '../src/infra/redis.js';
import { subscribeChannels } from '../src/infra/redis-subscription.js';
import type { InvariantReport } from '../src/invariants/check.js';
import {
  ORDER_CHANGED_CHANNEL,
  OrderStatusReader,
  STATUS_READ_SOURCES,
  type StatusReadSource,
} from '../src/order/status-reads.js';
import { waitFor } from '../stack/wait-for.js';
import { runThenCleanUp } from '../stack/launcher.js';
import { DependencyUnavailableError } from '../src/infra/dependency-guard.js';
import type { OrderLookup } from '../src/order/lookup.js';
import type { ManagedProcess } from '../stack/process.js';
import { rssKbOfGroup } from '../stack/cpu.js';
import { parsePipelineArgs } from './args.js';
import { buildFloorBundle } from './floor/bundle.js';
import { runFloorPhase } from './floor/phase.js';
import {
  checkSale,
  deleteReconcileSchedule,
  openBenchClients,
  pipelineOf,
  startOrders,
  type Pipeline,
} from './orders.js';
import { measuredWorkers, measurePhase, startUntilDone, type PhaseMeasurement } from './phase.js';
import {
  buildPipelineResult,
  cpuPerOrder,
  pipelineTable,
  writePipelineReport,
  type PipelineMeasurement,
} from './pipeline-report.js';
import { startPipelineStack, type PipelineStack, type RunContext } from './pipeline-stack.js';
import { startWorker, startWorkers, stopAll } from './processes.js';
import { pct, sorted } from './stats.js';

const root = resolve(import.meta.dirname, '..');
const args = parsePipelineArgs(process.argv.slice(2), root);
const say = (line: string) => console.log(`[pipeline] ${line}`);

const workDir = mkdtempSync(join(tmpdir(), 'flash-pipeline-'));
let stack: PipelineStack | undefined;
/** The current phase's workers, stopped by cleanup() if the run is interrupted. */
let running: ManagedProcess[] = [];

/** The reading phase's extras: status reads, the workers' memory, the live orders. */
interface OursReads {
  liveOrders: number;
  reads: PipelineMeasurement['reads'];
  apiReads: PipelineMeasurement['apiReads'];
  statusCacheMs: number;
  statusCacheNotifiedMs: number;
  workerRssKb: { before: number; after: number };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const runId = randomBytes(3).toString('hex');
  say(`layout: ${args.layout}, ${args.workers} worker process${args.workers > 1 ? 'es' : ''} per phase`);
  stack = await startPipelineStack({
    layout: args.layout,
    dataDir: join(workDir, 'stack'),
    log: say,
    redisAppendfsync: args.redisAppendfsync,
  });
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  };
  const clients = await openBenchClients(env);
  const { stores, inventory, sales, temporal } = clients;
  try {
    const context: RunContext = { runId, env, stores, inventory, sales, temporal, stack };
    const bundledAt = performance.now();
    const floorBundle = await buildFloorBundle(join(workDir, 'floor-bundle.js'));
    say(`floor workflow bundled in ${((performance.now() - bundledAt) / 1000).toFixed(1)} s`);

    // Interleaved on one stack (floor, ours, floor by default), each phase with fresh workers on its
    // own task queue (on shared servers, no other worker takes its tasks) after the same warm-up:
    // drift in the stack over the run shows in the floor phases around ours instead of in the ratio.
    const phases: PipelineMeasurement['phases'] = [];
    let oursReads: OursReads | undefined;
    let invariants: InvariantReport | undefined;
    const readingPhase = args.phases.lastIndexOf('ours');
    for (const [i, kind] of args.phases.entries()) {
      const taskQueue = `bench-pipeline-${runId}-${i + 1}-${kind}`;
      say(`phase ${i + 1}/${args.phases.length}: ${kind}, task queue ${taskQueue}`);
      const phaseStartedAt = performance.now();
      if (kind === 'floor') {
        const measured = await runFloorPhase(taskQueue, {
          root,
          workDir,
          env,
          ...(args.profileDir ? { profileDir: args.profileDir } : {}),
          temporal,
          bundlePath: floorBundle,
          servers: stack.servers(),
          workers: args.workers,
          orders: args.orders,
          concurrency: args.concurrency,
          warmupOrders: args.warmupOrders,
          running: (workers) => (running = workers),
        });
        phases.push(measured);
        sayPhase(measured);
      } else {
        const ours = await runOursPhase(context, taskQueue, i + 1, i === readingPhase);
        phases.push({ ...ours.measurement, invariantsOk: ours.invariants.ok });
        sayPhase(ours.measurement);
        if (i === readingPhase) [oursReads, invariants] = [ours.reads, ours.invariants];
      }
      say(
        `phase ${i + 1} took ${((performance.now() - phaseStartedAt) / 1000).toFixed(1)} s (worker start and stop, warm-up${kind === 'ours' ? ', checks' : ''} included)`,
      );
    }
    if (!oursReads || !invariants) throw new Error('no ours phase ran');

    const measurement: PipelineMeasurement = {
      args,
      stackDescription: stack.description,
      phases,
      ...oursReads,
      invariants,
      elapsedMs: Date.now() - t0,
    };
    const report = buildPipelineResult(measurement);
    console.log(`\n${pipelineTable(report)}`);
    const written = writePipelineReport(report, args.outDir);
    say(`results: pipeline in ${written.latest}, copy in ${written.dated}`);
    const { reads, apiReads } = oursReads;
    const violated = phases.filter((p) => p.invariantsOk === false).length;
    if (violated > 0 || reads.errors > 0 || apiReads.errors > 0) {
      const failed = Object.entries(invariants.checks).filter(([, ok]) => !ok);
      console.error(
        `[pipeline] FAILED: ${violated > 0 ? `invariants violated in ${violated} ours phase(s)${failed.length > 0 ? `: ${failed.map(([name]) => name).join(', ')}` : ''}` : ''} ${reads.errors > 0 ? `${reads.errors} status reads failed` : ''} ${apiReads.errors > 0 ? `${apiReads.errors} API status reads failed` : ''}`,
      );
      process.exitCode = 1;
    }
  } finally {
    await clients.close();
  }
}

/**
 * One ours phase: W fresh workers (the project's, as `npm run worker` runs it) on `taskQueue`, a
 * warm-up on its own SKU, then N orders reserved and started on a sale of their own, measured until
 * all are in MySQL; the sale's invariants are checked. The reading phase (the last ours phase)
 * then starts the extra live orders (L > N, not timed) and runs the status reads.
 */
async function runOursPhase(context: RunContext, taskQueue: string, phase: number, reading: boolean) {
  const { runId, stores, inventory, sales, temporal } = context;
  const env = { ...context.env, TEMPORAL_TASK_QUEUE: taskQueue };
  const config = loadConfig(env);
  const pipeline = pipelineOf(config, stores, inventory, temporal);
  const workers = await startWorkers(args.workers, (i) =>
    startWorker({
      root,
      workDir,
      env,
      name: `worker-${i}`,
      ...(args.profileDir ? { profileDir: args.profileDir } : {}),
    }),
  );
  running = workers;
  const rssKb = () => workers.reduce((sum, worker) => sum + rssKbOfGroup(worker.pid), 0);
  try {
    say(`worker${workers.length > 1 ? 's' : ''} ready (pid ${workers.map((worker) => worker.pid).join(', ')})`);
    const awaitingPayment = (sku: string) => () => stores.reports.countOrders(sku, 'AWAITING_PAYMENT');

    // Warm-up on its own SKU, never measured: JIT, connection pools, Temporal's caches.
    const warm = `PIPE-${runId}-${phase}-warm`;
    await sales.create({ sku: warm, name: warm, priceCents: 1_000, stock: args.warmupOrders, perUserLimit: 1 });
    await startUntilDone(args.warmupOrders, awaitingPayment(warm), () =>
      startOrders(
        pipeline,
        { sku: warm, priceCents: 1_000 },
        args.warmupOrders,
        `${runId}-${phase}w`,
        args.concurrency,
      ),
    );
    say(`warm-up: ${args.warmupOrders} orders persisted`);

    const sku = `PIPE-${runId}-${phase}`;
    const live = reading ? Math.max(args.orders, args.liveOrders) : args.orders;
    await sales.create({ sku, name: sku, priceCents: 1_000, stock: live, perUserLimit: 1 });
    const rssBeforeKb = rssKb();
    say(`starting ${args.orders} OrderWorkflows, ${args.concurrency} at a time`);
    const { measurement, run } = await measurePhase({
      kind: 'ours',
      taskQueue,
      orders: args.orders,
      processes: [...context.stack.servers(), ...measuredWorkers(workers)],
      done: awaitingPayment(sku),
      start: () =>
        startOrders(pipeline, { sku, priceCents: 1_000 }, args.orders, `${runId}-${phase}m`, args.concurrency),
      doneMeans: 'orders reached MySQL',
    });
    if (!reading) return { measurement, invariants: await checkSale(pipeline, sku, run.started) };

    // More live orders for the status reads when L > N (not timed).
    let orderNos = run.started;
    if (live > args.orders) {
      const extra = await startUntilDone(live, awaitingPayment(sku), () =>
        startOrders(pipeline, { sku, priceCents: 1_000 }, live - args.orders, `${runId}-${phase}l`, args.concurrency),
      );
      orderNos = [...orderNos, ...extra.started];
    }
    const rssAfterKb = rssKb();
    say(
      `worker RSS${workers.length > 1 ? ` (${workers.length} workers together)` : ''} ${Math.round(rssBeforeKb / 1024)} MiB before, ${Math.round(rssAfterKb / 1024)} MiB with ${live} live orders`,
    );

    say(`status reads: ${args.readers} readers for ${args.readSeconds} s on ${live} live orders`);
    const reads = await readStatuses(pipeline.lookup, orderNos, args.readers, args.readSeconds * 1000);
    if (reads.errors + reads.timeouts > 0) {
      say(
        `status reads: ${reads.timeouts} timed out, ${reads.errors} failed or answered other than AWAITING_PAYMENT (first: ${reads.firstError})`,
      );
    }
    // The API's read path: the same readers through an OrderStatusReader (STATUS_CACHE_MS of the
    // environment, default 1000), each live order polled by its shopper every 500 ms.
    say(
      `API status reads: shoppers polling every ${SHOPPER_POLL_MS} ms, ${args.readers} readers, ${args.readSeconds} s, ` +
        `STATUS_CACHE_MS=${config.statusCacheMs}, STATUS_CACHE_NOTIFIED_MS=${config.statusCacheNotifiedMs} (order-change notifications live)`,
    );
    const apiReads = await readLikeShoppers(pipeline, orderNos, args.readers, args.readSeconds * 1000);
    if (apiReads.errors + apiReads.timeouts > 0) {
      say(
        `API status reads: ${apiReads.timeouts} timed out, ${apiReads.errors} failed or answered other than AWAITING_PAYMENT (first: ${apiReads.firstError})`,
      );
    }
    const reportedReads: OursReads = {
      liveOrders: live,
      reads,
      apiReads,
      statusCacheMs: config.statusCacheMs,
      statusCacheNotifiedMs: config.statusCacheNotifiedMs,
      workerRssKb: { before: rssBeforeKb, after: rssAfterKb },
    };
    return { measurement, invariants: await checkSale(pipeline, sku, orderNos), reads: reportedReads };
  } finally {
    await stopAll(workers);
    running = [];
    await deleteReconcileSchedule(temporal, taskQueue, say);
  }
}

function sayPhase(p: PhaseMeasurement): void {
  const cpu = cpuPerOrder(p);
  const ms = (value: number | null) => (value === null ? '—' : value.toFixed(2));
  const workers = p.cpu.filter((c) => c.role === 'worker');
  say(
    `${p.kind}: ${p.orders} done at ${p.persistedPerSecond.toFixed(1)}/s (all ${p.persistedSeconds.toFixed(2)} s after the first start); ` +
      `CPU ms/order Temporal ${ms(cpu.server)}, workers ${ms(cpu.worker)}${workers.length > 1 ? ` (${workers.map((w) => ms(cpu.byProcess[w.name] ?? null)).join(' + ')})` : ''}`,
  );
}

/**
 * `readers` loops calling OrderWorkflowClient.find on random live orders for `durationMs`. Every read is
 * timed, the ones that ran out of time too (DependencyUnavailableError after the client's 10 s query
 * deadline: the API's 503 UNAVAILABLE), which are counted as timeouts. Any other failure, or an
 * answer other than AWAITING_PAYMENT from the running workflow, is an error: a wrong answer.
 */
async function readStatuses(lookup: OrderLookup, orderNos: readonly string[], readers: number, durationMs: number) {
  const tally = new ReadTally();
  const end = performance.now() + durationMs;
  const reader = async () => {
    while (performance.now() < end) {
      const orderNo = orderNos[randomInt(orderNos.length)]!;
      const found = await tally.time(lookup.find(orderNo));
      if (found === FAILED) continue;
      if (found?.view.status !== 'AWAITING_PAYMENT')
        tally.wrong(`${orderNo} answered ${found ? found.view.status : 'not found'}`);
    }
  };
  await Promise.all(Array.from({ length: readers }, reader));
  return tally.summary();
}

const FAILED = Symbol('failed');

/**
 * What both read phases record: every read timed, failures included; a read that ran out of time
 * (DependencyUnavailableError after the client's 10 s query deadline: the API's 503) is a timeout, any
 * other failure or a wrong answer an error.
 */
class ReadTally {
  private readonly t0 = performance.now();
  private readonly latencies: number[] = [];
  private timeouts = 0;
  private errors = 0;
  private firstError: string | undefined;

  /** The read's answer, or FAILED once its failure is recorded. */
  async time<T>(read: Promise<T>): Promise<T | typeof FAILED> {
    const at = performance.now();
    try {
      return await read;
    } catch (err) {
      if (err instanceof DependencyUnavailableError) this.timeouts++;
      else this.errors++;
      this.firstError ??= err instanceof Error ? err.message : String(err);
      return FAILED;
    } finally {
      this.latencies.push(performance.now() - at);
    }
  }

  wrong(description: string): void {
    this.errors++;
    this.firstError ??= description;
  }

  summary() {
    const sortedMs = sorted(this.latencies);
    return {
      reads: this.latencies.length,
      seconds: (performance.now() - this.t0) / 1000,
      p50Ms: pct(sortedMs, 50) ?? 0,
      p99Ms: pct(sortedMs, 99) ?? 0,
      maxMs: sortedMs.at(-1) ?? 0,
      timeouts: this.timeouts,
      errors: this.errors,
      firstError: this.firstError,
    };
  }
}

/** How often a shopper polls its order (the dashboard's old cadence, and a typical status page's). */
const SHOPPER_POLL_MS = 500;

/**
 * The API's read path under a shopper-like load: every live order is polled by its shopper every
 * SHOPPER_POLL_MS (phases spread evenly), so the offered rate is 2 × live orders per second; the
 * polls are served in due order by `readers` concurrent readers through one OrderStatusReader
 * (single-flight + cache, as GET /api/orders/:orderNo), so the achieved rate is capped by what the
 * readers can do when that is less. A reader that falls behind reads the next poll at once. Each
 * read is timed from the call (as the API's handler would see it, without HTTP); the sources count
 * how many reads reached Temporal (a workflow query, or Temporal then MySQL for a closed order).
 */
async function readLikeShoppers(pipeline: Pipeline, orderNos: readonly string[], readers: number, durationMs: number) {
  const bySource = Object.fromEntries(STATUS_READ_SOURCES.map((source) => [source, 0])) as Record<
    StatusReadSource,
    number
  >;
  const reader = OrderStatusReader.fromConfig(pipeline.lookup, pipeline.config, {
    statusRead: (source) => bySource[source]++,
    statusWaiters: () => undefined,
  });
  // Subscribed to order changes as every API process is, so answers are kept as long as there.
  const redis = createRedis(pipeline.config);
  const changes = reader.listener();
  let subscribed = false;
  const subscription = subscribeChannels(
    redis,
    {
      [ORDER_CHANGED_CHANNEL]: {
        message: changes.message,
        listening: (live) => {
          subscribed = live;
          changes.listening(live);
        },
      },
    },
    createLogger(pipeline.config, 'bench-pipeline'),
  );
  try {
    await waitFor(() => subscribed, { what: 'the order-change subscription', timeoutMs: 10_000 });
    // Each shopper's first poll comes right after its checkout, spread over the sale: read every
    // live order once before the timed phase, which then measures the steady state of a sale's
    // polling (a cold first read of each order is the raw figure above).
    const warmStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: readers }, async () => {
        for (let i = next++; i < orderNos.length; i = next++) await reader.read(orderNos[i]!).catch(() => null);
      }),
    );
    console.log(
      `[pipeline] API status reads: every live order read once first (its shopper's first poll), ${((performance.now() - warmStart) / 1000).toFixed(1)} s`,
    );
    for (const source of STATUS_READ_SOURCES) bySource[source] = 0;
    return await readPolls(reader, orderNos, readers, durationMs, bySource);
  } finally {
    await subscription.quit();
    await redis.quit();
  }
}

async function readPolls(
  reader: OrderStatusReader,
  orderNos: readonly string[],
  readers: number,
  durationMs: number,
  bySource: Record<StatusReadSource, number>,
) {
  const spacingMs = SHOPPER_POLL_MS / orderNos.length;
  const tally = new ReadTally();
  const t0 = performance.now();
  const end = t0 + durationMs;
  let nextPoll = 0;
  const lane = async () => {
    for (;;) {
      const poll = nextPoll++;
      const dueAt = t0 + poll * spacingMs;
      // The phase ends on time: polls still due when it ends are not read (the offered rate is what was due).
      if (dueAt >= end || performance.now() >= end) return;
      const early = dueAt - performance.now();
      if (early >= 1) await sleep(early);
      const orderNo = orderNos[poll % orderNos.length]!;
      const found = await tally.time(reader.read(orderNo));
      if (found !== FAILED && found?.view.status !== 'AWAITING_PAYMENT')
        tally.wrong(`${orderNo} answered ${found ? found.view.status : 'not found'}`);
    }
  };
  await Promise.all(Array.from({ length: readers }, lane));
  return { ...tally.summary(), offeredPerSecond: (orderNos.length * 1000) / SHOPPER_POLL_MS, bySource };
}

async function cleanup(): Promise<void> {
  await stopAll(running, 5_000);
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

await runThenCleanUp('pipeline', main, cleanup);
