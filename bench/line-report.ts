/**
 * The line benchmark's figures (bench/line.ts): from what each shopper saw (bench/line-run.ts), the admission
 * batches Redis recorded and the API's CPU; then line.json and line.md. The pure parts (Spearman's rank correlation,
 * the admission rate, the fair order) are held by test/bench-line.test.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fairRank, seedHashOf } from '../src/line/line-rules.js';
import type { InvariantReport } from '../src/invariants/check.js';
import { ACTIVE, OTHER, SOLD_OUT, type LineRunResult } from './line-run.js';
import { describePaymentPhase, type PaymentPhaseResult } from './payments.js';
import { fmt, pct, round, sorted } from './stats.js';

/** Percentiles of a list of milliseconds (or seconds), rounded. */
export function spread(values: number[], digits = 1) {
  const s = sorted(values);
  return {
    count: s.length,
    p50: round(pct(s, 50), digits),
    p90: round(pct(s, 90), digits),
    p99: round(pct(s, 99), digits),
    max: round(s.length ? s[s.length - 1]! : null, digits),
  };
}

/** Ranks 1..n of `values` (ties get their mean rank). */
function ranks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const rank = new Float64Array(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1]!] === values[order[i]!]) j++;
    for (let k = i; k <= j; k++) rank[order[k]!] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return rank;
}

/** Spearman's rank correlation of two equally long lists (Pearson's over their ranks); null below 3 pairs. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  const n = x.length;
  if (n !== y.length) throw new Error('spearman: lists of different lengths');
  if (n < 3) return null;
  const rx = ranks(x);
  const ry = ranks(y);
  const mean = (n + 1) / 2;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = rx[i]! - mean;
    const dy = ry[i]! - mean;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? null : sxy / Math.sqrt(sxx * syy);
}

/** One admission batch as line_tick.lua records it: positions from+1..to, admitted at `atMs` (Redis clock). */
export interface Batch {
  from: number;
  to: number;
  atMs: number;
}

export function parseBatch(member: string): Batch | null {
  const match = /^(\d+):(\d+):(\d+)$/.exec(member);
  return match ? { from: Number(match[1]), to: Number(match[2]), atMs: Number(match[3]) } : null;
}

/**
 * The rate the line admitted at: the admissions after the first batch over the time from the first batch to the
 * last full one of the first pass through the stock (positions up to `stock`; the pass's last batch is left out: it
 * may be cut short by the units left, and later batches re-admit slots given back after the TTL); and over the whole
 * period from the sale's start to the last batch.
 */
export function admissionRate(batches: Batch[], startsMs: number, stock = Number.POSITIVE_INFINITY) {
  const ordered = [...batches].sort((a, b) => a.to - b.to);
  const admitted = ordered.reduce((sum, b) => sum + (b.to - b.from), 0);
  const first = ordered[0];
  const last = ordered.at(-1);
  const steady = ordered.filter((b) => b.to <= stock).slice(0, -1);
  const steadyLast = steady.at(-1);
  const steadySeconds = first && steadyLast ? (steadyLast.atMs - first.atMs) / 1_000 : 0;
  const steadyAdmitted = steady.slice(1).reduce((sum, b) => sum + (b.to - b.from), 0);
  return {
    batches: ordered.length,
    admitted,
    firstAtMs: first?.atMs ?? null,
    lastAtMs: last?.atMs ?? null,
    perSecond: steadySeconds > 0 ? steadyAdmitted / steadySeconds : null,
    overallPerSecond: last && startsMs > 0 && last.atMs > startsMs ? admitted / ((last.atMs - startsMs) / 1_000) : null,
    periodSeconds: last && startsMs > 0 ? (last.atMs - startsMs) / 1_000 : null,
    /** Admitted per whole second since the start. */
    perSecondSeries: perSecondSeries(ordered, startsMs),
  };
}

function perSecondSeries(batches: Batch[], startsMs: number): number[] {
  const series: number[] = [];
  for (const b of batches) {
    const second = Math.max(0, Math.floor((b.atMs - startsMs) / 1_000));
    while (series.length <= second) series.push(0);
    series[second]! += b.to - b.from;
  }
  return series;
}

/** The batch that admitted `position`, by binary search over batches ordered by `to`. */
export function batchOf(ordered: Batch[], position: number): Batch | undefined {
  let lo = 0;
  let hi = ordered.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const b = ordered[mid]!;
    if (position <= b.from) hi = mid - 1;
    else if (position > b.to) lo = mid + 1;
    else return b;
  }
  return undefined;
}

