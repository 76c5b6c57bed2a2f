/**
 * One measured phase of the pipeline benchmark: a fresh worker's workflows (ours or the floor's)
 * started C at a time until N are done, with the CPU each server and that worker spent meanwhile.
 * Ours and the floor are measured by this same code, so their figures compare.
 */
import { cpuSecondsOfGroup } from '../src/util/cpu.js';
import { watchCount } from './drain.js';
import type { TimedStarts } from './starts.js';

export const PHASE_KINDS = ['floor', 'ours'] as const;
export type PhaseKind = (typeof PHASE_KINDS)[number];

/** CPU seconds per server: the Temporal server, the phase's worker, MariaDB, Redis; null when not measured (external). */
export interface CpuByServer {
  server: number | null;
  worker: number | null;
  mysql: number | null;
  redis: number | null;
}

/** Process-group ids of the stack's servers this run started; absent: external, so not measured. */
export interface ServerPids {
  server?: number;
  mysql?: number;
  redis?: number;
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
  /** From just before the first start until all N were done. */
  cpuSeconds: CpuByServer;
}

/**
 * Starts N (through `start`, which times each) while sampling `done` (how many of them are done)
 * every 20 ms, and takes the CPU of the servers and `workerPid` from just before the first start
 * until the N-th is done. Throws if they are not all done within 180 s.
 */
export async function measurePhase<T>(options: {
  kind: PhaseKind;
  taskQueue: string;
  orders: number;
  servers: ServerPids;
  workerPid: number;
  done: () => Promise<number>;
  start: () => Promise<TimedStarts<T>>;
  /** What "done" means, for the error: "orders reached MySQL". */
  doneMeans: string;
}): Promise<{ measurement: PhaseMeasurement; run: TimedStarts<T> }> {
  const { kind, taskQueue, orders, servers, workerPid } = options;
  const before = cpuSnapshot(servers, workerPid);
  const watch = watchCount(options.done);
  const run = await options.start();
  const drain = await watch.until(orders, run.firstStartAt, run.lastStartAt);
  const after = cpuSnapshot(servers, workerPid);
  if (drain.orders < orders) throw new Error(`${kind} phase: only ${drain.orders} of ${orders} ${options.doneMeans} within 180 s`);
  const startSeconds = Math.max(0.001, (run.lastStartAt - run.firstStartAt) / 1000);
  const measurement: PhaseMeasurement = {
    kind,
    taskQueue,
    orders,
    startsPerSecond: orders / startSeconds,
    persistedPerSecond: drain.ordersPerSecond,
    persistedSeconds: drain.totalSeconds,
    startMs: run.startMs,
    cpuSeconds: cpuSince(before, after),
  };
  return { measurement, run };
}

/** Starts `count` and waits (≤ 180 s) until `done` reaches it: warm-ups and extra live orders, nothing measured. */
export async function startUntilDone<T>(count: number, done: () => Promise<number>, start: () => Promise<TimedStarts<T>>): Promise<TimedStarts<T>> {
  const watch = watchCount(done);
  const run = await start();
  const drain = await watch.until(count, run.firstStartAt, run.lastStartAt);
  if (drain.orders < count) throw new Error(`only ${drain.orders} of ${count} done within 180 s`);
  return run;
}

function cpuSnapshot(servers: ServerPids, workerPid: number): CpuByServer {
  const of = (pid: number | undefined) => (pid === undefined ? null : cpuSecondsOfGroup(pid));
  return { server: of(servers.server), worker: of(workerPid), mysql: of(servers.mysql), redis: of(servers.redis) };
}

function cpuSince(before: CpuByServer, after: CpuByServer): CpuByServer {
  const delta = (key: keyof CpuByServer) => {
    const [a, b] = [after[key], before[key]];
    return a === null || b === null ? null : a - b;
  };
  return { server: delta('server'), worker: delta('worker'), mysql: delta('mysql'), redis: delta('redis') };
}
