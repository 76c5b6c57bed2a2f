/**
 * `npm run bench [-- --quick] [--requests N --users N --connections N --stock N --limit N]
 *                  [--variants ours,ceiling,sync,queue] [--out DIR] [--profile DIR]`
 *
 * Fires one flash-sale burst of checkouts over HTTP at four servers in turn, on the same machine and
 * stack, and compares them:
 *   ours     the product: Lua reservation + OrderWorkflow start (src/api, src/workers)
 *   ceiling  the same Koa setup answering a constant: what the machine allows at all
 *   sync     checkout as one MySQL transaction (SELECT … FOR UPDATE), the seeds' starting point
 *   queue    the same Lua reservation + LPUSH onto a Redis list drained by one consumer (seed 000)
 * Then it measures how fast accepted orders reach MySQL, checks the invariants of PRODUCT.md §2
 * after every variant, and writes bench/results/latest.{json,md} plus a dated copy.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import autocannon from 'autocannon';
import type { RowDataPacket } from 'mysql2/promise';
import { ShopperAuth } from '../src/api/auth.js';
import { SalesService } from '../src/api/sales.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/infra/mysql.js';
import { createRedis } from '../src/infra/redis.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { startStack, type RunningStack } from '../src/stack/index.js';
import { freePort, spawnLogged, waitUntilReady, type ManagedProcess } from '../src/stack/process.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import { checkInvariants, type InvariantReport } from './invariants.js';

const VARIANTS = ['ours', 'ceiling', 'sync', 'queue'] as const;
type Variant = (typeof VARIANTS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    requests: { type: 'string' },
    users: { type: 'string' },
    connections: { type: 'string' },
    stock: { type: 'string' },
    limit: { type: 'string' },
    variants: { type: 'string' },
    /** Writes a V8 CPU profile of every server process into this folder (open in Chrome DevTools). */
    profile: { type: 'string' },
    out: { type: 'string' },
  },
});
const quick = args.quick ?? false;
const settings = {
  requests: Number(args.requests ?? (quick ? 2_000 : 50_000)),
  users: Number(args.users ?? (quick ? 800 : 20_000)),
  connections: Number(args.connections ?? (quick ? 32 : 256)),
  stock: Number(args.stock ?? (quick ? 100 : 1_000)),
  perUserLimit: Number(args.limit ?? 1),
  warmupRequests: quick ? 300 : 3_000,
  quick,
};
const variants = (args.variants?.split(',') ?? [...VARIANTS]) as Variant[];
for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v}; choose from ${VARIANTS.join(', ')}`);
const root = resolve(import.meta.dirname, '..');
const outDir = resolve(args.out ?? join(root, 'bench', 'results'));
const say = (line: string) => console.log(`[bench] ${line}`);

interface Latencies {
  win: number[];
  soldOut: number[];
  all: number[];
}

interface VariantResult {
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  winP50Ms: number | null;
  winP99Ms: number | null;
  winMaxMs: number | null;
  soldOutP50Ms: number | null;
  soldOutP99Ms: number | null;
  soldOutMaxMs: number | null;
  requests: number;
  seconds: number;
  won: number;
  soldOut: number;
  limitExceeded: number;
  errors: number;
  drain?: { orders: number; seconds: number; totalSeconds: number; ordersPerSecond: number };
  invariants?: InvariantReport;
}

const workDir = mkdtempSync(join(tmpdir(), 'flash-bench-'));
let stack: RunningStack | undefined;
const processes: ManagedProcess[] = [];

async function main(): Promise<void> {
  const t0 = Date.now();
  stack = await startStack({ dataDir: join(workDir, 'stack'), ports: 'free', ephemeral: true, log: say });
  const runId = randomBytes(3).toString('hex');
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
    TEMPORAL_TASK_QUEUE: `bench-${runId}`,
    LOG_LEVEL: 'warn',
    AUTH_DEV_LOGIN: 'false',
  };
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  const redis = createRedis(config);
  await migrate(pool);
  const sales = new SalesService(pool, new RedisInventory(redis));
  const auth = new ShopperAuth(config.jwtSecret);
  say(`signing ${settings.users} shopper tokens`);
  const tokens = await Promise.all(Array.from({ length: settings.users }, (_, i) => auth.issue(`bench-${runId}-u${i}`)));

  const results: Partial<Record<Variant, VariantResult>> = {};
  let workflowStart: { p50Ms: number; p99Ms: number; count: number } | undefined;
  try {
    for (const variant of variants) {
      say(`── ${variant} ──`);
      const servers = await startVariant(variant, env);
      try {
        const url = servers.url;
        // Warm-up on its own SKU: JIT, connection pools and Temporal's caches, never measured.
        const warm = `BENCH-${runId}-${variant}-warm`;
        await sales.create({ sku: warm, name: warm, priceCents: 1_000, stock: Math.max(10, Math.floor(settings.stock / 10)), perUserLimit: settings.perUserLimit });
        await burst(url, warm, tokens, settings.warmupRequests, Math.min(settings.connections, 64), false);

        const sku = `BENCH-${runId}-${variant}`;
        await sales.create({ sku, name: sku, priceCents: 1_000, stock: settings.stock, perUserLimit: settings.perUserLimit });
        // MySQL is watched from the first request on, so the drain is timed while the burst still runs.
        const watch = variant === 'ceiling' ? undefined : watchPersisted(pool, sku);
        const shot = await burst(url, sku, tokens, settings.requests, settings.connections, true);
        const result = summarise(shot);
        if (watch) {
          result.drain = await watch.until(shot.accepted.length, shot.firstWinAt, shot.lastWinAt);
          let workflowCount: number | undefined;
          if (variant === 'ours') {
            workflowStart = await workflowStartLatency(config, pool, sku, shot.accepted.length);
            workflowCount = workflowStart.count;
          }
          result.invariants = await checkInvariants({
            pool,
            redis,
            sku,
            perUserLimit: settings.perUserLimit,
            acceptedOrderNos: shot.accepted,
            usesRedis: variant !== 'sync',
            workflowCount,
          });
          const inv = result.invariants;
          say(`invariants: noOversell=${inv.noOversell} conservation=${inv.conservation} noLostOrder=${inv.noLostOrder} perUserLimit=${inv.perUserLimit}`);
        }
        results[variant] = result;
        say(
          `${fmt(result.rps, 0)} req/s; p50 ${fmt(result.p50Ms)} ms, p99 ${fmt(result.p99Ms)} ms; won ${result.won}, sold out ${result.soldOut}, over limit ${result.limitExceeded}, errors ${result.errors}` +
            (result.drain ? `; all ${result.drain.orders} orders in MySQL ${fmt(result.drain.seconds, 2)} s after the last win` : ''),
        );
      } finally {
        for (const proc of servers.processes.reverse()) await proc.stop();
      }
    }
  } finally {
    await Promise.allSettled([pool.end(), redis.quit()]);
  }

  const report = buildReport(results, workflowStart, Date.now() - t0);
  writeReport(report);
  const failed = Object.entries(report.invariants).filter(([, ok]) => ok === false);
  if (failed.length > 0) {
    console.error(`[bench] INVARIANT VIOLATED: ${failed.map(([name]) => name).join(', ')}`);
    process.exitCode = 1;
  }
}

/** Starts the processes of one variant and returns the URL checkouts go to. */
async function startVariant(variant: Variant, env: Record<string, string | undefined>): Promise<{ url: string; processes: ManagedProcess[] }> {
  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const port = await freePort();
  const started: ManagedProcess[] = [];
  const launch = (name: string, script: string, extraArgs: string[], extraEnv: Record<string, string> = {}) => {
    const [command, commandArgs] = args.profile
      ? [process.execPath, ['--cpu-prof', `--cpu-prof-dir=${resolve(args.profile)}`, '--import', 'tsx', join(root, script), ...extraArgs]]
      : [tsx, [join(root, script), ...extraArgs]];
    const proc = spawnLogged(name, command, commandArgs, {
      logFile: join(workDir, `${name}.log`),
      env: { ...env, PORT: String(port), ...extraEnv } as NodeJS.ProcessEnv,
    });
    started.push(proc);
    processes.push(proc);
    return proc;
  };
  const url = `http://127.0.0.1:${port}`;
  const answers = async (path: string, okOnly: boolean) => {
    const response = await fetch(`${url}${path}`);
    return okOnly ? response.ok : true;
  };
  try {
    if (variant === 'ours') {
      const bundle = join(workDir, 'workflow-bundle.js');
      await buildWorkflowBundle(bundle);
      const worker = launch('worker', 'src/workers/main.ts', [], { WORKFLOW_BUNDLE_PATH: bundle });
      await waitUntilReady(worker, async () => readFileSync(worker.logFile, 'utf8').includes("state: 'RUNNING'"), 60_000);
      const api = launch('api', 'src/api/main.ts', []);
      await waitUntilReady(api, () => answers('/healthz', true), 60_000);
    } else {
      const server = launch(`bench-${variant}`, 'bench/server.ts', [variant]);
      await waitUntilReady(server, () => answers('/', false), 60_000);
      if (variant === 'queue') {
        const consumer = launch('bench-queue-consumer', 'bench/server.ts', ['queue-consumer']);
        await waitUntilReady(consumer, async () => readFileSync(consumer.logFile, 'utf8').includes('consuming'), 60_000);
      }
    }
  } catch (err) {
    for (const proc of started) await proc.stop();
    throw err;
  }
  return { url, processes: started };
}

