/**
 * One burst of checkouts over HTTP (toolkit/http-client.ts): `requests` checkouts over `connections`, shoppers
 * round-robin, latencies split by answer (won, sold out) and summarised.
 */
import type { InvariantReport } from '../src/invariants/check.js';
import { HttpClient, type Answer } from '../toolkit/http-client.js';
import type { DrainSeries } from './drain.js';
import type { PaymentPhaseResult } from './payments.js';
import { pct, sorted } from './stats.js';

export interface Latencies {
  win: number[];
  soldOut: number[];
  all: number[];
}

export interface VariantResult {
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  winP50Ms: number | null;
  winP90Ms: number | null;
  winP99Ms: number | null;
  winMaxMs: number | null;
  soldOutP50Ms: number | null;
  soldOutP99Ms: number | null;
  soldOutMaxMs: number | null;
  requests: number;
  seconds: number;
  won: number;
  /** Waiting checkouts only: wins answered 201 (persisted within the wait) and 409 ORDER_FAILED. */
  persistedInWait?: number;
  orderFailed?: number;
  soldOut: number;
  limitExceeded: number;
  errors: number;
  /**
   * 5xx answered before the last win: while the sale still had units (the bench's sale gets none back), a shopper
   * turned away (target 0).
   */
  errorsWhileUnitsLeft: number;
  /** 5xx by `<status> <error code>` (e.g. `503 UNAVAILABLE`). */
  serverErrors?: Record<string, number>;
  /** `series` is absent from results files written before it was recorded (toolkit/chart.ts draws those without it). */
  drain?: { orders: number; seconds: number; totalSeconds: number; ordersPerSecond: number; series?: DrainSeries };
  invariants?: InvariantReport;
  /**
   * CPU seconds per process during the burst and the drain (servers the benchmark started, the variant's processes, the
   * load generator).
   */
  cpuSeconds?: Record<string, number>;
  /** The same over the burst alone, until its last answer: what answering cost, without the drain's background work. */
  burstCpuSeconds?: Record<string, number>;
  /** The CPUs each of those processes was allowed to run on, read after the burst (bench/cpu-layout.ts cpuAffinity). */
  cpuAffinity?: Record<string, string>;
  /** Ours (and before): Temporal's frontend requests per won order over the burst and the drain, by operation. */
  temporalRequestsPerOrder?: Record<string, number>;
  /** Ours (and before): reservation to workflow start, from Temporal's visibility (bench/visibility.ts). */
  workflowStart?: { p50Ms: number; p99Ms: number; count: number };
  /** Ours (and before): the winners paying within the spread (bench/payments.ts). */
  payments?: PaymentPhaseResult;
}

export interface Shot {
  latencies: Latencies;
  statuses: Map<string, number>;
  accepted: string[];
  seconds: number;
  firstWinAt: number;
  lastWinAt: number;
  errors: number;
  errorsWhileUnitsLeft: number;
  serverErrors: Record<string, number>;
}

/** A win: 202 (accepted, polling model) or 201 (persisted within the wait, `Prefer: wait=N`). */
const isWin = (status: number) => status === 202 || status === 201;

/**
 * One burst: `requests` checkouts, each of `connections` connections sending its next as soon as its last is answered,
 * shoppers round-robin. With `waitSeconds`, every checkout sends `Prefer: wait=N` (the waiting checkout).
 */
