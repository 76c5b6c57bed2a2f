/**
 * The pipeline benchmark's results: the `pipeline` object of bench/results/latest.json (merged
 * beside the burst results there), a dated copy, and the table printed at the end of a run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { InvariantReport } from '../src/invariants/check.js';
import type { PipelineArgs } from './args.js';
import type { PhaseMeasurement } from './phase.js';
import { fmt, pct, round, sorted } from './stats.js';

export interface PipelineMeasurement {
  args: PipelineArgs;
  /** In the order they ran; ours phases say whether their sale's invariants held. */
  phases: Array<PhaseMeasurement & { invariantsOk?: boolean }>;
  /** The figures below are the last ours phase's (the reading phase). */
  liveOrders: number;
  reads: { reads: number; seconds: number; p50Ms: number; p99Ms: number; maxMs: number; timeouts: number; errors: number; firstError: string | undefined };
  /** The API's read path (OrderStatusReader) under shoppers polling every 500 ms. */
  apiReads: {
    reads: number;
    seconds: number;
    offeredPerSecond: number;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
    timeouts: number;
    errors: number;
    firstError: string | undefined;
    bySource: Record<'cache' | 'coalesced' | 'workflow' | 'database', number>;
  };
  statusCacheMs: number;
  statusCacheNotifiedMs: number;
  workerRssKb: { before: number; after: number };
  invariants: InvariantReport;
  elapsedMs: number;
}

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
/** The mean, or null when a value is unknown (a server this run did not start). */
const meanOfKnown = (values: Array<number | null>): number | null => (values.some((v) => v === null) ? null : mean(values as number[]));

/**
 * A phase's CPU per order. `total` is the server and the worker, the pipeline itself: MariaDB and
 * Redis serve ours alone (the floor does no I/O), and the bench's own polling of MySQL runs there.
 * With an external Temporal server (not measured) it is the worker alone, for every phase alike.
 */
function cpuPerOrder(p: PhaseMeasurement) {
  const ms = (seconds: number | null) => (seconds === null ? null : (seconds * 1000) / p.orders);
  const [server, worker] = [ms(p.cpuSeconds.server), ms(p.cpuSeconds.worker)];
  const total = worker === null ? null : worker + (server ?? 0);
  return { server, worker, total, mysql: ms(p.cpuSeconds.mysql), redis: ms(p.cpuSeconds.redis) };
}

/** a / b from the figures as reported, so that anyone can check it; null without both. */
const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round(a / b, 2));

