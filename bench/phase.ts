/**
 * One measured phase of the pipeline benchmark: fresh workers' workflows (ours or the floor's)
 * started C at a time until N are done, with the CPU each server and each worker spent meanwhile.
 * Ours and the floor are measured by this same code, so their figures compare.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ManagedProcess } from '../stack/process.js';
import { cpuSecondsOfGroup } from '../stack/cpu.js';
import { watchCount } from './drain.js';
import type { TimedStarts } from './starts.js';

export const PHASE_KINDS = ['floor', 'ours'] as const;
export type PhaseKind = (typeof PHASE_KINDS)[number];

/** What a measured process does for the pipeline: the report sums each role's processes. */
export const PROCESS_ROLES = ['temporal', 'worker', 'mysql', 'redis'] as const;
export type ProcessRole = (typeof PROCESS_ROLES)[number];

/**
 * One process group whose CPU a phase reads from /proc: a server this run started (the dev server,
 * or each Temporal service and PostgreSQL of the cluster, MariaDB, each Redis node) or one of the
 * phase's workers. A server the run did not start (external) is not listed, so not measured.
 */
export interface MeasuredProcess {
  /** `temporal-history`, `postgres`, `worker-2`, `redis-4`, …: the key of its figures in the report. */
  name: string;
  role: MeasuredRole;
  pgid: number;
}

/**
 * A process role, or Zipkin: the span store the tracing-cost benchmark's traced workers export to (no role of the
 * pipeline's).
 */
export type MeasuredRole = ProcessRole | 'zipkin';

/** A phase's workers as measured: `worker-1`, `worker-2`, … whichever program they run (ours, the floor's). */
export function measuredWorkers(workers: readonly ManagedProcess[]): MeasuredProcess[] {
  return workers.map((worker, i) => ({ name: `worker-${i + 1}`, role: 'worker', pgid: worker.pid }));
}

export interface ProcessCpu {
  name: string;
  role: MeasuredRole;
  /** CPU seconds (user + system) of its process group during the phase. */
  seconds: number;
}

export interface PhaseMeasurement {
  kind: PhaseKind;
  taskQueue: string;
  orders: number;
  startsPerSecond: number;
  /** Done per second, first start to the N-th done: ours' orders in MySQL, the floor's local activities run. */
  persistedPerSecond: number;
  /** First start to the N-th done. */
  persistedSeconds: number;
  /** Each start's round trip. */
  startMs: number[];
  /** Each measured process's CPU, from just before the first start until all N were done (+ settleMs). */
  cpu: ProcessCpu[];
}

/**
 * Starts N (through `start`, which times each) while sampling `done` (how many of them are done)
 * every 20 ms, and takes the CPU of `processes` (the servers and the phase's workers) from just
 * before the first start until the N-th is done, and `settleMs` after that if given (work that
 * trails the orders, such as a span exporter's last batch). Throws if they are not all done within 180 s.
 */
export async function measurePhase<T>(options: {
  kind: PhaseKind;
  taskQueue: string;
  orders: number;
  processes: MeasuredProcess[];
  done: () => Promise<number>;
  start: () => Promise<TimedStarts<T>>;
  /** What "done" means, for the error: "orders reached MySQL". */
  doneMeans: string;
  settleMs?: number;
}): Promise<{ measurement: PhaseMeasurement; run: TimedStarts<T> }> {
  const { kind, taskQueue, orders, processes } = options;
  const before = cpuSnapshot(processes);
  const watch = watchCount(options.done);
  const run = await options.start();
  const drain = await watch.until(orders, run.firstStartAt, run.lastStartAt);
  if (options.settleMs && drain.orders >= orders) await sleep(options.settleMs);
  const after = cpuSnapshot(processes);
  if (drain.orders < orders)
    throw new Error(`${kind} phase: only ${drain.orders} of ${orders} ${options.doneMeans} within 180 s`);
  const startSeconds = Math.max(0.001, (run.lastStartAt - run.firstStartAt) / 1000);
  const measurement: PhaseMeasurement = {
    kind,
    taskQueue,
    orders,
    startsPerSecond: orders / startSeconds,
    persistedPerSecond: drain.ordersPerSecond,
    persistedSeconds: drain.totalSeconds,
    startMs: run.startMs,
    cpu: processes.map(({ name, role }, i) => ({ name, role, seconds: after[i]! - before[i]! })),
  };
  return { measurement, run };
}

/** Starts `count` and waits (≤ 180 s) until `done` reaches it: warm-ups and extra live orders, nothing measured. */
export async function startUntilDone<T>(
  count: number,
  done: () => Promise<number>,
  start: () => Promise<TimedStarts<T>>,
): Promise<TimedStarts<T>> {
  const watch = watchCount(done);
  const run = await start();
  const drain = await watch.until(count, run.firstStartAt, run.lastStartAt);
  if (drain.orders < count) throw new Error(`only ${drain.orders} of ${count} done within 180 s`);
  return run;
}

/** CPU seconds so far of each process group, in the order given. */
function cpuSnapshot(processes: MeasuredProcess[]): number[] {
  return processes.map((p) => cpuSecondsOfGroup(p.pgid));
}
