/**
 * `npm run bench -- --front-door [--rounds N] [--requests N] [--rate R] [--connections N] [--classes a,b] [--profile
 * DIR] [--out DIR]`: what one request costs the process that answers it, per request class, ours against the queue
 * server (seed 000's Redis-list design) and the constant server, in interleaved rounds.
 *
 *   sold-out  POST /api/checkout on a sold-out sale, a new shopper each time (the bulk of a burst)
 *   win       POST /api/checkout that reserves a unit, a new shopper each time
 *   read      GET /api/orders/:orderNo of an order awaiting payment, by its shopper (ours; the
 *             constant server answers a constant order)
 *   webhook   POST /api/payments/webhook, the first delivery of a signed payment (ours; the
 *             constant server answers APPLIED)
 *
 * The answering processes run on the first CPU and everything else (the stack, the worker, the queue's consumer, this
 * load generator) on the second, so a server's CPU seconds are its own. Every server gets the same offered load
 * (`--rate` requests a second, below what each can take): a process's CPU per request depends on how many requests each
 * turn of its event loop handles. Figures: CPU microseconds per answered request of the answering process (from /proc,
 * steadier than latencies), req/s, p50 and p99; ratios to the queue server and the constant server within each round.
 * Webhooks are not rate-limited here (RATE_LIMIT_WEBHOOK=off): their cost is measured. With --profile, each class then
 * runs once more on a fresh API under V8's profiler, and bench/profile-summary.ts reports where its CPU went.
 *
 * Writes bench/results/front-door.json and front-door.md (or into --out).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ShopperAuth } from '../src/api/auth.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { SalesService } from '../src/sales/sales-service.js';
import { startStack, type RunningStack } from '../stack/index.js';
import { runThenCleanUp } from '../stack/launcher.js';
import { cpuSecondsOfGroup } from '../stack/cpu.js';
import type { ManagedProcess } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { pinGroup, pinProcess, planCpuLayouts } from './cpu-layout.js';
import { startVariant, type VariantServers } from './processes.js';
import { summariseProfile, type ProfileSummary } from './profile-summary.js';
import { fmt, pct, sorted } from './stats.js';
import { HttpClient, httpCall } from '../toolkit/http-client.js';

/**
 * In the order each round runs them: those that need a quiet pipeline first (a win is a promise the pipeline then works
 * on).
 */