export function buildPipelineResult(m: PipelineMeasurement) {
  const ours = m.phases.filter((p) => p.kind === 'ours');
  const floor = m.phases.filter((p) => p.kind === 'floor');
  const oursCpu = ours.map(cpuPerOrder);
  const meanCpu = (phases: PhaseMeasurement[]) => round(meanOfKnown(phases.map((p) => cpuPerOrder(p).total)), 2);
  const meanDone = (phases: PhaseMeasurement[]) => round(mean(phases.map((p) => p.persistedPerSecond)), 1);
  // Ours' start latencies pooled over its phases: percentiles of all its starts.
  const oursStartMs = sorted(ours.flatMap((p) => p.startMs));
  const floorCpuMsPerOrder = meanCpu(floor);
  const oursCpuMsPerOrder = meanCpu(ours);
  const floorPersistedPerSecond = meanDone(floor);
  const oursPersistedPerSecond = meanDone(ours);
  return {
    orders: m.args.orders,
    // Ours, the mean of its phases (one unless --rounds).
    startsPerSecond: round(mean(ours.map((p) => p.startsPerSecond)), 0),
    persistedPerSecond: round(mean(ours.map((p) => p.persistedPerSecond)), 0),
    startP50Ms: round(pct(oursStartMs, 50) ?? 0),
    startP99Ms: round(pct(oursStartMs, 99) ?? 0),
    cpuMsPerOrder: {
      server: round(meanOfKnown(oursCpu.map((c) => c.server)), 2),
      worker: round(meanOfKnown(oursCpu.map((c) => c.worker)), 2),
      mysql: round(meanOfKnown(oursCpu.map((c) => c.mysql)), 2),
      redis: round(meanOfKnown(oursCpu.map((c) => c.redis)), 2),
    },
    // Against the floor (bench/floor/): CPU per order of the server + the worker, done/s; means of each kind's phases.
    floorCpuMsPerOrder,
    floorPersistedPerSecond,
    oursCpuMsPerOrder,
    oursPersistedPerSecond,
    cpuRatioOursToFloor: ratio(oursCpuMsPerOrder, floorCpuMsPerOrder),
    persistedRatioOursToFloor: ratio(oursPersistedPerSecond, floorPersistedPerSecond),
    /** What the CPU totals count: `worker` alone when the Temporal server is external (not measured). */
    cpuMeasured: m.phases.every((p) => p.cpuSeconds.server !== null) ? ('server+worker' as const) : ('worker' as const),
    phases: m.phases.map((p) => {
      const cpu = cpuPerOrder(p);
      return {
        kind: p.kind,
        taskQueue: p.taskQueue,
        cpuMsPerOrder: {
          server: round(cpu.server, 2),
          worker: round(cpu.worker, 2),
          total: round(cpu.total, 2),
          mysql: round(cpu.mysql, 2),
          redis: round(cpu.redis, 2),
        },
        persistedPerSecond: round(p.persistedPerSecond, 1),
        persistedSeconds: round(p.persistedSeconds, 2),
        startsPerSecond: round(p.startsPerSecond, 0),
        startP50Ms: round(pct(sorted(p.startMs), 50) ?? 0),
        startP99Ms: round(pct(sorted(p.startMs), 99) ?? 0),
        ...(p.invariantsOk === undefined ? {} : { invariants: p.invariantsOk }),
      };
    }),
    liveOrders: m.liveOrders,
    statusReadsPerSecond: round(m.reads.reads / m.reads.seconds, 0),
    statusReadP99Ms: round(m.reads.p99Ms),
    apiStatusReadsPerSecond: round(m.apiReads.reads / m.apiReads.seconds, 0),
    apiStatusReadP99Ms: round(m.apiReads.p99Ms),
    /** Reads that reached Temporal (a workflow query; a closed order's also reads MySQL) / all reads. */
    apiStatusReadTemporalShare: round((m.apiReads.bySource.workflow + m.apiReads.bySource.database) / Math.max(1, m.apiReads.reads), 3),
    workerRssKbPerLiveOrder: round((m.workerRssKb.after - m.workerRssKb.before) / m.liveOrders, 1),
    // How the figures above were taken.
    concurrency: m.args.concurrency,
    persistedSeconds: round(mean(ours.map((p) => p.persistedSeconds)), 2),
    statusReadP50Ms: round(m.reads.p50Ms),
    statusReadMaxMs: round(m.reads.maxMs),
    statusReads: m.reads.reads,
    statusReadTimeouts: m.reads.timeouts,
    statusReadErrors: m.reads.errors,
    ...(m.reads.firstError === undefined ? {} : { statusReadFirstError: m.reads.firstError }),
    apiStatusReadOfferedPerSecond: round(m.apiReads.offeredPerSecond, 0),
    apiStatusReadP50Ms: round(m.apiReads.p50Ms),
    apiStatusReadMaxMs: round(m.apiReads.maxMs),
    apiStatusReads: m.apiReads.reads,
    apiStatusReadsBySource: m.apiReads.bySource,
    apiStatusReadTimeouts: m.apiReads.timeouts,
    apiStatusReadErrors: m.apiReads.errors,
    ...(m.apiReads.firstError === undefined ? {} : { apiStatusReadFirstError: m.apiReads.firstError }),
    statusCacheMs: m.statusCacheMs,
    statusCacheNotifiedMs: m.statusCacheNotifiedMs,
    readers: m.args.readers,
    readSeconds: m.args.readSeconds,
    warmupOrders: m.args.warmupOrders,
    workerRssKb: m.workerRssKb,
    invariants: { ...m.invariants.checks, figures: m.invariants.figures },
    quick: m.args.quick,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: round(totalmem() / 2 ** 30, 1), node: process.version },
    date: new Date().toISOString(),
    elapsedSeconds: round(m.elapsedMs / 1000, 1),
  };
}

export type PipelineResult = ReturnType<typeof buildPipelineResult>;

/**
 * Adds `pipeline` to latest.json, keeping what is there (the burst results), and writes a dated
 * copy of the pipeline result alone: `<date>-pipeline[-quick].json`.
 */
