/**
 * The steps every round ends with, on the part of its state they share (SaleUnderFault): wait until Redis agrees with
 * the orders after the fault, wait until the sale is quiet, check the invariants (chaos/checks.ts). And what the
 * freeze rounds measure of the APIs while a server was frozen.
 */
import type { ShopperAuth } from '../../src/api/auth.js';
import type { AppConfig } from '../../src/config/index.js';
import { checkAfterFault, waitForQuiescence, waitForRepair, type ChaosVerdict } from '../checks.js';
import { answersDuringFreeze, countersSince, deadlinesByKind, scrapeApiCounters, type ApiCounters } from '../gray.js';
import { clientFor } from '../../toolkit/http-client.js';
import { sameKeySameOrder, type TrafficPlan, type TrafficResult } from '../../toolkit/shoppers.js';
import { step, type GrayFigures, type RoundOutcome, type RoundSeconds, type Step, type Suite } from './round.js';

/**
 * The part of a round's state the shared steps read and fill. Fields marked `!` are set by the round's own steps
 * before the shared ones run (the runner runs steps in order and stops at the first that throws).
 */
export class SaleUnderFault {
  sku!: string;
  /** When the traffic began: the checks count the sale's events from then. */
  t0!: number;
  /** When the fault began: the stores are waited for to agree from then. */
  faultAt!: number;
  plan!: TrafficPlan;
  /** Every request and what it was answered, once the traffic is done. */
  result!: TrafficResult;
  /** The order numbers the shoppers were given. */
  accepted: string[] = [];
  /** The 202s lost with Redis's writes (redis-aof-tail-lost only), asked while waiting for the sale to be quiet. */
  lostSoFar: () => Promise<ReadonlySet<string>> = async () => new Set();
  /** The same, once quiet: their missing rows are explained, their payments must be refunded. */
  lost: ReadonlySet<string> = new Set();
  /** When the stores agreed (waitForStoresToAgree): some rounds' burst ends there. */
  repairedAt = 0;
  seconds: RoundSeconds = { burst: 0, storesAgreeAfterFault: 0, quiet: 0 };
  invariants: ChaosVerdict | undefined;

  constructor(readonly suite: Suite) {}

  /** The part of the outcome every round has: the invariants' verdict and the seconds. */
  outcomeBase(): Pick<RoundOutcome, 'invariants' | 'seconds'> {
    if (!this.invariants) throw new Error(`the invariants of ${this.sku} were never checked`);
    return { invariants: this.invariants, seconds: this.seconds };
  }
}

/** Seconds from the fault until Redis again holds exactly what the running orders hold (orphans released, repaired). */
export const waitForStoresToAgree: Step<SaleUnderFault> = step('wait for the stores to agree', async (s) => {
  const { suite } = s;
  const seconds = await waitForRepair(suite, s.sku, s.faultAt, suite.settings.quiescenceTimeoutMs, suite.orders);
  s.seconds.storesAgreeAfterFault = round1(seconds);
  s.repairedAt = Date.now();
});

/** Every order final, no unit reserved, no payment moving, for a few seconds (a reconcile run included). */
export const waitForQuiet: Step<SaleUnderFault> = step('wait for quiet', async (s) => {
  const { suite } = s;
  const seconds = await waitForQuiescence(suite, s.sku, s.accepted, suite.settings.quiescenceTimeoutMs, s.lostSoFar);
  s.seconds.quiet = round1(seconds);
});

/** The invariants every round checks, against what the API answered; each accepted key asked again last. */
export const checkInvariants: Step<SaleUnderFault> = step('check the invariants', async (s) => {
  s.invariants = await checkAfterFault(
    s.suite,
    s.sku,
    1,
    s.result,
    new Date(s.t0),
    () => sameKeySameOrder(s.plan, s.result, s.lost),
    s.lost,
  );
});

/** The checkout a traffic plan makes for the suite's shoppers of `sku`: the suite's webhook secret and window. */
export function trafficPlan(
  suite: Suite,
  sale: Pick<TrafficPlan, 'sku' | 'shoppers' | 'concurrency' | 'arrivalsPerSecond'> & Partial<TrafficPlan>,
): TrafficPlan {
  return {
    priceCents: PRICE_CENTS,
    apiUrls: suite.apiUrls,
    tokenFor: (userId) => suite.auth.issue(userId),
    webhookSecret: suite.config.webhookSecret,
    paymentWindowMs: suite.config.paymentWindowMs,
    retryForMs: 60_000,
    ...sale,
  };
}

/** Every round's unit price. */
export const PRICE_CENTS = 1_500;

/** A new sale's SKU: the round's name and the time, so a run's sales never meet. */
export const skuOf = (name: string) => `CHAOS-${name.toUpperCase()}-${Date.now().toString(36)}`;

/** The order numbers a traffic's shoppers were given. */
export const acceptedOf = (traffic: Pick<TrafficResult, 'intents'>): string[] =>
  traffic.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));

/**
 * How the APIs answered while the server was frozen, and what their breakers did, from the round's requests and
 * counters.
 */
export async function freezeFigures(
  suite: Pick<Suite, 'apiUrls' | 'say'> & { config: Pick<AppConfig, 'deadlines'> },
  requests: TrafficResult['requests'],
  freeze: { faultAt: number; thawAt: number; countersBefore: ApiCounters; healthyAfterThaw: number | null },
): Promise<GrayFigures> {
  const answers = answersDuringFreeze(requests, freeze.faultAt, freeze.thawAt, deadlinesByKind(suite.config));
  suite.say(`  during the freeze: ${JSON.stringify(answers)}`);
  return {
    frozenSeconds: round1((freeze.thawAt - freeze.faultAt) / 1000),
    ...answers,
    ...countersSince(freeze.countersBefore, await scrapeApiCounters(suite.apiUrls)),
    healthyAfterThawSeconds: freeze.healthyAfterThaw === null ? null : round1(freeze.healthyAfterThaw),
    answeredInTime: answers.late === 0,
  };
}

/** A status read of the round's first order through one API, by its shopper: probes the order workflows' breaker. */
export function canaryRead(
  sofar: { intents: ReadonlyArray<{ userId: string; answer: { kind: string; orderNo?: string } }> },
  auth: ShopperAuth,
) {
  return async (apiUrl: string): Promise<void> => {
    const intent = sofar.intents.find((i) => i.answer.kind === 'accepted');
    if (!intent?.answer.orderNo) return;
    const token = await auth.issue(intent.userId);
    await clientFor(apiUrl).request('GET', `/api/orders/${intent.answer.orderNo}`, {
      headers: { authorization: `Bearer ${token}` },
      timeoutMs: 5_000,
    });
  };
}

/** Sleeps until `at` (at once if it has passed). */
export const sleepUntil = (at: number) => new Promise<void>((done) => setTimeout(done, Math.max(0, at - Date.now())));

/** Rounded to a tenth, as the results file keeps seconds. */
export const round1 = (value: number) => Math.round(value * 10) / 10;