const CLASSES = ['webhook', 'read', 'sold-out', 'win'] as const;
type RequestClass = (typeof CLASSES)[number];
const SERVERS = ['ours', 'queue', 'ceiling'] as const;
type ServerName = (typeof SERVERS)[number];
/** Which servers answer each class: the queue design has no order reads nor webhooks. */
const SERVED: Record<RequestClass, readonly ServerName[]> = {
  'sold-out': ['ours', 'queue', 'ceiling'],
  win: ['ours', 'queue', 'ceiling'],
  read: ['ours', 'ceiling'],
  webhook: ['ours', 'ceiling'],
};

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--front-door'),
  options: {
    rounds: { type: 'string', default: '3' },
    requests: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '64' },
    profile: { type: 'string' },
    out: { type: 'string' },
    /** A comma-separated subset of the classes, e.g. `sold-out,win` (default: all). */
    classes: { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const selectedClasses: readonly RequestClass[] = args.classes
  ? args.classes.split(',').map((name) => {
      if (!(CLASSES as readonly string[]).includes(name))
        throw new Error(`--classes: ${name} is none of ${CLASSES.join(', ')}`);
      return name as RequestClass;
    })
  : CLASSES;
const needsOrders = selectedClasses.includes('read') || selectedClasses.includes('webhook');
const checkoutRequests = Number(args.requests);
const connections = Number(args.connections);
const rate = Number(args.rate);
/** Reads and webhooks need orders made beforehand: fewer of them. */
const requestsOf: Record<RequestClass, number> = {
  'sold-out': checkoutRequests,
  // Each is an order the pipeline then starts and persists (tens a second here): a third as many.
  win: Math.ceil(checkoutRequests / 3),
  read: Math.ceil(checkoutRequests / 2),
  webhook: Math.ceil(checkoutRequests / 20),
};
/**
 * The offered load per class: a webhook pays an order (an Update, then the worker's activities),
 * which the pipeline absorbs at ~70 a second on two cores; faster, the API's own retries of the
 * deliveries still waiting would be measured instead of a webhook.
 */
const rateOf: Record<RequestClass, number> = {
  'sold-out': rate,
  win: rate,
  read: rate,
  webhook: Math.max(1, Math.floor(rate / 50)),
};
/** Reads cycle over this many orders: a shopper polls its order; the first read of each is the costly one. */
const READ_ORDERS = 500;
const outDir = resolve(args.out ?? join(root, 'bench', 'results'));
const profileDir = args.profile ? resolve(args.profile) : undefined;
const say = (line: string) => console.log(`[front-door] ${line}`);

interface Measurement {
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** CPU microseconds of the answering process per answered request. */
  cpuUsPerRequest: number;
  answered: number;
  /** Answers by status, so a class that did not answer as meant shows it. */
  statuses: Record<string, number>;
}

const workDir = mkdtempSync(join(tmpdir(), 'flash-front-door-'));
let stack: RunningStack | undefined;
const started: ManagedProcess[] = [];

async function main(): Promise<void> {
  const cpus = planCpuLayouts(['split'])?.get('split');
  if (!cpus) throw new Error('the front-door benchmark needs two CPUs and taskset');
  stack = await startStack({ dataDir: join(workDir, 'stack'), ports: 'free', ephemeral: true, log: say });
  const runId = Math.random().toString(36).slice(2, 8);
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
    TEMPORAL_TASK_QUEUE: `front-door-${runId}`,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    AUTH_DEV_LOGIN: 'false',
    SHUTDOWN_DRAIN: '0s',
    RATE_LIMIT_WEBHOOK: 'off',
  };
  // Everything but the answering servers on the second CPU; processes.ts puts those on the first.
  pinProcess(process.pid, cpus.back);
  for (const server of Object.values(stack.servers)) if (server.process) pinGroup(server.process.pid, cpus.back);
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  const stores = openStores(pool);
  const redis = createRedis(config);
  await migrate(pool);
  const sales = SalesService.onClients(stores, redis, config.temporal.taskQueue);
  const auth = new ShopperAuth(config);
  try {
    const servers = new Map<ServerName, VariantServers>();
    for (const name of SERVERS) {
      const variant = await startVariant(name, { root, workDir, env, cpus });
      started.push(...variant.processes);
      servers.set(name, variant);
    }
    const answering = (name: ServerName): ManagedProcess => {
      const variant = servers.get(name);
      const proc = variant?.processes.find((p) => p.name === 'api' || p.name === `bench-${name}`);
      if (!proc) throw new Error(`no answering process for ${name}`);
      return proc;
    };

    // One sale per server and class, so that each round meets the same state.
    const soldOut = new Map<ServerName, string>();
    for (const name of SERVERS) {
      const sku = `FD-${runId}-${name}-soldout`;
      await sales.create({ sku, name: sku, priceCents: 1_000, stock: 1, perUserLimit: 1 });
      await httpCall(
        'POST',
        `${servers.get(name)?.url}/api/checkout`,
        checkoutInit(await auth.issue(`fd-${runId}-first-${name}`), sku),
      );
      soldOut.set(name, sku);
    }
    const winSku = `FD-${runId}-win`;
    await sales.create({ sku: winSku, name: winSku, priceCents: 1_000, stock: 10_000_000, perUserLimit: 1 });
    // A new shopper for every win and sold-out request of every round (the per-shopper budget is on).
    let shopper = 0;
    const freshTokens = (n: number) =>
      Promise.all(Array.from({ length: n }, () => auth.issue(`fd-${runId}-u${shopper++}`)));

    // Orders awaiting payment for the reads and the webhooks, made through ours and persisted.
    // Every webhook of every server pays an order of its own (the constant server's are not paid, but
    // taking them keeps each round's plan alike), and the reads cycle over the first READ_ORDERS.
    const orderCount = needsOrders
      ? requestsOf.webhook * SERVED.webhook.length * (rounds + (profileDir ? 1 : 0)) + READ_ORDERS
      : 0;
    const orderSku = `FD-${runId}-orders`;
    const orders: Array<{ orderNo: string; token: string }> = [];
    if (needsOrders) {
      say(`placing ${orderCount} orders for the reads and webhooks`);
      await sales.create({ sku: orderSku, name: orderSku, priceCents: 1_000, stock: orderCount, perUserLimit: 1 });
    }
    for (const token of await freshTokens(orderCount)) {
      const reply = await httpCall('POST', `${servers.get('ours')?.url}/api/checkout`, checkoutInit(token, orderSku));
      const placed = reply.json as { orderNo?: string } | undefined;
      if (!placed?.orderNo)
        throw new Error(`placing an order: ${reply.status} ${reply.failure?.message ?? reply.body}`);
      orders.push({ orderNo: placed.orderNo, token });
    }
    await waitFor(
      async () => ((await stores.reports.saleStockFigures(orderSku))?.units.AWAITING_PAYMENT ?? 0) === orderCount,
      {
        what: `${orderCount} orders awaiting payment`,
        timeoutMs: 600_000,
        intervalMs: 1_000,
      },
    );
    let paidSoFar = 0;
    /** Orders ours accepted on the win sale: what the pipeline has to persist before the next round. */
    let oursWins = 0;
    const nextOrdersToPay = (n: number) => orders.slice(paidSoFar, (paidSoFar += n));

    const load = async (name: ServerName, klass: RequestClass, warm = false): Promise<Measurement> => {
      const url = servers.get(name)?.url ?? '';
      const amount = warm ? Math.min(1_000, requestsOf[klass]) : requestsOf[klass];
      const plan = await requestPlan(klass, amount, {
        url,
        sku: klass === 'sold-out' ? (soldOut.get(name) ?? '') : winSku,
      });
      const proc = answering(name);
      const cpuBefore = cpuSecondsOfGroup(proc.pid);
      const measured = await fire(plan, amount, rateOf[klass]);
      if (name === 'ours' && klass === 'win') oursWins += measured.statuses['202'] ?? 0;
      return {
        ...measured,
        cpuUsPerRequest: ((cpuSecondsOfGroup(proc.pid) - cpuBefore) * 1e6) / Math.max(1, measured.answered),
      };
    };

    /** What each request of a class sends: its path, body and headers, rotated per request. */
    const requestPlan = async (
      klass: RequestClass,
      amount: number,
      target: { url: string; sku: string },
    ): Promise<Plan> => {
      if (klass === 'sold-out' || klass === 'win') {
        const tokens = await freshTokens(amount);
        return {
          url: target.url,
          method: 'POST',
          requests: tokens.map((token) => ({ path: '/api/checkout', ...checkoutInit(token, target.sku) })),
        };
      }
      if (klass === 'read') {
        return {
          url: target.url,
          method: 'GET',
          requests: Array.from({ length: amount }, (_, i) => {
            const order = orders[i % Math.min(READ_ORDERS, orders.length)]!;
            return { path: `/api/orders/${order.orderNo}`, headers: { authorization: `Bearer ${order.token}` } };
          }),
        };
      }
      return {
        url: target.url,
        method: 'POST',
        requests: nextOrdersToPay(amount).map((order, i) => {
          const body = JSON.stringify({
            eventId: `evt_fd_${runId}_${paidSoFar}_${i}`,
            type: 'payment.succeeded',
            orderNo: order.orderNo,
            amountCents: 1_000,
          });
          return {
            path: '/api/payments/webhook',
            body,
            headers: {
              'content-type': 'application/json',
              'payment-signature': signWebhook(config.webhookSecret, body),
            },
          };
        }),
      };
    };

    /** Until the pipeline has persisted every win so far: reads and webhooks meet a quiet worker, as between sales. */
    const untilPipelineQuiet = async () => {
      await waitFor(
        async () => ((await stores.reports.saleStockFigures(winSku))?.units.AWAITING_PAYMENT ?? 0) >= oursWins,
        {
          what: `the pipeline to persist ${oursWins} wins`,
          timeoutMs: 900_000,
          intervalMs: 1_000,
        },
      );
    };

    // Warm-up: JIT, pools, caches (and the sold-out flag), never measured.
    for (const klass of selectedClasses)
      for (const name of SERVED[klass]) if (klass !== 'webhook') await load(name, klass, true);

    const results: Record<RequestClass, Partial<Record<ServerName, Measurement[]>>> = {
      'sold-out': {},
      win: {},
      read: {},
      webhook: {},
    };
    for (let round = 1; round <= rounds; round++) {
      await untilPipelineQuiet();
      for (const klass of selectedClasses) {
        // Interleaved: the servers' order turns each round.
        const order = [
          ...SERVED[klass].slice(round % SERVED[klass].length),
          ...SERVED[klass].slice(0, round % SERVED[klass].length),
        ];
        for (const name of order) {
          const m = await load(name, klass);
          (results[klass][name] ??= []).push(m);
          say(
            `round ${round} ${klass} ${name}: ${fmt(m.rps, 0)} req/s, ${fmt(m.cpuUsPerRequest, 0)} µs CPU/request, p99 ${fmt(m.p99Ms)} ms ${JSON.stringify(m.statuses)}`,
          );
        }
      }
    }

    let profiles: Partial<Record<RequestClass, Partial<Record<ServerName, ProfileSummary>>>> | undefined;
    if (profileDir) profiles = await profileClasses();

    const report = buildReport(results, profiles);
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'front-door.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(outDir, 'front-door.md'), renderReport(report));
    console.log(`\n${renderReport(report)}`);
    say(`results in ${join(outDir, 'front-door.json')} and front-door.md`);

    /** Each class on fresh servers under --cpu-prof, once per server; the summary of where their CPU went. */
    async function profileClasses(): Promise<
      Partial<Record<RequestClass, Partial<Record<ServerName, ProfileSummary>>>>
    > {
      const summaries: Partial<Record<RequestClass, Partial<Record<ServerName, ProfileSummary>>>> = {};
      for (const klass of selectedClasses) {
        for (const name of SERVED[klass]) {
          const dir = join(profileDir!, klass, name);
          rmSync(dir, { recursive: true, force: true });
          mkdirSync(dir, { recursive: true });
          for (const proc of servers.get(name)?.processes ?? []) await proc.stop();
          const variant = await startVariant(name, { root, workDir, env, cpus, profileDir: dir });
          started.push(...variant.processes);
          servers.set(name, variant);
          const server = answering(name);
          say(`profiling ${klass} on ${name}`);
          let measuredMs = 0;
          let endedAt = 0;
          try {
            if (klass !== 'webhook') await load(name, klass, true);
            const runAt = Date.now();
            await load(name, klass);
            endedAt = Date.now();
            measuredMs = endedAt - runAt;
          } finally {
            for (const proc of variant.processes) await proc.stop();
          }
          const afterMs = Date.now() - endedAt;
          // The answering process's main thread (thread 0); its other threads and the worker's are left out.
          const file = readdirSync(dir).find((f) => f.includes(`.${server.pid}.0.`) && f.endsWith('.cpuprofile'));
          if (!file) throw new Error(`no CPU profile of ${name} (pid ${server.pid}) in ${dir}`);
          (summaries[klass] ??= {})[name] = summariseProfile(join(dir, file), requestsOf[klass], {
            measuredMs,
            afterMs,
          });
          // Back to an unprofiled server for the next class.
          const fresh = await startVariant(name, { root, workDir, env, cpus });
          started.push(...fresh.processes);
          servers.set(name, fresh);
        }
      }
      return summaries;
    }
  } finally {
    await Promise.allSettled([pool.end(), redis.quit()]);
  }
}