/**
 * The pre-queue's order as the published seed says it must be: HMAC rank, ties by the user id's bytes; the count
 * of shoppers whose position differs from it.
 */
export function fairOrderMismatches(seed: string, preQueue: Array<{ userId: string; position: number }>): number {
  const ranked = preQueue
    .map((p) => ({ ...p, rank: fairRank(seed, p.userId) }))
    .sort((a, b) => a.rank - b.rank || Buffer.compare(Buffer.from(a.userId), Buffer.from(b.userId)));
  return ranked.filter((p, i) => p.position !== i + 1).length;
}

export interface BurstFigures {
  requests: number;
  seconds: number;
  rps: number;
  latencyMs: ReturnType<typeof spread>;
  statuses: Record<string, number>;
  won: number;
  apiCpuSeconds: number;
  apiCpuUsPerAnswer: number;
}

export interface LineFigures {
  sku: string;
  complete: boolean;
  joins: {
    count: number;
    preQueue: number;
    seconds: number;
    perSecond: number;
    latencyMs: ReturnType<typeof spread>;
    fromArrivalMs: ReturnType<typeof spread>;
    overPlainRps: number | null;
  };
  reads: { count: number; latencyMs: ReturnType<typeof spread> };
  pollLagMs: ReturnType<typeof spread>;
  admission: ReturnType<typeof admissionRate> & {
    setting: number;
    withinFivePercent: boolean | null;
    counters: { admitted: number; consumed: number; givenBack: number };
  };
  eta: {
    shoppers: number;
    /** |first-seen ADMITTED − (first ETA's read + eta.minSeconds)|, seconds, as the shopper saw it. */
    errorSeconds: ReturnType<typeof spread>;
    /** The same against when Redis admitted the place (no polling delay). */
    admittedErrorSeconds: ReturnType<typeof spread>;
    /** Admitted (Redis) no later than the band's max after the first ETA. */
    withinBand: number;
    rises: number;
  };
  preQueue: {
    shoppers: number;
    spearman: number | null;
    seedHashMatches: boolean;
    orderMismatches: number | null;
  };
  admittedOnce: {
    shoppersAdmittedTwice: number;
    positionsAdmittedTwice: number;
    positionChanges: number;
    distinctPositions: number;
    ok: boolean;
  };
  soldOut: {
    at: string | null;
    afterStartSeconds: number | null;
    waitingShoppers: number;
    sawIt: number;
    withinRetryAfter: number;
    delaySeconds: ReturnType<typeof spread>;
    overshootSeconds: ReturnType<typeof spread>;
    /** Reads sent a tick after the sale sold out that still answered a wait: must be 0. */
    waitingAnswersAfter: number;
    ok: boolean;
  };
  checkouts: {
    count: number;
    accepted: number;
    latencyMs: ReturnType<typeof spread>;
    refusals: Record<string, number>;
  };
  apiCpu: {
    joinPhaseSeconds: number;
    joinPhaseCpuSeconds: number;
    usPerJoin: number;
    waitingWindowSeconds: number;
    waitingShopperMinutes: number;
    waitingCpuSeconds: number;
    readsInWindow: number;
    checkoutsInWindow: number;
    msPerWaitingShopperPerMinute: number | null;
    usPerReadInWindow: number | null;
  };
  refusals: Record<string, number>;
  otherStates: Record<string, number>;
  invariants?: InvariantReport;
}

/**
 * The figures of the main run. `cpu`: the API's CPU seconds when the joins began, ended, and the last shopper was done.
 */
