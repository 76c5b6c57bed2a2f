/**
 * The soak's results: latest.json (every sample, the request classes, the journeys, the sales' invariants, the
 * verdict), latest.md (the same as tables) and latest.svg (toolkit/chart.ts, soakChart), in --out (soak/results by
 * default).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from 'prettier';
import { soakChart } from '../toolkit/chart.js';
import type { SoakLimits } from './args.js';
import {
  linearFit,
  NODE_PROCESSES,
  SERVERS,
  steadySamples,
  type QuietState,
  type RequestClassFigures,
  type Sample,
  type SaleCheck,
  type Verdict,
  type WarmupEnd,
} from './analysis.js';

export interface SoakReport {
  date: string;
  node: string;
  cpu: string;
  commit: string;
  loadAverage: { start: string; end: string };
  seconds: number;
  settings: {
    minutes: number;
    rate: number;
    shoppers: number;
    paymentWindow: string;
    saleMinutes: number;
    warmupMaxMinutes: number;
    plantedLeak: boolean;
    logLevel: string;
    /** Whether the run built dist/ first (else it ran dist/ as it found it). */
    built: boolean;
    maxCachedWorkflows: number;
    /** The journey's shares and waits (soak/load.ts). */
    journeys: Record<string, number>;
    /** How the API and the worker were started (beyond --expose-gc and the preloads). */
    nodeFlags: string[];
    /** The app's settings the soak sets beyond the stack's addresses. */
    env: Record<string, string>;
    limits: SoakLimits;
  };
  /** The planted leak: what it was sized for and what the API's measured request rate made of it. */
  leak: {
    mbPerHourTarget: number;
    expectedApiRequestsPerSecond: number;
    charsPerRequest: number;
    measuredApiRequestsPerSecond: number | null;
    /** What the leak retained per hour at the measured rate, chars plus overhead. */
    effectiveMbPerHour: number | null;
  } | null;
  warmup: WarmupEnd;
  samples: Sample[];
  /** Informational: each process's RSS slope over the steady samples (MB/h), and each worker thread's heap slope. */
  rssSlopeMbPerHour: Record<string, number | null>;
  requests: RequestClassFigures[];
  journeys: {
    started: number;
    accepted: number;
    endings: Record<string, number>;
    amiss: number;
    amissExamples: string[];
    unfinished: number;
  };
  sales: Array<SaleCheck & { figures: unknown }>;
  quiet: QuietState;
  verdict: Verdict;
}

/** Every process's RSS slope over the steady samples, MB/h. */
export function rssSlopes(samples: readonly Sample[], warmupMinute: number): Record<string, number | null> {
  const steady = steadySamples(samples, warmupMinute);
  const slopes: Record<string, number | null> = {};
  const fit = (points: Array<[number, number]>) => {
    const slope = linearFit(points)?.slope;
    return slope === undefined ? null : Math.round(slope * 10) / 10;
  };
  for (const name of NODE_PROCESSES)
    slopes[name] = fit(
      steady.flatMap((s): Array<[number, number]> => (s[name] ? [[s.minute / 60, s[name].rssMb]] : [])),
    );
  for (const name of SERVERS)
    slopes[name] = fit(
      steady.flatMap((s): Array<[number, number]> => {
        const rss = s.servers[name].rssMb;
        return rss === null ? [] : [[s.minute / 60, rss]];
      }),
    );
  return slopes;
}

const num = (n: number | null | undefined, digits = 1) =>
  n === null || n === undefined ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits });

