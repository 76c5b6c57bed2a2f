/**
 * One sample of the soak (soak/analysis.ts, Sample): each node process's probe (soak/probe.ts: post-GC heap, RSS,
 * loop delay over the minute; the heap is the floor of the minute's readings, HeapFloor), every server's RSS from
 * /proc/<pid>/status (VmRSS, summed over its process group) and CPU, the worker's sticky cache from its Prometheus
 * endpoint, running OrderWorkflows from Temporal's visibility, Redis's key count, MySQL's order, payment and
 * PaymentIntent rows. A source that does not answer leaves its figure null: the sample is still taken, and the
 * verdict says what it missed.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { RedisClient } from '../src/infra/redis.js';
import { cpuSecondsOfGroup, pidsOfGroup } from '../stack/cpu.js';
import {
  NODE_PROCESSES,
  SERVERS,
  type NodeFigures,
  type NodeProcess,
  type Sample,
  type SamplePhase,
  type ServerFigures,
  type ServerName,
} from './analysis.js';
import { httpCall, isOk } from '../toolkit/http-client.js';
import type { ProbeAnswer } from './probe.js';

const MB = 1024 * 1024;

export interface SampleSources {
  /** Each node process: its probe's URL and its pid (the leader of its process group). */
  probes: Record<NodeProcess, { url: string; pid: number }>;
  /** The pid leading each server's process group. */
  servers: Partial<Record<ServerName, number>>;
  workerMetricsUrl: string;
  temporal: Client;
  redis: RedisClient;
  pool: Pool;
  accepted(): number;
}

/** The load generator's own loop delay, reset at each sample. */
const ownLoop = monitorEventLoopDelay({ resolution: 10 });
ownLoop.enable();

/** Post-GC heap readings of each node process between two samples, besides the sample's own. */
export const HEAP_READINGS_PER_MINUTE = 4;

interface HeapReading {
  heapUsedMb: number;
  heapSpacesMb: Record<string, number>;
}

/**
 * Reads each node process's post-GC heap HEAP_READINGS_PER_MINUTE times a minute, between the samples. A sample's
 * heap is the lowest of its minute's readings and its own: what the process keeps whatever it has in flight. One
 * reading alone also holds the requests under way at that moment, which other work on the same cores multiplies
 * (±5 MB in the API between minutes, measured, against the 1.3 MB an 8-minute run must see at 10 MB/h); a leak
 * raises the floor.
 */
export class HeapFloor {
  private readonly readings: Record<NodeProcess, HeapReading[]> = { api: [], worker: [] };
  private timer: NodeJS.Timeout | undefined;
  private offset: NodeJS.Timeout | undefined;

  constructor(private readonly probes: SampleSources['probes']) {}

  /** Readings half an interval after each sample, then every interval: never at the same moment as a sample. */
  start(): void {
    const everyMs = 60_000 / HEAP_READINGS_PER_MINUTE;
    this.offset = setTimeout(() => {
      void this.read();
      this.timer = setInterval(() => void this.read(), everyMs);
    }, everyMs / 2);
  }

  stop(): void {
    clearTimeout(this.offset);
    clearInterval(this.timer);
  }

  /** The readings since the last take, which are then forgotten. */
  take(name: NodeProcess): HeapReading[] {
    return this.readings[name].splice(0);
  }

  private async read(): Promise<void> {
    await Promise.all(
      NODE_PROCESSES.map(async (name) => {
        const answer = await orNull(
          async () => JSON.parse(await fetchText(`${this.probes[name].url}?loop=0`)) as ProbeAnswer,
        );
        if (answer) this.readings[name].push(readingOf(answer));
      }),
    );
  }
}

function readingOf(answer: ProbeAnswer): HeapReading {
  return {
    heapUsedMb: round(answer.heapUsed / MB, 2),
    heapSpacesMb: Object.fromEntries(
      Object.entries(answer.spaces).map(([space, bytes]) => [space, round(bytes / MB, 2)]),
    ),
  };
}

