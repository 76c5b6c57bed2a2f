/**
 * `npm run chaos [-- --quick] [--faults api-kill,worker-kill,...] [--out DIR] [--keep]`: the fault suite.
 *
 * On a real local stack (Temporal dev server, Redis with its AOF, MariaDB) with two API processes and one worker, all
 * supervised (a killed process is restarted, as in production), it runs the rounds of chaos/rounds/index.ts in turn:
 * each puts a sale on, sends shoppers with payments and cancels flowing, and injects its faults:
 *   kills (chaos/rounds/kills.ts)        api-kill, worker-kill, mariadb-kill, redis-kill, redis-aof-tail-lost,
 *                                        temporal-kill
 *   freezes (freezes.ts)                 temporal-freeze, redis-freeze, mariadb-freeze, worker-freeze: a server that
 *                                        hangs (SIGSTOP 20 s; 6 s with --quick) under a paced burst
 *   payments by arrival (payment-freezes.ts)  worker-freeze-payments, temporal-freeze-payments,
 *                                        worker-ahead-payments
 *   freezes mid-sale (sale-freezes.ts)   temporal-freeze-sale, worker-freeze-sale, mariadb-freeze-sale
 *   Stripe as it behaves                 stripe-late-sale, stripe-webhook-drop
 *   a waiting line                       line-redis-freeze-api-kill
 *   order events to a merchant           events-receiver-freeze-worker-kill
 * --quick runs the kills and temporal-freeze, with a smaller burst. Each round is a list of named steps the runner
 * (chaos/rounds/runner.ts) times and logs; after each round the sale is quiet (a reconcile run included) and the
 * invariants are checked against what the API answered (chaos/checks.ts), beside the round's own checks. It prints a
 * table fault × check, writes chaos/results/latest.json (--faults merges its rounds into it) and exits non-zero on any
 * violation. --keep keeps the processes' logs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROUNDS } from './rounds/index.js';
import { tables, writeResults } from './rounds/report.js';
import { runRound, type FaultResult } from './rounds/runner.js';
import { suiteSettings } from './rounds/settings.js';
import { SuiteStack } from './rounds/suite.js';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    faults: { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const quick = args.quick ?? false;
const names = args.faults?.split(',') ?? ROUNDS.filter((round) => !quick || round.quick).map((round) => round.name);
const chosen = names.map((name) => {
  const found = ROUNDS.find((round) => round.name === name);
  if (!found) throw new Error(`unknown fault ${name}; choose from ${ROUNDS.map((round) => round.name).join(', ')}`);
  return found;
});
const outDir = resolve(args.out ?? join(root, 'chaos', 'results'));
const settings = suiteSettings(quick);
const say = (line: string) => console.log(`[chaos] ${line}`);
const workDir = mkdtempSync(join(tmpdir(), 'flash-chaos-'));
const stack = new SuiteStack(workDir, say);

async function main(): Promise<number> {
  const suite = await stack.start(settings, chosen);
  const results: FaultResult[] = [];
  try {
    for (const round of chosen) results.push(await runRound(round, suite));
  } finally {
    await stack.close();
  }
  const { file, merged } = writeResults(outDir, {
    registry: ROUNDS,
    chosen,
    settings,
    restarts: stack.restarts(),
    results,
  });
  console.log(tables(results));
  say(
    `results in ${file}${merged ? ` (merged: ${results.map((r) => r.fault).join(', ')}; the other faults' entries kept)` : ''}`,
  );
  return results.every((r) => r.ok) && results.length === chosen.length ? 0 : 1;
}

async function cleanup(): Promise<void> {
  await stack.stop();
  if (!args.keep) rmSync(workDir, { recursive: true, force: true });
}

process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
let code = 1;
try {
  code = await main();
} catch (err) {
  console.error('[chaos] failed:', err);
} finally {
  await cleanup();
}
process.exit(code);