interface Shot {
  latencies: Latencies;
  statuses: Map<string, number>;
  accepted: string[];
  seconds: number;
  firstWinAt: number;
  lastWinAt: number;
  errors: number;
}

/** One burst with autocannon: `requests` checkouts over `connections`, shoppers round-robin. */
async function burst(url: string, sku: string, tokens: string[], requests: number, connections: number, showProgress: boolean): Promise<Shot> {
  const latencies: Latencies = { win: [], soldOut: [], all: [] };
  const statuses = new Map<string, number>();
  const accepted: string[] = [];
  let next = Math.floor(Math.random() * tokens.length);
  let firstWinAt = 0;
  let lastWinAt = 0;
  const started = Date.now();
  let finish!: (result: autocannon.Result) => void;
  let fail!: (err: unknown) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => ((finish = resolve), (fail = reject)));
  const instance = autocannon({
    url: `${url}/api/checkout`,
    method: 'POST',
    connections,
    amount: requests,
    timeout: 30,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sku, quantity: 1 }),
    requests: [
      {
        setupRequest: (request) => {
          request.headers = { ...request.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` };
          return request;
        },
        onResponse: (status, body) => {
          if (status === 202) accepted.push((JSON.parse(body) as { orderNo: string }).orderNo);
          else if (status === 409) {
            const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? '409';
            statuses.set(code, (statuses.get(code) ?? 0) + 1);
          }
        },
      },
    ],
  }, (err, result) => (err ? fail(err) : finish(result)));
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    latencies.all.push(responseTime);
    if (statusCode === 202) {
      latencies.win.push(responseTime);
      lastWinAt = Date.now();
      if (!firstWinAt) firstWinAt = lastWinAt;
    } else if (statusCode === 409) latencies.soldOut.push(responseTime);
    statuses.set(String(statusCode), (statuses.get(String(statusCode)) ?? 0) + 1);
  });
  let lastTenth = 0;
  if (showProgress && process.stderr.isTTY) {
    autocannon.track(instance, { renderProgressBar: true, renderResultsTable: false, renderLatencyTable: false });
  } else if (showProgress) {
    instance.on('response', () => {
      const tenth = Math.floor((latencies.all.length / requests) * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        say(`  ${tenth * 10}% of ${requests} requests`);
      }
    });
  }
  const result = await done;
  const seconds = (Date.now() - started) / 1000;
  const errors = result.errors + result.timeouts + [...statuses.entries()].filter(([s]) => /^5\d\d$/.test(s)).reduce((n, [, c]) => n + c, 0);
  return { latencies, statuses, accepted, seconds, firstWinAt, lastWinAt, errors };
}

function summarise(shot: Shot): VariantResult {
  const all = sorted(shot.latencies.all);
  const win = sorted(shot.latencies.win);
  const soldOut = sorted(shot.latencies.soldOut);
  return {
    rps: shot.latencies.all.length / shot.seconds,
    p50Ms: pct(all, 50) ?? 0,
    p90Ms: pct(all, 90) ?? 0,
    p99Ms: pct(all, 99) ?? 0,
    maxMs: all[all.length - 1] ?? 0,
    winP50Ms: pct(win, 50),
    winP99Ms: pct(win, 99),
    winMaxMs: win[win.length - 1] ?? null,
    soldOutP50Ms: pct(soldOut, 50),
    soldOutP99Ms: pct(soldOut, 99),
    soldOutMaxMs: soldOut[soldOut.length - 1] ?? null,
    requests: shot.latencies.all.length,
    seconds: shot.seconds,
    won: shot.accepted.length,
    soldOut: shot.statuses.get('SOLD_OUT') ?? 0,
    limitExceeded: shot.statuses.get('PURCHASE_LIMIT_EXCEEDED') ?? 0,
    errors: shot.errors,
  };
}

/**
 * Counts a SKU's orders awaiting payment in MySQL every 20 ms from the start of the burst, so the
 * moment the last accepted order lands is known even when it lands while the burst still runs.
 */
function watchPersisted(pool: ReturnType<typeof createMysqlPool>, sku: string) {
  const samples: Array<{ at: number; count: number }> = [];
  let stopped = false;
  let failure: unknown;
  // A failed count ends the watch and is rethrown by until(), never left as an unhandled rejection.
  const polling = (async () => {
    while (!stopped) {
      const [[row]] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM orders WHERE sku = ? AND status = 'AWAITING_PAYMENT'`, [sku]);
      samples.push({ at: Date.now(), count: Number(row?.n) });
      await sleep(20);
    }
  })().catch((err: unknown) => {
    failure = err;
  });
  return {
    /** Waits (at most 180 s) until `expected` orders are in MySQL and times it against the wins. */
    async until(expected: number, firstWinAt: number, lastWinAt: number) {
      const deadline = Date.now() + 180_000;
      while (failure === undefined && Date.now() < deadline && (samples.at(-1)?.count ?? 0) < expected) await sleep(20);
      stopped = true;
      await polling;
      if (failure !== undefined) throw failure;
      const reached = samples.find((s) => s.count >= expected) ?? samples.at(-1) ?? { at: Date.now(), count: 0 };
      const totalSeconds = Math.max(0, (reached.at - (firstWinAt || reached.at)) / 1000);
      return {
        orders: reached.count,
        seconds: Math.max(0, (reached.at - (lastWinAt || reached.at)) / 1000),
        totalSeconds,
        ordersPerSecond: totalSeconds > 0 ? reached.count / totalSeconds : reached.count,
      };
    },
  };
}