export function lineFigures(input: {
  sku: string;
  run: LineRunResult;
  userIds: readonly string[];
  startsMs: number;
  rate: number;
  stock: number;
  plainRps: number;
  batches: Batch[];
  line: {
    seed: string | null;
    seedHash: string;
    soldOutAt: string | null;
    admitted: number;
    consumed: number;
    givenBack: number;
  };
  cpu: { atJoinsBegan: number; atJoinsDone: number; atDone: number };
}): LineFigures {
  const { run, startsMs, rate, batches, line, cpu, userIds } = input;
  const log = run.log;
  const n = log.size;
  const ordered = [...batches].sort((a, b) => a.to - b.to);
  const rateFigures = admissionRate(ordered, startsMs, input.stock);

  // Joins.
  let firstJoinSent = Number.POSITIVE_INFINITY;
  let preQueueCount = 0;
  for (let i = 0; i < n; i++) {
    if (log.joinSentAt[i]! > 0) firstJoinSent = Math.min(firstJoinSent, log.joinSentAt[i]!);
    if (log.preQueue[i]) preQueueCount++;
  }
  const joinSeconds = Math.max(0.001, (run.joinsDoneAt - firstJoinSent) / 1_000);
  const joinsPerSecond = n / joinSeconds;

  // ETA: each admitted shopper's first wait against when it was admitted.
  const etaSeen: number[] = [];
  const etaAdmitted: number[] = [];
  let withinBand = 0;
  for (let i = 0; i < n; i++) {
    if (log.firstEtaAt[i] === 0 || log.admittedSeenAt[i] === 0) continue;
    const predicted = log.firstEtaAt[i]! + log.firstEtaMin[i]! * 1_000;
    etaSeen.push(Math.abs(log.admittedSeenAt[i]! - predicted) / 1_000);
    const batch = batchOf(ordered, log.admittedPosition[i]!);
    if (batch) {
      etaAdmitted.push(Math.abs(batch.atMs - predicted) / 1_000);
      if (batch.atMs <= log.firstEtaAt[i]! + log.firstEtaMax[i]! * 1_000) withinBand++;
    }
  }

  // The pre-queue: its positions against the order of arrival, and against the seed.
  const preOrder: number[] = [];
  const prePosition: number[] = [];
  const preShoppers: Array<{ userId: string; position: number }> = [];
  for (let i = 0; i < n; i++) {
    if (!log.preQueue[i] || log.position[i] === 0) continue;
    preOrder.push(i);
    prePosition.push(log.position[i]!);
    preShoppers.push({ userId: userIds[i]!, position: log.position[i]! });
  }

  // Every place distinct.
  const positions = new Set<number>();
  for (let i = 0; i < n; i++) if (log.position[i]! > 0) positions.add(log.position[i]!);

  // Sold out: every shopper still waiting then, told at its next read.
  const soldOutMs = line.soldOutAt ? Date.parse(line.soldOutAt) : null;
  const delays: number[] = [];
  const overshoots: number[] = [];
  let waiting = 0;
  let sawIt = 0;
  let withinRetryAfter = 0;
  let waitingAnswersAfter = 0;
  if (soldOutMs !== null) {
    for (let i = 0; i < n; i++) {
      // Reads answered a tick (250 ms) or more after the sold-out moment must not leave anyone waiting.
      if (log.lastWaitSentAt[i]! > soldOutMs + 250) waitingAnswersAfter++;
      // Waiting then: not admitted, and not ended otherwise (an admission that expired before its read, a refusal).
      if (log.lastWaitAt[i] === 0 || log.lastWaitAt[i]! >= soldOutMs || log.admittedSeenAt[i] !== 0) continue;
      if (log.outcome[i] === OTHER) continue;
      waiting++;
      if (log.outcome[i] !== SOLD_OUT) continue;
      sawIt++;
      const delay = (log.soldOutSeenAt[i]! - soldOutMs) / 1_000;
      delays.push(delay);
      overshoots.push(delay - log.lastRetryAfter[i]!);
      if (delay <= log.lastRetryAfter[i]!) withinRetryAfter++;
    }
  }

  // The API's CPU: the joins' phase, then the window from the last join to the last shopper done.
  const windowStart = run.joinsDoneAt;
  const windowEnd = run.doneAt;
  let shopperMs = 0;
  for (let i = 0; i < n; i++) {
    if (log.joinDoneAt[i] === 0) continue;
    const end = log.outcome[i] === ACTIVE ? windowEnd : log.finishedAt[i]!;
    const from = Math.max(log.joinDoneAt[i]!, windowStart);
    const to = Math.min(end, windowEnd);
    if (to > from) shopperMs += to - from;
  }
  const waitingCpu = cpu.atDone - cpu.atJoinsDone;
  const readsInWindow = run.reads - run.readsAtJoinsDone;
  const shopperMinutes = shopperMs / 60_000;

  return {
    sku: input.sku,
    complete: run.complete,
    joins: {
      count: n,
      preQueue: preQueueCount,
      seconds: round(joinSeconds, 2),
      perSecond: round(joinsPerSecond, 0),
      latencyMs: spread(run.joinMs),
      fromArrivalMs: spread(run.joinFromArrivalMs),
      overPlainRps: input.plainRps > 0 ? round(joinsPerSecond / input.plainRps, 2) : null,
    },
    reads: { count: run.reads, latencyMs: spread(run.readMs) },
    pollLagMs: spread(run.pollLagMs),
    admission: {
      ...rateFigures,
      perSecond: round(rateFigures.perSecond, 1),
      overallPerSecond: round(rateFigures.overallPerSecond, 1),
      periodSeconds: round(rateFigures.periodSeconds, 2),
      setting: rate,
      withinFivePercent: rateFigures.perSecond === null ? null : Math.abs(rateFigures.perSecond / rate - 1) <= 0.05,
      counters: { admitted: line.admitted, consumed: line.consumed, givenBack: line.givenBack },
    },
    eta: {
      shoppers: etaSeen.length,
      errorSeconds: spread(etaSeen, 2),
      admittedErrorSeconds: spread(etaAdmitted, 2),
      withinBand,
      rises: run.etaRises,
    },
    preQueue: {
      shoppers: preShoppers.length,
      spearman: round(spearman(preOrder, prePosition), 4),
      seedHashMatches: line.seed !== null && seedHashOf(line.seed) === line.seedHash,
      orderMismatches: line.seed === null ? null : fairOrderMismatches(line.seed, preShoppers),
    },
    admittedOnce: {
      shoppersAdmittedTwice: run.shoppersAdmittedTwice,
      positionsAdmittedTwice: run.positionsAdmittedTwice,
      positionChanges: run.positionChanges,
      distinctPositions: positions.size,
      ok:
        run.shoppersAdmittedTwice === 0 &&
        run.positionsAdmittedTwice === 0 &&
        run.positionChanges === 0 &&
        line.consumed === run.accepted.length &&
        line.consumed <= line.admitted,
    },
    soldOut: {
      at: line.soldOutAt,
      afterStartSeconds: soldOutMs === null ? null : round((soldOutMs - startsMs) / 1_000, 2),
      waitingShoppers: waiting,
      sawIt,
      withinRetryAfter,
      delaySeconds: spread(delays, 2),
      overshootSeconds: spread(overshoots, 2),
      waitingAnswersAfter,
      ok: soldOutMs !== null && sawIt === waiting && waitingAnswersAfter === 0,
    },
    checkouts: {
      count: run.checkouts,
      accepted: run.accepted.length,
      latencyMs: spread(run.checkoutMs),
      refusals: Object.fromEntries(Object.entries(run.refusals).filter(([k]) => k.startsWith('checkout'))),
    },
    apiCpu: {
      joinPhaseSeconds: round(joinSeconds, 2),
      joinPhaseCpuSeconds: round(cpu.atJoinsDone - cpu.atJoinsBegan, 2),
      usPerJoin: round(((cpu.atJoinsDone - cpu.atJoinsBegan) * 1e6) / n, 0),
      waitingWindowSeconds: round((windowEnd - windowStart) / 1_000, 2),
      waitingShopperMinutes: round(shopperMinutes, 1),
      waitingCpuSeconds: round(waitingCpu, 2),
      readsInWindow,
      checkoutsInWindow: run.checkouts - run.checkoutsAtJoinsDone,
      msPerWaitingShopperPerMinute: shopperMinutes > 0 ? round((waitingCpu * 1_000) / shopperMinutes, 3) : null,
      usPerReadInWindow: readsInWindow > 0 ? round((waitingCpu * 1e6) / readsInWindow, 0) : null,
    },
    refusals: run.refusals,
    otherStates: run.otherStates,
  };
}

