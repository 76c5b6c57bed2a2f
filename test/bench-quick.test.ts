/**
 * Keeps `npm run bench` working: runs `bench/run.ts --quick` against the test stack (its servers
 * are given in the environment, so the benchmark starts none of its own) and checks that every
 * variant ran, the invariants held and the results file has the shape docs/testing.md promises.
 * Figures are printed by the benchmark, never asserted here: this machine is shared and noisy.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, inject, it } from 'vitest';
import { parseBenchArgs } from '../bench/args.js';
import { formatCpuList, parseCpuList } from '../bench/cpu-layout.js';
import type { VariantResult } from '../bench/load.js';
import { buildLayoutsReport, writeReport } from '../bench/report.js';
import { runScript } from './helpers/run-script.js';

const root = resolve(import.meta.dirname, '..');
const outDir = mkdtempSync(join(tmpdir(), 'bench-quick-'));

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number | null; output: string }> {
  return runScript('bench/run.ts', args, { ...process.env, ...inject('stackEnv'), CI: 'true' });
}

it('runs the quick benchmark: all four variants, invariants hold, results written', { timeout: 180_000 }, async () => {
  const { code, output } = await runBench(['--quick', '--out', outDir]);
  expect(code, output).toBe(0);

  const report = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8'));
  expect(report.config).toMatchObject({ quick: true, stock: 100, perUserLimit: 1 });
  // The default layout pins nothing.
  expect(report).toMatchObject({ layout: 'shared', cpuLayout: null });
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
  expect(report.invariants).toEqual({ noOversell: true, conservation: true, storesAgree: true, noLostOrder: true, perUserLimit: true });
  expect(readFileSync(join(outDir, 'latest.md'), 'utf8')).toMatch(/\| ours \| \d+ \|/);
  expect(readFileSync(join(outDir, 'latest.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*ours[\s\S]*<\/svg>\n$/);
  expect(readdirSync(outDir).filter((f) => /^\d{4}-\d\d-\d\d-.*-quick\.json$/.test(f))).toHaveLength(1);
  expect(output).toMatch(/Ratios \(throughput\)/);
});

it('runs --wait: ours and ours-wait (Prefer: wait=10) on the same burst, both models reported', { timeout: 180_000 }, async () => {
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
    expect(waiting.invariants).toMatchObject({ noOversell: true, conservation: true, storesAgree: true, noLostOrder: true, perUserLimit: true });
    expect(report.ratios.oursWaitVsOurs).toBeGreaterThan(0);
    expect(readFileSync(join(waitOut, 'latest.md'), 'utf8')).toMatch(/Waiting checkout \(ours-wait/);
  } finally {
    rmSync(waitOut, { recursive: true, force: true });
  }
});

/** The CPUs this test process may run on: the benchmark's split layout takes the first two. */
const allowedCpus = parseCpuList(/^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '');

it('runs --layout split: load generator and front door on one CPU, the rest on another, every thread pinned', { timeout: 180_000 }, async () => {
  const splitOut = mkdtempSync(join(tmpdir(), 'bench-quick-split-'));
  try {
    const { code, output } = await runBench(['--quick', '--layout', 'split', '--variants', 'ours,queue', '--requests', '1000', '--out', splitOut]);
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
    expect(report.variants.queue.cpuAffinity).toEqual({ 'bench-queue': front, 'bench-queue-consumer': back, loadgen: front });
    for (const [name, variant] of Object.entries<Record<string, unknown>>(report.variants)) {
      expect(variant.layout, `${name} layout`).toBe('split');
      expect(variant.won, `${name} won`).toBe(100);
      expect(variant.errors, `${name} errors`).toBe(0);
    }
    expect(report.invariants).toEqual({ noOversell: true, conservation: true, storesAgree: true, noLostOrder: true, perUserLimit: true });
    expect(output).toMatch(/not pinned \(external, not started by the benchmark\): temporal, redis, mysql/);
    const md = readFileSync(join(splitOut, 'latest.md'), 'utf8');
    expect(md).toContain(`Layout **split**: load generator and front door (API, baseline server) on CPU ${front};`);
    expect(md).toContain(`- ours: worker ${back}, api ${front}, loadgen ${front}`);
  } finally {
    rmSync(splitOut, { recursive: true, force: true });
  }
});

it('--layouts shared,split: one report with every layout, each figure marked with its layout, one table per layout', () => {
  const { settings, layouts } = parseBenchArgs(['--quick', '--layouts', 'shared,split'], root);
  expect(layouts).toEqual(['shared', 'split']);
  const measured = (rps: number, layout: string): VariantResult => ({
    rps,
    p50Ms: 5,
    p90Ms: 8,
    p99Ms: 12,
    maxMs: 20,
    winP50Ms: 6,
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
    cpuAffinity: layout === 'split' ? { api: '0', worker: '1', loadgen: '0' } : { api: '0-1', worker: '0-1', loadgen: '0-1' },
  });
  const report = buildLayoutsReport(
    settings,
    [
      {
        layout: 'shared',
        cpus: { layout: 'shared', front: '0-1', back: '0-1' },
        results: { ours: measured(400, 'shared'), ceiling: measured(1_000, 'shared') },
      },
      { layout: 'split', cpus: { layout: 'split', front: '0', back: '1' }, results: { ours: measured(500, 'split'), ceiling: measured(800, 'split') } },
    ],
    1_000,
  );
  expect(report.layout).toBe('shared');
  expect(report.variants).toEqual(report.layouts.shared?.variants);
  expect(report.layouts.shared?.ratios.oursVsCeiling).toBe(0.4);
  expect(report.layouts.split?.ratios.oursVsCeiling).toBe(0.63);
  expect(report.layouts.split?.variants.ours).toMatchObject({ layout: 'split', rps: 500, cpuAffinity: { worker: '1' } });
  expect(report.layouts.split?.cpuLayout).toEqual({ front: '0', back: '1' });
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

it('refuses --layout split when the benchmark may use one CPU only, saying why, before starting anything', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-one-cpu-'));
  try {
    // The benchmark itself under `taskset -c <one CPU>`: its own affinity is what split divides.
    const tsx = join(root, 'node_modules', '.bin', 'tsx');
    const args = ['-c', String(allowedCpus[0]), tsx, join(root, 'bench', 'run.ts'), '--quick', '--layout', 'split', '--out', dir];
    const { code, output } = await new Promise<{ code: number | null; output: string }>((done, fail) => {
      const child = spawn('taskset', args, { cwd: root, env: { ...process.env, ...inject('stackEnv'), CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
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
});

it('refuses a bad layout, a repeated one, and split with --cluster, before starting anything', () => {
  expect(() => parseBenchArgs(['--layout', 'apart'], root)).toThrow(/unknown layout apart; choose from shared, split/);
  expect(() => parseBenchArgs(['--layouts', 'split,split'], root)).toThrow(/names a layout twice/);
  expect(() => parseBenchArgs(['--layout', 'split', '--layouts', 'shared'], root)).toThrow(/not both/);
  expect(() => parseBenchArgs(['--cluster', '--layout', 'split'], root)).toThrow(/--cluster runs in the shared layout only/);
  expect(formatCpuList(parseCpuList('0-2,5,7-8'))).toBe('0-2,5,7-8');
});
