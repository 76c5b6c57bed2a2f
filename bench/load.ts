/**
 * One burst of checkouts over HTTP with autocannon: `requests` checkouts over `connections`,
 * shoppers round-robin, latencies split by answer (won, sold out) and summarised.
 */
import autocannon from 'autocannon';
import type { InvariantReport } from '../src/invariants/check.js';
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
  /** `series` is absent from results files written before it was recorded (bench/chart.ts draws those without it). */
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
 * One burst with autocannon: `requests` checkouts over `connections`, shoppers round-robin. With
 * `waitSeconds`, every checkout sends `Prefer: wait=N` (the waiting checkout).
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
  let next = Math.floor(Math.random() * tokens.length);
  let firstWinAt = 0;
  let lastWinAt = 0;
  const serverErrorsAt: number[] = [];
  /** 5xx by status and the API's error code, to tell shedding, breakers and deadlines apart. */
  const serverErrors = new Map<string, number>();
  const started = Date.now();
  let finish!: (result: autocannon.Result) => void;
  let fail!: (err: unknown) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => ((finish = resolve), (fail = reject)));
  const instance = autocannon(
    {
      url: `${url}/api/checkout`,
      method: 'POST',
      connections,
      amount: requests,
      timeout: 30,
      headers: { 'content-type': 'application/json', ...(waitSeconds > 0 ? { prefer: `wait=${waitSeconds}` } : {}) },
      body: JSON.stringify({ sku, quantity: 1 }),
      requests: [
        {
          setupRequest: (request) => {
            request.headers = { ...request.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` };
            return request;
          },
          onResponse: (status, body) => {
            if (isWin(status)) accepted.push((JSON.parse(body) as { orderNo: string }).orderNo);
            else if (status === 409) {
              const code = errorCodeOf(body);
              statuses.set(code, (statuses.get(code) ?? 0) + 1);
            } else if (status >= 500) {
              const kind = `${status} ${errorCodeOf(body)}`;
              serverErrors.set(kind, (serverErrors.get(kind) ?? 0) + 1);
            }
          },
        },
      ],
    },
    (err, result) => (err ? fail(err) : finish(result)),
  );
  let lastResponseAt = 0;
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    lastResponseAt = Date.now();
    latencies.all.push(responseTime);
    if (isWin(statusCode)) {
      latencies.win.push(responseTime);
      lastWinAt = Date.now();
      if (!firstWinAt) firstWinAt = lastWinAt;
    } else if (statusCode === 409) latencies.soldOut.push(responseTime);
    else if (statusCode >= 500) serverErrorsAt.push(Date.now());
    statuses.set(String(statusCode), (statuses.get(String(statusCode)) ?? 0) + 1);
  });
  let lastTenth = 0;
  if (showProgress && process.stderr.isTTY) {
    autocannon.track(instance, { renderProgressBar: true, renderResultsTable: false, renderLatencyTable: false });
  } else if (showProgress) {
    instance.on('response', () => {
      const tenth = Math.floor((latencies.all.length / requests) * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        say(`  ${tenth * 10}% of ${requests} requests`);
      }
    });
  }
  const result = await done;
  // Until the last answer: autocannon reports `done` on its one-second tick, which rounded a burst
  // of a few seconds up to whole seconds (50,000 requests read 9,9xx, 12,4xx or 16,6xx req/s).
  const seconds = ((lastResponseAt || Date.now()) - started) / 1000;
  const errors =
    result.errors +
    result.timeouts +
    [...statuses.entries()].filter(([s]) => /^5\d\d$/.test(s)).reduce((n, [, c]) => n + c, 0);
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

function errorCodeOf(body: string): string {
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? 'no code';
  } catch {
    return 'not JSON';
  }
}
