/**
 * The tracing-cost benchmark's results (bench/tracing-cost.ts): bench/results/tracing-cost.json and
 * .md, a dated copy of the JSON, and the table printed at the end of a run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { TracingCostArgs, TracingMode } from './args.js';
import type { PhaseMeasurement } from './phase.js';
import { cpuPerOrder, ratio } from './pipeline-report.js';
import { fmt, pct, round, sorted } from './stats.js';

export { TRACING_MODES, type TracingMode } from './args.js';

export interface ModeSpec {
  /** The bundle without OpenTelemetry's workflow interceptors (the reference), or the one every worker runs. */
  bare: boolean;
  /** The sampling ratio of the worker and of the client that starts the orders; null: tracing off. */
  ratio: number | null;
  description: string;
}

/** The sampling ratio of `sampled`: one checkout in ten. */
export const SAMPLED_RATIO = 0.1;

export const MODES: Record<TracingMode, ModeSpec> = {
  bare: {
    bare: true,
    ratio: null,
    description: 'bundle without the tracing interceptors, tracing off (the workflow before they existed)',
  },
  off: {
    bare: false,
    ratio: null,
    description: 'the bundle every worker runs, tracing off (OTEL_TRACES_EXPORTER unset)',
  },
  sampled: {
    bare: false,
    ratio: SAMPLED_RATIO,
    description: `tracing to Zipkin, parentbased_traceidratio ${SAMPLED_RATIO}, the starting client sampling at ${SAMPLED_RATIO}`,
  },
  all: {
    bare: false,
    ratio: 1,
    description: 'tracing to Zipkin, every order (parentbased_traceidratio 1, the client always on)',
  },
};

/** What one phase's worker sent Zipkin, counted after it stopped (its shutdown flushes the last spans). */
export interface ZipkinCount {
  spans: number;
  traces: number;
  /** Traces with an order's persist activity span: orders whose trace was recorded. */
  tracedOrders: number;
}

export interface TracingPhase {
  round: number;
  mode: TracingMode;
  measurement: PhaseMeasurement;
  invariantsOk: boolean;
  /** The invariant checks that failed, by name. */
  invariantFailures: string[];
  /** Warm-up and measured orders this phase started: what the traced orders are out of. */
  startedOrders: number;
  zipkin: ZipkinCount;
  /**
   * The whole machine over the measured window (/proc/stat): busy cores, and those neither the measured processes' nor
   * this benchmark's.
   */
  machine: { seconds: number; busyCores: number; otherCores: number };
}

export interface TracingCostMeasurement {
  args: TracingCostArgs;
  stackDescription: string;
  phases: TracingPhase[];
  /** GET /api/v2/services at the end. */
  zipkinServices: string[];
  loadAverageAtStart: number[];
  commit: string;
  elapsedMs: number;
}

/** The worker's service name in Zipkin (src/workers/main.ts). */
export const WORKER_SERVICE = 'flash-checkout-worker';

/** Above this share of orders traced, `sampled` did not sample: the client's decision never reached the workflow. */
const SAMPLED_MAX_SHARE = 0.5;

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
const meanOfKnown = (values: Array<number | null>): number | null =>
  values.some((v) => v === null) ? null : mean(values as number[]);

/** A phase's CPU ms per order: the worker, Temporal (null when external), Zipkin, and their sum. */
function phaseCpu(p: PhaseMeasurement) {
  const base = cpuPerOrder(p);
  const zipkinSeconds = p.cpu.filter((c) => c.role === 'zipkin').reduce((sum, c) => sum + c.seconds, 0);
  const zipkin = (zipkinSeconds * 1000) / p.orders;
  const worker = base.worker ?? 0;
  return {
    worker,
    server: base.server,
    zipkin,
    total: worker + (base.server ?? 0) + zipkin,
    mysql: base.mysql,
    redis: base.redis,
  };
}

/** A mode's figures, the means of its phases. */
interface ModeFigures {
  workerCpuMsPerOrder: number | null;
  temporalCpuMsPerOrder: number | null;
  zipkinCpuMsPerOrder: number | null;
  totalCpuMsPerOrder: number | null;
  persistedPerSecond: number;
  tracedShare: number;
}

