/**
 * The suite's results: chaos/results/latest.json (a run of every round writes it anew; a run of some, --faults, merges
 * its rounds' entries, each naming its own run) and the tables printed at the end, fault × check.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHAOS_CHECKS, PAYMENT_FREEZE_CHECKS, SALE_FREEZE_CHECKS } from '../checks.js';
import type { Round } from './round.js';
import { reportedChecks, type FaultResult } from './runner.js';
import type { SuiteSettings } from './settings.js';

export interface SuiteRun {
  /** Every round of the registry, and those this run chose (in its order). */
  registry: readonly Round[];
  chosen: readonly Round[];
  settings: SuiteSettings;
  /** How often each supervised process was started again after a crash. */
  restarts: Record<string, number>;
  results: readonly FaultResult[];
}

/** Writes `latest.json` into `outDir`; returns its path and whether other rounds' entries were kept. */
export function writeResults(outDir: string, run: SuiteRun): { file: string; merged: boolean } {
  const { registry, chosen, settings, restarts, results } = run;
  const date = new Date().toISOString();
  const faults = chosen.map((round) => round.name);
  const partial = registry.some((round) => !faults.includes(round.name));
  const file = join(outDir, 'latest.json');
  const previous =
    partial && existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as { faults?: Record<string, unknown> })
      : undefined;
  const planOf = (name: string) => registry.find((round) => round.name === name)?.recordedPlan(settings) ?? {};
  const entries = Object.fromEntries(
    results.map((r) => [
      r.fault,
      {
        ok: r.ok,
        ...(partial ? { run: { date, faults, quick: settings.quick, restarts, ...planOf(r.fault) } } : {}),
        checks: reportedChecks(r),
        figures: r.figures,
        seconds: r.seconds,
        ...(r.internalErrors ? { internalErrors: r.internalErrors } : {}),
        ...(r.gray ? { gray: r.gray } : {}),
        ...(r.payments ? { payments: { figures: r.payments.figures, violations: r.payments.violations } } : {}),
        ...(r.sale ? { sale: { figures: r.sale.figures, violations: r.sale.violations } } : {}),
        ...(r.stripe ? { stripe: { figures: r.stripe.figures, violations: r.stripe.violations } } : {}),
        ...(r.line ? { line: { figures: r.line.figures, violations: r.line.violations } } : {}),
        ...(r.events ? { events: { figures: r.events.figures, violations: r.events.violations } } : {}),
      },
    ]),
  );
  const report = previous
    ? { ...previous, faults: { ...previous.faults, ...entries } }
    : { date, settings, restarts, faults: entries };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return { file, merged: previous !== undefined };
}

/** The tables of a run: fault × invariant, then the freezes', the payments', the sales' and each section's checks. */
export function tables(results: readonly FaultResult[]): string {
  const parts = [table(results)];
  if (results.some((r) => r.gray)) parts.push(grayTable(results));
  if (results.some((r) => r.payments)) parts.push(paymentsTable(results));
  if (results.some((r) => r.sale)) parts.push(saleTable(results));
  for (const r of results)
    for (const section of [r.stripe, r.line, r.events])
      if (section) parts.push(`${r.fault}: ${JSON.stringify(section.checks)}\n  ${JSON.stringify(section.figures)}`);
  return parts.map((part) => `\n${part}`).join('\n');
}

function table(results: readonly FaultResult[]): string {
  const head = `| fault | ${CHAOS_CHECKS.join(' | ')} | accepted | 202 without a row (lost with Redis's writes) | paid / cancelled / failed | orphans released | repaired (adopted / aligned) | payments applied / refund | retried requests | stores agree after fault | quiet after |`;
  const rule = `|---|${CHAOS_CHECKS.map(() => ':-:').join('|')}|---:|---:|---|---:|---:|---|---:|---:|---:|`;
  const rows = results.map((r) => {
    const f = r.figures as {
      accepted: number;
      acceptedWithoutRow: number;
      lostWithRedisWrites: number;
      orders: { paid: number; cancelled: number; failed: number };
      orphansReleased: number;
      repairs: { adopted: number; aligned: number };
      paymentEvents: { applied: number; refundRequired: number };
      retriedRequests: number;
    };
    return `| ${r.fault} | ${CHAOS_CHECKS.map((c) => (r.checks[c] ? 'ok' : '**FAIL**')).join(' | ')} | ${f.accepted} | ${f.acceptedWithoutRow} (${f.lostWithRedisWrites}) | ${f.orders.paid} / ${f.orders.cancelled} / ${f.orders.failed} | ${f.orphansReleased} | ${f.repairs.adopted} / ${f.repairs.aligned} | ${f.paymentEvents.applied} / ${f.paymentEvents.refundRequired} | ${f.retriedRequests} | ${r.seconds.storesAgreeAfterFault} s | ${r.seconds.quiet} s |`;
  });
  return [head, rule, ...rows].join('\n');
}