export interface LineReport {
  date: string;
  node: string;
  cpu: string;
  settings: Record<string, number | string>;
  seconds: number;
  plain: BurstFigures;
  checkoutCpu: { plainWins: BurstFigures; lineWins: BurstFigures; lineOverPlain: number | null };
  line: LineFigures;
  /** The line's winners paying within the spread (bench/payments.ts); absent with --pay-within 0. */
  payments?: PaymentPhaseResult;
  invariants: Record<string, InvariantReport['checks'] & { ok: boolean }>;
  ok: boolean;
}

export function writeLineReport(report: LineReport, outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'line.json'), `${JSON.stringify(report, null, 2)}\n`);
  const md = renderLineReport(report);
  writeFileSync(join(outDir, 'line.md'), md);
  return md;
}

export function renderLineReport(r: LineReport): string {
  const l = r.line;
  const yes = (ok: boolean | null) => (ok === null ? '—' : ok ? 'yes' : '**no**');
  const lines = [
    `# Line-mode burst (${r.date}, Node ${r.node}, ${r.cpu})`,
    '',
    `${l.joins.count.toLocaleString('en')} shoppers joined over ${r.settings.joinSeconds} s (${l.joins.preQueue.toLocaleString('en')} before the start, ${r.settings.preStartSeconds} s in), ` +
      `stock ${r.settings.stock}, ${r.settings.rate} admissions/s, ${r.settings.connections} connections; run ${fmt(r.seconds, 0)} s. ` +
      'Load generator, API, worker and servers on the same two cores.',
    '',
    '| figure | value |',
    '| --- | --- |',
    `| joins/s (plain burst req/s) | ${fmt(l.joins.perSecond, 0)} (${fmt(r.plain.rps, 0)}; ratio ${fmt(l.joins.overPlainRps, 2)}) |`,
    `| join p50 / p99 ms (plain p50 / p99) | ${fmt(l.joins.latencyMs.p50)} / ${fmt(l.joins.latencyMs.p99)} (${fmt(r.plain.latencyMs.p50)} / ${fmt(r.plain.latencyMs.p99)}) |`,
    `| join p99 from arrival (client queue included) ms | ${fmt(l.joins.fromArrivalMs.p99)} |`,
    `| admitted/s over the admitting period (setting) | ${fmt(l.admission.perSecond)} (${l.admission.setting}); within 5 %: ${yes(l.admission.withinFivePercent)} |`,
    `| ETA error p50 / p90 s, as seen (against Redis's admission) | ${fmt(l.eta.errorSeconds.p50, 2)} / ${fmt(l.eta.errorSeconds.p90, 2)} (${fmt(l.eta.admittedErrorSeconds.p50, 2)} / ${fmt(l.eta.admittedErrorSeconds.p90, 2)}); ${l.eta.withinBand} of ${l.eta.shoppers} admitted within the band; rises ${l.eta.rises} |`,
    `| pre-queue: Spearman (join order, position) | ${fmt(l.preQueue.spearman, 4)} over ${l.preQueue.shoppers.toLocaleString('en')}; positions match the seed: ${yes(l.preQueue.orderMismatches === 0 && l.preQueue.seedHashMatches)} |`,
    `| admitted twice | ${l.admittedOnce.shoppersAdmittedTwice + l.admittedOnce.positionsAdmittedTwice} (ok: ${yes(l.admittedOnce.ok)}) |`,
    `| oversold | ${Object.values(r.invariants).every((c) => c.noOversell) ? 'no' : '**yes**'} (every invariant: ${yes(Object.values(r.invariants).every((c) => c.ok))}) |`,
    `| sold out after the start s | ${fmt(l.soldOut.afterStartSeconds, 2)} |`,
    `| sold-out seen: within Retry-After / waiting | ${l.soldOut.withinRetryAfter} / ${l.soldOut.waitingShoppers} (saw it: ${l.soldOut.sawIt}; delay p99 ${fmt(l.soldOut.delaySeconds.p99, 2)} s, max ${fmt(l.soldOut.delaySeconds.max, 2)} s; waits answered after: ${l.soldOut.waitingAnswersAfter}) |`,
    `| API CPU per waiting shopper per minute | ${fmt(l.apiCpu.msPerWaitingShopperPerMinute, 3)} ms (${fmt(l.apiCpu.usPerReadInWindow, 0)} µs per read; ${l.apiCpu.waitingShopperMinutes} shopper-minutes) |`,
    `| API CPU per join | ${fmt(l.apiCpu.usPerJoin, 0)} µs (polls in the phase included) |`,
    `| checkout API CPU per answer: line wins / plain wins | ${fmt(r.checkoutCpu.lineWins.apiCpuUsPerAnswer, 0)} / ${fmt(r.checkoutCpu.plainWins.apiCpuUsPerAnswer, 0)} µs (ratio ${fmt(r.checkoutCpu.lineOverPlain, 2)}); plain burst ${fmt(r.plain.apiCpuUsPerAnswer, 0)} µs |`,
    `| line checkouts p50 / p99 ms | ${fmt(l.checkouts.latencyMs.p50)} / ${fmt(l.checkouts.latencyMs.p99)} (${l.checkouts.accepted} accepted of ${l.checkouts.count}) |`,
    `| poll lag p50 / p99 ms (load generator) | ${fmt(l.pollLagMs.p50)} / ${fmt(l.pollLagMs.p99)} |`,
    ...(r.payments ? [`| payment phase (the line's winners pay) | ${describePaymentPhase(r.payments)} |`] : []),
    '',
    `Every check held: ${yes(r.ok)}.`,
  ];
  return `${lines.join('\n')}\n`;
}