/** Reservation (orders.created_at) to workflow start (Temporal's startTime), per order. */
async function workflowStartLatency(config: ReturnType<typeof loadConfig>, pool: ReturnType<typeof createMysqlPool>, sku: string, expected: number) {
  const connection = await Connection.connect({ address: config.temporal.address });
  try {
    const client = new Client({ connection, namespace: config.temporal.namespace });
    const [rows] = await pool.query<RowDataPacket[]>('SELECT order_no, created_at FROM orders WHERE sku = ?', [sku]);
    const createdAt = new Map(rows.map((r) => [`order-${r.order_no}`, (r.created_at as Date).getTime()]));
    let starts: number[] = [];
    // Visibility is eventually consistent: list until every workflow shows up (or 20 s pass).
    for (let attempt = 0; attempt < 100; attempt++) {
      starts = [];
      for await (const wf of client.workflow.list({ query: `OrderSku = '${sku}'` })) {
        const created = createdAt.get(wf.workflowId);
        starts.push(created === undefined ? NaN : wf.startTime.getTime() - created);
      }
      if (starts.length >= expected) break;
      await sleep(200);
    }
    const valid = sorted(starts.filter((n) => Number.isFinite(n)));
    return { p50Ms: pct(valid, 50) ?? 0, p99Ms: pct(valid, 99) ?? 0, count: starts.length };
  } finally {
    await connection.close();
  }
}

