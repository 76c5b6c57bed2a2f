/**
 * The freezes that test payments judged by when they arrived (full run only): the round's orders placed (waiting
 * checkouts) and persisted, then the worker or Temporal frozen 60 s, longer than PAYMENT_WINDOW, so their deadlines
 * pass during the freeze; webhooks are sent for them during it, some before each order's deadline and some after
 * (DEADLINE_PAYMENTS in toolkit/shoppers.ts). Beside the invariants: the first full payment recorded in time pays its
 * order, every other one is refunded (RECEIVED_AFTER_DEADLINE for a late one), and no webhook is answered 503 (MySQL
 * is up): checkPaymentsByArrival in chaos/checks.ts. worker-ahead-payments freezes nothing: the worker runs under
 * faketime 10 s ahead of every other clock while the same payments are sent around the same deadlines.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../stack/wait-for.js';
import { CHAOS_CHECKS, checkPaymentsByArrival, PAYMENT_FREEZE_CHECKS, type PaymentFreezeVerdict } from '../checks.js';
import { scrapeApiCounters, secondsUntilHealthy, type ApiCounters } from '../gray.js';
import { buy, payAroundDeadlines } from '../../toolkit/shoppers.js';
import { freeze, serverOf, type Freezing } from './faults.js';
import { defineRound, step, type GrayFigures, type Round, type Step, type Suite } from './round.js';
import type { SuiteSettings } from './settings.js';
import {
  acceptedOf,
  canaryRead,
  checkInvariants,
  freezeFigures,
  PRICE_CENTS,
  round1,
  SaleUnderFault,
  skuOf,
  trafficPlan,
  waitForQuiet,
  waitForStoresToAgree,
} from './steps.js';

/** How far ahead the worker's clock runs in worker-ahead-payments (faketime): nothing may rest on it. */
const WORKER_AHEAD_MS = 10_000;

interface PaymentFreezeOptions {
  name: string;
  faults: string;
  /** Freezes a process for `freezeMs`; or, for a clock ahead, only the same window. */
  inject(suite: Suite, freezeMs: number): Freezing;
  /** The worker restarted with its wall clock this far ahead for the round (and back after). */
  workerClockAheadMs?: number;
}

class PaymentFreeze extends SaleUnderFault {
  deadlines: Array<{ orderNo: string; deadline: number }> = [];
  countersBefore: ApiCounters | undefined;
  freezing: Freezing | undefined;
  paying: Promise<void> | undefined;
  thawAt = 0;
  healthyAfterThaw: number | null = null;
  /** The worker runs with its clock ahead: set back by the cleanup. */
  clockMoved = false;
  gray: GrayFigures | undefined;
  payments: PaymentFreezeVerdict | undefined;

  readonly freezePlan: SuiteSettings['paymentFreeze'];

  constructor(
    suite: Suite,
    readonly options: PaymentFreezeOptions,
  ) {
    super(suite);
    this.freezePlan = suite.settings.paymentFreeze;
  }
}

const moveWorkerClock = step<PaymentFreeze>("set the worker's clock ahead", async (s) => {
  s.clockMoved = true;
  await s.suite.restartWorkerWithClockAhead(s.options.workerClockAheadMs ?? 0);
});

const arrange = step<PaymentFreeze>('arrange', async (s) => {
  const { config, sales } = s.suite;
  const p = s.freezePlan;
  if (config.paymentWindowMs + 5_000 >= p.freezeMs)
    throw new Error(`PAYMENT_WINDOW ${config.paymentWindow} must end well within the ${p.freezeMs / 1000} s freeze`);
  s.sku = skuOf(s.options.name);
  await sales.create({ sku: s.sku, name: s.sku, priceCents: PRICE_CENTS, stock: p.stock, perUserLimit: 1 });
  s.t0 = Date.now();
  s.result = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  s.plan = trafficPlan(s.suite, {
    sku: s.sku,
    shoppers: p.orders,
    concurrency: p.orders,
    arrivalsPerSecond: p.arrivalsPerSecond,
  });
});

/** The orders, before the freeze: waiting checkouts (201 once persisted), retried; every one awaiting payment. */
const placeOrders = step<PaymentFreeze>('place orders', async (s) => {
  const { suite } = s;
  const p = s.freezePlan;
  const runId = Date.now().toString(36);
  await Promise.all(
    Array.from({ length: p.orders }, async (_, index) => {
      await sleep((index / p.arrivalsPerSecond) * 1_000);
      s.result.intents.push(await buy(s.plan, `chaos-pay-${runId}-${index}`, 20_000, true, s.result));
    }),
  );
  s.accepted = acceptedOf(s.result);
  if (s.accepted.length !== p.orders)
    suite.say(
      `  only ${s.accepted.length} of ${p.orders} orders accepted: ${JSON.stringify(s.result.intents.filter((i) => i.answer.kind !== 'accepted'))}`,
    );
  // Every order awaits payment (its row written by its workflow's persist) before the freeze.
  await waitFor(
    async () => {
      const rows = await suite.stores.orders.getOrders(s.accepted);
      return rows.size === s.accepted.length && [...rows.values()].every((row) => row.status === 'AWAITING_PAYMENT');
    },
    { what: `the orders of ${s.sku} awaiting payment`, timeoutMs: 60_000, intervalMs: 250, retryErrors: true },
  );
  const rows = await suite.stores.orders.getOrders(s.accepted);
  s.deadlines = s.accepted.map((orderNo) => ({
    orderNo,
    deadline: rows.get(orderNo)?.paymentDeadline.getTime() ?? Date.now(),
  }));
  s.countersBefore = await scrapeApiCounters(suite.apiUrls);
});

