/**
 * Keeps `npm run soak` working: a 3-minute soak (its own stack, the compiled API and worker, the Stripe double) into a
 * temporary --out, checking the plumbing: a sample at the start and one every minute with every process in it, the
 * results file, table and chart written, the warm-up's end and the verdict computed. Never a figure: three minutes of
 * heap are noise, so the verdict's value is not asserted, only that it was reached. And the soak's arithmetic (the
 * least-squares slope, the warm-up's end, the verdict, the leak's size) on known inputs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  heapSlopeMbPerHour,
  leakCharsPerRequest,
  LEAK_OVERHEAD_BYTES,
  linearFit,
  NODE_PROCESSES,
  SERVERS,
  verdictOf,
  warmupEndsAt,
  type NodeFigures,
  type RequestClassFigures,
  type Sample,
  type VerdictInput,
} from '../soak/analysis.js';
import { DEFAULT_LIMITS, parseSoakArgs } from '../soak/args.js';
import { LatencyHistogram } from '../soak/http.js';
import { stickyCacheSizeOf } from '../soak/sample.js';
import { runScript, tempOutDir } from './helpers/run-script.js';

const node = (heapUsedMb: number, p99 = 5): NodeFigures => ({
  heapUsedMb,
  heapUsedAtSampleMb: heapUsedMb,
  heapReadings: 5,
  heapTotalMb: heapUsedMb * 1.5,
  externalMb: 2,
  rssMb: heapUsedMb * 3,
  loopDelayMs: { p50: 1, p99, max: p99 * 2 },
  threadsHeapUsedMb: [],
  heapSpacesMb: { old_space: heapUsedMb },
  requests: 0,
  cpuSeconds: 0,
  gcForced: true,
});

const sample = (minute: number, phase: Sample['phase'], api: number, worker: number, extra: Partial<Sample> = {}) =>
  ({
    minute,
    at: new Date(minute * 60_000).toISOString(),
    phase,
    api: node(api),
    worker: node(worker),
    servers: Object.fromEntries(SERVERS.map((name) => [name, { rssMb: 100, cpuSeconds: 1 }])),
    loadgen: { rssMb: 100, heapUsedMb: 20, loopDelayMs: { p99: 1, max: 2 }, cpuSeconds: 1 },
    openWorkflows: 500,
    stickyCacheSize: 500,
    redisKeys: 10,
    mysqlOrders: 10,
    mysqlPayments: 5,
    mysqlPaymentIntents: 10,
    accepted: 10,
    ...extra,
  }) as Sample;

const quietRequests: RequestClassFigures[] = [
  {
    name: 'checkout',
    deadlineMs: 2_000,
    count: 100,
    byStatus: { '202': 100 },
    fiveXx: 0,
    errors: 0,
    late: 0,
    overDeadline: 0,
    p50Ms: 3,
    p99Ms: 20,
    maxMs: 40,
  },
];

const holding = (samples: Sample[]): VerdictInput => ({
  samples,
  warmup: { minute: 2, reason: 'open-workflows-plateau' },
  limits: DEFAULT_LIMITS,
  requests: quietRequests,
  sales: [{ sku: 'S', ok: true, checks: { noOversell: true } }],
  quiet: { reached: true, seconds: 70, openWorkflows: 0, reserved: 0 },
  journeysAmiss: 0,
  journeysUnfinished: 0,
});

describe('the soak’s arithmetic', () => {
  it('least squares: an exact line, a noisy one, too few points', () => {
    const exact = linearFit([
      [0, 1],
      [1, 3],
      [2, 5],
      [3, 7],
    ]);
    expect(exact?.slope).toBeCloseTo(2, 12);
    expect(exact?.intercept).toBeCloseTo(1, 12);
    expect(exact?.r2).toBeCloseTo(1, 12);
    // y = 1 + 0.5x ± 1, alternating: the residuals cancel in the slope.
    const noisy = linearFit(
      Array.from({ length: 10 }, (_, x): [number, number] => [x, 1 + 0.5 * x + (x % 2 ? 1 : -1)]),
    );
    expect(noisy?.slope).toBeCloseTo(0.5 + 5 / 82.5, 10);
    expect(linearFit([[1, 1]])).toBeNull();
    expect(
      linearFit([
        [1, 1],
        [1, 2],
      ]),
    ).toBeNull();
    expect(
      linearFit([
        [0, 4],
        [1, 4],
      ]),
    ).toEqual({ slope: 0, intercept: 4, r2: null });
  });

  it('the heap slope is MB per hour over minutes: 1 MB a minute is 60 MB/h', () => {
    const samples = [0, 1, 2, 3, 4].map((minute) => sample(minute, 'load', 50 + minute, 80));
    expect(heapSlopeMbPerHour(samples, 'api')).toBeCloseTo(60, 10);
    expect(heapSlopeMbPerHour(samples, 'worker')).toBeCloseTo(0, 10);
    expect(
      heapSlopeMbPerHour([sample(1, 'load', 50, 80), { ...sample(2, 'load', 60, 80), api: null }], 'api'),
    ).toBeNull();
  });

  it('the warm-up ends on a full sticky cache, on open orders that stopped growing for two samples, or at the cap', () => {
    const options = { maxCachedWorkflows: 2_000, maxMinutes: 5 };
    const grow = [0, 400, 800, 1_200].map((open, minute) =>
      sample(minute, minute === 0 ? 'start' : 'load', 50, 80, { openWorkflows: open, stickyCacheSize: open }),
    );
    expect(warmupEndsAt(grow, options)).toBeNull();
    expect(warmupEndsAt([...grow, sample(4, 'load', 50, 80, { stickyCacheSize: 2_000 })], options)).toEqual({
      minute: 4,
      reason: 'cache-full',
    });
    // 1,200 → 1,230 (+2.5 %) → 1,210: two minutes without growth.
    const flat = [
      ...grow,
      sample(4, 'load', 50, 80, { openWorkflows: 1_230, stickyCacheSize: 1_230 }),
      sample(5, 'load', 50, 80, { openWorkflows: 1_210, stickyCacheSize: 1_210 }),
    ];
    expect(warmupEndsAt(flat.slice(0, 5), { ...options, maxMinutes: 10 })).toBeNull();
    expect(warmupEndsAt(flat, { ...options, maxMinutes: 10 })).toEqual({ minute: 5, reason: 'open-workflows-plateau' });
    // Still growing 10 % a minute: only the cap ends it.
    const rising = [0, 1, 2, 3, 4, 5].map((minute) =>
      sample(minute, minute === 0 ? 'start' : 'load', 50, 80, { openWorkflows: 1_000 * 1.1 ** minute }),
    );
    expect(warmupEndsAt(rising.slice(0, 5), options)).toBeNull();
    expect(warmupEndsAt(rising, options)).toEqual({ minute: 5, reason: 'cap' });
    // The start sample (no load) never ends it, nor does an unknown count.
    expect(warmupEndsAt([sample(0, 'start', 50, 80)], { ...options, maxMinutes: 0 })).toBeNull();
    const unknown = [1, 2, 3].map((minute) => sample(minute, 'load', 50, 80, { openWorkflows: null }));
    expect(warmupEndsAt(unknown, options)).toBeNull();
  });

  it('the verdict holds on flat heaps and quiet answers, and names each thing that breaks it', () => {
    const flat = [0, 1, 2, 3, 4, 5, 6].map((minute) => sample(minute, minute === 0 ? 'start' : 'load', 50, 80));
    const held = verdictOf(holding(flat));
    expect(held).toMatchObject({ holds: true, reasons: [], steadySamples: 5 });
    expect(held.heapSlopeMbPerHour.api).toBeCloseTo(0, 10);

    // The API leaks 0.5 MB a minute (30 MB/h) after the warm-up; its growth before the warm-up's end does not count.
    const leaking = flat.map((s) => ({
      ...s,
      api: node(s.minute < 2 ? 10 + 20 * s.minute : 50 + 0.5 * (s.minute - 2)),
    }));
    const leak = verdictOf(holding(leaking));
    expect(leak.holds).toBe(false);
    expect(leak.checks).toMatchObject({ heapSlope: false, loopDelay: true, deadlines: true });
    expect(leak.heapSlopeMbPerHour.api).toBeCloseTo(30, 10);
    expect(leak.reasons).toEqual([expect.stringMatching(/^api: heap grows 30\.0 MB\/h after the warm-up/)]);

    // The drain's samples never count: the heap may fall once the load stops.
    const drained = [...flat, sample(7, 'drain', 20, 30), sample(8, 'after', 10, 20)];
    expect(verdictOf(holding(drained)).holds).toBe(true);

    const slowLoop = flat.map((s) => (s.minute === 4 ? { ...s, worker: node(80, 75) } : s));
    const slow = verdictOf(holding(slowLoop));
    expect(slow.checks.loopDelay).toBe(false);
    expect(slow.loopDelayP99MaxMs.worker).toBe(75);
    expect(slow.reasons).toEqual(['worker: event-loop delay p99 75.0 ms over 50 ms (minute 4)']);

    const late = verdictOf({
      ...holding(flat),
      requests: [{ ...quietRequests[0]!, late: 2, byStatus: { '202': 97, '503': 3 }, fiveXx: 3, maxMs: 3_500 }],
      quiet: { reached: true, seconds: 70, openWorkflows: 0, reserved: 1 },
      sales: [{ sku: 'S', ok: false, checks: { noOversell: true, storesAgree: false } }],
      journeysAmiss: 1,
    });
    expect(late.checks).toMatchObject({
      deadlines: false,
      noServerErrors: false,
      quiet: false,
      invariants: false,
      journeys: false,
    });
    expect(late.reasons).toEqual([
      'checkout: 2 of 100 answered later than 2000 ms + 1000 ms, 0 not answered (max 3500 ms)',
      'checkout: 3 answered 5xx (503 ×3)',
      'at rest: 0 OrderWorkflows running, 1 units reserved',
      'S: invariants broken: storesAgree',
      '1 orders did not end as their shopper acted',
    ]);

    // Not enough samples after the warm-up: no slope, no verdict that holds.
    const short = verdictOf({ ...holding(flat.slice(0, 3)), warmup: { minute: 2, reason: 'cap' } });
    expect(short.holds).toBe(false);
    expect(short.reasons).toContain('api: no heap slope (fewer than two samples of it after the warm-up)');
  });

  it('the planted leak: characters per request for a rate of MB per hour; percentiles within 2 %', () => {
    // 20 MB/h at 100 requests/s: 20 × 2^20 / 360,000 = 58.25 bytes a request, of which 24 are overhead.
    expect(leakCharsPerRequest(20, 100)).toBe(Math.round((20 * 1024 * 1024) / 360_000 - LEAK_OVERHEAD_BYTES));
    expect(leakCharsPerRequest(20, 1_000_000)).toBe(2);
    const histogram = new LatencyHistogram();
    for (let ms = 1; ms <= 1_000; ms++) histogram.record(ms);
    expect(histogram.percentile(50)).toBeGreaterThanOrEqual(500);
    expect(histogram.percentile(50)).toBeLessThanOrEqual(510);
    expect(histogram.percentile(99)).toBeGreaterThanOrEqual(990);
    expect(histogram.percentile(100)).toBe(1_000);
    expect(new LatencyHistogram().percentile(50)).toBeNull();
  });

  it('reads the sticky cache from Prometheus text, and checks its command line', () => {
    const metrics = [
      '# TYPE temporal_sticky_cache_size gauge',
      'temporal_sticky_cache_size{namespace="default",task_queue="q"} 812',
      'temporal_sticky_cache_size{namespace="default",task_queue="q-provider"} 0',
      'temporal_sticky_cache_size_total 5',
    ].join('\n');
    expect(stickyCacheSizeOf(metrics)).toBe(812);
    expect(stickyCacheSizeOf('nothing')).toBeNull();
    const args = parseSoakArgs(['--minutes', '9', '--plant-leak', '--out', '/tmp/x'], '/repo');
    expect(args).toMatchObject({
      minutes: 9,
      warmupMaxMinutes: 3,
      plantLeak: true,
      leakMbPerHour: 20,
      outDir: '/tmp/x',
    });
    expect(parseSoakArgs([], '/repo')).toMatchObject({
      minutes: 30,
      rate: 3,
      shoppers: 360,
      statusCacheEntries: 360,
      build: true,
      outDir: '/repo/soak/results',
    });
    expect(parseSoakArgs(['--status-cache-entries', 'default'], '/repo').statusCacheEntries).toBeNull();
    expect(() => parseSoakArgs(['--minutes', '3', '--warmup-max-minutes', '3'], '/repo')).toThrow(
      /at least one minute/,
    );
    expect(() => parseSoakArgs(['--payment-window', '5s'], '/repo')).toThrow(/payment-window/);
  });
});

describe('npm run soak, 3 minutes', () => {
  const outDir = tempOutDir('soak-plumbing-');

  it(
    'samples every process at the start and each minute, writes the results, the table and the chart, and reaches a verdict',
    { timeout: 12 * 60_000 },
    async () => {
      // Its own stack: the soak reads its servers' memory from their pids (it ignores the test stack's addresses).
      const { code, output } = await runScript(
        'soak/run.ts',
        // A new sale every minute: shoppers move on from sale to sale, as in hours of soak.
        [
          '--minutes',
          '3',
          '--warmup-max-minutes',
          '1',
          '--payment-window',
          '30s',
          '--sale-minutes',
          '1',
          '--out',
          outDir,
        ],
        { ...process.env, CI: 'true' },
        (line) => {
          if (line.startsWith('[soak]')) console.log(line);
        },
      );
      const resultsFile = join(outDir, 'latest.json');
      expect(existsSync(resultsFile), output.slice(-4_000)).toBe(true);
      // The verdict may go either way on a 3-minute run; a crash is exit 1 without results, caught above.
      expect([0, 1]).toContain(code);
      const report = JSON.parse(readFileSync(resultsFile, 'utf8')) as {
        samples: Sample[];
        warmup: { minute: number; reason: string };
        verdict: { holds: boolean; heapSlopeMbPerHour: Record<string, number | null>; reasons: string[] };
        requests: RequestClassFigures[];
        journeys: { accepted: number };
        sales: unknown[];
      };
      const phases = report.samples.map((s) => `${s.minute}:${s.phase}`);
      expect(phases.slice(0, 4)).toEqual(['0:start', '1:load', '2:load', '3:load']);
      expect(report.samples.at(-1)?.phase).toBe('after');
      for (const s of report.samples) {
        for (const name of NODE_PROCESSES) {
          expect(s[name], `${name} at minute ${s.minute}`).not.toBeNull();
          expect(s[name]?.gcForced).toBe(true);
          expect(s[name]?.heapUsedMb).toBeGreaterThan(0);
          expect(s[name]?.rssMb).toBeGreaterThan(0);
        }
        for (const server of ['temporal', 'mysql', 'redis'] as const)
          expect(s.servers[server].rssMb, `${server} at minute ${s.minute}`).toBeGreaterThan(0);
        expect(s.openWorkflows).not.toBeNull();
        expect(s.redisKeys).not.toBeNull();
        expect(s.mysqlOrders).not.toBeNull();
      }
      // The worker runs its workflows in a thread of its own, whose heap is read too.
      expect(report.samples.at(-1)?.worker?.threadsHeapUsedMb.length).toBeGreaterThan(0);
      expect(report.warmup.minute).toBeLessThanOrEqual(1);
      expect(Object.keys(report.verdict.heapSlopeMbPerHour)).toEqual(['api', 'worker']);
      for (const name of NODE_PROCESSES) expect(typeof report.verdict.heapSlopeMbPerHour[name]).toBe('number');
      expect(typeof report.verdict.holds).toBe('boolean');
      expect(code === 0).toBe(report.verdict.holds);
      expect(report.journeys.accepted).toBeGreaterThan(0);
      expect(report.sales.length).toBeGreaterThanOrEqual(3);
      for (const name of ['checkout', 'long-poll', 'read', 'webhook', 'stripe-confirm'])
        expect(report.requests.find((c) => c.name === name)?.count, name).toBeGreaterThan(0);
      const md = readFileSync(join(outDir, 'latest.md'), 'utf8');
      expect(md).toMatch(/^# Soak, /);
      expect(md).toContain('## Verdict');
      const svg = readFileSync(join(outDir, 'latest.svg'), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      for (const panel of ['heap', 'rss', 'loop'])
        for (const name of NODE_PROCESSES) expect(svg).toContain(`data-panel="${panel}" data-series="${name}"`);
    },
  );
});
