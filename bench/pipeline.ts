/**
 * `npm run bench -- --pipeline [--quick] [--orders N] [--concurrency C] [--live-orders L]
 *                               [--readers R] [--read-seconds S] [--out DIR] [--profile DIR]`
 *
 * The order pipeline alone, without HTTP: what the Temporal server, the worker, MariaDB and Redis
 * do per order. On its own stack (or the servers named in the environment) with one worker
 * process, it puts a sale on sale, and for each of N orders reserves stock in Redis exactly as the
 * API does (RedisInventory.reserve) and starts its OrderWorkflow through the OrderClient, C at a
 * time. Measured: starts/s and start latency, orders persisted per second (the sale's
 * AWAITING_PAYMENT rows in MySQL, sampled until all N are there), CPU ms per order of each server
 * (its CPU during the run / N, read from /proc), then R readers calling OrderClient.find (the
 * raw cost of one status read to Temporal and the worker) on random live orders for S seconds,
 * then the API's read path: the same R readers through an OrderStatusReader (single-flight and the
 * status cache, STATUS_CACHE_MS from the environment) serving shoppers who each poll their order
 * every 500 ms (readLikeShoppers), and the worker's resident memory per live order. Then the
 * sale's invariants (docs/contract.md) are checked. The run fails (exit 1) on a violated invariant
 * or a status read answering wrong; a read that times out (the API's 503 UNAVAILABLE) is counted
 * and reported, not a failure.
 *
 * The orders are left AWAITING_PAYMENT (their 30-minute payment window is never reached): the
 * stack is thrown away, and on external servers the run's own task queue has no worker once the
 * run ends, so nothing else ever sees them.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { SalesService } from '../src/api/sales.js';
import { loadConfig, type AppConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { Store } from '../src/db/store.js';
import { createLogger } from '../src/infra/logger.js';
import { createRedis } from '../src/infra/redis.js';
import { subscribeChannels } from '../src/infra/redis-subscription.js';
import { createTemporalClient } from '../src/infra/temporal.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { ORDER_CHANGED_CHANNEL } from '../src/orders/order-changes.js';
import { waitFor } from '../src/util/wait-for.js';
import { DependencyUnavailableError } from '../src/infra/dependency-guard.js';
import { OrderClient } from '../src/orders/order-client.js';
import { OrderStatusReader, STATUS_READ_SOURCES, type StatusReadSource } from '../src/orders/order-status-reader.js';
import { newOrderNo } from '../src/orders/order-number.js';
import { startStack, type RunningStack } from '../src/stack/index.js';
import type { ManagedProcess } from '../src/stack/process.js';
import { cpuSecondsOfGroup, rssKbOfGroup } from '../src/util/cpu.js';
import { parsePipelineArgs } from './args.js';
import { watchPersisted } from './drain.js';
import { buildPipelineResult, pipelineTable, writePipelineReport, type CpuByServer, type PipelineMeasurement } from './pipeline-report.js';
import { startWorker } from './processes.js';
import { pct, sorted } from './stats.js';

const root = resolve(import.meta.dirname, '..');
const args = parsePipelineArgs(process.argv.slice(2), root);
const say = (line: string) => console.log(`[pipeline] ${line}`);

const workDir = mkdtempSync(join(tmpdir(), 'flash-pipeline-'));
let stack: RunningStack | undefined;
let worker: ManagedProcess | undefined;

/** What the benchmark drives: the same services the API uses, minus HTTP. */
interface Pipeline {
  config: AppConfig;
  store: Store;
  inventory: RedisInventory;
  orders: OrderClient;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const runId = randomBytes(3).toString('hex');
  stack = await startStack({ dataDir: join(workDir, 'stack'), ports: 'free', ephemeral: true, log: say, redisAppendfsync: args.redisAppendfsync });
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
    // Its own task queue: on shared servers, no other worker takes these orders.
    TEMPORAL_TASK_QUEUE: `bench-pipeline-${runId}`,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  };
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  const store = new Store(pool);
  const redis = createRedis(config);
  let temporal: Client | undefined;
  try {
    await migrate(pool);
    const inventory = new RedisInventory(redis);
    const sales = new SalesService(store, inventory);
    temporal = await createTemporalClient(config);
    const pipeline: Pipeline = { config, store, inventory, orders: new OrderClient(temporal, store, config.temporal.taskQueue) };
    worker = await startWorker({ root, workDir, env, ...(args.profileDir ? { profileDir: args.profileDir } : {}) });
    say(`worker ready (pid ${worker.pid}); task queue ${config.temporal.taskQueue}`);

    // Warm-up on its own SKU, never measured: JIT, connection pools, Temporal's caches.
    const warm = `PIPE-${runId}-warm`;
    await sales.create({ sku: warm, name: warm, priceCents: 1_000, stock: args.warmupOrders, perUserLimit: 1 });
    const warmWatch = watchPersisted(store, warm);
    const warmRun = await startOrders(pipeline, warm, 1_000, args.warmupOrders, args.concurrency, `${runId}-w`);
    await warmWatch.until(args.warmupOrders, warmRun.firstStartAt, warmRun.lastStartAt);
    say(`warm-up: ${args.warmupOrders} orders persisted`);

    const sku = `PIPE-${runId}`;
    const live = Math.max(args.orders, args.liveOrders);
    await sales.create({ sku, name: sku, priceCents: 1_000, stock: live, perUserLimit: 1 });
    const rssBeforeKb = rssKbOfGroup(worker.pid);
    const cpuBefore = cpuSnapshot();
    const watch = watchPersisted(store, sku);
    say(`starting ${args.orders} OrderWorkflows, ${args.concurrency} at a time`);
    const run = await startOrders(pipeline, sku, 1_000, args.orders, args.concurrency, `${runId}-m`);
    const drain = await watch.until(args.orders, run.firstStartAt, run.lastStartAt);
    const cpuAfter = cpuSnapshot();
    if (drain.orders < args.orders) throw new Error(`only ${drain.orders} of ${args.orders} orders reached MySQL within 180 s`);
    const startSeconds = Math.max(0.001, (run.lastStartAt - run.firstStartAt) / 1000);
    const startMs = sorted(run.startMs);
    say(`${args.orders} started in ${startSeconds.toFixed(2)} s; all persisted ${drain.totalSeconds.toFixed(2)} s after the first start`);

    // More live orders for the status reads when L > N (not timed).
    let orderNos = run.orderNos;
    if (live > args.orders) {
      const extraWatch = watchPersisted(store, sku);
      const extra = await startOrders(pipeline, sku, 1_000, live - args.orders, args.concurrency, `${runId}-l`);
      await extraWatch.until(live, extra.firstStartAt, extra.lastStartAt);
      orderNos = [...orderNos, ...extra.orderNos];
    }
    const rssAfterKb = rssKbOfGroup(worker.pid);
    say(`worker RSS ${Math.round(rssBeforeKb / 1024)} MiB before, ${Math.round(rssAfterKb / 1024)} MiB with ${live} live orders`);

    say(`status reads: ${args.readers} readers for ${args.readSeconds} s on ${live} live orders`);
    const reads = await readStatuses(pipeline.orders, orderNos, args.readers, args.readSeconds * 1000);
    if (reads.errors + reads.timeouts > 0) {
      say(`status reads: ${reads.timeouts} timed out, ${reads.errors} failed or answered other than AWAITING_PAYMENT (first: ${reads.firstError})`);
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

    // Exactly one workflow per order: visibility is eventually consistent, so wait (≤ 20 s) for it.
    let workflowCount = 0;
    for (let attempt = 0; attempt < 100; attempt++) {
      workflowCount = await pipeline.orders.countRunning(sku);
      if (workflowCount >= orderNos.length) break;
      await sleep(200);
    }
    const invariants = await checkSaleInvariants({ store, inventory }, { sku, perUserLimit: 1, acceptedOrderNos: orderNos, workflowCount });

    const measurement: PipelineMeasurement = {
      args,
      startsPerSecond: args.orders / startSeconds,
      persistedPerSecond: drain.ordersPerSecond,
      persistedSeconds: drain.totalSeconds,
      startP50Ms: pct(startMs, 50) ?? 0,
      startP99Ms: pct(startMs, 99) ?? 0,
      cpuSeconds: cpuSince(cpuBefore, cpuAfter),
      liveOrders: live,
      reads,
      apiReads,
      statusCacheMs: config.statusCacheMs,
      statusCacheNotifiedMs: config.statusCacheNotifiedMs,
      workerRssKb: { before: rssBeforeKb, after: rssAfterKb },
      invariants,
      elapsedMs: Date.now() - t0,
    };
    const report = buildPipelineResult(measurement);
    console.log(`\n${pipelineTable(report)}`);
    const written = writePipelineReport(report, args.outDir);
    say(`results: pipeline in ${written.latest}, copy in ${written.dated}`);
    if (!invariants.ok || reads.errors > 0 || apiReads.errors > 0) {
      const failed = Object.entries(invariants.checks).filter(([, ok]) => !ok);
      console.error(
        `[pipeline] FAILED: ${failed.length > 0 ? `invariants violated: ${failed.map(([name]) => name).join(', ')}` : ''} ${reads.errors > 0 ? `${reads.errors} status reads failed` : ''} ${apiReads.errors > 0 ? `${apiReads.errors} API status reads failed` : ''}`,
      );
      process.exitCode = 1;
    }
  } finally {
    await Promise.allSettled([store.close(), redis.quit(), temporal?.connection.close()]);
  }
}