/** The freeze, and the payments during it, each at its time around its order's deadline. */
const injectFault = step<PaymentFreeze>('inject fault', async (s) => {
  const p = s.freezePlan;
  s.faultAt = Date.now();
  const firstDeadline = Math.min(...s.deadlines.map((d) => d.deadline));
  const lastDeadline = Math.max(...s.deadlines.map((d) => d.deadline));
  s.suite.say(
    `${s.accepted.length} orders awaiting payment; deadlines ${((firstDeadline - s.faultAt) / 1000).toFixed(1)}–${((lastDeadline - s.faultAt) / 1000).toFixed(1)} s into the freeze`,
  );
  s.freezing = s.options.inject(s.suite, p.freezeMs);
  s.paying = payAroundDeadlines(s.plan, s.deadlines, { from: s.faultAt, until: s.faultAt + p.freezeMs }, s.result);
});

const heal = step<PaymentFreeze>('heal', async (s) => {
  const { suite } = s;
  if (!s.freezing) throw new Error(`${s.options.name} froze nothing`);
  s.thawAt = await s.freezing.thawed;
  s.healthyAfterThaw = await secondsUntilHealthy(suite.apiUrls, s.thawAt, canaryRead(s.result, suite.auth), 60_000);
  suite.say(`thawed; every API healthy ${s.healthyAfterThaw?.toFixed(1) ?? 'never'} s later`);
});

const paymentsDone = step<PaymentFreeze>('payments done', async (s) => {
  await s.paying;
});

const measureFreeze = step<PaymentFreeze>('measure the freeze', async (s) => {
  if (!s.countersBefore) throw new Error('no API counters from before the freeze');
  s.gray = await freezeFigures(s.suite, s.result.requests, {
    faultAt: s.faultAt,
    thawAt: s.thawAt,
    countersBefore: s.countersBefore,
    healthyAfterThaw: s.healthyAfterThaw,
  });
});

const judgePayments = step<PaymentFreeze>('judge the payments by arrival', async (s) => {
  const { suite } = s;
  const payments = await checkPaymentsByArrival(suite.stores, s.accepted, s.result, {
    from: s.faultAt,
    until: s.thawAt,
  });
  payments.figures = { paymentWindow: suite.config.paymentWindow, ...payments.figures };
  s.payments = payments;
});

function paymentFreezeRound(options: PaymentFreezeOptions): Round {
  const clockAhead = options.workerClockAheadMs !== undefined;
  const steps: Array<Step<PaymentFreeze>> = [
    ...(clockAhead ? [moveWorkerClock] : []),
    arrange,
    placeOrders,
    injectFault,
    heal,
    paymentsDone,
    waitForStoresToAgree,
    waitForQuiet,
    measureFreeze,
    checkInvariants,
    judgePayments,
  ];
  return defineRound<PaymentFreeze>({
    name: options.name,
    faults: options.faults,
    checks: [...CHAOS_CHECKS, 'answeredInTime', ...PAYMENT_FREEZE_CHECKS],
    recordedPlan: (settings) => ({ paymentWindow: settings.paymentWindow, paymentFreeze: settings.paymentFreeze }),
    state: (suite) => new PaymentFreeze(suite, options),
    steps,
    cleanup: async (s) => {
      if (s.clockMoved) await s.suite.restartWorkerWithClockAhead(0);
    },
    outcome: (s) => {
      if (!s.gray || !s.payments) throw new Error(`${options.name} judged no payment`);
      // The burst ran until the stores agreed after the thaw.
      s.seconds.burst = round1((s.repairedAt - s.t0) / 1000);
      return {
        ...s.outcomeBase(),
        // Nothing froze with a clock ahead: its answers are checked (answeredInTime), not reported as a freeze.
        ...(clockAhead ? { unreported: { answeredInTime: s.gray.answeredInTime } } : { gray: s.gray }),
        payments: s.payments,
      };
    },
  });
}

export const workerFreezePayments = paymentFreezeRound({
  name: 'worker-freeze-payments',
  faults: "the worker frozen 60 s across the orders' deadlines while their payments arrive",
  inject: (suite, freezeMs) => freeze(suite.targets.worker, freezeMs, suite.say),
});

export const temporalFreezePayments = paymentFreezeRound({
  name: 'temporal-freeze-payments',
  faults: "the Temporal dev server frozen 60 s across the orders' deadlines while their payments arrive",
  inject: (suite, freezeMs) => freeze(serverOf(suite.targets, 'temporal'), freezeMs, suite.say),
});

export const workerAheadPayments = paymentFreezeRound({
  name: 'worker-ahead-payments',
  faults: "the worker's clock 10 s ahead while payments arrive around the orders' deadlines",
  // A clock, not a process, is at fault: the same window, nothing frozen.
  inject: (_suite, freezeMs) => ({ thawed: sleep(freezeMs).then(() => Date.now()) }),
  workerClockAheadMs: WORKER_AHEAD_MS,
});
