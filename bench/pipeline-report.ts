/**
 * The pipeline benchmark's results: the `pipeline` object of bench/results/latest.json (merged
 * beside the burst results there), a dated copy, and the table printed at the end of a run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { InvariantReport } from '../src/invariants/check.js';
import type { StatusReadSource } from '../src/order/status-reads.js';
import type { PipelineArgs } from './args.js';
import { PROCESS_ROLES, type PhaseMeasurement, type ProcessRole } from './phase.js';
import { fmt, pct, round, sorted } from './stats.js';

export interface PipelineMeasurement {
  args: PipelineArgs;
  /** The stack's servers in words (bench/pipeline-stack.ts). */
  stackDescription: string;
  /** In the order they ran; ours phases say whether their sale's invariants held. */
  phases: Array<PhaseMeasurement & { invariantsOk?: boolean }>;
  /** The figures below are the last ours phase's (the reading phase). */
  liveOrders: number;
  reads: {
    reads: number;
    seconds: number;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
    timeouts: number;
    errors: number;
    firstError: string | undefined;
  };
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
    bySource: Record<StatusReadSource, number>;
  };
  statusCacheMs: number;
  statusCacheNotifiedMs: number;
  /** All the reading phase's workers together. */
  workerRssKb: { before: number; after: number };
  invariants: InvariantReport;
  elapsedMs: number;
}

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
/** The mean, or null when a value is unknown (a server this run did not start). */
const meanOfKnown = (values: Array<number | null>): number | null =>
  values.some((v) => v === null) ? null : mean(values as number[]);

/** A phase's CPU ms per order: each role's sum, and each process's own (its CPU / N, so a role's add up). */
interface CpuPerOrder {
  /** Temporal: the dev server, or the cluster's four services and PostgreSQL; null when external. */
  server: number | null;
  /** Every worker process of the phase. */
  worker: number | null;
  /** server + worker, the pipeline itself (see cpuPerOrder). */
  total: number | null;
  mysql: number | null;
  /** Every Redis node. */
  redis: number | null;
  byProcess: Record<string, number | null>;
}

/**
 * A phase's CPU per order. `total` is Temporal and the workers, the pipeline itself: MariaDB and
 * Redis serve ours alone (the floor does no I/O), and the bench's own polling of MySQL runs there.
 * With an external Temporal server (not measured) it is the workers alone, for every phase alike.
 */
export function cpuPerOrder(p: PhaseMeasurement): CpuPerOrder {
  const ms = (seconds: number) => (seconds * 1000) / p.orders;
  const sum = (role: ProcessRole) => {
    const own = p.cpu.filter((c) => c.role === role);
    return own.length === 0 ? null : ms(own.reduce((total, c) => total + c.seconds, 0));
  };
  const [server, worker] = [sum('temporal'), sum('worker')];
  const total = worker === null ? null : worker + (server ?? 0);
  const byProcess = Object.fromEntries(p.cpu.map((c) => [c.name, ms(c.seconds)]));
  return { server, worker, total, mysql: sum('mysql'), redis: sum('redis'), byProcess };
}

/** The mean of each figure over phases (of one kind), each process's included. */
function meanCpuPerOrder(cpus: CpuPerOrder[]): CpuPerOrder {
  const of = (pick: (c: CpuPerOrder) => number | null) => meanOfKnown(cpus.map(pick));
  const names = [...new Set(cpus.flatMap((c) => Object.keys(c.byProcess)))];
  return {
    server: of((c) => c.server),
    worker: of((c) => c.worker),
    total: of((c) => c.total),
    mysql: of((c) => c.mysql),
    redis: of((c) => c.redis),
    byProcess: Object.fromEntries(names.map((name) => [name, of((c) => c.byProcess[name] ?? null)])),
  };
}

/**
 * As reported, rounded: the sums (`temporal` and `workers` are `server` and `worker` under the
 * names the cluster layout reads them by; both kept, so earlier readers of the results still work)
 * and each process's own figure.
 */
function reportedCpu(c: CpuPerOrder) {
  const r = (value: number | null) => round(value, 2);
  return {
    cpuMsPerOrder: {
      server: r(c.server),
      worker: r(c.worker),
      total: r(c.total),
      mysql: r(c.mysql),
      redis: r(c.redis),
      temporal: r(c.server),
      workers: r(c.worker),
    },
    cpuMsPerOrderByProcess: Object.fromEntries(Object.entries(c.byProcess).map(([name, ms]) => [name, r(ms)])),
  };
}

