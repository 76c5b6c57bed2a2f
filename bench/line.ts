/**
 * `npm run bench -- --line [--shoppers N] [--rate R] [--stock S] [--join-seconds J] [--pre-start-seconds P]
 * [--connections C] [--plain-requests N] [--plain-stock S] [--checkout-wins K] [--admission-ttl S] [--out DIR]`:
 * the waiting line under a burst (issue 49, "Measured, in the benchmark"), on the stack the other modes start, with
 * the API and worker as the burst runs them (bench/processes.ts), the line's and the checkout's rate limits off (all
 * traffic comes from 127.0.0.1).
 *
 * On the same keep-alive connections (toolkit/http-client.ts), in turn:
 *   plain       a short checkout burst on a sale without a line: its req/s is what the joins are held against
 *   wins        K winning checkouts on a sale without a line, then K admitted ones on a sale with a line: the API's
 *               CPU per checkout answer, line mode against plain
 *   line        N shoppers join a sale's line over J s, the first P s before its start (the shuffled pre-queue), poll
 *               as their Retry-After says, check out when admitted, stop at SOLD_OUT (bench/line-run.ts)
 * Each sale's orders reach MySQL before the next phase, and every sale's invariants are checked at the end (a broken
 * one, a shopper admitted twice or a sold-out not told fails the run). Figures (bench/line-report.ts): joins/s and
 * their latency against the plain burst, the admission rate against its setting, the ETA's error, the pre-queue's
 * order against arrival (Spearman) and against the published seed, the sold-out seen by everyone waiting, the API's
 * CPU per join, per waiting shopper and minute, and per checkout. Writes bench/results/line.json and line.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus as machineCpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShopperAuth } from '../src/api/auth.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { checkSaleInvariants, type InvariantReport } from '../src/invariants/check.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import { SalesService, type NewSale } from '../src/sales/sales-service.js';
import { startStack, type RunningStack } from '../stack/index.js';
import { runThenCleanUp } from '../stack/launcher.js';
import { cpuSecondsOfGroup } from '../stack/cpu.js';
import type { ManagedProcess } from '../stack/process.js';
import { planCpuLayouts, reniceGroup } from './cpu-layout.js';
import { watchPersisted } from './drain.js';
import { parseLineArgs } from './line-args.js';
import { HttpClient, type Answer } from '../toolkit/http-client.js';
import { lineFigures, parseBatch, spread, writeLineReport, type Batch, type BurstFigures } from './line-report.js';
import { codeOf, runLine } from './line-run.js';
import {
  awaitingOrders,
  describePaymentPhase,
  payWithinSpread,
  saleSettling,
  type PaymentPhaseResult,
} from './payments.js';
import { startVariant } from './processes.js';
import { fmt, round } from './stats.js';
import { runningOrderWorkflows } from './visibility.js';

const root = resolve(import.meta.dirname, '..');
const args = parseLineArgs(process.argv.slice(2), root);
const say = (line: string) => console.log(`[line] ${line}`);

const workDir = mkdtempSync(join(tmpdir(), 'flash-line-'));
let stack: RunningStack | undefined;
const processes: ManagedProcess[] = [];
let http: HttpClient | undefined;

interface LineViewAnswer {
  state: string;
  seed: string | null;
  seedHash: string;
  soldOutAt: string | null;
  admitted: number;
  consumed: number;
  givenBack: number;
  startsAt: string | null;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const runId = randomBytes(3).toString('hex');
  // The shared layout, as the burst's default: the pipeline behind the front door at a lower priority.
  const shared = planCpuLayouts(['shared']).get('shared')!;
  // LINE_BENCH_BACK_NICE=0: the worker at the front door's priority, on a machine busy with other work (where a worker
  // at nice 10 may not even start in time).
  const cpus = { ...shared, backNice: Number(process.env.LINE_BENCH_BACK_NICE ?? shared.backNice) };
  stack = await startStack({
    dataDir: join(workDir, 'stack'),
    ports: 'free',
    ephemeral: true,
    log: say,
    redisAppendfsync: args.redisAppendfsync,
  });
  for (const [role, server] of Object.entries(stack.servers))
    if (server.process) reniceGroup(server.process.pid, role === 'redis' ? 0 : cpus.backNice);
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
    TEMPORAL_TASK_QUEUE: `line-${runId}`,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    AUTH_DEV_LOGIN: 'false',
    SHUTDOWN_DRAIN: '0s',
    // Every request comes from 127.0.0.1: the per-address and per-subnet budgets would measure themselves.
    RATE_LIMIT_CHECKOUT: 'off',
    RATE_LIMIT_LINE: 'off',
    RATE_LIMIT_LINE_IP: 'off',
    RATE_LIMIT_LINE_SUBNET: 'off',
  };
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  const stores = openStores(pool);
  const redis = createRedis(config);
  await migrate(pool);
  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const sales = SalesService.onClients(stores, redis, config.temporal.taskQueue);
  const auth = new ShopperAuth(config);
  const invariants: Record<string, InvariantReport> = {};
  try {
    say(`signing ${args.shoppers} shopper tokens`);
    const userIds = Array.from({ length: args.shoppers }, (_, i) => `line-${runId}-u${i}`);
    const tokens = await Promise.all(userIds.map((id) => auth.issue(id)));
    const servers = await startVariant('ours', { root, workDir, env, cpus });
    processes.push(...servers.processes);
    const api = servers.processes.find((p) => p.name === 'api');
    if (!api) throw new Error('no API process');
    const apiCpu = () => cpuSecondsOfGroup(api.pid);
    http = new HttpClient(servers.url, { connections: args.connections });
    const client = http;
    const probe = new HttpClient(servers.url, { connections: 1 });

    const create = async (sku: string, stock: number, extra: Partial<NewSale> = {}) =>
      sales.create({ sku, name: sku, priceCents: 1_000, stock, perUserLimit: 1, ...extra });
    const lineView = async (sku: string): Promise<LineViewAnswer> => {
      const answer = await probe.request('GET', `/api/sales/${encodeURIComponent(sku)}/line`);
      if (answer.status !== 200) throw new Error(`GET line of ${sku}: ${answer.status} ${answer.body}`);
      return JSON.parse(answer.body) as LineViewAnswer;
    };
    /**
     * Until every order of the sale is in MySQL (each accepted one, and any a checkout answered 503 for after Redis
     * reserved it: as many as Redis holds reserved); then its invariants.
     */
    const settle = async (sku: string, accepted: string[], firstWinAt: number, lastWinAt: number) => {
      const reserved = (await inventory.getSale(sku))?.reserved ?? 0;
      const drain = await watchPersisted(stores, sku).until(Math.max(accepted.length, reserved), firstWinAt, lastWinAt);
      const report = await checkSaleInvariants(
        { stores, inventory },
        { sku, perUserLimit: 1, acceptedOrderNos: accepted },
      );
      invariants[sku] = report;
      say(
        `${sku}: ${drain.orders} orders in MySQL ${fmt(drain.seconds, 1)} s after the last win; invariants ${Object.entries(
          report.checks,
        )
          .map(([name, ok]) => `${name}=${ok}`)
          .join(' ')}`,
      );
    };

    // Warm-up, never measured: the checkout and the line's routes, JIT, pools.
    say('warm-up');
    const warm = `LINE-${runId}-warm`;
    await create(warm, 20);
    const warmShot = await checkoutBurst(client, warm, tokens.slice(0, Math.min(500, tokens.length)), apiCpu);
    const warmLine = `LINE-${runId}-warm-line`;
    const warmWins = await lineWins(client, warmLine, tokens.slice(0, Math.min(200, tokens.length)), create, apiCpu);
    await settle(warm, warmShot.accepted, warmShot.firstWinAt, warmShot.lastWinAt);
    await settle(warmLine, warmWins.accepted, warmWins.firstWinAt, warmWins.lastWinAt);

    // The plain burst: the req/s the joins are held against.
    const plainSku = `LINE-${runId}-plain`;
    await create(plainSku, args.plainStock);
    say(`plain burst: ${args.plainRequests} checkouts, stock ${args.plainStock}, ${args.connections} connections`);
    const plainTokens = Array.from({ length: args.plainRequests }, (_, i) => tokens[i % tokens.length]!);
    const plain = await checkoutBurst(client, plainSku, plainTokens, apiCpu);
    say(
      `plain: ${fmt(plain.figures.rps, 0)} req/s, p50 ${fmt(plain.figures.latencyMs.p50)} ms, p99 ${fmt(plain.figures.latencyMs.p99)} ms, ${plain.figures.apiCpuUsPerAnswer} µs API CPU per answer ${JSON.stringify(plain.figures.statuses)}`,
    );
    await settle(plainSku, plain.accepted, plain.firstWinAt, plain.lastWinAt);

    // The checkout's CPU per answer: K wins without a line, then K admitted wins with one.
    const winTokens = tokens.slice(0, Math.min(args.checkoutWins, tokens.length));
    const plainWinSku = `LINE-${runId}-plain-wins`;
    await create(plainWinSku, winTokens.length);
    const plainWins = await checkoutBurst(client, plainWinSku, winTokens, apiCpu);
    const lineWinSku = `LINE-${runId}-line-wins`;
    const lineWinShot = await lineWins(client, lineWinSku, winTokens, create, apiCpu);
    say(
      `checkout CPU per answer: line wins ${lineWinShot.figures.apiCpuUsPerAnswer} µs, plain wins ${plainWins.figures.apiCpuUsPerAnswer} µs`,
    );
    await settle(plainWinSku, plainWins.accepted, plainWins.firstWinAt, plainWins.lastWinAt);
    await settle(lineWinSku, lineWinShot.accepted, lineWinShot.firstWinAt, lineWinShot.lastWinAt);

    // The line.
    const sku = `LINE-${runId}-line`;
    const joinMs = args.joinSeconds * 1_000;
    const joinsBeganAt = Date.now() + 500;
    const startsMs = joinsBeganAt + Math.round(args.preStartSeconds * 1_000);
    await create(sku, args.stock, {
      startsAt: new Date(startsMs).toISOString(),
      line: { admissionsPerSecond: args.rate, admissionTtlSeconds: args.admissionTtlSeconds },
    });
    say(
      `line: ${args.shoppers} shoppers join over ${args.joinSeconds} s, the sale starts ${args.preStartSeconds} s in; stock ${args.stock}, ${args.rate} admissions/s`,
    );
    // Admission batches are read as the line sells out: an unspent one is given back, and its record dropped, after
    // the TTL.
    const batches = new Map<string, Batch>();
    const readBatches = async () => {
      for (const member of await redis.zrange(saleKeys(sku).lineBatches, 0, -1)) {
        const batch = parseBatch(member);
        if (batch) batches.set(member, batch);
      }
    };
    let sampling = true;
    let lastView: LineViewAnswer | undefined;
    const sampler = (async () => {
      await sleep(Math.max(0, joinsBeganAt - Date.now()));
      while (sampling) {
        lastView = await lineView(sku);
        if (lastView.state !== 'PRE_QUEUE') await readBatches();
        await sleep(250);
      }
    })();
    const cpu = { atJoinsBegan: 0, atJoinsDone: 0, atDone: 0 };
    const loadgenBefore = process.cpuUsage();
    setTimeout(() => (cpu.atJoinsBegan = apiCpu()), Math.max(0, joinsBeganAt - Date.now()));
    const progress = setInterval(
      () =>
        say(
          `  line ${lastView?.state ?? '?'}: admitted ${lastView?.admitted ?? 0}, consumed ${lastView?.consumed ?? 0}; sent ${client.sent}, in flight ${client.busy}, queued ${client.waiting}`,
        ),
      5_000,
    );
    const run = await runLine({
      pool: client,
      sku,
      tokens,
      joinsBeganAt,
      joinMs,
      // The admissions take stock/rate seconds from the start; then every waiting shopper reads SOLD_OUT within 20 s.
      afterJoinsMs: Math.max(0, startsMs - Date.now()) + (args.stock / args.rate) * 2_000 + 90_000,
      hardDeadline: Date.now() + 15 * 60_000,
      onJoinsDone: () => (cpu.atJoinsDone = apiCpu()),
    });
    cpu.atDone = apiCpu();
    clearInterval(progress);
    const loadgen = process.cpuUsage(loadgenBefore);
    sampling = false;
    await sampler;
    await readBatches();
    const view = await lineView(sku);
    if (!run.complete) say(`deadline: not every shopper was done (${JSON.stringify(run.otherStates)})`);
    await settle(sku, run.accepted, run.firstWinAt, run.lastWinAt);
    const figures = lineFigures({
      sku,
      run,
      userIds,
      startsMs,
      rate: args.rate,
      stock: args.stock,
      plainRps: plain.figures.rps,
      batches: [...batches.values()],
      line: view,
      cpu,
    });
    probe.close();
    // The line's winners pay while the rest of the window runs, as the burst's do without a line (bench/burst.ts).
    let payments: PaymentPhaseResult | undefined;
    if (args.payWithinSeconds > 0) {
      const worker = servers.processes.find((p) => p.name === 'worker');
      const running = await runningOrderWorkflows(config);
      payments = await payWithinSpread({
        url: servers.url,
        orders: await awaitingOrders(stores, sku),
        withinMs: args.payWithinSeconds * 1_000,
        webhookSecret: config.webhookSecret,
        taskQueue: config.temporal.taskQueue,
        tokenOf: (userId) => auth.issue(userId),
        runId,
        ...(servers.workerMetricsUrl ? { workerMetricsUrl: servers.workerMetricsUrl } : {}),
        cpuSeconds: () => ({ api: apiCpu(), ...(worker ? { worker: cpuSecondsOfGroup(worker.pid) } : {}) }),
        settling: saleSettling(stores, inventory, sku, running.count),
        say,
      }).finally(() => running.close());
      say(`payment phase: ${describePaymentPhase(payments)}`);
    }

    const ok =
      Object.values(invariants).every((r) => r.ok) &&
      figures.admittedOnce.ok &&
      figures.soldOut.ok &&
      figures.complete &&
      figures.preQueue.seedHashMatches &&
      figures.preQueue.orderMismatches === 0;
    const report = {
      date: new Date().toISOString(),
      node: process.version,
      cpu: `${machineCpus()[0]?.model ?? 'unknown CPU'} × ${machineCpus().length}`,
      settings: {
        shoppers: args.shoppers,
        rate: args.rate,
        stock: args.stock,
        joinSeconds: args.joinSeconds,
        preStartSeconds: args.preStartSeconds,
        connections: args.connections,
        plainRequests: args.plainRequests,
        plainStock: args.plainStock,
        checkoutWins: winTokens.length,
        admissionTtlSeconds: args.admissionTtlSeconds,
        loadAverage: readFileSync('/proc/loadavg', 'utf8').trim(),
      },
      seconds: round((Date.now() - t0) / 1_000, 1),
      plain: plain.figures,
      checkoutCpu: {
        plainWins: plainWins.figures,
        lineWins: lineWinShot.figures,
        lineOverPlain:
          plainWins.figures.apiCpuUsPerAnswer > 0
            ? round(lineWinShot.figures.apiCpuUsPerAnswer / plainWins.figures.apiCpuUsPerAnswer, 2)
            : null,
      },
      line: {
        ...figures,
        loadgenCpuSeconds: round((loadgen.user + loadgen.system) / 1e6, 2),
        invariants: invariants[sku],
      },
      ...(payments ? { payments } : {}),
      invariants: Object.fromEntries(Object.entries(invariants).map(([name, r]) => [name, { ...r.checks, ok: r.ok }])),
      ok,
    };
    console.log(
      `\n${JSON.stringify({ plain: report.plain, checkoutCpu: report.checkoutCpu, line: figures }, null, 2)}\n`,
    );
    console.log(writeLineReport(report, args.outDir));
    say(`results in ${join(args.outDir, 'line.json')} and line.md`);
    if (!ok) {
      console.error(
        '[line] A CHECK FAILED: see "ok" in line.json (invariants, admittedOnce, soldOut, preQueue, complete)',
      );
      process.exitCode = 1;
    }
  } finally {
    await Promise.allSettled([pool.end(), redis.quit()]);
  }
}

