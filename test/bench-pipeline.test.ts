/**
 * Keeps `npm run bench -- --pipeline` working: runs `bench/run.ts --pipeline --quick` against the
 * test stack (its servers are given in the environment, so only the workers are started by the
 * benchmark) and checks that every order was started and persisted, the floor phase measured and
 * the ratios computed from it, the status reads answered, the invariants held and `pipeline` was
 * merged into latest.json beside what was there.
 * Figures are printed by the benchmark, never asserted beyond being measured: the machine is shared.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { runBench, tempOutDir } from './helpers/run-script.js';
import { parseBenchArgs, parsePipelineArgs } from '../bench/args.js';
import { ratio } from '../bench/pipeline-report.js';
import { buildReport, writeReport } from '../bench/report.js';
import { round } from '../bench/stats.js';

const root = resolve(import.meta.dirname, '..');
const outDir = tempOutDir('bench-pipeline-');

// The status cache at its default, whatever the calling shell sets: the read phase's figures depend on it.
const benchEnv = { STATUS_CACHE_MS: '1000' };

it(
  'runs the quick pipeline benchmark: persisted, measured against the floor, status read, invariants hold, merged',
  { timeout: 120_000 },
  async () => {
    // A burst run's results already there must stay.
    writeFileSync(
      join(outDir, 'latest.json'),
      JSON.stringify({ variants: { ours: { rps: 1 } }, drain: { orders: 1 } }),
    );
    const { code, output } = await runBench(
      ['--pipeline', '--quick', '--orders', '60', '--concurrency', '8', '--live-orders', '80', '--out', outDir],
      benchEnv,
    );
    expect(code, output).toBe(0);

    const latest = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8'));
    expect(latest.variants).toEqual({ ours: { rps: 1 } });
    expect(latest.drain).toEqual({ orders: 1 });
    const p = latest.pipeline;
    expect(p).toMatchObject({ orders: 60, concurrency: 8, liveOrders: 80, statusReadErrors: 0, quick: true });
    for (const key of [
      'startsPerSecond',
      'persistedPerSecond',
      'startP50Ms',
      'startP99Ms',
      'statusReadsPerSecond',
      'statusReadP99Ms',
    ]) {
      expect(p[key], key).toBeGreaterThan(0);
    }
    expect(p.startP99Ms).toBeGreaterThanOrEqual(p.startP50Ms);
    expect(p.statusReads).toBeGreaterThan(0);
    // Timeouts (the API's 503 UNAVAILABLE) are reported, not asserted: they depend on the machine's load.
    expect(p.statusReadTimeouts).toBeGreaterThanOrEqual(0);
    expect(p.statusReadMaxMs).toBeGreaterThanOrEqual(p.statusReadP99Ms);
    expect(typeof p.workerRssKbPerLiveOrder).toBe('number');
    // The API's read path (OrderStatusReader, shoppers polling every 500 ms): measured, all answered
    // AWAITING_PAYMENT, the sources add up to the reads, and with the default 1 s cache some polls
    // are answered from memory, so fewer than all reached Temporal.
    expect(p).toMatchObject({
      apiStatusReadErrors: 0,
      apiStatusReadOfferedPerSecond: 160,
      statusCacheMs: 1000,
      statusCacheNotifiedMs: 300_000,
    });
    expect(p.apiStatusReadsPerSecond).toBeGreaterThan(0);
    expect(p.apiStatusReadP99Ms).toBeGreaterThanOrEqual(p.apiStatusReadP50Ms);
    const sources = p.apiStatusReadsBySource;
    expect(sources.cache + sources.coalesced + sources.workflow + sources.database).toBe(p.apiStatusReads);
    expect(sources.cache).toBeGreaterThan(0);
    expect(p.apiStatusReadStoreShare).toBeLessThan(1);
    // Compared with the same computation, rounded as reported: a rounded figure against its unrounded
    // value (toBeCloseTo) fails whenever the value sits at a rounding boundary (0.975 → 0.98).
    expect(p.apiStatusReadStoreShare).toBe(round((sources.database + sources.stores) / p.apiStatusReads, 3));
    // The worker is the benchmark's own process, so its CPU is measured; the servers here are the
    // test stack's (external to the benchmark), so theirs is not: null, never a made-up 0.
    expect(p.cpuMsPerOrder.worker).toBeGreaterThan(0);
    expect(p.cpuMsPerOrder).toMatchObject({ server: null, mysql: null, redis: null });
    // Ours against the floor (bench/floor/): --quick runs a floor phase then ours, each on its own
    // worker and task queue; the floor's figures are measured (its worker's CPU from /proc, the
    // server's null as above, so totals are the worker's alone) and the ratios come from them.
    expect(p.phases.map((phase: any) => phase.kind)).toEqual(['floor', 'ours']);
    expect(new Set(p.phases.map((phase: any) => phase.taskQueue)).size).toBe(2);
    expect(p.cpuMeasured).toBe('worker');
    for (const phase of p.phases) {
      expect(phase.cpuMsPerOrder.worker, phase.kind).toBeGreaterThan(0);
      expect(phase.cpuMsPerOrder.total, phase.kind).toBe(phase.cpuMsPerOrder.worker);
      expect(phase.persistedPerSecond, phase.kind).toBeGreaterThan(0);
      expect(phase.startP99Ms, phase.kind).toBeGreaterThanOrEqual(phase.startP50Ms);
    }
    const [floor, ours] = p.phases;
    expect(p.floorCpuMsPerOrder).toBeGreaterThan(0);
    expect(p.floorPersistedPerSecond).toBeGreaterThan(0);
    expect(p.floorCpuMsPerOrder).toBe(floor.cpuMsPerOrder.total);
    expect(p.floorPersistedPerSecond).toBe(floor.persistedPerSecond);
    expect(p.oursCpuMsPerOrder).toBe(ours.cpuMsPerOrder.total);
    expect(p.oursCpuMsPerOrder).toBe(p.cpuMsPerOrder.worker);
    expect(p.oursPersistedPerSecond).toBe(ours.persistedPerSecond);
    expect(p.cpuRatioOursToFloor).toBe(ratio(p.oursCpuMsPerOrder, p.floorCpuMsPerOrder));
    expect(p.persistedRatioOursToFloor).toBe(ratio(p.oursPersistedPerSecond, p.floorPersistedPerSecond));
    expect(output).toMatch(/\| \*\*ours \/ floor\*\* \| \| \| \*\*\d+\.\d\d×\*\* \| \*\*\d+\.\d\d×\*\* \| \|/);
    // All 80 live orders are persisted, awaiting payment, one workflow each, and the stores agree.
    expect(p.invariants).toMatchObject({
      noOversell: true,
      conservation: true,
      storesAgree: true,
      noLostOrder: true,
      perUserLimit: true,
    });
    expect(p.invariants.figures).toMatchObject({
      stock: 80,
      mysql: { awaitingPayment: 80, available: 0 },
      redis: { reserved: 80 },
      accepted: 80,
      missingOrders: 0,
      workflows: 80,
    });

    const dated = readdirSync(outDir).filter((f) => /^\d{4}-\d\d-\d\d-.*-pipeline-quick\.json$/.test(f));
    expect(dated).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(outDir, dated[0]!), 'utf8')).pipeline).toEqual(p);
    expect(output).toMatch(/\| starts\/s \| \d+ \|/);
  },
);

it('refuses a bad option before starting anything', { timeout: 60_000 }, async () => {
  const { code, output } = await runBench(['--pipeline', '--orders', '0'], benchEnv);
  expect(code).not.toBe(0);
  expect(output).toMatch(/--orders must be a whole number ≥ 1/);
});

it('plans its phases: floor, ours, floor; floor, ours with --quick; K rounds with --rounds K', () => {
  expect(parsePipelineArgs([], root).phases).toEqual(['floor', 'ours', 'floor']);
  expect(parsePipelineArgs(['--quick'], root).phases).toEqual(['floor', 'ours']);
  expect(parsePipelineArgs(['--rounds', '2'], root).phases).toEqual(['floor', 'ours', 'floor', 'ours', 'floor']);
  expect(parsePipelineArgs(['--quick', '--rounds', '2'], root).phases).toEqual(['floor', 'ours', 'floor', 'ours']);
  expect(() => parsePipelineArgs(['--rounds', '0'], root)).toThrow(/--rounds must be a whole number ≥ 1/);
});

it('a burst run written afterwards keeps the pipeline results in latest.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-pipeline-keep-'));
  try {
    const pipeline = { orders: 7, startsPerSecond: 3 };
    writeFileSync(join(dir, 'latest.json'), JSON.stringify({ variants: {}, pipeline }));
    const { settings } = parseBenchArgs(['--quick'], root);
    writeReport(buildReport(settings, {}, undefined, 1_000), dir);
    const latest = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
    expect(latest.pipeline).toEqual(pipeline);
    expect(latest.config).toMatchObject({ quick: true });
    // The dated copy is the burst's alone.
    const dated = readdirSync(dir).filter((f) => f.endsWith('-quick.json'));
    expect(dated).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(dir, dated[0]!), 'utf8')).pipeline).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
