/**
 * The burst rounds: a sale with payments (on time, twice, wrong amount, early, late) and cancels flowing, one fault
 * mid-burst. Kills (chaos/rounds/kills.ts) meet the suite's burst, more shoppers than units over a few seconds;
 * freezes (chaos/rounds/freezes.ts, sale-freezes.ts) meet shoppers arriving at a steady pace whatever the answers
 * (open loop: a lane each), as in a real sale, and every answer during the freeze must come within its deadline + 1 s
 * (chaos/gray.ts). Through a freeze of Temporal or the worker the sale goes on: no checkout turned away while units
 * remain, every status read answered, whole payment windows from the thaw (checkSaleThroughFreeze).
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Supervised } from '../../stack/supervisor.js';
import {
  CHAOS_CHECKS,
  checkSaleThroughFreeze,
  ordersLostWithRedisWrites,
  promisesPending,
  SALE_FREEZE_CHECKS,
  secondsUntilRows,
  watchSale,
  type SaleFreezeVerdict,
  type SaleWatch,
} from '../checks.js';
import { deadlinesByKind, scrapeApiCounters, secondsUntilHealthy, type ApiCounters } from '../gray.js';
import { orderNoTime } from '../../src/model/order-workflow.js';
import { runTraffic, type RunningTraffic } from '../../toolkit/shoppers.js';
import { freeze, watchAofSize, type AofWatch, type Freezing, type Targets } from './faults.js';
import { defineRound, step, type GrayFigures, type Round, type Step, type Suite } from './round.js';
import type { FreezePlan, SaleFreezePlan, SuiteSettings } from './settings.js';
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

/**
 * How the round's shoppers come: the suite's burst; a rush (10× the arrivals, 4× the lanes) that catches some
 * checkouts between their reservation and their workflow's start, the orphans to reclaim; a freeze's paced shoppers;
 * or shoppers mid-sale reading their orders until payable.
 */
type Pace =
  | { kind: 'burst' | 'rush' }
  | { kind: 'freeze'; plan(settings: SuiteSettings): FreezePlan }
  | { kind: 'mid-sale'; plan(settings: SuiteSettings): SaleFreezePlan };

interface BurstRoundOptions {
  name: string;
  faults: string;
  quick?: boolean;
  pace: Pace;
  /** The fault, once the burst is under way: a kill, or a freeze (resolved at once, its thaw to come). */
  inject(sale: BurstSale): Promise<Freezing | void>;
  /** A freeze the sale goes on through (Temporal's, the worker's): the sale is watched, checkSaleThroughFreeze. */
  saleGoesOn?: boolean;
  /** Redis loses its last second of writes: its AOF watched from the start, the promises lost with it accounted for. */
  losesRedisWrites?: boolean;
}

/** A burst round's state, filled in by its steps. */
export class BurstSale extends SaleUnderFault {
  /** The freeze's plan (undefined for a kill). */
  freezePlan: FreezePlan | undefined;
  traffic!: RunningTraffic;
  countersBefore: ApiCounters | undefined;
  aofWatch: AofWatch | undefined;
  saleWatch: SaleWatch | undefined;
  freezing: Freezing | undefined;
  /** Redis has exited by then (the AOF cut waits for it): an order numbered before may be in the writes lost. */
  redisDiedAt = 0;
  thawAt = 0;
  pendingAtThaw = 0;
  healthyAfterThaw: number | null = null;
  rowsAfterThawSeconds: number | null = null;
  gray: GrayFigures | undefined;
  sale: SaleFreezeVerdict | undefined;

  constructor(
    suite: Suite,
    readonly options: BurstRoundOptions,
  ) {
    super(suite);
    const { pace } = options;
    this.freezePlan = pace.kind === 'freeze' || pace.kind === 'mid-sale' ? pace.plan(suite.settings) : undefined;
  }
}

const arrange = step<BurstSale>('arrange', async (s) => {
  const { suite, freezePlan, options } = s;
  s.sku = skuOf(options.name);
  if (options.pace.kind === 'mid-sale' && freezePlan && suite.config.paymentWindowMs + 5_000 >= freezePlan.freezeMs)
    throw new Error(
      `PAYMENT_WINDOW ${suite.config.paymentWindow} must end well within the ${freezePlan.freezeMs / 1000} s freeze`,
    );
  const stock = freezePlan?.stock ?? suite.settings.stock;
  await suite.sales.create({ sku: s.sku, name: s.sku, priceCents: PRICE_CENTS, stock, perUserLimit: 1 });
});

