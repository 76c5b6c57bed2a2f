/**
 * The fault suite's gray failures: a server (or the worker) that hangs instead of dying. What a
 * freeze round measures beside the invariants: how the API answered while the server was frozen
 * (answers by status, the slowest answer of each kind of request against its deadline, requests
 * shed), what its breakers did, and how long after the thaw every API was healthy again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../src/config/index.js';
import { httpCall } from '../toolkit/http-client.js';
import { REQUEST_KINDS, type RequestKind, type RequestRecord } from '../toolkit/traffic-records.js';

/** How much later than its deadline an answer may come (timers, event loops, a loaded machine). */
export const ANSWER_SLACK_MS = 1_000;

/** The wait the fault suite's waiting shoppers ask for (Prefer: wait=5). */
export const SHOPPER_WAIT_MS = 5_000;

/** The longest each kind of request may take in the API, from its configuration (docs/fault-tolerance.md). */
export function deadlinesByKind(config: Pick<AppConfig, 'deadlines'>): Record<RequestKind, number> {
  const { checkoutMs, readMs, writeMs, redisMs } = config.deadlines;
  return {
    checkout: checkoutMs,
    'checkout-wait': SHOPPER_WAIT_MS + checkoutMs,
    read: readMs,
    // The webhook's budget check (one Redis call) comes before its deadline starts; the cancel's
    // count of cancels (one Redis call) after its Update.
    webhook: redisMs + writeMs,
    cancel: writeMs + redisMs,
  };
}

export interface FreezeAnswers {
  /** Requests sent while the server was frozen, by what came back: HTTP status, timeout or error. */
  byOutcome: Record<string, number>;
  /** The slowest answer of each kind sent during the freeze, and that kind's deadline. */
  slowest: Partial<Record<RequestKind, { ms: number; deadlineMs: number }>>;
  /** Requests that took longer than their deadline + ANSWER_SLACK_MS, or got no answer at all. */
  late: number;
}

export function answersDuringFreeze(
  requests: readonly RequestRecord[],
  frozenFrom: number,
  frozenUntil: number,
  deadlines: Record<RequestKind, number>,
): FreezeAnswers {
  const during = requests.filter((request) => request.sentAt >= frozenFrom && request.sentAt <= frozenUntil);
  const byOutcome: Record<string, number> = {};
  for (const request of during) byOutcome[String(request.outcome)] = (byOutcome[String(request.outcome)] ?? 0) + 1;
  const slowest: FreezeAnswers['slowest'] = {};
  for (const kind of REQUEST_KINDS) {
    const ofKind = during.filter((request) => request.kind === kind);
    if (ofKind.length > 0)
      slowest[kind] = { ms: Math.round(Math.max(...ofKind.map((request) => request.ms))), deadlineMs: deadlines[kind] };
  }
  const late = during.filter(
    (request) => typeof request.outcome !== 'number' || request.ms > deadlines[request.kind] + ANSWER_SLACK_MS,
  ).length;
  return { byOutcome, slowest, late };
}

/** Counters of every API process that a freeze moves: requests shed, breaker state changes. */
export interface ApiCounters {
  shed: number;
  /** `<dependency> <state entered>` → count, e.g. `temporal open`. */
  transitions: Record<string, number>;
  /** Per dependency: calls that ran past their deadline or failed, and requests its open breaker refused. */
  deadlineHits: Record<string, number>;
  failures: Record<string, number>;
  refusals: Record<string, number>;
}

export async function scrapeApiCounters(apiUrls: readonly string[]): Promise<ApiCounters> {
  const counters: ApiCounters = { shed: 0, transitions: {}, deadlineHits: {}, failures: {}, refusals: {} };
  for (const url of apiUrls) {
    const scrape = await httpCall('GET', `${url}/metrics`, { timeoutMs: 5_000 });
    if (scrape.failure) throw new Error(`${url}/metrics: ${scrape.failure.message}`);
    const text = scrape.body;
    for (const line of text.split('\n')) {
      const shed = /^flash_requests_shed_total (\S+)$/.exec(line);
      if (shed) counters.shed += Number(shed[1]);
      const transition =
        /^flash_dependency_breaker_transitions_total\{dependency="(\w+)",state="([\w-]+)"\} (\S+)$/.exec(line);
      if (transition) {
        const key = `${transition[1]} ${transition[2]}`;
        counters.transitions[key] = (counters.transitions[key] ?? 0) + Number(transition[3]);
      }
      const perDependency =
        /^flash_dependency_(deadline_hits|failures|breaker_refusals)_total\{dependency="(\w+)"\} (\S+)$/.exec(line);
      if (perDependency) {
        const into =
          { deadline_hits: counters.deadlineHits, failures: counters.failures, breaker_refusals: counters.refusals }[
            perDependency[1] as string
          ] ?? {};
        into[perDependency[2] as string] = (into[perDependency[2] as string] ?? 0) + Number(perDependency[3]);
      }
    }
  }
  return counters;
}

/** What changed between two scrapes (the APIs were not restarted in between). */
export function countersSince(before: ApiCounters, after: ApiCounters): ApiCounters {
  const since = (now: Record<string, number>, then: Record<string, number>) => {
    const delta: Record<string, number> = {};
    for (const [key, count] of Object.entries(now))
      if (count - (then[key] ?? 0) > 0) delta[key] = count - (then[key] ?? 0);
    return delta;
  };
  return {
    shed: after.shed - before.shed,
    transitions: since(after.transitions, before.transitions),
    deadlineHits: since(after.deadlineHits, before.deadlineHits),
    failures: since(after.failures, before.failures),
    refusals: since(after.refusals, before.refusals),
  };
}

/**
 * Seconds from `since` until every API is ready (/readyz 200: its probes, which double as its
 * breakers' half-open probes, found Redis, MySQL and Temporal well) with every breaker closed,
 * polled every 250 ms. `canary` is a request that needs the order workflows (a status read), sent
 * through each API between polls, so that breaker is probed too when shoppers have gone quiet.
 */
export async function secondsUntilHealthy(
  apiUrls: readonly string[],
  since: number,
  canary: (apiUrl: string) => Promise<unknown>,
  timeoutMs: number,
): Promise<number | null> {
  while (Date.now() - since < timeoutMs) {
    const healthy = await Promise.all(
      apiUrls.map(async (url) => {
        const ready = await httpCall('GET', `${url}/readyz`, { timeoutMs: 3_000 });
        const body = ready.json as { breakers?: Record<string, string> } | null | undefined;
        // No answer, or not the readiness JSON: not healthy yet.
        if (body === undefined || body === null) return false;
        const closed = Object.values(body.breakers ?? {}).every((state) => state === 'closed');
        if (!closed) await canary(url).catch(() => undefined);
        return ready.status === 200 && closed;
      }),
    );
    if (healthy.every(Boolean)) return (Date.now() - since) / 1000;
    await sleep(250);
  }
  return null;
}