function buildReport(results: Partial<Record<Variant, VariantResult>>, workflowStart: { p50Ms: number; p99Ms: number; count: number } | undefined, elapsedMs: number) {
  const ratio = (a?: VariantResult, b?: VariantResult) => (a && b && b.rps > 0 ? round(a.rps / b.rps, 2) : null);
  const checked = Object.values(results).filter((r): r is VariantResult & { invariants: InvariantReport } => Boolean(r?.invariants));
  const all = (key: 'noOversell' | 'conservation' | 'noLostOrder' | 'perUserLimit') => checked.every((r) => r.invariants[key]);
  const ours = results.ours;
  return {
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: round(totalmem() / 2 ** 30, 1),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    },
    date: new Date().toISOString(),
    config: settings,
    variants: Object.fromEntries(
      Object.entries(results).map(([name, r]) => [
        name,
        {
          rps: round(r.rps, 0),
          p50Ms: round(r.p50Ms),
          p90Ms: round(r.p90Ms),
          p99Ms: round(r.p99Ms),
          maxMs: round(r.maxMs),
          winP50Ms: round(r.winP50Ms),
          winP99Ms: round(r.winP99Ms),
          winMaxMs: round(r.winMaxMs),
          soldOutP50Ms: round(r.soldOutP50Ms),
          soldOutP99Ms: round(r.soldOutP99Ms),
          soldOutMaxMs: round(r.soldOutMaxMs),
          requests: r.requests,
          seconds: round(r.seconds, 2),
          won: r.won,
          soldOut: r.soldOut,
          limitExceeded: r.limitExceeded,
          errors: r.errors,
          ...(r.drain ? { drain: { ...r.drain, seconds: round(r.drain.seconds, 3), totalSeconds: round(r.drain.totalSeconds, 3), ordersPerSecond: round(r.drain.ordersPerSecond, 0) } } : {}),
          ...(r.invariants ? { invariants: r.invariants } : {}),
        },
      ]),
    ),
    drain: ours?.drain
      ? {
          orders: ours.drain.orders,
          seconds: round(ours.drain.seconds, 3),
          totalSeconds: round(ours.drain.totalSeconds, 3),
          ordersPerSecond: round(ours.drain.ordersPerSecond, 0),
          workflowStartP50Ms: round(workflowStart?.p50Ms ?? null),
          workflowStartP99Ms: round(workflowStart?.p99Ms ?? null),
        }
      : null,
    ratios: { oursVsCeiling: ratio(ours, results.ceiling), oursVsSync: ratio(ours, results.sync), oursVsQueue: ratio(ours, results.queue) },
    invariants: { noOversell: all('noOversell'), conservation: all('conservation'), noLostOrder: all('noLostOrder'), perUserLimit: all('perUserLimit') },
    elapsedSeconds: round(elapsedMs / 1000, 1),
  };
}

