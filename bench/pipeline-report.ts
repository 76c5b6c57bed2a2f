/**
 * The pipeline benchmark's results: the `pipeline` object of bench/results/latest.json (merged
 * beside the burst results there), a dated copy, and the table printed at the end of a run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { InvariantReport } from '../src/invariants/check.js';
import type { PipelineArgs } from './args.js';
import { fmt, round } from './stats.js';

/** Per server: the Temporal server, the worker, MariaDB, Redis; null when this run did not start it. */
export interface CpuByServer {
  server: number | null;
  worker: number | null;
  mysql: number | null;
  redis: number | null;
}

export interface PipelineMeasurement {
  args: PipelineArgs;
  startsPerSecond: number;
  persistedPerSecond: number;
  /** First start to the last order in MySQL. */
  persistedSeconds: number;
  startP50Ms: number;
  startP99Ms: number;
  /** CPU seconds from the first start until all N were persisted. */
  cpuSeconds: CpuByServer;
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

export function buildPipelineResult(m: PipelineMeasurement) {
  const perOrderMs = (seconds: number | null) => (seconds === null ? null : round((seconds * 1000) / m.args.orders, 2));
  return {
    orders: m.args.orders,
    startsPerSecond: round(m.startsPerSecond, 0),
    persistedPerSecond: round(m.persistedPerSecond, 0),
    startP50Ms: round(m.startP50Ms),
    startP99Ms: round(m.startP99Ms),
    cpuMsPerOrder: {
      server: perOrderMs(m.cpuSeconds.server),
      worker: perOrderMs(m.cpuSeconds.worker),
      mysql: perOrderMs(m.cpuSeconds.mysql),
      redis: perOrderMs(m.cpuSeconds.redis),
    },
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
    persistedSeconds: round(m.persistedSeconds, 2),
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
  const inv = Object.entries(p.invariants)
    .filter(([name]) => name !== 'figures')
    .every(([, ok]) => ok === true);
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
  ].join('\n');
}
