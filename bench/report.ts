/**
 * The benchmark's results: the JSON report, its Markdown tables (one per CPU layout) and an SVG picture
 * (toolkit/chart.ts, burstChart), written to the output folder.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { INVARIANTS, type Invariant } from '../src/invariants/check.js';
import { burstChart } from '../toolkit/chart.js';
import type { BenchRun, BenchSettings } from './args.js';
import type { CpuLayout, LayoutCpus } from './cpu-layout.js';
import type { VariantResult } from './load.js';
import { fmt, round } from './stats.js';

/**
 * The process that answers shoppers in each run, and those behind it that turn a win into a row (bench/processes.ts
 * names).
 */
const ANSWERING: Partial<Record<BenchRun, string>> = {
  ours: 'api',
  'ours-wait': 'api',
  'ours-events': 'api',
  before: 'before-api',
  queue: 'bench-queue',
  ceiling: 'bench-ceiling',
  sync: 'bench-sync',
};
const PIPELINE: Partial<Record<BenchRun, string[]>> = {
  ours: ['temporal', 'worker', 'mysql'],
  'ours-wait': ['temporal', 'worker', 'mysql'],
  'ours-events': ['temporal', 'worker', 'mysql'],
  before: ['temporal', 'before-worker', 'mysql'],
  queue: ['bench-queue-consumer', 'mysql'],
};

/**
 * CPU per answer and per order of a run: the answering process's µs per request over the burst,
 * and over the burst and the drain Redis's µs per request and per won order each process behind
 * the front door (ms). Null without CPU figures (a cluster run measures nothing per process).
 */
function cpuFigures(name: BenchRun, r: VariantResult) {
  const cpu = r.cpuSeconds;
  const answering = ANSWERING[name];
  if (!cpu || !answering || cpu[answering] === undefined) return null;
  const perOrder = Object.fromEntries(
    (PIPELINE[name] ?? []).map((proc) => [proc, r.won > 0 ? round(((cpu[proc] ?? 0) * 1_000) / r.won, 2) : null]),
  );
  return {
    // Over the burst alone: after it the API only keeps its background work while the pipeline drains.
    answeringUsPerRequest: round(
      ((r.burstCpuSeconds?.[answering] ?? cpu[answering]) * 1e6) / Math.max(1, r.requests),
      0,
    ),
    redisUsPerRequest: round(((cpu.redis ?? 0) * 1e6) / Math.max(1, r.requests), 0),
    pipelineMsPerOrder: perOrder,
  };
}

export interface WorkflowStartLatency {
  p50Ms: number;
  p99Ms: number;
  count: number;
}

/** One layout's whole comparison, as bench/burst.ts ran it. */
export interface LayoutRun {
  layout: CpuLayout;
  /** The CPU lists each side of the front door ran on; undefined when nothing was pinned (shared alone). */
  cpus?: LayoutCpus;
  results: Partial<Record<BenchRun, VariantResult>>;
  workflowStart?: WorkflowStartLatency;
}

/** The report of a run in one layout, `shared` unless told (the benchmark as it ran before layouts). */
export function buildReport(
  settings: BenchSettings,
  results: Partial<Record<BenchRun, VariantResult>>,
  workflowStart: WorkflowStartLatency | undefined,
  elapsedMs: number,
  layout: Omit<LayoutRun, 'results' | 'workflowStart'> = { layout: 'shared' },
) {
  return buildLayoutsReport(settings, [{ ...layout, results, ...(workflowStart ? { workflowStart } : {}) }], elapsedMs);
}

/**
 * The report of the comparison run in each layout in turn. Top-level `variants`, `drain` and
 * `ratios` are the first layout's (named by `layout`), the shape readers had before layouts;
 * `layouts` holds every layout's figures, each variant marked with its layout; `invariants` holds
 * across all of them.
 */