/** a / b from the figures as reported, so that anyone can check it; null without both. */
/**
 * a / b as reported (2 decimals); null when either is unknown. Tests compare with it, never with the unrounded
 * quotient.
 */
export const ratio = (a: number | null, b: number | null) =>
  a === null || b === null || b === 0 ? null : round(a / b, 2);

export function buildPipelineResult(m: PipelineMeasurement) {
  const ours = m.phases.filter((p) => p.kind === 'ours');
  const floor = m.phases.filter((p) => p.kind === 'floor');
  const oursCpu = ours.map(cpuPerOrder);
  const meanCpu = (phases: PhaseMeasurement[]) => round(meanOfKnown(phases.map((p) => cpuPerOrder(p).total)), 2);
  const meanOfKind = (phases: PhaseMeasurement[]) => reportedCpu(meanCpuPerOrder(phases.map(cpuPerOrder)));
  // Which processes each sum counts, in the order they were measured (the first phase's: all alike).
  const processes = Object.fromEntries(
    PROCESS_ROLES.map((role) => [role, (m.phases[0]?.cpu ?? []).filter((c) => c.role === role).map((c) => c.name)]),
  ) as Record<ProcessRole, string[]>;
  const meanDone = (phases: PhaseMeasurement[]) => round(mean(phases.map((p) => p.persistedPerSecond)), 1);
  // Ours' start latencies pooled over its phases: percentiles of all its starts.
  const oursStartMs = sorted(ours.flatMap((p) => p.startMs));
  const floorCpuMsPerOrder = meanCpu(floor);
  const oursCpuMsPerOrder = meanCpu(ours);
  const floorPersistedPerSecond = meanDone(floor);
  const oursPersistedPerSecond = meanDone(ours);
  return {
    orders: m.args.orders,
    layout: m.args.layout,
    stack: m.stackDescription,
    /** Worker processes per phase, on one task queue. */
    workers: m.args.workers,
    cpuProcesses: processes,
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
      temporal: round(meanOfKnown(oursCpu.map((c) => c.server)), 2),
      workers: round(meanOfKnown(oursCpu.map((c) => c.worker)), 2),
    },
    cpuMsPerOrderByProcess: meanOfKind(ours).cpuMsPerOrderByProcess,
    /** Each kind's figures, the mean of its phases: what the table's mean rows show. */
    meanOfPhases: { floor: meanOfKind(floor), ours: meanOfKind(ours) },
    // Against the floor (bench/floor/): CPU per order of the server + the worker, done/s; means of each kind's phases.
    floorCpuMsPerOrder,
    floorPersistedPerSecond,
    oursCpuMsPerOrder,
    oursPersistedPerSecond,
    cpuRatioOursToFloor: ratio(oursCpuMsPerOrder, floorCpuMsPerOrder),
    persistedRatioOursToFloor: ratio(oursPersistedPerSecond, floorPersistedPerSecond),
    /** What the CPU totals count: the workers alone when the Temporal server is external (not measured). */
    cpuMeasured: m.phases.every((p) => cpuPerOrder(p).server !== null)
      ? ('server+worker' as const)
      : ('worker' as const),
    phases: m.phases.map((p) => {
      return {
        kind: p.kind,
        taskQueue: p.taskQueue,
        ...reportedCpu(cpuPerOrder(p)),
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
    /** Reads that reached a store (the row in MySQL, the promise in Redis) / all reads; none reaches Temporal. */
    apiStatusReadStoreShare: round(
      (m.apiReads.bySource.database + m.apiReads.bySource.stores) / Math.max(1, m.apiReads.reads),
      3,
    ),
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
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: round(totalmem() / 2 ** 30, 1),
      node: process.version,
    },
    date: new Date().toISOString(),
    elapsedSeconds: round(m.elapsedMs / 1000, 1),
  };
}

export type PipelineResult = ReturnType<typeof buildPipelineResult>;

/**
 * Adds `pipeline` to latest.json, keeping what is there (the burst results), and writes a dated
 * copy of the pipeline result alone: `<date>-pipeline[-cluster][-<W>w][-quick].json`.
 */
export function writePipelineReport(pipeline: PipelineResult, outDir: string): { latest: string; dated: string } {
  mkdirSync(outDir, { recursive: true });
  const latest = join(outDir, 'latest.json');
  const existing: Record<string, unknown> = existsSync(latest)
    ? (JSON.parse(readFileSync(latest, 'utf8')) as Record<string, unknown>)
    : {};
  writeFileSync(latest, `${JSON.stringify({ ...existing, pipeline }, null, 2)}\n`);
  const tags = [
    ...(pipeline.layout === 'cluster' ? ['cluster'] : []),
    ...(pipeline.workers > 1 ? [`${pipeline.workers}w`] : []),
    ...(pipeline.quick ? ['quick'] : []),
  ];
  const dated = join(
    outDir,
    `${pipeline.date.slice(0, 19).replace(/[:T]/g, '-')}-${['pipeline', ...tags].join('-')}.json`,
  );
  writeFileSync(dated, `${JSON.stringify({ pipeline }, null, 2)}\n`);
  return { latest, dated };
}

export function pipelineTable(p: PipelineResult): string {
  const cpu = p.cpuMsPerOrder;
  // A sum of several processes is followed by each one's figure.
  const each = (names: string[]) =>
    names.length > 1
      ? ` (${names.map((name) => `${name} ${fmt(p.cpuMsPerOrderByProcess[name] ?? null, 2)}`).join(', ')})`
      : '';
  const inv =
    Object.entries(p.invariants)
      .filter(([name]) => name !== 'figures')
      .every(([, ok]) => ok === true) && p.phases.every((phase) => phase.invariants !== false);
  const rows: Array<[string, string]> = [
    ['layout', `${p.layout}: ${p.stack}`],
    ['worker processes', String(p.workers)],
    ['orders (concurrency)', `${p.orders} (${p.concurrency})`],
    ['starts/s', fmt(p.startsPerSecond, 0)],
    ['start p50 / p99 ms', `${fmt(p.startP50Ms)} / ${fmt(p.startP99Ms)}`],
    [
      'persisted/s',
      `${fmt(p.persistedPerSecond, 0)} (all in MySQL ${fmt(p.persistedSeconds, 2)} s after the first start)`,
    ],
    ['CPU ms/order: server', `${fmt(cpu.server, 2)}${each(p.cpuProcesses.temporal)}`],
    ['CPU ms/order: worker', `${fmt(cpu.worker, 2)}${each(p.cpuProcesses.worker)}`],
    ['CPU ms/order: mysql', fmt(cpu.mysql, 2)],
    ['CPU ms/order: redis', fmt(cpu.redis, 2)],
    ['live orders', String(p.liveOrders)],
    [
      'status reads/s',
      `${fmt(p.statusReadsPerSecond, 0)} (${p.readers} readers, ${p.readSeconds} s; ${p.statusReadTimeouts} timed out, ${p.statusReadErrors} errors)`,
    ],
    [
      'status read p50 / p99 / max ms',
      `${fmt(p.statusReadP50Ms)} / ${fmt(p.statusReadP99Ms)} / ${fmt(p.statusReadMaxMs)}`,
    ],
    [
      'API status reads/s (shoppers every 500 ms)',
      `${fmt(p.apiStatusReadsPerSecond, 0)} of ${fmt(p.apiStatusReadOfferedPerSecond, 0)} offered (${p.readers} readers, STATUS_CACHE_MS=${p.statusCacheMs}, notified ${p.statusCacheNotifiedMs}; ${p.apiStatusReadTimeouts} timed out, ${p.apiStatusReadErrors} errors)`,
    ],
    [
      'API status read p50 / p99 / max ms',
      `${fmt(p.apiStatusReadP50Ms)} / ${fmt(p.apiStatusReadP99Ms)} / ${fmt(p.apiStatusReadMaxMs)}`,
    ],
    [
      'API status reads that reached a store',
      `${fmt(p.apiStatusReadStoreShare * 100, 1)} % (cache ${p.apiStatusReadsBySource.cache}, coalesced ${p.apiStatusReadsBySource.coalesced}, database ${p.apiStatusReadsBySource.database}, stores ${p.apiStatusReadsBySource.stores})`,
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

type Reported = ReturnType<typeof reportedCpu>;

/**
 * The CPU columns of the phase table: Temporal's, then the workers'. A role of one process keeps
 * its single column (`server`, `worker`, as the single-node table always had); a role of several
 * gets one column per process and one for their sum.
 */
function cpuColumns(p: PipelineResult): Array<{ header: string; value: (cpu: Reported) => number | null }> {
  const role = (names: string[], single: string, sum: string, pick: (cpu: Reported) => number | null) =>
    names.length <= 1
      ? [{ header: `${single} CPU ms/order`, value: pick }]
      : [
          ...names.map((name) => ({
            header: name,
            value: (cpu: Reported) => cpu.cpuMsPerOrderByProcess[name] ?? null,
          })),
          { header: `**${sum}**`, value: pick },
        ];
  return [
    ...role(p.cpuProcesses.temporal, 'server', 'temporal', (cpu) => cpu.cpuMsPerOrder.temporal),
    ...role(p.cpuProcesses.worker, 'worker', 'workers', (cpu) => cpu.cpuMsPerOrder.workers),
  ];
}

/**
 * One row per phase as they ran, then each kind's mean and the ratios of ours to the floor. MariaDB
 * and Redis come last: they are not in the total, and the columns before them keep their places.
 */
function phaseTable(p: PipelineResult): string {
  const count = (kind: string) => p.phases.filter((phase) => phase.kind === kind).length;
  const x = (value: number | null) => (value === null ? '—' : `${fmt(value, 2)}×`);
  // An empty cell is "| |", as the table always had it.
  const row = (cells: string[]) => `|${cells.map((cell) => (cell ? ` ${cell} ` : ' ')).join('|')}|`;
  const columns = cpuColumns(p);
  const cpuCells = (cpu: Reported) => columns.map((column) => fmt(column.value(cpu), 2));
  const temporal =
    p.cpuMeasured === 'worker'
      ? 'the workers alone (the Temporal server is external, not measured)'
      : `Temporal${p.layout === 'cluster' ? ' (its services and PostgreSQL)' : ' server'} + ${p.workers > 1 ? 'workers' : 'worker'}`;
  return [
    `Ours against the floor (bench/floor/): ${p.orders} workflows per phase, ${p.concurrency} starts at a time, each phase on ${p.workers > 1 ? `${p.workers} fresh workers` : 'a fresh worker'} after ${p.warmupOrders} warm-up; ` +
      `total = ${temporal}.` +
      (columns.length > 2
        ? " CPU ms per order of each process: its CPU during the phase / the phase's orders, so each sum is its processes' figures added up" +
          `${p.layout === 'cluster' ? "; temporal-worker is Temporal's own worker service (schedules, system workflows), worker-N the phase's workers" : ''}.`
        : ''),
    '',
    row([
      'phase',
      ...columns.map((column) => column.header),
      'total CPU ms/order',
      'done/s',
      'start p50 / p99 ms',
      'mariadb CPU ms/order',
      'redis CPU ms/order',
    ]),
    row(['---', ...columns.map(() => '---:'), '---:', '---:', '---', '---:', '---:']).replaceAll(' ', ''),
    ...p.phases.map((phase, i) =>
      row([
        `${i + 1} ${phase.kind}`,
        ...cpuCells(phase),
        fmt(phase.cpuMsPerOrder.total, 2),
        fmt(phase.persistedPerSecond),
        `${fmt(phase.startP50Ms)} / ${fmt(phase.startP99Ms)}`,
        fmt(phase.cpuMsPerOrder.mysql, 2),
        fmt(phase.cpuMsPerOrder.redis, 2),
      ]),
    ),
    ...(['floor', 'ours'] as const).map((kind) => {
      const mean = p.meanOfPhases[kind];
      const done = kind === 'floor' ? p.floorPersistedPerSecond : p.oursPersistedPerSecond;
      return row([
        `${kind}, mean of ${count(kind)}`,
        ...cpuCells(mean),
        fmt(mean.cpuMsPerOrder.total, 2),
        fmt(done),
        '',
        fmt(mean.cpuMsPerOrder.mysql, 2),
        fmt(mean.cpuMsPerOrder.redis, 2),
      ]);
    }),
    row([
      '**ours / floor**',
      ...columns.map(() => ''),
      `**${x(p.cpuRatioOursToFloor)}**`,
      `**${x(p.persistedRatioOursToFloor)}**`,
      '',
      '',
      '',
    ]),
    '',
  ].join('\n');
}