/**
 * Reserves and starts `count` orders on the sale, `concurrency` at a time, each exactly as the
 * API's checkout does (reserve.lua, then OrderClient.start), one shopper per order. Times each
 * start (the Temporal round trip), not the reservation.
 */
async function startOrders(pipeline: Pipeline, sku: string, priceCents: number, count: number, concurrency: number, users: string) {
  const orderNos: string[] = [];
  const startMs: number[] = [];
  let next = 0;
  let firstStartAt = 0;
  let lastStartAt = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      const now = Date.now();
      const userId = `pipe-${users}-${i}`;
      const reserved = await pipeline.inventory.reserve({ orderNo: newOrderNo(now), sku, userId, quantity: 1, nowMs: now });
      if (reserved.outcome !== 'RESERVED') throw new Error(`reservation ${i} of ${sku}: ${reserved.outcome}`);
      const startedAt = performance.now();
      firstStartAt ||= Date.now();
      const started = await pipeline.orders.start({
        orderNo: reserved.orderNo,
        sku,
        userId,
        quantity: 1,
        unitPriceCents: priceCents,
        createdAt: new Date(now).toISOString(),
        paymentWindow: pipeline.config.paymentWindow,
      });
      if (started !== 'STARTED') throw new Error(`order ${reserved.orderNo}: ${started}`);
      startMs.push(performance.now() - startedAt);
      lastStartAt = Date.now();
      orderNos.push(reserved.orderNo);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { orderNos, startMs, firstStartAt, lastStartAt };
}