export function buildLayoutsReport(settings: BenchSettings, runs: LayoutRun[], elapsedMs: number) {
  const sections = runs.map(layoutSection);
  const first = sections[0];
  if (!first) throw new Error('a report needs at least one layout');
  const checked = runs.flatMap((run) =>
    Object.values(run.results).flatMap((r) => (r?.invariants ? [r.invariants] : [])),
  );
  const all = (key: Invariant) => checked.every((report) => report.checks[key]);
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
    layout: first.layout,
    cpuLayout: first.cpuLayout,
    variants: first.variants,
    drain: first.drain,
    ratios: first.ratios,
    layouts: Object.fromEntries(sections.map((section) => [section.layout, section])) as Partial<
      Record<CpuLayout, LayoutSection>
    >,
    invariants: Object.fromEntries(INVARIANTS.map((name) => [name, all(name)])) as Record<Invariant, boolean>,
    elapsedSeconds: round(elapsedMs / 1000, 1),
  };
}

function cpuRatio(
  a: ReturnType<typeof cpuFigures> | undefined,
  b: ReturnType<typeof cpuFigures> | undefined,
): number | null {
  return a && b && b.answeringUsPerRequest > 0 ? round(a.answeringUsPerRequest / b.answeringUsPerRequest, 2) : null;
}