export function markdown(report: SoakReport): string {
  const s = report.settings;
  const v = report.verdict;
  const lines: string[] = [
    `# Soak, ${report.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `${report.cpu}, Node ${report.node}, commit ${report.commit}; load average ${report.loadAverage.start} at the start, ${report.loadAverage.end} at the end.`,
    '',
    `${s.minutes} minutes at ${s.rate} checkouts/s from ${s.shoppers} returning shoppers (PAYMENT_WINDOW ${s.paymentWindow}, ` +
      `STATUS_CACHE_MAX_ENTRIES ${s.env.STATUS_CACHE_MAX_ENTRIES ?? 'default'}, a new sale every ${s.saleMinutes} min), ` +
      `the compiled API and worker (${s.built ? 'built by this run' : 'dist/ as found, not rebuilt'}), through the Stripe double; ` +
      `warm-up until minute ${report.warmup.minute} (${report.warmup.reason}; cap ${s.warmupMaxMinutes}).` +
      (s.plantedLeak ? ' **With the planted leak in the API** (soak/planted-leak.ts).' : ''),
    '',
    `## Verdict: ${v.holds ? 'holds' : 'DOES NOT HOLD'}`,
    '',
    '| check | bound | API | worker |',
    '| --- | --- | ---: | ---: |',
    `| heap slope after the warm-up (post-GC heapUsed, least squares, ${v.steadySamples} samples) | ≤ ${s.limits.heapSlopeMbPerHour} MB/h | ${num(v.heapSlopeMbPerHour.api)} MB/h | ${num(v.heapSlopeMbPerHour.worker)} MB/h |`,
    `| event-loop delay p99, worst minute after the warm-up | ≤ ${s.limits.loopDelayP99Ms} ms | ${num(v.loopDelayP99MaxMs.api)} ms | ${num(v.loopDelayP99MaxMs.worker)} ms |`,
    '',
    ...Object.entries(v.checks).map(([name, ok]) => `- ${ok ? '✓' : '✗'} ${name}`),
    ...(v.reasons.length > 0 ? ['', 'Why not:', '', ...v.reasons.map((reason) => `- ${reason}`)] : []),
    '',
  ];
  if (report.leak) {
    const l = report.leak;
    lines.push(
      '## The planted leak',
      '',
      `${l.charsPerRequest} characters retained per API request (plus ~24 B of string header and array slot), sized for ` +
        `${l.mbPerHourTarget} MB/h at an expected ${num(l.expectedApiRequestsPerSecond)} API requests/s; measured ` +
        `${num(l.measuredApiRequestsPerSecond)} requests/s, so about ${num(l.effectiveMbPerHour)} MB/h retained.`,
      '',
    );
  }
  lines.push(
    '## Samples',
    '',
    'Heap: the lowest heapUsed after a forced GC of the minute (read every 15 s and at the sample); RSS in MB ' +
      '(2^20 bytes); loop delay p99 (max) in ms over the minute before the sample.',
    '',
    '| min | phase | API heap | API RSS | API loop | worker heap | worker RSS | worker loop | workflow thread heap | Temporal RSS | MariaDB RSS | Redis RSS | open orders | sticky cache | Redis keys | order rows | payment rows | accepted |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const sample of report.samples) {
    const loop = (n: Sample['api']) => (n ? `${num(n.loopDelayMs.p99)} (${num(n.loopDelayMs.max, 0)})` : '—');
    lines.push(
      `| ${sample.minute} | ${sample.phase}${sample.minute === report.warmup.minute && sample.phase === 'load' ? ' (warm-up ends)' : ''} | ${num(sample.api?.heapUsedMb)} | ${num(sample.api?.rssMb, 0)} | ${loop(sample.api)} | ${num(sample.worker?.heapUsedMb)} | ${num(sample.worker?.rssMb, 0)} | ${loop(sample.worker)} | ${sample.worker?.threadsHeapUsedMb.map((mb) => num(mb)).join(' + ') || '—'} | ${num(sample.servers.temporal.rssMb, 0)} | ${num(sample.servers.mysql.rssMb, 0)} | ${num(sample.servers.redis.rssMb, 0)} | ${num(sample.openWorkflows, 0)} | ${num(sample.stickyCacheSize, 0)} | ${num(sample.redisKeys, 0)} | ${num(sample.mysqlOrders, 0)} | ${num(sample.mysqlPayments, 0)} | ${num(sample.accepted, 0)} |`,
    );
  }
  lines.push(
    '',
    `RSS slopes after the warm-up (MB/h, informational): ${Object.entries(report.rssSlopeMbPerHour)
      .map(([name, slope]) => `${name} ${num(slope)}`)
      .join(', ')}.`,
    '',
    '## Requests',
    '',
    `Late: answered later than the deadline + ${s.limits.answerSlackMs} ms; no answer: the load generator's own timeout or a connection error.`,
    '',
    '| class | deadline ms | count | p50 ms | p99 ms | max ms | over deadline | late | 5xx | no answer | statuses |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...report.requests.map(
      (c) =>
        `| ${c.name} | ${num(c.deadlineMs, 0)} | ${num(c.count, 0)} | ${num(c.p50Ms)} | ${num(c.p99Ms)} | ${num(c.maxMs)} | ${c.deadlineMs === null ? '—' : c.overDeadline} | ${c.deadlineMs === null ? '—' : c.late} | ${c.fiveXx} | ${c.errors} | ${Object.entries(
          c.byStatus,
        )
          .map(([status, n]) => `${status} ×${n}`)
          .join(', ')} |`,
    ),
    '',
    '## Journeys and sales',
    '',
    `${report.journeys.started} shoppers, ${report.journeys.accepted} checkouts accepted; ended: ${Object.entries(
      report.journeys.endings,
    )
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([ending, n]) => `${ending} ×${n}`)
      .join(', ')}; ${report.journeys.amiss} amiss, ${report.journeys.unfinished} unfinished.`,
    ...(report.journeys.amissExamples.length > 0 ? ['', ...report.journeys.amissExamples.map((e) => `- ${e}`)] : []),
    '',
    `At rest ${num(report.quiet.seconds, 0)} s after the load stopped: ${num(report.quiet.openWorkflows, 0)} OrderWorkflows running, ${num(report.quiet.reserved, 0)} units reserved.`,
    '',
    '| sale | invariants |',
    '| --- | --- |',
    ...report.sales.map(
      (sale) =>
        `| ${sale.sku} | ${Object.entries(sale.checks)
          .map(([name, ok]) => `${name} ${ok ? '✓' : '✗'}`)
          .join(', ')} |`,
    ),
    '',
  );
  return lines.join('\n');
}

/**
 * Writes latest.json, latest.md and latest.svg into `outDir`; returns the Markdown. The JSON is laid out as Prettier
 * lays it out, so that `prettier --check .` passes over committed results.
 */
export async function writeSoakReport(report: SoakReport, outDir: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const md = markdown(report);
  writeFileSync(join(outDir, 'latest.json'), await format(JSON.stringify(report), { parser: 'json' }));
  writeFileSync(join(outDir, 'latest.md'), md);
  writeFileSync(join(outDir, 'latest.svg'), soakChart(report));
  return md;
}
