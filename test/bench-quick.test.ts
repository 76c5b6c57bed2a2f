/**
 * Keeps `npm run bench` working: runs `bench/run.ts --quick` against the test stack (its servers
 * are given in the environment, so the benchmark starts none of its own) and checks that every
 * variant ran, the invariants held and the results file has the shape bench/report.ts writes,
 * and that the picture (latest.svg) draws what the results hold. Figures are printed by the
 * benchmark, never asserted here (beyond their order): this machine is shared and noisy.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, inject, it } from 'vitest';
import { parseBenchArgs } from '../bench/args.js';
import { formatCpuList, parseCpuList } from '../bench/cpu-layout.js';
import type { VariantResult } from '../bench/load.js';
import { buildLayoutsReport, writeReport } from '../bench/report.js';
import { runBench, runScript, tempOutDir } from './helpers/run-script.js';

const root = resolve(import.meta.dirname, '..');
const outDir = tempOutDir('bench-quick-');

/** The attributes of every element of `svg` whose class is `name` (toolkit/chart.ts marks its parts so). */
function marks(svg: string, name: string): Array<Record<string, string>> {
  return [...svg.matchAll(new RegExp(`<\\w+ class="${name}"([^>]*)>`, 'g'))].map((match) =>
    Object.fromEntries([...match[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((attr) => [attr[1]!, attr[2]!])),
  );
}

/** Each percentile at most the next: p50 ≤ p90 ≤ p99 ≤ max. */
function expectOrdered(values: unknown[], what: string): void {
  expect(
    values.every((value) => typeof value === 'number'),
    `${what}: ${JSON.stringify(values)}`,
  ).toBe(true);
  const numbers = values as number[];
  for (let i = 1; i < numbers.length; i++)
    expect(numbers[i]!, `${what}: ${numbers.join(' ≤ ')}`).toBeGreaterThanOrEqual(numbers[i - 1]!);
}

it('runs the quick benchmark: all four variants, invariants hold, results written', { timeout: 180_000 }, async () => {
  const { code, output } = await runBench(['--quick', '--out', outDir]);
  expect(code, output).toBe(0);

  const report = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8'));
  expect(report.config).toMatchObject({ quick: true, stock: 100, perUserLimit: 1 });
  // The default layout pins nothing.
  // Shared alone pins nothing; the pipeline behind the front door runs at the layout's lower priority.
  expect(report).toMatchObject({ layout: 'shared', cpuLayout: { front: '', back: '', backNice: 10 } });
  expect(Object.keys(report.layouts)).toEqual(['shared']);
  expect(Object.keys(report.variants).sort()).toEqual(['ceiling', 'ours', 'queue', 'sync']);
  for (const [name, variant] of Object.entries<Record<string, unknown>>(report.variants)) {
    for (const key of ['rps', 'p50Ms', 'p99Ms', 'winP99Ms']) expect(variant[key], `${name}.${key}`).toBeGreaterThan(0);
    expect(variant.errors, `${name} errors`).toBe(0);
    expect(variant.errorsWhileUnitsLeft, `${name} 5xx while units were left`).toBe(0);
    if (name === 'ceiling') continue;
    // Every unit sold, and to no more shoppers than there were units.
    expect(variant.won, `${name} won`).toBe(100);
    expect(variant.soldOutP99Ms, `${name} sold-out p99`).toBeGreaterThan(0);
    expect(variant.invariants, `${name} invariants`).toMatchObject({
      noOversell: true,
      conservation: true,
      storesAgree: true,
      noLostOrder: true,
      perUserLimit: true,
    });
  }
  expect(report.drain).toMatchObject({ orders: 100 });
  expect(report.drain.seconds).toBeGreaterThanOrEqual(0);
  for (const ratio of ['oursVsCeiling', 'oursVsSync', 'oursVsQueue']) expect(report.ratios[ratio]).toBeGreaterThan(0);
  expect(report.invariants).toEqual({
    noOversell: true,
    conservation: true,
    storesAgree: true,
    noLostOrder: true,
    perUserLimit: true,
  });
  expect(readFileSync(join(outDir, 'latest.md'), 'utf8')).toMatch(/\| ours \| \d+ \|/);
  expect(readdirSync(outDir).filter((f) => /^\d{4}-\d\d-\d\d-.*-quick\.json$/.test(f))).toHaveLength(1);
  expect(output).toMatch(/Ratios \(throughput\)/);
  // The payment phase: every winner of ours pays (a signed webhook) and its shopper's long-poll reads PAID.
  const payments = report.variants.ours.payments;
  expect(payments, 'ours has a payment phase').toMatchObject({ payments: 100, notPaid: 0, withinSeconds: 10 });
  expect(payments.toPaid.count).toBe(100);
  expect(payments.allPaidAfterSeconds, 'every paid order PAID in MySQL, timed from the last payment').toEqual(
    expect.any(Number),
  );
  expect(payments.webhook.count).toBeGreaterThanOrEqual(100);
  expectOrdered([payments.webhook.p50Ms, payments.webhook.p99Ms, payments.webhook.maxMs], 'webhook p50 ≤ p99 ≤ max');
  expectOrdered([payments.toPaid.p50Ms, payments.toPaid.p99Ms, payments.toPaid.maxMs], 'to PAID p50 ≤ p99 ≤ max');
  expect(payments.cpuMsPerPayment.api).toBeGreaterThan(0);
  expect(payments.cpuMsPerPayment.worker).toBeGreaterThan(0);
  expect(payments.cache, 'the worker cache read from its metrics').toMatchObject({ sizeBefore: expect.any(Number) });
  expect(payments.cache.hits + payments.cache.misses, 'workflow tasks over the phase').toBeGreaterThan(0);
  for (const name of ['ceiling', 'sync', 'queue']) expect(report.variants[name].payments, name).toBeUndefined();
  expect(readFileSync(join(outDir, 'latest.md'), 'utf8')).toMatch(/Payment phase[\s\S]*\| ours \| 100 \|/);

  // The latency percentiles, every answer and the wins alone, and the drain over time behind the picture.
  for (const [name, v] of Object.entries<any>(report.variants)) {
    expectOrdered([v.p50Ms, v.p90Ms, v.p99Ms, v.maxMs], `${name} checkout p50 ≤ p90 ≤ p99 ≤ max`);
    expectOrdered([v.winP50Ms, v.winP90Ms, v.winP99Ms, v.winMaxMs], `${name} win p50 ≤ p90 ≤ p99 ≤ max`);
    if (name === 'ceiling') continue;
    const series = v.drain.series;
    expect(series.stepSeconds, `${name} drain step`).toBeGreaterThan(0);
    expect(series.stepSeconds, `${name} drain step`).toBeLessThanOrEqual(1);
    // From the first win (at or before the last) to the drain's end, a point at the last win.
    expect(series.fromSeconds, `${name} drain start`).toBeLessThanOrEqual(0);
    expect(
      Number.isInteger(Math.round((-series.fromSeconds / series.stepSeconds) * 1e6) / 1e6),
      `${name}: a point at the last win`,
    ).toBe(true);
    expect(series.persisted.length, `${name} drain points`).toBeGreaterThan(1);
    expectOrdered(series.persisted, `${name} persisted never falls`);
    expect(series.persisted.at(-1), `${name}: the series ends with every won order in MySQL`).toBe(100);
    expect(
      series.fromSeconds + (series.persisted.length - 1) * series.stepSeconds,
      `${name} drain end`,
    ).toBeGreaterThanOrEqual(v.drain.seconds - 1e-6);
  }
  const svg = readFileSync(join(outDir, 'latest.svg'), 'utf8');
  expect(svg).toMatch(/^<svg [^>]*>[\s\S]*ours[\s\S]*<\/svg>\n$/);
  expect(svg).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)|<script|<image|@import/);
  for (const name of Object.keys(report.variants)) {
    expect(
      marks(svg, 'rps').filter((m) => m['data-variant'] === name),
      `${name} req/s bar`,
    ).toHaveLength(1);
    const latency = marks(svg, 'latency').filter((m) => m['data-variant'] === name);
    // The ceiling answers every checkout alike: no separate win band.
    expect(
      latency.map((m) => m['data-kind']),
      `${name} latency bands`,
    ).toEqual(name === 'ceiling' ? ['all'] : ['all', 'win']);
    for (const band of latency)
      expectOrdered(band['data-ms']!.split(' ').map(Number), `${name} ${band['data-kind']} band in the picture`);
  }
  const lines = marks(svg, 'drain');
  expect(lines.map((m) => m['data-variant']).sort(), 'a drain line per variant that persists orders').toEqual([
    'ours',
    'queue',
    'sync',
  ]);
  for (const line of lines) {
    expect(Number(line['data-points']), `${line['data-variant']} drain line`).toBe(
      report.variants[line['data-variant']!].drain.series.persisted.length,
    );
    expect(line.points!.trim().split(' ')).toHaveLength(Number(line['data-points']));
  }
});