function layoutSection({ layout, cpus: layoutCpus, results, workflowStart }: LayoutRun) {
  const ratio = (a?: VariantResult, b?: VariantResult) => (a && b && b.rps > 0 ? round(a.rps / b.rps, 2) : null);
  const checked = Object.values(results).flatMap((r) => (r?.invariants ? [r.invariants] : []));
  const all = (key: Invariant) => checked.every((report) => report.checks[key]);
  const ours = results.ours;
  return {
    layout,
    /** CPU lists of the front door's side and the pipeline's side; null when nothing was pinned. */
    cpuLayout: layoutCpus ? { front: layoutCpus.front, back: layoutCpus.back, backNice: layoutCpus.backNice } : null,
    variants: Object.fromEntries(
      Object.entries(results).map(([name, r]) => [
        name,
        {
          layout,
          rps: round(r.rps, 0),
          p50Ms: round(r.p50Ms),
          p90Ms: round(r.p90Ms),
          p99Ms: round(r.p99Ms),
          maxMs: round(r.maxMs),
          winP50Ms: round(r.winP50Ms),
          winP90Ms: round(r.winP90Ms),
          winP99Ms: round(r.winP99Ms),
          winMaxMs: round(r.winMaxMs),
          soldOutP50Ms: round(r.soldOutP50Ms),
          soldOutP99Ms: round(r.soldOutP99Ms),
          soldOutMaxMs: round(r.soldOutMaxMs),
          requests: r.requests,
          seconds: round(r.seconds, 2),
          won: r.won,
          ...(r.persistedInWait === undefined
            ? {}
            : { persistedInWait: r.persistedInWait, orderFailed: r.orderFailed ?? 0 }),
          soldOut: r.soldOut,
          limitExceeded: r.limitExceeded,
          errors: r.errors,
          errorsWhileUnitsLeft: r.errorsWhileUnitsLeft,
          ...(r.serverErrors ? { serverErrors: r.serverErrors } : {}),
          ...(r.drain
            ? {
                drain: {
                  ...r.drain,
                  seconds: round(r.drain.seconds, 3),
                  totalSeconds: round(r.drain.totalSeconds, 3),
                  ordersPerSecond: round(r.drain.ordersPerSecond, 0),
                },
              }
            : {}),
          ...(r.invariants ? { invariants: { ...r.invariants.checks, figures: r.invariants.figures } } : {}),
          ...(r.cpuSeconds ? { cpuSeconds: r.cpuSeconds } : {}),
          ...(r.burstCpuSeconds ? { burstCpuSeconds: r.burstCpuSeconds } : {}),
          ...(cpuFigures(name as BenchRun, r) ? { cpu: cpuFigures(name as BenchRun, r) } : {}),
          ...(r.workflowStart
            ? { workflowStart: { p50Ms: round(r.workflowStart.p50Ms), p99Ms: round(r.workflowStart.p99Ms) } }
            : {}),
          ...(r.temporalRequestsPerOrder ? { temporalRequestsPerOrder: r.temporalRequestsPerOrder } : {}),
          ...(r.cpuAffinity ? { cpuAffinity: r.cpuAffinity } : {}),
          ...(r.payments ? { payments: r.payments } : {}),
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
    ratios: {
      oursVsCeiling: ratio(ours, results.ceiling),
      oursVsSync: ratio(ours, results.sync),
      oursVsQueue: ratio(ours, results.queue),
      ...(results.before ? { oursVsBefore: ratio(ours, results.before) } : {}),
      // What each answer costs the answering process, ours over the queue server's (target ≤ 1.25).
      apiCpuOursOverQueue: cpuRatio(
        ours && cpuFigures('ours', ours),
        results.queue && cpuFigures('queue', results.queue),
      ),
      ...(results['ours-wait'] ? { oursWaitVsOurs: ratio(results['ours-wait'], ours) } : {}),
    },
    invariants: Object.fromEntries(INVARIANTS.map((name) => [name, all(name)])) as Record<Invariant, boolean>,
  };
}

export type LayoutSection = ReturnType<typeof layoutSection>;

export type Report = ReturnType<typeof buildLayoutsReport>;

/** Writes latest.{json,md,svg} and a dated copy of the JSON into `outDir`; returns the Markdown. */
export function writeReport(report: Report, outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  const json = toJson(report);
  // The pipeline benchmark's results (bench/pipeline.ts) stay beside the burst's in latest.json.
  const latest = join(outDir, 'latest.json');
  const pipeline: unknown = existsSync(latest)
    ? (JSON.parse(readFileSync(latest, 'utf8')) as { pipeline?: unknown }).pipeline
    : undefined;
  writeFileSync(latest, pipeline === undefined ? json : toJson({ ...report, pipeline }));
  writeFileSync(
    join(outDir, `${report.date.slice(0, 19).replace(/[:T]/g, '-')}${report.config.quick ? '-quick' : ''}.json`),
    json,
  );
  return renderReport(report, outDir);
}

/**
 * Writes latest.md and latest.svg from a report (a fresh one, or latest.json read back by `--report-only`); returns the
 * Markdown.
 */
export function renderReport(report: Report, outDir: string): string {
  const md = markdown(report);
  writeFileSync(join(outDir, 'latest.md'), md);
  writeFileSync(join(outDir, 'latest.svg'), burstChart(report));
  return md;
}

/**
 * Reads a results file back for rendering. Files written before a figure was recorded lack it:
 * the win's p90 is filled in as unknown (null) and a drain without `series` is drawn without its
 * line, so that any results file since the layouts (2026-11-22) renders.
 */
export function readReport(file: string): Report {
  const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  for (const section of [report, ...sectionsOf(report)])
    for (const variant of Object.values(section.variants)) variant.winP90Ms ??= null;
  return report;
}

/** Indented JSON, each drain series on one line: a few hundred counts would otherwise take a line each. */
function toJson(value: unknown): string {
  const json = JSON.stringify(value, null, 2).replace(
    /("persisted": \[)([^\]]*)\]/g,
    (_, open: string, counts: string) =>
      counts.trim() === '' ? `${open}]` : `${open}${counts.trim().split(/,\s*/).join(', ')}]`,
  );
  return `${json}\n`;
}

function markdown(report: Report): string {
  const c = report.config;
  return [
    `Burst: ${c.requests} checkouts from ${c.users} shoppers over ${c.connections} connections; stock ${c.stock}, limit ${c.perUserLimit}${c.quick ? ' (quick)' : ''}.`,
    `Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}; ${report.date}.`,
    ...sectionsOf(report).flatMap(layoutMarkdown),
  ].join('\n');
}

export const sectionsOf = (report: Report): LayoutSection[] =>
  Object.values(report.layouts).flatMap((section) => (section ? [section] : []));

/** One layout's table, ratios and, when pinned, the CPUs each process was allowed after each burst. */
function layoutMarkdown(section: LayoutSection): string[] {
  const rows = Object.entries(section.variants).map(([name, v]) => {
    const inv = v.invariants ? INVARIANTS.every((k) => v.invariants?.[k]) : null;
    const drain = v.drain ? `${fmt(v.drain.seconds, 2)} s (${fmt(v.drain.ordersPerSecond, 0)}/s)` : '—';
    return `| ${name} | ${fmt(v.rps, 0)} | ${fmt(v.p50Ms)} | ${fmt(v.p99Ms)} | ${fmt(v.winP99Ms)} | ${fmt(v.soldOutP99Ms)} | ${v.won} | ${v.errors} | ${v.errorsWhileUnitsLeft ?? '—'} | ${drain} | ${inv === null ? '—' : inv ? 'ok' : '**VIOLATED**'} |`;
  });
  const r = section.ratios;
  const pinned = section.cpuLayout;
  const where =
    section.layout === 'split' && pinned
      ? `load generator and front door (API, baseline server) on CPU ${pinned.front}; Temporal dev server, worker, MariaDB, Redis and the queue's consumer on CPU ${pinned.back} (servers the benchmark did not start are not pinned)`
      : `${pinned?.front ? `every process on CPUs ${pinned.front}` : 'nothing pinned: every process on every CPU'}${
          pinned?.backNice
            ? `; Temporal dev server, worker, MariaDB and the queue's consumer at nice ${pinned.backNice} (the front door and Redis at 0)`
            : ''
        }`;
  const affinity = pinned
    ? Object.entries(section.variants).flatMap(([name, v]) =>
        v.cpuAffinity
          ? [
              `- ${name}: ${Object.entries(v.cpuAffinity)
                .map(([proc, list]) => `${proc} ${list}`)
                .join(', ')}`,
            ]
          : [],
      )
    : [];
  return [
    '',
    `Layout **${section.layout}**: ${where}.`,
    '',
    '| variant | req/s | p50 ms | p99 ms | win p99 ms | sold-out p99 ms | won | errors | 5xx while units left | all won orders in MySQL after last win | invariants |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
    ...rows,
    '',
    `Ratios (throughput): ours/ceiling ${fmt(r.oursVsCeiling, 2)}, ours/sync ${fmt(r.oursVsSync, 2)}, ours/queue ${fmt(r.oursVsQueue, 2)}.` +
      (section.drain
        ? ` Workflow start after reservation: p50 ${fmt(section.drain.workflowStartP50Ms)} ms, p99 ${fmt(section.drain.workflowStartP99Ms)} ms.`
        : ''),
    ...waitingLine(section),
    ...cpuLines(section),
    ...paymentLines(section),
    ...(affinity.length > 0
      ? ['', 'CPUs each process was allowed after its burst (every thread, from /proc):', ...affinity]
      : []),
    '',
  ];
}

/** What each run's answers and orders cost in CPU: per answered request, and per won order behind the front door. */
function cpuLines(section: LayoutSection): string[] {
  const rows = Object.entries(section.variants).flatMap(([name, v]) => {
    if (!v.cpu) return [];
    const behind = Object.entries(v.cpu.pipelineMsPerOrder)
      .map(([proc, ms]) => `${proc} ${fmt(ms, 1)}`)
      .join(', ');
    const start = v.workflowStart ? `${fmt(v.workflowStart.p50Ms, 0)} / ${fmt(v.workflowStart.p99Ms, 0)}` : '—';
    return [
      `| ${name} | ${fmt(v.cpu.answeringUsPerRequest, 0)} | ${fmt(v.cpu.redisUsPerRequest, 0)} | ${behind || '—'} | ${start} |`,
    ];
  });
  if (rows.length === 0) return [];
  const r = section.ratios;
  const requests = Object.entries(section.variants).flatMap(([name, v]) =>
    v.temporalRequestsPerOrder
      ? [
          `- ${name}: ${Object.entries(v.temporalRequestsPerOrder)
            .map(([operation, count]) => `${operation} ${count}`)
            .join(', ')}`,
        ]
      : [],
  );
  return [
    '',
    '| variant | answering process, CPU µs per request (burst) | Redis, CPU µs per request | behind the front door, CPU ms per won order | workflow start after reservation p50 / p99 ms |',
    '|---|---:|---:|---|---:|',
    ...rows,
    '',
    `CPU per answered request, ours/queue: ${fmt(r.apiCpuOursOverQueue ?? null, 2)}.` +
      (r.oursVsBefore !== undefined ? ` Throughput ours/before: ${fmt(r.oursVsBefore, 2)}.` : ''),
    ...(requests.length > 0
      ? ['', "Temporal's frontend requests per won order, burst and drain (its `service_requests`):", ...requests]
      : []),
  ];
}

/** The payment phase after the burst (bench/payments.ts), one row per run that had one. */
function paymentLines(section: LayoutSection): string[] {
  const rows = Object.entries(section.variants).flatMap(([name, v]) => {
    const p = v.payments;
    if (!p) return [];
    const cpu = Object.entries(p.cpuMsPerPayment)
      .filter(([proc]) => proc === 'api' || proc.endsWith('worker') || proc === 'temporal' || proc === 'mysql')
      .map(([proc, ms]) => `${proc} ${fmt(ms, 2)}`)
      .join(', ');
    const answers = Object.entries(p.webhookAnswers)
      .map(([key, count]) => `${key} ${count}`)
      .join(', ');
    const cache = p.cache ? `${fmt(p.cache.hitRate, 3)} (${p.cache.misses} misses)` : '—';
    const perOrder = p.workerHeapKbPerCachedOrder === undefined ? '—' : fmt(p.workerHeapKbPerCachedOrder, 1);
    const after = (seconds: number | null | undefined) =>
      seconds === undefined ? '—' : seconds === null ? 'not all' : fmt(seconds, 1);
    const toClose = p.cpuMsPerPaymentToClose
      ? Object.entries(p.cpuMsPerPaymentToClose)
          .filter(([proc]) => proc === 'api' || proc.endsWith('worker') || proc === 'temporal' || proc === 'mysql')
          .map(([proc, ms]) => `${proc} ${fmt(ms, 2)}`)
          .join(', ')
      : '—';
    // Named by its provider when it is Stripe; the generic webhook's rows (and older results') keep the run's name.
    const run = p.provider === 'stripe' ? `${name} (stripe)` : name;
    return [
      `| ${run} | ${p.payments} | ${fmt(p.sentPerSecond)} | ${fmt(p.webhook.p50Ms)} / ${fmt(p.webhook.p99Ms)} | ${fmt(p.toPaid.p50Ms)} / ${fmt(p.toPaid.p99Ms)} | ${p.notPaid} | ${answers} | ${cpu} | ${cache} | ${perOrder} | ${after(p.allPaidAfterSeconds)} | ${after(p.allClosedAfterSeconds)} | ${toClose} |`,
    ];
  });
  if (rows.length === 0) return [];
  return [
    '',
    'Payment phase (the winners pay within the spread while the window runs; bench/payments.ts):',
    '',
    '| run | payments | sent/s | webhook p50 / p99 ms | to PAID p50 / p99 ms | not PAID | webhook answers | CPU ms per payment | worker cache hit rate | workflow heap KB per cached order | all PAID in MySQL, s after the last payment | all closed by their workflows, s after | CPU ms per payment until closed |',
    '|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|',
    ...rows,
  ];
}

/** The two checkout models side by side, when --wait ran ours both ways on the same burst. */
function waitingLine(section: LayoutSection): string[] {
  const polling = section.variants.ours;
  const waiting = section.variants['ours-wait'];
  if (!polling || !waiting) return [];
  return [
    '',
    `Waiting checkout (ours-wait, \`Prefer: wait=N\`) beside polling (ours): ${fmt(waiting.rps, 0)} vs ${fmt(polling.rps, 0)} req/s ` +
      `(ratio ${fmt(section.ratios.oursWaitVsOurs ?? null, 2)}); win p50 ${fmt(waiting.winP50Ms)} vs ${fmt(polling.winP50Ms)} ms, ` +
      `win p99 ${fmt(waiting.winP99Ms)} vs ${fmt(polling.winP99Ms)} ms; ${waiting.persistedInWait ?? 0} of ${waiting.won} wins answered persisted (201), ` +
      `${waiting.orderFailed ?? 0} ORDER_FAILED. A polling win is only "accepted": its order is persisted later (drain column).`,
  ];
}