type Report = ReturnType<typeof buildReport>;

function writeReport(report: Report): void {
  mkdirSync(outDir, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(join(outDir, 'latest.json'), json);
  writeFileSync(join(outDir, `${report.date.slice(0, 19).replace(/[:T]/g, '-')}${settings.quick ? '-quick' : ''}.json`), json);
  const md = markdown(report);
  writeFileSync(join(outDir, 'latest.md'), md);
  writeFileSync(join(outDir, 'latest.svg'), chart(report));
  console.log(`\n${md}`);
  say(`results in ${join(outDir, 'latest.json')}, latest.md and latest.svg`);
}

function markdown(report: Report): string {
  const rows = Object.entries(report.variants).map(([name, v]) => {
    const inv = v.invariants ? (['noOversell', 'conservation', 'noLostOrder', 'perUserLimit'] as const).every((k) => v.invariants?.[k]) : null;
    const drain = v.drain ? `${fmt(v.drain.seconds, 2)} s (${fmt(v.drain.ordersPerSecond, 0)}/s)` : '—';
    return `| ${name} | ${fmt(v.rps, 0)} | ${fmt(v.p50Ms)} | ${fmt(v.p99Ms)} | ${fmt(v.winP99Ms)} | ${fmt(v.soldOutP99Ms)} | ${v.won} | ${v.errors} | ${drain} | ${inv === null ? '—' : inv ? 'ok' : '**VIOLATED**'} |`;
  });
  const r = report.ratios;
  const c = report.config;
  return [
    `Burst: ${c.requests} checkouts from ${c.users} shoppers over ${c.connections} connections; stock ${c.stock}, limit ${c.perUserLimit}${c.quick ? ' (quick)' : ''}.`,
    `Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}; ${report.date}.`,
    '',
    '| variant | req/s | p50 ms | p99 ms | win p99 ms | sold-out p99 ms | won | errors | all won orders in MySQL after last win | invariants |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---|',
    ...rows,
    '',
    `Ratios (throughput): ours/ceiling ${fmt(r.oursVsCeiling, 2)}, ours/sync ${fmt(r.oursVsSync, 2)}, ours/queue ${fmt(r.oursVsQueue, 2)}.` +
      (report.drain ? ` Workflow start after reservation: p50 ${fmt(report.drain.workflowStartP50Ms)} ms, p99 ${fmt(report.drain.workflowStartP99Ms)} ms.` : ''),
    '',
  ].join('\n');
}

/** Two bar charts side by side, throughput and p99 per variant, as a self-contained SVG. */
function chart(report: Report): string {
  const variants = Object.entries(report.variants);
  const panels = [
    { title: 'requests / s (higher is better)', value: (v: Report['variants'][string]) => v.rps, digits: 0 },
    { title: 'p99 latency, ms (lower is better)', value: (v: Report['variants'][string]) => v.p99Ms, digits: 1 },
  ];
  const width = 360;
  const barHeight = 26;
  const top = 48;
  const height = top + variants.length * (barHeight + 10) + 30;
  const colour: Record<string, string> = { ours: '#2563eb', ceiling: '#9ca3af', sync: '#dc2626', queue: '#d97706' };
  const escape = (text: string) => text.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c] ?? c);
  const body = panels.map((panel, i) => {
    const x0 = i * (width + 40) + 70;
    const max = Math.max(...variants.map(([, v]) => panel.value(v)), 1);
    const bars = variants.map(([name, v], j) => {
      const value = panel.value(v);
      const y = top + j * (barHeight + 10);
      const w = Math.max(1, (value / max) * (width - 80));
      return [
        `<text x="${x0 - 8}" y="${y + barHeight / 2 + 5}" text-anchor="end">${escape(name)}</text>`,
        `<rect x="${x0}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${colour[name] ?? '#6b7280'}"/>`,
        `<text x="${(x0 + w + 6).toFixed(1)}" y="${y + barHeight / 2 + 5}">${fmt(value, panel.digits)}</text>`,
      ].join('');
    });
    return `<text x="${x0}" y="30" font-weight="bold">${escape(panel.title)}</text>${bars.join('')}`;
  });
  const c = report.config;
  const caption = `${c.requests} checkouts, ${c.users} shoppers, ${c.connections} connections, stock ${c.stock}; ${report.machine.cpus} cores; ${report.date.slice(0, 16)}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * (width + 40) + 40}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...body,
    `<text x="70" y="${height - 10}" fill="#6b7280">${escape(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

const sorted = (values: number[]) => Float64Array.from(values).sort();
function pct(values: Float64Array, p: number): number | null {
  if (values.length === 0) return null;
  return values[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)] ?? null;
}
function round(value: number, digits?: number): number;
function round(value: number | null, digits?: number): number | null;
function round(value: number | null, digits = 1): number | null {
  return value === null ? null : Math.round(value * 10 ** digits) / 10 ** digits;
}
const fmt = (value: number | null | undefined, digits = 1) => (value === null || value === undefined ? '—' : value.toFixed(digits));

async function cleanup(): Promise<void> {
  for (const proc of processes) await proc.stop(5_000);
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
try {
  await main();
} catch (err) {
  console.error('[bench] failed:', err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