export function buildTracingCostResult(m: TracingCostMeasurement) {
  const phases = m.phases.map((phase) => {
    const cpu = phaseCpu(phase.measurement);
    const startMs = sorted(phase.measurement.startMs);
    return {
      round: phase.round,
      mode: phase.mode,
      taskQueue: phase.measurement.taskQueue,
      cpuMsPerOrder: {
        worker: round(cpu.worker, 2),
        temporal: round(cpu.server, 2),
        zipkin: round(cpu.zipkin, 2),
        total: round(cpu.total, 2),
        mysql: round(cpu.mysql, 2),
        redis: round(cpu.redis, 2),
      },
      persistedPerSecond: round(phase.measurement.persistedPerSecond, 1),
      startsPerSecond: round(phase.measurement.startsPerSecond, 0),
      startP50Ms: round(pct(startMs, 50) ?? 0),
      startP99Ms: round(pct(startMs, 99) ?? 0),
      startedOrders: phase.startedOrders,
      zipkin: phase.zipkin,
      tracedShare: round(phase.zipkin.tracedOrders / phase.startedOrders, 3),
      invariants: phase.invariantsOk,
      ...(phase.invariantFailures.length > 0 ? { invariantFailures: phase.invariantFailures } : {}),
      machine: {
        seconds: round(phase.machine.seconds, 1),
        busyCores: round(phase.machine.busyCores, 2),
        otherCores: round(phase.machine.otherCores, 2),
      },
    };
  });
  type Phase = (typeof phases)[number];
  const of = (mode: TracingMode) => phases.filter((p) => p.mode === mode);
  const meanOf = (list: Phase[], pick: (p: Phase) => number | null) => round(meanOfKnown(list.map(pick)), 2);
  const means = Object.fromEntries(
    m.args.modes.map((mode) => {
      const list = of(mode);
      return [
        mode,
        {
          workerCpuMsPerOrder: meanOf(list, (p) => p.cpuMsPerOrder.worker),
          temporalCpuMsPerOrder: meanOf(list, (p) => p.cpuMsPerOrder.temporal),
          zipkinCpuMsPerOrder: meanOf(list, (p) => p.cpuMsPerOrder.zipkin),
          totalCpuMsPerOrder: meanOf(list, (p) => p.cpuMsPerOrder.total),
          persistedPerSecond: round(mean(list.map((p) => p.persistedPerSecond)), 1),
          tracedShare: round(mean(list.map((p) => p.tracedShare)), 3),
        },
      ];
    }),
  ) as Partial<Record<TracingMode, ModeFigures>>;
  const bare = means.bare;
  const modes = Object.fromEntries(
    m.args.modes.map((mode) => {
      const figures = means[mode]!;
      return [
        mode,
        {
          ...MODES[mode],
          ...figures,
          // Ratios of the means as reported, so that anyone can check them.
          // Null without a bare phase (--modes without it).
          workerCpuRatioToBare: ratio(figures.workerCpuMsPerOrder, bare?.workerCpuMsPerOrder ?? null),
          totalCpuRatioToBare: ratio(figures.totalCpuMsPerOrder, bare?.totalCpuMsPerOrder ?? null),
          persistedRatioToBare: ratio(figures.persistedPerSecond, bare?.persistedPerSecond ?? null),
          rounds: of(mode),
        },
      ];
    }),
  ) as Partial<
    Record<
      TracingMode,
      ModeSpec &
        ModeFigures & {
          workerCpuRatioToBare: number | null;
          totalCpuRatioToBare: number | null;
          persistedRatioToBare: number | null;
          rounds: Phase[];
        }
    >
  >;
  // The modes are what they say: spans only from traced workers, every order's in `all`, about one
  // in ten in `sampled` (never nearly all: that would be roots started without the client's header).
  const checks = {
    invariants: phases.every((p) => p.invariants),
    spansOnlyFromTracedModes: phases.every((p) => (MODES[p.mode].ratio === null ? p.zipkin.spans === 0 : true)),
    allTracedReachedZipkin:
      of('all').length === 0 ||
      (of('all').every((p) => p.zipkin.tracedOrders > 0) && m.zipkinServices.includes(WORKER_SERVICE)),
    sampledSampled: of('sampled').every((p) => p.tracedShare <= SAMPLED_MAX_SHARE),
  };
  return {
    orders: m.args.orders,
    rounds: m.args.rounds,
    concurrency: m.args.concurrency,
    warmupOrders: m.args.warmupOrders,
    settleMs: m.args.settleMs,
    sampledRatio: SAMPLED_RATIO,
    stack: m.stackDescription,
    /** Whether Temporal's CPU was measured (a server the run started) or not (external: null). */
    temporalMeasured: phases.every((p) => p.cpuMsPerOrder.temporal !== null),
    /** The modes run, in their order. */
    modeNames: m.args.modes,
    modes,
    phases,
    zipkinServices: m.zipkinServices,
    checks,
    ok: Object.values(checks).every(Boolean),
    quick: m.args.quick,
    commit: m.commit,
    loadAverageAtStart: m.loadAverageAtStart.map((v) => round(v, 2)),
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

export type TracingCostResult = ReturnType<typeof buildTracingCostResult>;

export function tracingCostTable(r: TracingCostResult): string {
  const x = (value: number | null) => (value === null ? '—' : `${fmt(value, 2)}×`);
  const traced = (tracedOrders: number, started: number) => `${tracedOrders} of ${started}`;
  const header =
    '| mode | worker CPU ms/order | worker / bare | Temporal CPU ms/order | Zipkin CPU ms/order | total ms/order | total / bare | done/s | orders traced |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|';
  const meanRows = r.modeNames.map((mode) => {
    const m = r.modes[mode]!;
    const started = m.rounds.reduce((sum, p) => sum + p.startedOrders, 0);
    const tracedOrders = m.rounds.reduce((sum, p) => sum + p.zipkin.tracedOrders, 0);
    return `| **${mode}** (mean of ${m.rounds.length}) | **${fmt(m.workerCpuMsPerOrder, 2)}** | **${x(m.workerCpuRatioToBare)}** | ${fmt(m.temporalCpuMsPerOrder, 2)} | ${fmt(m.zipkinCpuMsPerOrder, 2)} | ${fmt(m.totalCpuMsPerOrder, 2)} | ${x(m.totalCpuRatioToBare)} | ${fmt(m.persistedPerSecond)} | ${traced(tracedOrders, started)} |`;
  });
  const phaseRows = r.phases.map(
    (p, i) =>
      `| ${i + 1}: round ${p.round} ${p.mode} | ${fmt(p.cpuMsPerOrder.worker, 2)} | | ${fmt(p.cpuMsPerOrder.temporal, 2)} | ${fmt(p.cpuMsPerOrder.zipkin, 2)} | ${fmt(p.cpuMsPerOrder.total, 2)} | | ${fmt(p.persistedPerSecond)} | ${traced(p.zipkin.tracedOrders, p.startedOrders)} |`,
  );
  const others = r.phases.map((p) => fmt(p.machine.otherCores, 2)).join(', ');
  const failed = Object.entries(r.checks)
    .filter(([, ok]) => !ok)
    .map(([name]) => name);
  return [
    `Tracing cost${r.quick ? ' (quick)' : ''}: ${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}; ${r.date}; commit ${r.commit}.`,
    `${r.orders} orders per phase (${r.concurrency} starts at a time, after ${r.warmupOrders} warm-up), ${r.rounds} round${r.rounds > 1 ? 's' : ''} of the four modes, each phase on a fresh worker; ` +
      `CPU from the first start until the last order is in MySQL + ${r.settleMs / 1000} s, / orders; total = worker + Temporal${r.temporalMeasured ? '' : ' (external, not measured)'} + Zipkin.`,
    '',
    header,
    rule,
    ...meanRows,
    ...phaseRows,
    '',
    `CPU of other processes on the machine during each phase (cores): ${others}; load average at start ${r.loadAverageAtStart.join(', ')}.`,
    `Checks: ${failed.length === 0 ? 'all held' : `**FAILED: ${failed.join(', ')}**`} (invariants, spans only from traced workers, the \`all\` phases' spans in Zipkin, \`sampled\` sampled).`,
    '',
  ].join('\n');
}

/** tracing-cost.json and .md in `outDir`, and a dated copy of the JSON: `<date>-tracing-cost[-quick].json`. */
export function writeTracingCostReport(
  r: TracingCostResult,
  outDir: string,
): { json: string; md: string; dated: string } {
  mkdirSync(outDir, { recursive: true });
  const json = join(outDir, 'tracing-cost.json');
  const md = join(outDir, 'tracing-cost.md');
  const body = `${JSON.stringify({ tracingCost: r }, null, 2)}\n`;
  writeFileSync(json, body);
  writeFileSync(md, `# What tracing costs the worker\n\n${tracingCostTable(r)}`);
  const dated = join(
    outDir,
    `${r.date.slice(0, 19).replace(/[:T]/g, '-')}-tracing-cost${r.quick ? '-quick' : ''}.json`,
  );
  writeFileSync(dated, body);
  return { json, md, dated };
}