it(
  'runs --wait: ours and ours-wait (Prefer: wait=10) on the same burst, both models reported',
  { timeout: 180_000 },
  async () => {
    const waitOut = mkdtempSync(join(tmpdir(), 'bench-quick-wait-'));
    try {
      const { code, output } = await runBench(['--quick', '--variants', 'ours', '--wait', '--out', waitOut]);
      expect(code, output).toBe(0);
      const report = JSON.parse(readFileSync(join(waitOut, 'latest.json'), 'utf8'));
      expect(Object.keys(report.variants).sort()).toEqual(['ours', 'ours-wait']);
      const waiting = report.variants['ours-wait'];
      // Every unit sold; each win was a persisted order (201) or fell back to 202; none failed.
      expect(waiting.won).toBe(100);
      expect(waiting.errors).toBe(0);
      expect(waiting.orderFailed).toBe(0);
      expect(waiting.persistedInWait).toBeGreaterThan(0);
      expect(waiting.persistedInWait).toBeLessThanOrEqual(100);
      for (const key of ['rps', 'winP50Ms', 'winP99Ms']) expect(waiting[key], key).toBeGreaterThan(0);
      expect(waiting.invariants).toMatchObject({
        noOversell: true,
        conservation: true,
        storesAgree: true,
        noLostOrder: true,
        perUserLimit: true,
      });
      expect(report.ratios.oursWaitVsOurs).toBeGreaterThan(0);
      expect(readFileSync(join(waitOut, 'latest.md'), 'utf8')).toMatch(/Waiting checkout \(ours-wait/);
    } finally {
      rmSync(waitOut, { recursive: true, force: true });
    }
  },
);

/** The CPUs this test process may run on: the benchmark's split layout takes the first two. */
const allowedCpus = parseCpuList(
  /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '',
);

it(
  'runs --layout split: load generator and front door on one CPU, the rest on another, every thread pinned',
  { timeout: 180_000 },
  async () => {
    const splitOut = mkdtempSync(join(tmpdir(), 'bench-quick-split-'));
    try {
      const { code, output } = await runBench([
        '--quick',
        '--layout',
        'split',
        '--variants',
        'ours,queue',
        '--requests',
        '1000',
        '--out',
        splitOut,
      ]);
      if (allowedCpus.length < 2) {
        expect(code).not.toBe(0);
        expect(output).toMatch(/--layout split needs at least 2 CPUs/);
        return;
      }
      expect(code, output).toBe(0);
      const [front, back] = allowedCpus.map(String);
      const report = JSON.parse(readFileSync(join(splitOut, 'latest.json'), 'utf8'));
      expect(report).toMatchObject({ layout: 'split', cpuLayout: { front, back } });
      expect(Object.keys(report.layouts)).toEqual(['split']);
      expect(report.layouts.split.variants).toEqual(report.variants);
      // Read from /proc (Cpus_allowed_list of every thread of every process) after each burst. The
      // test stack's servers are external to the benchmark, so it leaves them alone: not listed.
      expect(report.variants.ours.cpuAffinity).toEqual({ api: front, worker: back, loadgen: front });
      expect(report.variants.queue.cpuAffinity).toEqual({
        'bench-queue': front,
        'bench-queue-consumer': back,
        loadgen: front,
      });
      for (const [name, variant] of Object.entries<Record<string, unknown>>(report.variants)) {
        expect(variant.layout, `${name} layout`).toBe('split');
        expect(variant.won, `${name} won`).toBe(100);
        expect(variant.errors, `${name} errors`).toBe(0);
      }
      expect(report.invariants).toEqual({
        noOversell: true,
        conservation: true,
        storesAgree: true,
        noLostOrder: true,
        perUserLimit: true,
      });
      expect(output).toMatch(/not pinned \(external, not started by the benchmark\): temporal, redis, mysql/);
      const md = readFileSync(join(splitOut, 'latest.md'), 'utf8');
      expect(md).toContain(`Layout **split**: load generator and front door (API, baseline server) on CPU ${front};`);
      expect(md).toContain(`- ours: worker ${back}, api ${front}, loadgen ${front}`);
    } finally {
      rmSync(splitOut, { recursive: true, force: true });
    }
  },
);

it('--layouts shared,split: one report with every layout, each figure marked with its layout, one table per layout', () => {
  const { settings, layouts } = parseBenchArgs(['--quick', '--layouts', 'shared,split'], root);
  expect(layouts).toEqual(['shared', 'split']);
  const measured = (rps: number, layout: string): VariantResult => ({
    ...variantFigures(rps),
    cpuAffinity:
      layout === 'split' ? { api: '0', worker: '1', loadgen: '0' } : { api: '0-1', worker: '0-1', loadgen: '0-1' },
  });
  const report = buildLayoutsReport(
    settings,
    [
      {
        layout: 'shared',
        cpus: { layout: 'shared', front: '0-1', back: '0-1', backNice: 10 },
        results: { ours: measured(400, 'shared'), ceiling: measured(1_000, 'shared') },
      },
      {
        layout: 'split',
        cpus: { layout: 'split', front: '0', back: '1', backNice: 0 },
        results: { ours: measured(500, 'split'), ceiling: measured(800, 'split') },
      },
    ],
    1_000,
  );
  expect(report.layout).toBe('shared');
  expect(report.variants).toEqual(report.layouts.shared?.variants);
  expect(report.layouts.shared?.ratios.oursVsCeiling).toBe(0.4);
  expect(report.layouts.split?.ratios.oursVsCeiling).toBe(0.63);
  expect(report.layouts.split?.variants.ours).toMatchObject({
    layout: 'split',
    rps: 500,
    cpuAffinity: { worker: '1' },
  });
  expect(report.layouts.split?.cpuLayout).toEqual({ front: '0', back: '1', backNice: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'bench-layouts-'));
  try {
    const md = writeReport(report, dir);
    expect(md.match(/\| variant \| req\/s \|/g)).toHaveLength(2);
    expect(md.indexOf('Layout **shared**: every process on CPUs 0-1.')).toBeLessThan(md.indexOf('Layout **split**'));
    expect(md).toMatch(/Layout \*\*split\*\*[\s\S]*\| ours \| 500 \|[\s\S]*ours\/ceiling 0\.63/);
    expect(readFileSync(join(dir, 'latest.svg'), 'utf8')).toContain('ours (split)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it(
  '--report-only redraws latest.md and latest.svg from latest.json, a file from before the drain series included',
  { timeout: 60_000 },
  async () => {
    const { settings } = parseBenchArgs(['--quick'], root);
    const result = (rps: number, drain?: VariantResult['drain']): VariantResult => ({
      ...variantFigures(rps),
      ...(drain ? { drain } : {}),
    });
    const report = buildLayoutsReport(
      settings,
      [
        {
          layout: 'shared',
          results: {
            ours: result(400, { orders: 100, seconds: 3.2, totalSeconds: 4, ordersPerSecond: 25 }),
            queue: result(900, { orders: 100, seconds: 0.4, totalSeconds: 0.7, ordersPerSecond: 143 }),
          },
        },
      ],
      1_000,
    );
    const dir = mkdtempSync(join(tmpdir(), 'bench-report-only-'));
    try {
      const md = writeReport(report, dir);
      // As a results file written before the win's p90 and the drain series were recorded.
      const old = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
      for (const section of [old, old.layouts.shared])
        for (const v of Object.values<any>(section.variants)) delete v.winP90Ms;
      writeFileSync(join(dir, 'latest.json'), JSON.stringify(old));
      const { code, output } = await runScript('bench/run.ts', ['--report-only', '--out', dir], { ...process.env });
      expect(code, output).toBe(0);
      expect(readFileSync(join(dir, 'latest.md'), 'utf8')).toBe(md);
      const svg = readFileSync(join(dir, 'latest.svg'), 'utf8');
      // No series: a dot where the last order landed, and a word on why there is no line.
      expect(marks(svg, 'drain')).toEqual([]);
      expect(marks(svg, 'drain-end').map((m) => [m['data-variant'], m['data-seconds']])).toEqual([
        ['ours', '3.2'],
        ['queue', '0.4'],
      ]);
      expect(svg).toContain('predates the drain series');
      expect(
        marks(svg, 'latency').find((m) => m['data-variant'] === 'ours' && m['data-kind'] === 'win')?.['data-ms'],
      ).toBe('6  14 18');
      expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

it(
  'refuses --layout split when the benchmark may use one CPU only, saying why, before starting anything',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-one-cpu-'));
    try {
      // The benchmark itself under `taskset -c <one CPU>`: its own affinity is what split divides.
      const tsx = join(root, 'node_modules', '.bin', 'tsx');
      const args = [
        '-c',
        String(allowedCpus[0]),
        tsx,
        join(root, 'bench', 'run.ts'),
        '--quick',
        '--layout',
        'split',
        '--out',
        dir,
      ];
      const { code, output } = await new Promise<{ code: number | null; output: string }>((done, fail) => {
        const child = spawn('taskset', args, {
          cwd: root,
          env: { ...process.env, ...inject('stackEnv'), CI: 'true' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let text = '';
        child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
        child.once('error', fail);
        child.once('close', (exitCode) => done({ code: exitCode, output: text }));
      });
      expect(code).not.toBe(0);
      expect(output).toContain(`--layout split needs at least 2 CPUs; this process may run on 1 (${allowedCpus[0]})`);
      expect(output).not.toMatch(/ready in/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

it('refuses a bad layout, a repeated one, and split with --cluster, before starting anything', () => {
  expect(() => parseBenchArgs(['--layout', 'apart'], root)).toThrow(/unknown layout apart; choose from shared, split/);
  expect(() => parseBenchArgs(['--layouts', 'split,split'], root)).toThrow(/names a layout twice/);
  expect(() => parseBenchArgs(['--layout', 'split', '--layouts', 'shared'], root)).toThrow(/not both/);
  expect(() => parseBenchArgs(['--cluster', '--layout', 'split'], root)).toThrow(
    /--cluster runs in the shared layout only/,
  );
  expect(formatCpuList(parseCpuList('0-2,5,7-8'))).toBe('0-2,5,7-8');
});

/** A variant's figures for the report tests: `rps`, the rest fixed. */
function variantFigures(rps: number): VariantResult {
  return {
    rps,
    p50Ms: 5,
    p90Ms: 8,
    p99Ms: 12,
    maxMs: 20,
    winP50Ms: 6,
    winP90Ms: 10,
    winP99Ms: 14,
    winMaxMs: 18,
    soldOutP50Ms: 4,
    soldOutP99Ms: 9,
    soldOutMaxMs: 11,
    requests: 1_000,
    seconds: 2,
    won: 100,
    soldOut: 900,
    limitExceeded: 0,
    errors: 0,
    errorsWhileUnitsLeft: 0,
  };
}