export function writePipelineReport(pipeline: PipelineResult, outDir: string): { latest: string; dated: string } {
  mkdirSync(outDir, { recursive: true });
  const latest = join(outDir, 'latest.json');
  const existing: Record<string, unknown> = existsSync(latest) ? (JSON.parse(readFileSync(latest, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(latest, `${JSON.stringify({ ...existing, pipeline }, null, 2)}\n`);
  const dated = join(outDir, `${pipeline.date.slice(0, 19).replace(/[:T]/g, '-')}-pipeline${pipeline.quick ? '-quick' : ''}.json`);
  writeFileSync(dated, `${JSON.stringify({ pipeline }, null, 2)}\n`);
  return { latest, dated };
}

export function pipelineTable(p: PipelineResult): string {
  const cpu = p.cpuMsPerOrder;
  const inv =
    Object.entries(p.invariants)
      .filter(([name]) => name !== 'figures')
      .every(([, ok]) => ok === true) && p.phases.every((phase) => phase.invariants !== false);
  const rows: Array<[string, string]> = [
    ['orders (concurrency)', `${p.orders} (${p.concurrency})`],
    ['starts/s', fmt(p.startsPerSecond, 0)],
    ['start p50 / p99 ms', `${fmt(p.startP50Ms)} / ${fmt(p.startP99Ms)}`],
    ['persisted/s', `${fmt(p.persistedPerSecond, 0)} (all in MySQL ${fmt(p.persistedSeconds, 2)} s after the first start)`],
    ['CPU ms/order: server', fmt(cpu.server, 2)],
    ['CPU ms/order: worker', fmt(cpu.worker, 2)],
    ['CPU ms/order: mysql', fmt(cpu.mysql, 2)],
    ['CPU ms/order: redis', fmt(cpu.redis, 2)],
    ['live orders', String(p.liveOrders)],
    [
      'status reads/s',
      `${fmt(p.statusReadsPerSecond, 0)} (${p.readers} readers, ${p.readSeconds} s; ${p.statusReadTimeouts} timed out, ${p.statusReadErrors} errors)`,
    ],
    ['status read p50 / p99 / max ms', `${fmt(p.statusReadP50Ms)} / ${fmt(p.statusReadP99Ms)} / ${fmt(p.statusReadMaxMs)}`],
    [
      'API status reads/s (shoppers every 500 ms)',
      `${fmt(p.apiStatusReadsPerSecond, 0)} of ${fmt(p.apiStatusReadOfferedPerSecond, 0)} offered (${p.readers} readers, STATUS_CACHE_MS=${p.statusCacheMs}, notified ${p.statusCacheNotifiedMs}; ${p.apiStatusReadTimeouts} timed out, ${p.apiStatusReadErrors} errors)`,
    ],
    ['API status read p50 / p99 / max ms', `${fmt(p.apiStatusReadP50Ms)} / ${fmt(p.apiStatusReadP99Ms)} / ${fmt(p.apiStatusReadMaxMs)}`],
    [
      'API status reads that reached Temporal',
      `${fmt(p.apiStatusReadTemporalShare * 100, 1)} % (cache ${p.apiStatusReadsBySource.cache}, coalesced ${p.apiStatusReadsBySource.coalesced}, workflow ${p.apiStatusReadsBySource.workflow}, database ${p.apiStatusReadsBySource.database})`,
    ],
    [
      'worker RSS KB/live order',
      `${fmt(p.workerRssKbPerLiveOrder)} (${Math.round(p.workerRssKb.before / 1024)} → ${Math.round(p.workerRssKb.after / 1024)} MiB)`,
    ],
    ['invariants', inv ? 'ok' : '**VIOLATED**'],
  ];
  return [
    `Pipeline${p.quick ? ' (quick)' : ''}: ${p.machine.cpus} × ${p.machine.cpuModel}, Node ${p.machine.node}; ${p.date}.`,
    '',
    '| figure | value |',
    '|---|---|',
    ...rows.map(([name, value]) => `| ${name} | ${value} |`),
    '',
    phaseTable(p),
  ].join('\n');
}

/** One row per phase as they ran, then each kind's mean and the ratios of ours to the floor. */
function phaseTable(p: PipelineResult): string {
  const count = (kind: string) => p.phases.filter((phase) => phase.kind === kind).length;
  const x = (value: number | null) => (value === null ? '—' : `${fmt(value, 2)}×`);
  return [
    `Ours against the floor (bench/floor/): ${p.orders} workflows per phase, ${p.concurrency} starts at a time, each phase on a fresh worker after ${p.warmupOrders} warm-up; ` +
      `total = ${p.cpuMeasured === 'worker' ? 'worker alone (the Temporal server is external, not measured)' : 'Temporal server + worker'}.`,
    '',
    '| phase | server CPU ms/order | worker CPU ms/order | total CPU ms/order | done/s | start p50 / p99 ms |',
    '|---|---:|---:|---:|---:|---|',
    ...p.phases.map(
      (phase, i) =>
        `| ${i + 1} ${phase.kind} | ${fmt(phase.cpuMsPerOrder.server, 2)} | ${fmt(phase.cpuMsPerOrder.worker, 2)} | ${fmt(phase.cpuMsPerOrder.total, 2)} | ${fmt(phase.persistedPerSecond)} | ${fmt(phase.startP50Ms)} / ${fmt(phase.startP99Ms)} |`,
    ),
    `| floor, mean of ${count('floor')} | | | ${fmt(p.floorCpuMsPerOrder, 2)} | ${fmt(p.floorPersistedPerSecond)} | |`,
    `| ours, mean of ${count('ours')} | | | ${fmt(p.oursCpuMsPerOrder, 2)} | ${fmt(p.oursPersistedPerSecond)} | |`,
    `| **ours / floor** | | | **${x(p.cpuRatioOursToFloor)}** | **${x(p.persistedRatioOursToFloor)}** | |`,
    '',
  ].join('\n');
}
