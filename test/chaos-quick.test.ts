/**
 * The fault suite's short version (`npm run chaos -- --quick`), inside npm test: on its own
 * supervised stack (it kills servers, so never the shared test stack), every fault once with a
 * smaller burst, and every invariant checked after each. The suite exits non-zero on a violation;
 * this test also reads its results file to show which fault and check failed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runScript } from './helpers/run-script.js';

const outDir = mkdtempSync(join(tmpdir(), 'chaos-quick-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

it('survives every fault with every invariant (quick fault suite)', { timeout: 600_000 }, async () => {
  // No server addresses from the test stack: the suite starts (and kills) servers of its own.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !['TEMPORAL_ADDRESS', 'REDIS_URL', 'MYSQL_URL'].includes(key)),
  );
  // Each round's start and verdict as they come, so a run that outlasts the timeout still shows where it was.
  const { code, output } = await runScript('chaos/run.ts', ['--quick', '--out', outDir], env, (line) => {
    if (/^\[chaos\] (── |\S+: (all invariants hold|VIOLATED))/.test(line)) console.log(line);
  });
  const report = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8')) as {
    faults: Record<string, { ok: boolean; checks: Record<string, boolean>; figures: unknown }>;
  };
  expect(Object.keys(report.faults).sort()).toEqual([
    'api-kill',
    'mariadb-kill',
    'redis-aof-tail-lost',
    'redis-kill',
    'temporal-freeze',
    'temporal-kill',
    'worker-kill',
  ]);
  for (const [fault, result] of Object.entries(report.faults)) {
    expect(
      Object.entries(result.checks)
        .filter(([, ok]) => !ok)
        .map(([check]) => check),
      // The round's figures name what broke (the orders without a row, the keys that named another order...).
      `${fault}: violated checks; figures ${JSON.stringify(result.figures).slice(0, 3_000)}`,
    ).toEqual([]);
    expect(result.ok, fault).toBe(true);
  }
  expect(code, output.slice(-4_000)).toBe(0);
});
