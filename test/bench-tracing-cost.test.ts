/**
 * Keeps `npm run bench -- --tracing-cost` working: runs `bench/run.ts --tracing-cost --quick` against
 * the test stack (its servers are given in the environment, so the benchmark starts only the
 * workers and its Zipkin) and checks that each of the four modes was measured, that spans reached
 * Zipkin only from the traced workers (every order's from `all`, not all from `sampled`), that every
 * sale's invariants held, and that the results files were written.
 * Figures are printed by the benchmark, never asserted beyond being measured: the machine is shared.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { parseTracingCostArgs } from '../bench/args.js';
import { ratio } from '../bench/pipeline-report.js';
import { TRACING_MODES } from '../bench/tracing-cost-report.js';
import { runBench, tempOutDir } from './helpers/run-script.js';

const root = resolve(import.meta.dirname, '..');
const outDir = tempOutDir('bench-tracing-cost-');

// The benchmark sets each mode's tracing itself: a calling shell's OTEL_* must not reach its
// workers (this service name would hide every span from the counts below).
const benchEnv = { OTEL_SERVICE_NAME: 'not-the-worker' };

it(
  'runs the quick tracing-cost benchmark: four modes measured, spans only from traced workers, invariants hold',
  { timeout: 300_000 },
  async () => {
    const { code, output } = await runBench(['--tracing-cost', '--quick', '--orders', '30', '--out', outDir], benchEnv);
    expect(code, output).toBe(0);

    const r = JSON.parse(readFileSync(join(outDir, 'tracing-cost.json'), 'utf8')).tracingCost;
    expect(r).toMatchObject({ orders: 30, rounds: 1, quick: true, ok: true, sampledRatio: 0.1 });
    expect(r.checks).toEqual({
      invariants: true,
      spansOnlyFromTracedModes: true,
      allTracedReachedZipkin: true,
      sampledSampled: true,
    });
    expect(r.phases.map((p: any) => p.mode)).toEqual([...TRACING_MODES]);
    expect(r.modeNames).toEqual([...TRACING_MODES]);
    expect(new Set(r.phases.map((p: any) => p.taskQueue)).size).toBe(4);
    // The Temporal server is the test stack's (external), so it is not measured: null, never a made-up 0.
    expect(r.temporalMeasured).toBe(false);
    for (const mode of TRACING_MODES) {
      const m = r.modes[mode];
      expect(m.workerCpuMsPerOrder, mode).toBeGreaterThan(0);
      expect(m.temporalCpuMsPerOrder, mode).toBeNull();
      expect(m.zipkinCpuMsPerOrder, mode).toBeGreaterThanOrEqual(0);
      expect(m.persistedPerSecond, mode).toBeGreaterThan(0);
      expect(m.rounds, mode).toHaveLength(1);
      expect(m.rounds[0].invariants, mode).toBe(true);
      // Ratios of the means as reported.
      expect(m.workerCpuRatioToBare, mode).toBe(ratio(m.workerCpuMsPerOrder, r.modes.bare.workerCpuMsPerOrder));
    }
    expect(r.modes.bare.workerCpuRatioToBare).toBe(1);

    // The modes are what they say: untraced workers sent nothing; `all` sent every order's trace
    // (10 warm-up + 30 measured); `sampled` some at most, far from all.
    const [bare, off, sampled, all] = r.phases;
    expect(bare.zipkin).toEqual({ spans: 0, traces: 0, tracedOrders: 0 });
    expect(off.zipkin).toEqual({ spans: 0, traces: 0, tracedOrders: 0 });
    expect(all.startedOrders).toBe(40);
    expect(all.zipkin.tracedOrders).toBe(40);
    expect(all.zipkin.spans).toBeGreaterThan(all.zipkin.tracedOrders);
    expect(sampled.zipkin.tracedOrders).toBeLessThan(20);
    expect(r.zipkinServices).toContain('flash-checkout-worker');

    const md = readFileSync(join(outDir, 'tracing-cost.md'), 'utf8');
    expect(md).toMatch(/\| \*\*off\*\* \(mean of 1\) \| \*\*\d+\.\d\d\*\* \| \*\*\d+\.\d\d×\*\* \|/);
    expect(md).toContain('Checks: all held');
    const dated = readdirSync(outDir).filter((f) => /^\d{4}-\d\d-\d\d-.*-tracing-cost-quick\.json$/.test(f));
    expect(dated).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(outDir, dated[0]!), 'utf8')).tracingCost).toEqual(r);
  },
);

it('plans its rounds and refuses a bad option', () => {
  expect(parseTracingCostArgs([], root)).toMatchObject({ orders: 1_000, rounds: 2, quick: false, settleMs: 6_000 });
  expect(parseTracingCostArgs(['--quick'], root)).toMatchObject({
    orders: 40,
    rounds: 1,
    quick: true,
    modes: ['bare', 'off', 'sampled', 'all'],
  });
  // An experiment's subset runs in the usual order.
  expect(parseTracingCostArgs(['--modes', 'off,bare'], root).modes).toEqual(['bare', 'off']);
  expect(() => parseTracingCostArgs(['--modes', 'bare,none'], root)).toThrow(/unknown mode none/);
  expect(() => parseTracingCostArgs(['--rounds', '0'], root)).toThrow(/--rounds must be a whole number ≥ 1/);
  expect(() => parseTracingCostArgs(['--orders', 'x'], root)).toThrow(/--orders must be a whole number ≥ 1/);
});