interface Plan {
  url: string;
  method: 'GET' | 'POST';
  requests: Array<{ path: string; body?: string; headers?: Record<string, string> }>;
}

function checkoutInit(token: string, sku: string): { method: 'POST'; headers: Record<string, string>; body: string } {
  return {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ sku, quantity: 1 }),
  };
}

/**
 * `amount` requests, each the plan's next, over `connections` connections paced as autocannon's `overallRate` paced
 * them (the figures before it was replaced are comparable): connection i sends its share of `amount` one request at a
 * time, at most its share of `offered` in each second, then waits for the next second.
 */
async function fire(plan: Plan, amount: number, offered: number): Promise<Omit<Measurement, 'cpuUsPerRequest'>> {
  if (plan.requests.length === 0) throw new Error(`no requests planned for ${plan.method} ${plan.url}`);
  const count = Math.max(1, Math.min(connections, amount, offered));
  /** `total` shared out over the connections as autocannon did: the first `total % count` get one more. */
  const shareOf = (total: number, i: number) => Math.floor(total / count) + (i < total % count ? 1 : 0);
  const client = new HttpClient(plan.url, { connections: count, timeoutMs: 30_000 });
  let next = 0;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const startedAt = Date.now();
  let perSecond: NodeJS.Timeout | undefined;
  await new Promise<void>((resolvePromise) => {
    let finished = 0;
    const loops = Array.from({ length: count }, (_, i) => ({
      quota: shareOf(offered, i),
      left: shareOf(amount, i),
      thisSecond: 0,
      paused: false,
    }));
    const sendNext = (loop: (typeof loops)[number]) => {
      if (loop.left === 0) {
        if (++finished === count) resolvePromise();
        return;
      }
      if (loop.thisSecond >= loop.quota) {
        loop.paused = true;
        return;
      }
      loop.left--;
      loop.thisSecond++;
      const item = plan.requests[next++ % plan.requests.length]!;
      client.send(plan.method, item.path, item.headers ?? {}, item.body, (answer) => {
        if (answer.status !== 0) {
          latencies.push(answer.ms);
          statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
        }
        sendNext(loop);
      });
    };
    perSecond = setInterval(() => {
      for (const loop of loops) {
        loop.thisSecond = 0;
        if (loop.paused) {
          loop.paused = false;
          sendNext(loop);
        }
      }
    }, 1_000);
    for (const loop of loops) sendNext(loop);
  });
  clearInterval(perSecond);
  client.close();
  const seconds = (Date.now() - startedAt) / 1000;
  const ordered = sorted(latencies);
  return {
    rps: latencies.length / seconds,
    p50Ms: pct(ordered, 50),
    p99Ms: pct(ordered, 99),
    answered: latencies.length,
    statuses,
  };
}