interface Shot {
  figures: BurstFigures;
  accepted: string[];
  firstWinAt: number;
  lastWinAt: number;
}

/**
 * One checkout per token, all at once over the pool's connections (at most that many in flight); with `admissions`,
 * each carries its own (header Admission-Token).
 */
async function checkoutBurst(
  client: HttpClient,
  sku: string,
  tokens: readonly string[],
  apiCpu: () => number,
  admissions?: readonly string[],
): Promise<Shot> {
  const body = JSON.stringify({ sku, quantity: 1 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const accepted: string[] = [];
  let firstWinAt = 0;
  let lastWinAt = 0;
  let firstSentAt = Number.POSITIVE_INFINITY;
  let lastDoneAt = 0;
  const cpuBefore = apiCpu();
  await Promise.all(
    tokens.map(async (token, i) => {
      const answer: Answer = await client.request('POST', '/api/checkout', {
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          ...(admissions ? { 'admission-token': admissions[i]! } : {}),
        },
        body,
      });
      firstSentAt = Math.min(firstSentAt, answer.sentAt);
      lastDoneAt = Math.max(lastDoneAt, answer.doneAt);
      latencies.push(answer.doneAt - answer.sentAt);
      const key = answer.status === 202 ? '202' : `${answer.status} ${codeOf(answer.body)}`;
      statuses[key] = (statuses[key] ?? 0) + 1;
      if (answer.status === 202) {
        accepted.push((JSON.parse(answer.body) as { orderNo: string }).orderNo);
        lastWinAt = answer.doneAt;
        if (!firstWinAt) firstWinAt = answer.doneAt;
      }
    }),
  );
  const cpu = apiCpu() - cpuBefore;
  const seconds = Math.max(0.001, (lastDoneAt - firstSentAt) / 1_000);
  return {
    figures: {
      requests: tokens.length,
      seconds: round(seconds, 2),
      rps: round(tokens.length / seconds, 0),
      latencyMs: spread(latencies),
      statuses,
      won: accepted.length,
      apiCpuSeconds: round(cpu, 2),
      apiCpuUsPerAnswer: round((cpu * 1e6) / tokens.length, 0),
    },
    accepted,
    firstWinAt,
    lastWinAt,
  };
}

/**
 * A sale with a line admitting (almost) at once, as many units as shoppers: each joins and reads its place until
 * admitted (not measured), then all check out at once with their admissions (measured as checkoutBurst does).
 */
async function lineWins(
  client: HttpClient,
  sku: string,
  tokens: readonly string[],
  create: (sku: string, stock: number, extra?: Partial<NewSale>) => Promise<unknown>,
  apiCpu: () => number,
): Promise<Shot> {
  await create(sku, tokens.length, { line: { admissionsPerSecond: 100_000 } });
  const path = `/api/sales/${encodeURIComponent(sku)}/line`;
  const admissions: string[] = [];
  await Promise.all(
    tokens.map(async (token, i) => {
      const headers = { authorization: `Bearer ${token}` };
      let joined = false;
      for (let attempt = 0; attempt < 60; attempt++) {
        const answer = joined
          ? await client.request('GET', `${path}/me`, { headers })
          : await client.request('POST', path, { headers });
        // Redis slow to answer on a busy machine: asked again, as a shopper would.
        if (answer.status === 503 || answer.status === 0) {
          await sleep((answer.retryAfter ?? 1) * 1_000);
          continue;
        }
        if (answer.status !== 200) throw new Error(`${sku}: join or read answered ${answer.status} ${answer.body}`);
        joined = true;
        const place = JSON.parse(answer.body) as { state: string; admission: { token: string } | null };
        if (place.state === 'ADMITTED' && place.admission) {
          admissions[i] = place.admission.token;
          return;
        }
        await sleep(300);
      }
      throw new Error(`${sku}: shopper ${i} not admitted after 60 joins and reads`);
    }),
  );
  return checkoutBurst(client, sku, tokens, apiCpu, admissions);
}

async function cleanup(): Promise<void> {
  http?.close();
  for (const proc of processes) await proc.stop(5_000);
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

await runThenCleanUp('line', main, cleanup);