/**
 * `readers` loops calling OrderClient.find on random live orders for `durationMs`. Every read is
 * timed, the ones that ran out of time too (DependencyUnavailableError after the client's 10 s query
 * deadline: the API's 503 UNAVAILABLE), which are counted as timeouts. Any other failure, or an
 * answer other than AWAITING_PAYMENT from the running workflow, is an error: a wrong answer.
 */
async function readStatuses(orders: OrderClient, orderNos: readonly string[], readers: number, durationMs: number) {
  const tally = new ReadTally();
  const end = performance.now() + durationMs;
  const reader = async () => {
    while (performance.now() < end) {
      const orderNo = orderNos[randomInt(orderNos.length)]!;
      const found = await tally.time(orders.find(orderNo));
      if (found === FAILED) continue;
      if (found?.live?.status !== 'AWAITING_PAYMENT') {
        tally.wrong(`${orderNo} answered ${found ? found.view.status : 'not found'}${found?.live ? '' : ' (not live)'}`);
      }
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
  const bySource = Object.fromEntries(STATUS_READ_SOURCES.map((source) => [source, 0])) as Record<StatusReadSource, number>;
  const reader = OrderStatusReader.fromConfig(pipeline.orders, pipeline.config, {
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
      if (found !== FAILED && found?.view.status !== 'AWAITING_PAYMENT') tally.wrong(`${orderNo} answered ${found ? found.view.status : 'not found'}`);
    }
  };
  await Promise.all(Array.from({ length: readers }, lane));
  return { ...tally.summary(), offeredPerSecond: (orderNos.length * 1000) / SHOPPER_POLL_MS, bySource };
}

/** CPU seconds so far of the servers this run started (null for external ones) and the worker. */
function cpuSnapshot(): CpuByServer {
  const of = (proc: { pid: number } | undefined) => (proc ? cpuSecondsOfGroup(proc.pid) : null);
  return {
    server: of(stack?.servers.temporal?.process),
    worker: of(worker),
    mysql: of(stack?.servers.mysql?.process),
    redis: of(stack?.servers.redis?.process),
  };
}

function cpuSince(before: CpuByServer, after: CpuByServer): CpuByServer {
  const delta = (key: keyof CpuByServer) => {
    const [a, b] = [after[key], before[key]];
    return a === null || b === null ? null : a - b;
  };
  return { server: delta('server'), worker: delta('worker'), mysql: delta('mysql'), redis: delta('redis') };
}

async function cleanup(): Promise<void> {
  await worker?.stop(5_000);
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
try {
  await main();
} catch (err) {
  console.error('[pipeline] failed:', err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