interface ClassReport {
  /** Per server: the mean over the rounds, and each round's CPU µs/request. */
  servers: Partial<
    Record<
      ServerName,
      { rps: number; p50Ms: number | null; p99Ms: number | null; cpuUsPerRequest: number; cpuUsPerRound: number[] }
    >
  >;
  /** ours' CPU per request over the queue server's and the constant server's, each round's ratio, then their mean. */
  oursOverQueue: number | null;
  oursOverCeiling: number | null;
  /** With --profile: where each server's CPU went (bench/profile-summary.ts). */
  profiles?: Partial<Record<ServerName, ProfileSummary>>;
}

function buildReport(
  results: Record<RequestClass, Partial<Record<ServerName, Measurement[]>>>,
  profiles?: Partial<Record<RequestClass, Partial<Record<ServerName, ProfileSummary>>>>,
) {
  const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
  const classes: Partial<Record<RequestClass, ClassReport>> = {};
  for (const klass of CLASSES) {
    if (Object.keys(results[klass]).length === 0) continue;
    const servers: ClassReport['servers'] = {};
    for (const [name, ms] of Object.entries(results[klass]) as Array<[ServerName, Measurement[]]>) {
      servers[name] = {
        rps: mean(ms.map((m) => m.rps)),
        p50Ms: mean(ms.map((m) => m.p50Ms ?? 0)),
        p99Ms: mean(ms.map((m) => m.p99Ms ?? 0)),
        cpuUsPerRequest: mean(ms.map((m) => m.cpuUsPerRequest)),
        cpuUsPerRound: ms.map((m) => Math.round(m.cpuUsPerRequest)),
      };
    }
    const ratio = (other: ServerName) => {
      const ours = results[klass].ours;
      const theirs = results[klass][other];
      if (!ours || !theirs) return null;
      return mean(ours.map((m, i) => m.cpuUsPerRequest / (theirs[i]?.cpuUsPerRequest ?? NaN)));
    };
    classes[klass] = {
      servers,
      oursOverQueue: ratio('queue'),
      oursOverCeiling: ratio('ceiling'),
      ...(profiles?.[klass] ? { profiles: profiles[klass] } : {}),
    };
  }
  return {
    date: new Date().toISOString(),
    node: process.version,
    rounds,
    connections,
    offeredRates: rateOf,
    requests: requestsOf,
    classes,
  };
}

