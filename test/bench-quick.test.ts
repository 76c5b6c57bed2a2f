/**
 * Keeps `npm run bench` working: runs `bench/run.ts --quick` against the test stack (its servers
 * are given in the environment, so the benchmark starts none of its own) and checks that every
 * variant ran, the invariants held and the results file has the shape the README promises.
 * Figures are printed by the benchmark, never asserted here: this machine is shared and noisy.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, inject, it } from 'vitest';
import { runScript } from './helpers/run-script.js';

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
  expect(Object.keys(report.variants).sort()).toEqual(['ceiling', 'ours', 'queue', 'sync']);
  for (const [name, variant] of Object.entries<Record<string, unknown>>(report.variants)) {
    for (const key of ['rps', 'p50Ms', 'p99Ms', 'winP99Ms']) expect(variant[key], `${name}.${key}`).toBeGreaterThan(0);
    expect(variant.errors, `${name} errors`).toBe(0);
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