export async function burst(
  url: string,
  sku: string,
  tokens: string[],
  requests: number,
  connections: number,
  showProgress: boolean,
  say: (line: string) => void,
  waitSeconds = 0,
): Promise<Shot> {
  const latencies: Latencies = { win: [], soldOut: [], all: [] };
  const statuses = new Map<string, number>();
  const accepted: string[] = [];
  let firstWinAt = 0;
  let lastWinAt = 0;
  let lastAnswerAt = 0;
  let noAnswer = 0;
  const serverErrorsAt: number[] = [];
  /** 5xx by status and the API's error code, to tell shedding, breakers and deadlines apart. */
  const serverErrors = new Map<string, number>();
  const count = (key: string) => statuses.set(key, (statuses.get(key) ?? 0) + 1);
  const body = JSON.stringify({ sku, quantity: 1 });
  // Each shopper's headers made once, before the first request: sending allocates none.
  const headersOf = tokens.map((token) => ({
    'content-type': 'application/json',
    authorization: `Bearer ${token}`,
    ...(waitSeconds > 0 ? { prefer: `wait=${waitSeconds}` } : {}),
  }));
  let next = Math.floor(Math.random() * tokens.length);
  const client = new HttpClient(url, { connections, timeoutMs: 30_000 });
  let sent = 0;
  let answered = 0;
  let lastTenth = 0;
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const onAnswer = (answer: Answer) => {
      answered++;
      const { status, ms } = answer;
      if (status === 0) noAnswer++;
      else {
        lastAnswerAt = answer.doneAt;
        latencies.all.push(ms);
        if (isWin(status)) {
          latencies.win.push(ms);
          accepted.push((answer.json as { orderNo: string }).orderNo);
          lastWinAt = answer.doneAt;
          if (!firstWinAt) firstWinAt = lastWinAt;
        } else if (status === 409) {
          latencies.soldOut.push(ms);
          count(errorCodeOf(answer));
        } else if (status >= 500) {
          serverErrorsAt.push(answer.doneAt);
          const kind = `${status} ${errorCodeOf(answer)}`;
          serverErrors.set(kind, (serverErrors.get(kind) ?? 0) + 1);
        }
        count(String(status));
      }
      if (showProgress) {
        const tenth = Math.floor((answered / requests) * 10);
        if (tenth > lastTenth) {
          lastTenth = tenth;
          say(`  ${tenth * 10}% of ${requests} requests`);
        }
      }
      if (sent < requests) sendNext();
      else if (answered === requests) resolve();
    };
    const sendNext = () => {
      sent++;
      client.send('POST', '/api/checkout', headersOf[next++ % tokens.length]!, body, onAnswer);
    };
    for (let i = 0; i < Math.min(connections, requests); i++) sendNext();
    if (requests <= 0) resolve();
  });
  client.close();
  const seconds = ((lastAnswerAt || Date.now()) - started) / 1000;
  const errors = noAnswer + [...statuses.entries()].filter(([s]) => /^5\d\d$/.test(s)).reduce((n, [, c]) => n + c, 0);
  const errorsWhileUnitsLeft = serverErrorsAt.filter((at) => at <= lastWinAt).length;
  return {
    latencies,
    statuses,
    accepted,
    seconds,
    firstWinAt,
    lastWinAt,
    errors,
    errorsWhileUnitsLeft,
    serverErrors: Object.fromEntries(serverErrors),
  };
}

export function summarise(shot: Shot): VariantResult {
  const all = sorted(shot.latencies.all);
  const win = sorted(shot.latencies.win);
  const soldOut = sorted(shot.latencies.soldOut);
  return {
    rps: shot.latencies.all.length / shot.seconds,
    p50Ms: pct(all, 50) ?? 0,
    p90Ms: pct(all, 90) ?? 0,
    p99Ms: pct(all, 99) ?? 0,
    maxMs: all[all.length - 1] ?? 0,
    winP50Ms: pct(win, 50),
    winP90Ms: pct(win, 90),
    winP99Ms: pct(win, 99),
    winMaxMs: win[win.length - 1] ?? null,
    soldOutP50Ms: pct(soldOut, 50),
    soldOutP99Ms: pct(soldOut, 99),
    soldOutMaxMs: soldOut[soldOut.length - 1] ?? null,
    requests: shot.latencies.all.length,
    seconds: shot.seconds,
    won: shot.accepted.length,
    ...(shot.statuses.has('201') || shot.statuses.has('ORDER_FAILED')
      ? { persistedInWait: shot.statuses.get('201') ?? 0, orderFailed: shot.statuses.get('ORDER_FAILED') ?? 0 }
      : {}),
    soldOut: shot.statuses.get('SOLD_OUT') ?? 0,
    limitExceeded: shot.statuses.get('PURCHASE_LIMIT_EXCEEDED') ?? 0,
    errors: shot.errors,
    errorsWhileUnitsLeft: shot.errorsWhileUnitsLeft,
    ...(Object.keys(shot.serverErrors).length > 0 ? { serverErrors: shot.serverErrors } : {}),
  };
}

function errorCodeOf(answer: Answer): string {
  const parsed = answer.json as { error?: { code?: string } } | null | undefined;
  return parsed === undefined || parsed === null ? 'not JSON' : (parsed.error?.code ?? 'no code');
}