const startTraffic = step<BurstSale>('start traffic', async (s) => {
  const { suite, freezePlan, options } = s;
  const { settings } = suite;
  s.t0 = Date.now();
  if (options.losesRedisWrites) s.aofWatch = watchAofSize(join(suite.workDir, 'stack', 'redis'));
  const rush = options.pace.kind === 'rush';
  const pace = freezePlan
    ? {
        shoppers: freezePlan.shoppers,
        concurrency: freezePlan.shoppers,
        arrivalsPerSecond: freezePlan.arrivalsPerSecond,
      }
    : {
        shoppers: settings.shoppers,
        concurrency: rush ? settings.concurrency * 4 : settings.concurrency,
        arrivalsPerSecond: rush ? settings.arrivalsPerSecond * 10 : settings.arrivalsPerSecond,
      };
  if (freezePlan) s.countersBefore = await scrapeApiCounters(suite.apiUrls);
  const midSale = options.pace.kind === 'mid-sale' ? options.pace.plan(settings) : undefined;
  s.plan = trafficPlan(suite, {
    sku: s.sku,
    ...pace,
    // Mid-sale, shoppers wait on their order's page until it is payable.
    ...(midSale ? { readUntilPayable: { everyMs: midSale.readEveryMs, forMs: midSale.freezeMs + 60_000 } } : {}),
  });
  s.traffic = runTraffic(s.plan);
  if (options.saleGoesOn) s.saleWatch = watchSale(suite, s.sku, () => acceptedOf(s.traffic.sofar));
});

const injectFault = step<BurstSale>('inject fault', async (s) => {
  const { settings } = s.suite;
  // The AOF cut needs a second of history to cut back to.
  await sleep(
    s.freezePlan?.faultAfterMs ??
      (s.options.pace.kind === 'rush'
        ? settings.faultAfterMs / 3
        : s.aofWatch
          ? settings.faultAfterMs + 1_000
          : settings.faultAfterMs),
  );
  s.faultAt = Date.now();
  s.freezing = (await s.options.inject(s)) ?? undefined;
  s.redisDiedAt = Date.now();
});

/** The thaw, then how long until every API is healthy again (measured at once). */
const heal = step<BurstSale>('heal', async (s) => {
  const { suite } = s;
  if (!s.freezing) throw new Error(`${s.options.name} froze nothing`);
  s.thawAt = await s.freezing.thawed;
  if (s.saleWatch) {
    s.pendingAtThaw = await promisesPending(suite.redis, s.sku);
    suite.say(`${s.pendingAtThaw} promised orders pending at the thaw`);
  }
  s.healthyAfterThaw = await secondsUntilHealthy(
    suite.apiUrls,
    s.thawAt,
    canaryRead(s.traffic.sofar, suite.auth),
    60_000,
  );
  suite.say(`thawed; every API healthy ${s.healthyAfterThaw?.toFixed(1) ?? 'never'} s later`);
});

/** Every purchase has its final answer (payments and cancels may still be flowing). */
const checkoutsDone = step<BurstSale>('checkouts done', async (s) => {
  await s.traffic.checkoutsDone;
});

/** The sale went on through the freeze: how long from the thaw until every 202 is an order row. */
const every202ARow = step<BurstSale>('every 202 a row', async (s) => {
  if (!s.saleWatch) throw new Error('the sale was not watched');
  const { settings, say } = s.suite;
  s.rowsAfterThawSeconds = await secondsUntilRows(
    s.saleWatch,
    acceptedOf(s.traffic.sofar),
    s.thawAt,
    settings.rowsAfterThawTimeoutMs,
  );
  say(`every 202 an order row ${s.rowsAfterThawSeconds ?? 'never'} s after the thaw`);
});

const trafficDone = step<BurstSale>('traffic done', async (s) => {
  const { suite } = s;
  s.result = await s.traffic.done;
  s.saleWatch?.stop();
  const burstSeconds = (Date.now() - s.t0) / 1000;
  s.seconds.burst = round1(burstSeconds);
  s.accepted = acceptedOf(s.result);
  suite.say(
    `traffic done in ${burstSeconds.toFixed(1)} s: ${s.accepted.length} accepted; waiting for the sale to be quiet`,
  );
  // A Redis that lost acknowledged writes lost the promises in them not started yet: accounted for, by name.
  if (s.options.losesRedisWrites)
    s.lostSoFar = () => ordersLostWithRedisWrites(suite, s.sku, s.accepted, s.redisDiedAt, suite.orders);
});

/** Every request has its answer now, those sent late in the freeze too. */
const measureFreeze = step<BurstSale>('measure the freeze', async (s) => {
  if (!s.countersBefore) throw new Error('no API counters from before the freeze');
  s.gray = await freezeFigures(s.suite, s.result.requests, {
    faultAt: s.faultAt,
    thawAt: s.thawAt,
    countersBefore: s.countersBefore,
    healthyAfterThaw: s.healthyAfterThaw,
  });
});