function renderReport(report: ReturnType<typeof buildReport>): string {
  const lines = [
    `Front door, per request class: ${report.rounds} interleaved rounds over ${report.connections} connections, requests/s offered ${JSON.stringify(report.offeredRates)}; ${report.date}, Node ${report.node}.`,
    'CPU µs per answered request of the answering process (mean of the rounds; each round in brackets).',
    '',
    '| class | server | req/s | p50 ms | p99 ms | CPU µs/request | ours/queue | ours/ceiling |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const klass of CLASSES) {
    const c = report.classes[klass];
    if (!c) continue;
    for (const [name, s] of Object.entries(c.servers)) {
      const ours = name === 'ours';
      lines.push(
        `| ${klass} | ${name} | ${fmt(s.rps, 0)} | ${fmt(s.p50Ms)} | ${fmt(s.p99Ms)} | ${fmt(s.cpuUsPerRequest, 0)} (${s.cpuUsPerRound.join(', ')}) | ${ours ? fmt(c.oursOverQueue, 2) : ''} | ${ours ? fmt(c.oursOverCeiling, 2) : ''} |`,
      );
    }
  }
  for (const klass of CLASSES) {
    const profiles = report.classes[klass]?.profiles;
    const ours = profiles?.ours;
    if (!profiles || !ours) continue;
    const others = SERVED[klass].filter((name) => name !== 'ours' && profiles[name]);
    const usAt = (name: ServerName, where: string) =>
      profiles[name]?.places.find((p) => p.where === where)?.usPerRequest ?? 0;
    lines.push(
      '',
      `Where the CPU went, ${klass}: sampled µs per request by place (ours' largest; the others' at the same place):`,
      '',
    );
    lines.push(`| place | ours | ${others.join(' | ')} |`, `|---|---:|${others.map(() => '---:|').join('')}`);
    lines.push(
      `| all | ${fmt(ours.cpuUsPerRequest, 0)} | ${others.map((name) => fmt(profiles[name]?.cpuUsPerRequest, 0)).join(' | ')} |`,
    );
    for (const { where, usPerRequest } of ours.places.slice(0, 14)) {
      lines.push(
        `| ${where} | ${fmt(usPerRequest, 1)} | ${others.map((name) => fmt(usAt(name, where), 1)).join(' | ')} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

async function cleanup(): Promise<void> {
  for (const proc of started) await proc.stop(5_000);
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

await runThenCleanUp('front-door', main, cleanup);
