/**
 * Runs one round of the registry: its steps in order, each timed and logged; its cleanup, whatever happened; then its
 * verdict (every check the round declares judged and true), what the APIs logged of any 500, and the lines the suite
 * prints of it. A step that throws ends the suite, as a round that threw always has (after the round's cleanup).
 */
import { internalErrorsLogged, type InternalErrorLogged } from '../../stack/internal-errors.js';
import type { ChaosVerdict } from '../checks.js';
import type { Round, RoundOutcome, Suite } from './round.js';

/** One round's result, as the results file and the tables read it. */
export interface FaultResult
  extends ChaosVerdict, Pick<RoundOutcome, 'seconds' | 'gray' | 'payments' | 'sale' | 'stripe' | 'line' | 'events'> {
  fault: string;
  ok: boolean;
  /** What the APIs logged of each 500 answered during the round. */
  internalErrors?: InternalErrorLogged[];
}

/** The sections a round may add beside the invariants, in the order the results file lists them. */
const SECTIONS = ['payments', 'sale', 'stripe', 'line', 'events'] as const;

/** Every check the results file shows for the round: the invariants, then each section's. */
export function reportedChecks(result: Omit<FaultResult, 'fault' | 'ok'>): Record<string, boolean> {
  return {
    ...result.checks,
    ...(result.gray ? { answeredInTime: result.gray.answeredInTime } : {}),
    ...Object.assign({}, ...SECTIONS.map((section) => result[section]?.checks ?? {})),
  } as Record<string, boolean>;
}

export async function runRound(round: Round, suite: Suite): Promise<FaultResult> {
  const { say } = suite;
  say(`── ${round.name} ──`);
  say(`  faults: ${round.faults}`);
  const startedAt = Date.now();
  let result: FaultResult | undefined;
  try {
    const open = round.open(suite);
    await runSteps(open.steps, open.cleanup, say);
    const verdict = judged(round, open.outcome());
    sayVerdict(verdict, say);
    result = verdict.result;
    return result;
  } finally {
    // A 500 is a bug: the round keeps what the APIs logged of each (the answer names no cause).
    const kept = internalErrorsLogged(suite.workDir, startedAt);
    if (result && kept.length > 0) result.internalErrors = kept;
    for (const error of kept) say(`  500 logged by ${error.app}: ${error.method} ${error.path}: ${error.error}`);
  }
}

async function runSteps(
  steps: ReadonlyArray<{ name: string; run(): Promise<void> }>,
  cleanup: () => Promise<void>,
  say: (line: string) => void,
): Promise<void> {
  const took = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
  let failure: { error: unknown } | undefined;
  for (const [index, { name, run }] of steps.entries()) {
    const label = `  [${index + 1}/${steps.length}] ${name}`;
    const stepStartedAt = Date.now();
    try {
      await run();
    } catch (error) {
      say(`${label}: failed after ${took(stepStartedAt)}`);
      failure = { error };
      break;
    }
    say(`${label}: ${took(stepStartedAt)}`);
  }
  const cleanupStartedAt = Date.now();
  try {
    await cleanup();
  } catch (err) {
    say(`  cleanup failed after ${took(cleanupStartedAt)}: ${String(err)}`);
    // The step's error says more; a cleanup that fails after good steps fails the suite itself.
    failure ??= { error: err };
  }
  if (failure) throw failure.error;
}

/** What a round found, judged: it holds when every check it declares was judged true and every one reported is. */
interface Judged {
  result: FaultResult;
  violated: string[];
  /** Declared, never judged (a step that measured nothing): violated too. */
  unjudged: string[];
}

function judged(round: Round, outcome: RoundOutcome): Judged {
  const { invariants, seconds, unreported, ...sections } = outcome;
  const partial = { ...invariants, seconds, ...sections };
  const reported = reportedChecks(partial);
  const all: Record<string, boolean> = { ...reported, ...unreported };
  const violated = [
    ...new Set([
      ...round.checks.filter((check) => all[check] !== true),
      ...Object.keys(reported).filter((check) => !reported[check]),
    ]),
  ];
  const unjudged = round.checks.filter((check) => !(check in all));
  return { result: { fault: round.name, ok: violated.length === 0, ...partial }, violated, unjudged };
}

function sayVerdict({ result, violated, unjudged }: Judged, say: (line: string) => void): void {
  say(
    `${result.fault}: ${result.ok ? 'all invariants hold' : `VIOLATED: ${violated.join(', ')}`} (quiet after ${result.seconds.quiet.toFixed(1)} s)`,
  );
  if (unjudged.length > 0) say(`  never judged: ${unjudged.join(', ')}`);
  say(`  ${JSON.stringify(result.figures)}`);
  for (const section of SECTIONS) {
    const found = result[section];
    if (!found) continue;
    say(`  ${section}: ${JSON.stringify(found.figures)}`);
    for (const violation of found.violations) say(`  ${violation}`);
  }
}