const countLostPromises = step<BurstSale>('count the promises lost with Redis', async (s) => {
  s.lost = await s.lostSoFar();
  const numberedAfterFault = [...s.lost].filter((orderNo) => (orderNoTime(orderNo) ?? 0) >= s.faultAt).length;
  if (s.lost.size > 0)
    s.suite.say(
      `${s.lost.size} promises lost with Redis's writes (${numberedAfterFault} numbered after the fault began, before Redis died)`,
    );
});

const checkSaleWentOn = step<BurstSale>('check the sale went on', async (s) => {
  const { suite } = s;
  if (!s.saleWatch) throw new Error('the sale was not watched');
  s.sale = await checkSaleThroughFreeze(suite.stores, {
    orderNos: s.accepted,
    traffic: s.result,
    freeze: { from: s.faultAt, until: s.thawAt },
    paymentWindowMs: suite.config.paymentWindowMs,
    watch: s.saleWatch,
    promisesPendingAtThaw: s.pendingAtThaw,
    secondsFromThawUntilRows: s.rowsAfterThawSeconds,
    deadlines: deadlinesByKind(suite.config),
  });
});

function burstRound(options: BurstRoundOptions): Round {
  const frozen = options.pace.kind === 'freeze' || options.pace.kind === 'mid-sale';
  const { saleGoesOn = false, losesRedisWrites = false } = options;
  const only = <T>(when: boolean, steps: T[]) => (when ? steps : []);
  const steps: Array<Step<BurstSale>> = [
    arrange,
    startTraffic,
    injectFault,
    ...only(frozen, [heal]),
    checkoutsDone,
    ...only(saleGoesOn, [every202ARow]),
    waitForStoresToAgree,
    trafficDone,
    waitForQuiet,
    ...only(frozen, [measureFreeze]),
    ...only(losesRedisWrites, [countLostPromises]),
    checkInvariants,
    ...only(saleGoesOn, [checkSaleWentOn]),
  ];
  const { pace } = options;
  return defineRound<BurstSale>({
    name: options.name,
    faults: options.faults,
    quick: options.quick ?? false,
    checks: [...CHAOS_CHECKS, ...only(frozen, ['answeredInTime']), ...only(saleGoesOn, [...SALE_FREEZE_CHECKS])],
    recordedPlan: (settings) =>
      pace.kind === 'mid-sale' ? { paymentWindow: settings.paymentWindow, saleFreeze: pace.plan(settings) } : {},
    state: (suite) => new BurstSale(suite, options),
    steps,
    cleanup: async (s) => {
      s.aofWatch?.stop();
      s.saleWatch?.stop();
    },
    outcome: (s) => ({ ...s.outcomeBase(), ...(s.gray ? { gray: s.gray } : {}), ...(s.sale ? { sale: s.sale } : {}) }),
  });
}

/** Freezes the round's target for its plan's freezeMs. */
function freezeTarget(s: BurstSale, target: (targets: Targets) => Supervised): Freezing {
  if (!s.freezePlan) throw new Error(`${s.options.name} has no freeze plan`);
  return freeze(target(s.suite.targets), s.freezePlan.freezeMs, s.suite.say);
}

/** A kill mid-burst: the supervisor starts the process again. */
export function killRound(options: Omit<BurstRoundOptions, 'pace' | 'saleGoesOn'> & { rush?: boolean }): Round {
  return burstRound({ ...options, pace: { kind: options.rush ? 'rush' : 'burst' } });
}

/** A process or server frozen (SIGSTOP, SIGCONT after the plan's freezeMs) under a paced burst. */
export function freezeRound(options: {
  name: string;
  faults: string;
  quick?: boolean;
  target(targets: Targets): Supervised;
  saleGoesOn?: boolean;
}): Round {
  return burstRound({
    ...options,
    pace: { kind: 'freeze', plan: (settings) => settings.freeze },
    inject: async (s) => freezeTarget(s, options.target),
  });
}

/**
 * A long freeze mid-sale, more stock than it sells, shoppers checking out throughout and reading their orders until
 * payable: the promises pending at the thaw, and how long until every 202 is an order row.
 */
export function saleFreezeRound(options: {
  name: string;
  faults: string;
  plan(settings: SuiteSettings): SaleFreezePlan;
  target(targets: Targets): Supervised;
}): Round {
  return burstRound({
    ...options,
    pace: { kind: 'mid-sale', plan: options.plan },
    saleGoesOn: true,
    inject: async (s) => freezeTarget(s, options.target),
  });
}