/** The freeze rounds: what the APIs answered while the server was frozen, and how they came back. */
function grayTable(results: readonly FaultResult[]): string {
  const head =
    '| freeze | invariants | answers during the freeze (status: count) | slowest during the freeze vs deadline (ms) | late | shed | breaker transitions | healthy after thaw |';
  const rule = '|---|:-:|---|---|---:|---:|---|---:|';
  const rows = results.flatMap((r) => {
    if (!r.gray) return [];
    const g = r.gray;
    const answers = Object.entries(g.byOutcome)
      .map(([outcome, count]) => `${outcome}: ${count}`)
      .join(', ');
    const slowest = Object.entries(g.slowest)
      .map(([kind, s]) => `${kind} ${s.ms} / ${s.deadlineMs}`)
      .join('; ');
    const transitions = Object.entries(g.transitions)
      .map(([key, count]) => `${key} ×${count}`)
      .join(', ');
    const invariants = CHAOS_CHECKS.every((c) => r.checks[c]) ? 'ok' : '**FAIL**';
    return [
      `| ${r.fault} | ${invariants} | ${answers} | ${slowest} | ${g.late === 0 ? '0' : `**${g.late}**`} | ${g.shed} | ${transitions || 'none'} | ${g.healthyAfterThawSeconds ?? 'never'} s |`,
    ];
  });
  return [head, rule, ...rows].join('\n');
}

/** The freeze-payment rounds: what the webhooks answered during the freeze, and how each payment was judged. */
function paymentsTable(results: readonly FaultResult[]): string {
  const head = `| freeze-payments | ${PAYMENT_FREEZE_CHECKS.join(' | ')} | webhook answers during the freeze | recorded before / after the deadline | applied / refunded | refund reasons after the deadline |`;
  const rule = `|---|${PAYMENT_FREEZE_CHECKS.map(() => ':-:').join('|')}|---|---:|---:|---|`;
  const rows = results.flatMap((r) => {
    if (!r.payments) return [];
    const f = r.payments.figures as {
      webhookAnswersDuringFreeze: Record<string, number>;
      payments: {
        receivedBeforeDeadline: number;
        receivedAfterDeadline: number;
        applied: number;
        refundRequired: number;
      };
      refundReasons: { afterDeadline: Record<string, number> };
    };
    const list = (counts: Record<string, number>) =>
      Object.entries(counts)
        .map(([key, count]) => `${key}: ${count}`)
        .join(', ');
    const checks = r.payments.checks;
    return [
      `| ${r.fault} | ${PAYMENT_FREEZE_CHECKS.map((c) => (checks[c] ? 'ok' : '**FAIL**')).join(' | ')} | ${list(f.webhookAnswersDuringFreeze)} | ${f.payments.receivedBeforeDeadline} / ${f.payments.receivedAfterDeadline} | ${f.payments.applied} / ${f.payments.refundRequired} | ${list(f.refundReasons.afterDeadline)} |`,
    ];
  });
  return [head, rule, ...rows].join('\n');
}

/**
 * The freezes the sale goes on through: what checkouts and reads were answered during it, the promises, the rows, the
 * payment windows.
 */
function saleTable(results: readonly FaultResult[]): string {
  const head = `| sale through the freeze | ${SALE_FREEZE_CHECKS.join(' | ')} | checkouts during the freeze | reads during the freeze | available (min–max) | promises pending at thaw | every 202 a row after thaw | payment window from thaw (min) | failed or late after the thaw, until every 202 was a row |`;
  const rule = `|---|${SALE_FREEZE_CHECKS.map(() => ':-:').join('|')}|---|---|---:|---:|---:|---:|---|`;
  const rows = results.flatMap((r) => {
    if (!r.sale) return [];
    const f = r.sale.figures as {
      answersDuringFreeze: Record<string, Record<string, number>>;
      availableDuringFreeze: { min: number; max: number } | null;
      promisesPending: { atThaw: number };
      secondsFromThawUntilEvery202IsARow: number | null;
      paymentWindowSeconds: { fromThaw: { min: number } | null };
      answersAfterThaw: Record<string, Record<string, number>>;
      lateAfterThaw: Record<string, Record<string, number>>;
    };
    const list = (counts: Record<string, number> | undefined) =>
      Object.entries(counts ?? {})
        .map(([key, count]) => `${key}: ${count}`)
        .join(', ') || 'none';
    const checkouts: Record<string, number> = {};
    for (const kind of ['checkout', 'checkout-wait'])
      for (const [answer, count] of Object.entries(f.answersDuringFreeze[kind] ?? {}))
        checkouts[answer] = (checkouts[answer] ?? 0) + count;
    const available = f.availableDuringFreeze ? `${f.availableDuringFreeze.min}–${f.availableDuringFreeze.max}` : '?';
    const rowsAfter =
      f.secondsFromThawUntilEvery202IsARow === null ? '**never**' : `${f.secondsFromThawUntilEvery202IsARow} s`;
    const window = f.paymentWindowSeconds.fromThaw ? `${f.paymentWindowSeconds.fromThaw.min} s` : '–';
    const failedAfter = Object.entries(f.answersAfterThaw).flatMap(([kind, answers]) =>
      Object.entries(answers).flatMap(([answer, count]) =>
        /^(5|timeout|error)/.test(answer) ? [`${kind} ${answer}: ${count}`] : [],
      ),
    );
    const lateAfter = Object.entries(f.lateAfterThaw).map(
      ([kind, answers]) => `${kind} late: ${Object.values(answers).reduce((a, b) => a + b, 0)}`,
    );
    const recovery = [...failedAfter, ...lateAfter].join(', ') || 'none';
    return [
      `| ${r.fault} | ${SALE_FREEZE_CHECKS.map((c) => (r.sale?.checks[c] ? 'ok' : '**FAIL**')).join(' | ')} | ${list(checkouts)} | ${list(f.answersDuringFreeze.read)} | ${available} | ${f.promisesPending.atThaw} | ${rowsAfter} | ${window} | ${recovery} |`,
    ];
  });
  return [head, rule, ...rows].join('\n');
}