export async function takeSample(
  sources: SampleSources,
  minute: number,
  phase: SamplePhase,
  floor?: HeapFloor,
): Promise<Sample> {
  const at = new Date().toISOString();
  const [api, worker, openWorkflows, stickyCacheSize, redisKeys, rows] = await Promise.all([
    probe(sources.probes.api, floor?.take('api') ?? []),
    probe(sources.probes.worker, floor?.take('worker') ?? []),
    orNull(async () => (await sources.temporal.workflow.count(OPEN_ORDERS)).count),
    orNull(async () => stickyCacheSizeOf(await fetchText(sources.workerMetricsUrl))),
    orNull(() => sources.redis.dbsize()),
    orNull(() => tableCounts(sources.pool)),
  ]);
  const servers = Object.fromEntries(
    SERVERS.map((name): [ServerName, ServerFigures] => {
      const pid = sources.servers[name];
      return [name, pid === undefined ? { rssMb: null, cpuSeconds: null } : serverFigures(pid)];
    }),
  ) as Record<ServerName, ServerFigures>;
  const own = process.memoryUsage();
  const ownCpu = process.cpuUsage();
  const loadgen = {
    rssMb: round(own.rss / MB),
    heapUsedMb: round(own.heapUsed / MB),
    loopDelayMs: { p99: round(ownLoop.percentile(99) / 1e6), max: round(ownLoop.max / 1e6) },
    cpuSeconds: round((ownCpu.user + ownCpu.system) / 1e6),
  };
  ownLoop.reset();
  return {
    minute,
    at,
    phase,
    api,
    worker,
    servers,
    loadgen,
    openWorkflows,
    stickyCacheSize,
    redisKeys,
    mysqlOrders: rows?.orders ?? null,
    mysqlPayments: rows?.payments ?? null,
    mysqlPaymentIntents: rows?.intents ?? null,
    accepted: sources.accepted(),
  };
}

/** Running order workflows: the orders still open. */
export const OPEN_ORDERS = "WorkflowType = 'OrderWorkflow' AND ExecutionStatus = 'Running'";

/** temporal_sticky_cache_size from Prometheus text: the largest series (the order queue's worker caches workflows). */
export function stickyCacheSizeOf(metrics: string): number | null {
  let size: number | null = null;
  for (const line of metrics.split('\n')) {
    const match = /^temporal_sticky_cache_size(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match) size = Math.max(size ?? 0, Number(match[1]));
  }
  return size;
}

/** VmRSS (kB) of /proc/<pid>/status; 0 when the process is gone. */
export function vmRssKb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function serverFigures(pgid: number): ServerFigures {
  const pids = pidsOfGroup(pgid);
  if (pids.length === 0) return { rssMb: null, cpuSeconds: null };
  const kb = pids.reduce((sum, pid) => sum + vmRssKb(pid), 0);
  return { rssMb: round(kb / 1024), cpuSeconds: round(cpuSecondsOfGroup(pgid)) };
}

async function probe(
  target: { url: string; pid: number },
  earlier: readonly HeapReading[],
): Promise<NodeFigures | null> {
  return orNull(async () => {
    const answer = JSON.parse(await fetchText(`${target.url}?loop=1`)) as ProbeAnswer;
    const own = readingOf(answer);
    const lowest = earlier.reduce((low, reading) => (reading.heapUsedMb < low.heapUsedMb ? reading : low), own);
    const loop = answer.loopDelay ?? { p50: 0, p99: 0, max: 0 };
    return {
      heapUsedMb: lowest.heapUsedMb,
      heapUsedAtSampleMb: own.heapUsedMb,
      heapReadings: earlier.length + 1,
      heapTotalMb: round(answer.heapTotal / MB),
      externalMb: round(answer.external / MB),
      rssMb: round(answer.rss / MB),
      loopDelayMs: { p50: round(loop.p50, 2), p99: round(loop.p99, 2), max: round(loop.max, 2) },
      threadsHeapUsedMb: answer.threadsHeapUsed.map((bytes) => round(bytes / MB)),
      heapSpacesMb: lowest.heapSpacesMb,
      requests: answer.requests,
      cpuSeconds: round(cpuSecondsOfGroup(target.pid)),
      gcForced: answer.gcForced,
    };
  });
}

async function tableCounts(pool: Pool): Promise<{ orders: number; payments: number; intents: number }> {
  const [rows] = await pool.query<RowDataPacket[]>(
    'SELECT (SELECT COUNT(*) FROM orders) AS orders, (SELECT COUNT(*) FROM payments) AS payments, ' +
      '(SELECT COUNT(*) FROM payment_intents) AS intents',
  );
  const row = rows[0];
  if (!row) throw new Error('no row');
  return { orders: Number(row.orders), payments: Number(row.payments), intents: Number(row.intents) };
}

async function fetchText(url: string): Promise<string> {
  const answer = await httpCall('GET', url, { timeoutMs: 15_000 });
  if (!isOk(answer)) throw new Error(`${url}: ${answer.failure?.message ?? answer.status}`);
  return answer.body;
}

async function orNull<T>(read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch {
    return null;
  }
}

function round(n: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(n * scale) / scale;
}
