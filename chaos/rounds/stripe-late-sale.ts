/**
 * The fault suite's Stripe round, stripe-late-sale: Stripe as it really behaves (the stateful double
 * over stripe-mock, stack/stripe-double.ts) behind an API selling through it (PAYMENT_PROVIDER=stripe),
 * its webhooks 1 to 5 minutes late, some twice, out of order, and its API frozen (SIGSTOP of
 * stripe-mock) across the deadlines of the round's orders (docs/fault-tolerance.md, "Stripe: the
 * intent decides").
 *
 *   before   orders placed and persisted, each with its PaymentIntent in its order view; intents of
 *            another deployment (and one untagged, naming no order of ours) made on the same account
 *   last s   a few seconds before the deadlines, half the shoppers pay by card (their client
 *            confirms with Stripe: the event is on its way, minutes late), and the foreign intents
 *            are paid; then Stripe's API freezes
 *   frozen   shoppers keep checking out (a checkout never calls Stripe); the deadlines pass, and
 *            every placed order stays AWAITING_PAYMENT with its unit held (its close waits for
 *            Stripe), sampled through the order views, MySQL and Redis
 *   thawed   the paid half is PAID (learnt from the intent read again, or from the late event), the
 *            unpaid half CANCELLED with its intents cancelled at Stripe; the orders made during the
 *            freeze get their PaymentIntent and are paid, or time out; then every late delivery lands
 *
 * Checks beside the invariants (STRIPE_LATE_CHECKS), each from what was observed:
 *   checkoutsAnsweredDuringFreeze          every checkout during the freeze was a 202, and no request
 *                                          then was answered later than its deadline + 1 s
 *   noUnitReleasedBeforeItsIntentCancelled no placed order past its deadline left AWAITING_PAYMENT or
 *                                          lost its held unit while Stripe was frozen (sampled, with
 *                                          every deadline passed in the samples); every
 *                                          CANCELLED order's intents at Stripe (recorded, shown, or made
 *                                          for an opening whose answer never came back: the close asks
 *                                          its key again) are `canceled`, no later than the order; no
 *                                          order was cancelled while Stripe was frozen; every unpaid
 *                                          placed order is CANCELLED
 *   inTimePaymentsNotRefunded              every intent a shopper paid before its order's deadline:
 *                                          its order PAID, no refund at Stripe, no refund row
 *   foreignIntentsIgnored                  every foreign intent's payment event delivered and
 *                                          answered IGNORED: no payment row, no refund
 *   everyPaidOrderPaidOnce                 every PAID order has one payment row (APPLIED, its intent),
 *                                          however many events and deliveries; every delivery of its
 *                                          payment after the first answered DUPLICATE (one learnt from
 *                                          the intent's read: every delivery); every delivery made
 *   everyOrderClosed                       every accepted order's workflow closed
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type Stripe from 'stripe';
import { newOrderNo } from '../../src/order/order-numbers.js';
import { settingsOf } from '../../toolkit/provider-config.js';
import { stripeClient } from '../../src/payments/providers/stripe/api.js';
import type { StripeSettings } from '../../src/payments/providers/stripe/settings.js';
import { stripe as stripeProvider } from '../../src/payments/providers/stripe/definition.js';
import { waitFor } from '../../stack/wait-for.js';
import { CHAOS_CHECKS, countBy } from '../checks.js';
import { answersDuringFreeze, deadlinesByKind, type FreezeAnswers } from '../gray.js';
import { buy } from '../../toolkit/shoppers.js';
import { defineRound, step, type RoundApi, type RoundSection, type Suite, type SuiteStripe } from './round.js';
import {
  acceptedOf,
  checkInvariants,
  PRICE_CENTS,
  round1,
  SaleUnderFault,
  skuOf,
  sleepUntil,
  trafficPlan,
  waitForQuiet,
  waitForStoresToAgree,
} from './steps.js';
import {
  minMax,
  orderViews,
  ordersStillRunning,
  stripeDeliveriesSettled,
  tapStripeWebhook,
  STRIPE_LATE_DELIVERY,
  type TapAnswer,
} from './stripe-tools.js';

const STRIPE_LATE_CHECKS = [
  'checkoutsAnsweredDuringFreeze',
  'noUnitReleasedBeforeItsIntentCancelled',
  'inTimePaymentsNotRefunded',
  'foreignIntentsIgnored',
  'everyPaidOrderPaidOnce',
  'everyOrderClosed',
] as const;
type StripeLateCheck = (typeof STRIPE_LATE_CHECKS)[number];

interface StripeRoundPlan {
  /** Orders placed before the freeze: the even ones paid in their last seconds, the odd ones never. */
  placed: number;
  /** The paid half confirms this long before the first deadline; Stripe freezes right after. */
  payBeforeDeadlineMs: number;
  /** At least this long; and until `thawAfterLastDeadlineMs` past the last deadline. */
  freezeMs: number;
  thawAfterLastDeadlineMs: number;
  /** Shoppers checking out during the freeze, at `arrivalsPerSecond` from its start. */
  duringFreeze: number;
  arrivalsPerSecond: number;
  /** Paid intents of another deployment on the same account (plus one untagged). */
  foreign: number;
  /** How often the held orders are looked at during the freeze. */
  sampleEveryMs: number;
  /** How long the late deliveries are waited for, once every order is closed. */
  deliveriesTimeoutMs: number;
}

const STRIPE_ROUND_PLAN: StripeRoundPlan = {
  placed: 16,
  payBeforeDeadlineMs: 3_000,
  freezeMs: 30_000,
  thawAfterLastDeadlineMs: 5_000,
  duringFreeze: 50,
  arrivalsPerSecond: 2,
  foreign: 3,
  sampleEveryMs: 2_000,
  deliveriesTimeoutMs: 480_000,
};

interface Placed {
  orderNo: string;
  userId: string;
  intentId: string;
  deadline: number;
}

/** A shopper's card payment at Stripe (the client's confirm) and when it happened. */
interface Confirmed {
  orderNo: string;
  intentId: string;
  at: number;
  deadline: number;
}

/** One look at the placed orders during the freeze. */
interface FreezeSample {
  at: number;
  pastDeadline: number;
  /** Past their deadline and AWAITING_PAYMENT in the order view, in MySQL, and holding their unit in Redis. */
  awaitingInView: number;
  awaitingInMysql: number;
  heldInRedis: number;
  redisReserved: number | null;
}

const HELD = new Set(['RESERVED', 'CLAIMED']);

/** The round's state, filled in by its steps in order. */
class StripeLateSale extends SaleUnderFault {
  readonly p = STRIPE_ROUND_PLAN;
  /** The API selling through Stripe, this round's own. */
  api: RoundApi | undefined;
  stripe!: SuiteStripe;
  /** Stripe's keys and our deployment's tag (on the intents we make), from the suite's configuration. */
  stripeSettings!: StripeSettings;
  runId = randomUUID().slice(0, 8);
  tap: Awaited<ReturnType<typeof tapStripeWebhook>> | undefined;
  viewOf!: ReturnType<typeof orderViews>;
  /** Every intent the order views showed, by order: a shopper could have paid any of them. */
  shown = new Map<string, Set<string>>();
  confirmed: Confirmed[] = [];
  /** Payments a shopper tried in time that Stripe would not take. */
  payFailures: string[] = [];
  foreign: Stripe.PaymentIntent[] = [];
  placed: Placed[] = [];
  firstDeadline = 0;
  lastDeadline = 0;
  paidPlaced: Placed[] = [];
  unpaidPlaced: Placed[] = [];
  /** When Stripe froze, when it is to thaw, when it did; whether it is frozen now. */
  frozenAt = 0;
  thawAt = 0;
  thawedAt = 0;
  stripeFrozen = false;
  samples: FreezeSample[] = [];
  sampleViolations: string[] = [];
  freeze!: FreezeAnswers & { from: number; until: number };
  frozenOrders: Array<{ orderNo: string; userId: string }> = [];
  madeDuringFreeze = { accepted: 0, gotIntent: 0, paid: 0, leftToTimeOut: 0, noIntent: 0 };
  undecided: string[] = [];
  /** Orders whose workflow still ran once every order was waited for to close. */
  open: string[] = [];
  closedAt = 0;
  deliveriesSettled = false;
  settledSeconds = 0;
  section: RoundSection | undefined;

  sawIntent(orderNo: string, intentId: string): void {
    this.shown.set(orderNo, (this.shown.get(orderNo) ?? new Set()).add(intentId));
  }

  /** A shopper's card at Stripe, before the deadline: whether Stripe took it. */
  pay(orderNo: string, intentId: string, deadline: number): boolean {
    const at = Date.now();
    try {
      const intent = this.stripe.double.confirm(intentId, 'succeeded');
      if (intent.status !== 'succeeded') throw new Error(`the intent is ${intent.status}`);
      this.confirmed.push({ orderNo, intentId, at, deadline });
      return true;
    } catch (err) {
      this.payFailures.push(`${orderNo}: the shopper could not pay ${intentId} before the deadline (${String(err)})`);
      return false;
    }
  }

  freezeStripe(): void {
    const { pid } = this.stripe.mock.process;
    this.suite.say(`SIGSTOP stripe-mock (pid ${pid})`);
    process.kill(pid, 'SIGSTOP');
    this.stripeFrozen = true;
  }

  thawStripe(): void {
    process.kill(this.stripe.mock.process.pid, 'SIGCONT');
    this.stripeFrozen = false;
    this.suite.say('SIGCONT stripe-mock');
  }
}

const startApi = step<StripeLateSale>('start its API', async (s) => {
  if (!s.suite.stripe) throw new Error('stripe-mock and the Stripe double are not running');
  s.stripe = s.suite.stripe;
  s.api = await s.suite.startStripeApi();
});

const arrange = step<StripeLateSale>('arrange', async (s) => {
  const { suite, p } = s;
  const stripeSettings = settingsOf(suite.config, stripeProvider);
  if (!stripeSettings) throw new Error('the Stripe round needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET');
  const apiUrl = s.api!.url;
  s.stripeSettings = stripeSettings;
  s.sku = skuOf('stripe-late');
  const stock = p.placed + p.duringFreeze + 20;
  await suite.sales.create({ sku: s.sku, name: s.sku, priceCents: PRICE_CENTS, stock, perUserLimit: 1 });
  s.t0 = Date.now();
  s.result = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  s.plan = trafficPlan(suite, {
    sku: s.sku,
    shoppers: p.placed + p.duringFreeze,
    concurrency: p.duringFreeze,
    arrivalsPerSecond: p.arrivalsPerSecond,
    apiUrls: [apiUrl],
    webhookSecret: s.stripe.webhookSecret,
  });
  // Stripe's webhook, through a tap that records each answer, to the API selling through Stripe.
  s.tap = await tapStripeWebhook(apiUrl);
  s.stripe.double.setWebhook(s.tap.url, s.stripe.webhookSecret);
  s.viewOf = orderViews(s.plan, s.result, suite.auth);
});

/** Before: foreign intents (another deployment's; one untagged), and the orders with their intents. */
const placeOrders = step<StripeLateSale>('place orders', async (s) => {
  const { suite, p } = s;
  const someoneElse = stripeClient({ ...s.stripeSettings, deploymentTag: 'staging' });
  for (let i = 0; i <= p.foreign; i++) {
    const metadata: Record<string, string> =
      i < p.foreign ? { orderNo: newOrderNo(), deployment: 'staging' } : { orderNo: newOrderNo() };
    s.foreign.push(await someoneElse.paymentIntents.create({ amount: 1_999, currency: 'usd', metadata }));
  }
  s.placed = await Promise.all(
    Array.from({ length: p.placed }, async (_, i) => {
      const userId = `stripe-${s.runId}-placed-${i}`;
      const intent = await buy(s.plan, userId, 20_000, true, s.result);
      s.result.intents.push(intent);
      if (intent.answer.kind !== 'accepted') throw new Error(`placing ${userId}: ${JSON.stringify(intent.answer)}`);
      const orderNo = intent.answer.orderNo;
      const view = await waitFor(
        async () => {
          const order = await s.viewOf(orderNo, userId);
          return order.intentId && order.deadline ? order : false;
        },
        { what: `the PaymentIntent of ${orderNo}`, timeoutMs: 30_000, intervalMs: 200 },
      );
      s.sawIntent(orderNo, view.intentId!);
      return { orderNo, userId, intentId: view.intentId!, deadline: view.deadline! };
    }),
  );
  s.firstDeadline = Math.min(...s.placed.map((o) => o.deadline));
  s.lastDeadline = Math.max(...s.placed.map((o) => o.deadline));
  if (payAt(s) < Date.now() + 500)
    throw new Error(
      `PAYMENT_WINDOW ${suite.config.paymentWindow} leaves no time to pay ${p.payBeforeDeadlineMs / 1000} s before the deadlines (${((s.firstDeadline - Date.now()) / 1000).toFixed(1)} s left once every intent showed)`,
    );
  suite.say(
    `${s.placed.length} orders placed with their PaymentIntents; deadlines in ${((s.firstDeadline - Date.now()) / 1000).toFixed(1)}–${((s.lastDeadline - Date.now()) / 1000).toFixed(1)} s; ${s.foreign.length} foreign intents`,
  );
});

const payAt = (s: StripeLateSale) => s.firstDeadline - s.p.payBeforeDeadlineMs;

/** The last seconds: half the shoppers pay, the foreign intents are paid. */
const payInLastSeconds = step<StripeLateSale>('pay in the last seconds', async (s) => {
  await sleepUntil(payAt(s));
  s.paidPlaced = s.placed.filter((_, i) => i % 2 === 0);
  s.unpaidPlaced = s.placed.filter((_, i) => i % 2 === 1);
  for (const order of s.paidPlaced) s.pay(order.orderNo, order.intentId, order.deadline);
  for (const intent of s.foreign) s.stripe.double.confirm(intent.id, 'succeeded');
});

/** Stripe's API frozen across the deadlines. */
const injectFault = step<StripeLateSale>('inject fault', async (s) => {
  s.frozenAt = Date.now();
  s.faultAt = s.frozenAt;
  s.freezeStripe();
  s.thawAt = Math.max(s.frozenAt + s.p.freezeMs, s.lastDeadline + s.p.thawAfterLastDeadlineMs);
  s.suite.say(
    `${s.paidPlaced.length} paid ${((s.firstDeadline - s.frozenAt) / 1000).toFixed(1)} s before the first deadline; Stripe frozen for ${((s.thawAt - s.frozenAt) / 1000).toFixed(1)} s`,
  );
});

/** Frozen: checkouts go on; the placed orders past their deadline are looked at until the thaw. */
const saleDuringFreeze = step<StripeLateSale>('sale during the freeze', async (s) => {
  const { p } = s;
  const checkouts = Promise.all(
    Array.from({ length: p.duringFreeze }, async (_, i) => {
      await sleep((i / p.arrivalsPerSecond) * 1_000);
      if (Date.now() >= s.thawAt - 1_000) return;
      s.result.intents.push(await buy(s.plan, `stripe-${s.runId}-frozen-${i}`, 20_000, false, s.result));
    }),
  );
  while (Date.now() < s.thawAt) {
    await sleep(Math.min(p.sampleEveryMs, Math.max(0, s.thawAt - Date.now() - 1_500)));
    const sample = await sampleHeld(s);
    s.samples.push(sample.figures);
    s.sampleViolations.push(...sample.violations);
    if (Date.now() >= s.thawAt - 1_500) break;
  }
  await checkouts;
  await sleepUntil(s.thawAt);
});

/** The placed orders past their deadline: still awaiting payment in their view and in MySQL, their unit held. */
async function sampleHeld(s: StripeLateSale): Promise<{ figures: FreezeSample; violations: string[] }> {
  const { stores, inventory } = s.suite;
  const at = Date.now();
  const due = s.placed.filter((o) => o.deadline < at);
  const [views, rows, reservations, sale] = await Promise.all([
    Promise.all(due.map((o) => s.viewOf(o.orderNo, o.userId))),
    stores.orders.getOrders(due.map((o) => o.orderNo)),
    inventory.getReservations(
      s.sku,
      due.map((o) => o.orderNo),
    ),
    inventory.getSale(s.sku),
  ]);
  const found: string[] = [];
  due.forEach((order, i) => {
    const view = views[i]?.status;
    const row = rows.get(order.orderNo)?.status;
    const held = reservations[i]?.state;
    if (view !== 'AWAITING_PAYMENT' || row !== 'AWAITING_PAYMENT' || !held || !HELD.has(held))
      found.push(
        `${order.orderNo}: ${((at - order.deadline) / 1000).toFixed(1)} s past its deadline while Stripe was frozen: view ${view}, MySQL ${row}, Redis ${held ?? 'no reservation'}`,
      );
  });
  return {
    figures: {
      at,
      pastDeadline: due.length,
      awaitingInView: views.filter((v) => v.status === 'AWAITING_PAYMENT').length,
      awaitingInMysql: [...rows.values()].filter((r) => r.status === 'AWAITING_PAYMENT').length,
      heldInRedis: reservations.filter((r) => r && HELD.has(r.state)).length,
      redisReserved: sale?.reserved ?? null,
    },
    violations: found,
  };
}

const heal = step<StripeLateSale>('heal', async (s) => {
  s.thawStripe();
  s.thawedAt = Date.now();
  s.freeze = {
    ...answersDuringFreeze(s.result.requests, s.frozenAt, s.thawedAt, deadlinesByKind(s.suite.config)),
    from: s.frozenAt,
    until: s.thawedAt,
  };
  s.suite.say(`thawed Stripe; during the freeze: ${JSON.stringify(s.freeze.byOutcome)}, late ${s.freeze.late}`);
});

/** Thawed: the orders made during the freeze get their PaymentIntent; every other one is paid in time. */
const ordersMadeDuringFreeze = step<StripeLateSale>('orders made during the freeze', async (s) => {
  const { config } = s.suite;
  s.frozenOrders = s.result.intents.flatMap((intent) =>
    intent.answer.kind === 'accepted' && intent.userId.includes('-frozen-')
      ? [{ orderNo: intent.answer.orderNo, userId: intent.userId }]
      : [],
  );
  const made = s.madeDuringFreeze;
  made.accepted = s.frozenOrders.length;
  let payNext = true;
  await Promise.all(
    s.frozenOrders.map(async ({ orderNo, userId }) => {
      const seen = await waitFor(
        async () => {
          const order = await s.viewOf(orderNo, userId);
          return order.intentId || (order.status !== undefined && order.status !== 'AWAITING_PAYMENT') ? order : false;
        },
        { what: `${orderNo} payable or closed`, timeoutMs: config.paymentWindowMs + 90_000, intervalMs: 500 },
      ).catch(() => undefined);
      if (!seen) return void s.undecided.push(orderNo);
      if (!seen.intentId) return void made.noIntent++;
      made.gotIntent++;
      s.sawIntent(orderNo, seen.intentId);
      // Every other shopper pays, in time (a second to spare); the others let the order time out.
      const paying = payNext && seen.deadline !== undefined && Date.now() < seen.deadline - 1_000;
      payNext = !payNext;
      if (paying && s.pay(orderNo, seen.intentId, seen.deadline!)) made.paid++;
      else made.leftToTimeOut++;
    }),
  );
  s.accepted = acceptedOf(s.result);
});

/** Every order's workflow closes (its intents cancelled, or its payment learnt). */
const everyOrderClosed = step<StripeLateSale>('every order closed', async (s) => {
  s.open = await ordersStillRunning(s.suite.temporal, s.accepted, {
    what: `every order of ${s.sku} closed`,
    timeoutMs: s.suite.config.paymentWindowMs + 180_000,
    intervalMs: 1_000,
  });
  s.closedAt = Date.now();
  s.suite.say(
    `every order closed ${((s.closedAt - s.thawedAt) / 1000).toFixed(1)} s after the thaw; waiting for Stripe's late deliveries`,
  );
});

/** Every event delivered (1 to 5 minutes late, some twice), bounded. */
const deliveriesSettled = stripeDeliveriesSettled<StripeLateSale>();

/** What Stripe and the stores hold once every order closed and every delivery ended. */
async function readStripeAndStores(s: StripeLateSale) {
  const { stores } = s.suite;
  const { double } = s.stripe;
  const rows = await stores.orders.getOrders(s.accepted);
  const events = double.events();
  const succeededEventsOf = (intentId: string) =>
    events.filter((e) => e.type === 'payment_intent.succeeded' && (e.data.object as { id?: string }).id === intentId);
  const recorded = new Map(
    await Promise.all(
      s.accepted.map(async (orderNo) => [orderNo, await stores.payments.paymentIntentsOf(orderNo)] as const),
    ),
  );
  const payments = new Map(
    await Promise.all(
      s.accepted.map(async (orderNo) => [orderNo, await stores.payments.paymentsOfOrder(orderNo)] as const),
    ),
  );
  // Every intent Stripe holds for the order (recorded, shown, or made for an ask whose answer never came back).
  const atStripe = (orderNo: string) =>
    double
      .intents()
      .filter((i) => i.metadata.orderNo === orderNo)
      .map((i) => i.id);
  const intentsOf = (orderNo: string) =>
    new Set([
      ...(recorded.get(orderNo) ?? []).map((i) => i.intentId),
      ...(s.shown.get(orderNo) ?? []),
      ...atStripe(orderNo),
    ]);
  const statusOf = (orderNo: string) => rows.get(orderNo)?.status ?? 'no row';
  return { rows, events, succeededEventsOf, payments, intentsOf, statusOf };
}

type Held = Awaited<ReturnType<typeof readStripeAndStores>>;

/** noUnitReleasedBeforeItsIntentCancelled, beside what the samples during the freeze found. */
function unitsReleasedEarly(s: StripeLateSale, { rows, intentsOf }: Held): string[] {
  const { double } = s.stripe;
  const found: string[] = [];
  const everyDeadlineSampled = s.samples.some((sample) => sample.pastDeadline === s.placed.length);
  if (!everyDeadlineSampled) found.push('no sample during the freeze saw every placed order past its deadline');
  for (const orderNo of s.accepted) {
    const row = rows.get(orderNo);
    if (row?.status !== 'CANCELLED') continue;
    const ids = intentsOf(orderNo);
    const cancelledAt = row.cancelledAt?.getTime() ?? 0;
    // Every order here opened its payment: none may close while Stripe cannot say its intents are cancelled.
    if (cancelledAt >= s.frozenAt && cancelledAt <= s.thawedAt)
      found.push(`${orderNo}: cancelled while Stripe was frozen (intents ${[...ids].join(', ') || 'none'})`);
    for (const id of ids) {
      const intent = double.intent(id);
      if (intent?.status !== 'canceled')
        found.push(`${orderNo}: CANCELLED, its intent ${id} ${intent?.status ?? 'unknown'} at Stripe`);
      // canceled_at is in whole seconds, rounded down: later than the order's cancel, the unit went first.
      else if (intent.canceled_at && intent.canceled_at * 1_000 > cancelledAt)
        found.push(
          `${orderNo}: cancelled at ${row.cancelledAt?.toISOString()}, before Stripe cancelled ${id} (${new Date(intent.canceled_at * 1_000).toISOString()})`,
        );
    }
  }
  for (const order of s.unpaidPlaced) {
    const status = rows.get(order.orderNo)?.status;
    if (status !== 'CANCELLED') found.push(`${order.orderNo}: never paid, ${status ?? 'no row'}`);
  }
  return found;
}

/** inTimePaymentsNotRefunded: every intent paid before its order's deadline pays it, with no refund anywhere. */
function inTimePaymentsRefunded(s: StripeLateSale, { rows, payments }: Held): { inTime: Confirmed[]; found: string[] } {
  const { double } = s.stripe;
  const inTime = s.confirmed.filter((c) => c.at < c.deadline);
  const found: string[] = [...s.payFailures];
  for (const c of s.confirmed)
    if (c.at >= c.deadline) found.push(`${c.orderNo}: confirmed ${c.at - c.deadline} ms after its deadline`);
  for (const c of inTime) {
    const status = rows.get(c.orderNo)?.status;
    const refunds = double.refundsOf(c.intentId);
    const refundRows = (payments.get(c.orderNo) ?? []).filter((row) => row.outcome !== 'APPLIED');
    if (status !== 'PAID') found.push(`${c.orderNo}: paid ${c.deadline - c.at} ms before its deadline, ${status}`);
    if (refunds.length > 0) found.push(`${c.orderNo}: ${refunds.length} refunds of ${c.intentId} at Stripe`);
    for (const row of refundRows)
      found.push(`${c.orderNo}: payment ${row.eventId} ${row.outcome} ${row.refundReason ?? ''}`);
  }
  return { inTime, found };
}

/** foreignIntentsIgnored: every foreign intent's payment delivered and answered IGNORED, no row, no refund. */
async function foreignIntentsTaken(
  s: StripeLateSale,
  { succeededEventsOf }: Held,
  tap: { answers: TapAnswer[] },
): Promise<{ found: string[]; answers: string[] }> {
  const { stores } = s.suite;
  const { double } = s.stripe;
  const found: string[] = [];
  const answers: string[] = [];
  for (const intent of s.foreign) {
    const orderNo = intent.metadata.orderNo ?? '';
    const eventIds = succeededEventsOf(intent.id).map((e) => e.id);
    const answered = tap.answers.filter((a) => a.type === 'payment_intent.succeeded' && a.objectId === intent.id);
    answers.push(...answered.map((a) => `${a.status} ${a.outcome}`));
    const rowsFound = [
      ...(await Promise.all([intent.id, ...eventIds].map((id) => stores.payments.getPayment(id)))).filter(
        (r) => r !== null,
      ),
      ...(await stores.payments.paymentsOfOrder(orderNo)),
    ];
    const refunds = double.refundsOf(intent.id);
    if (double.intent(intent.id)?.status !== 'succeeded')
      found.push(`${intent.id}: ${double.intent(intent.id)?.status} at Stripe, not paid`);
    if (eventIds.length === 0 || answered.length === 0)
      found.push(`${intent.id}: its payment event was never delivered`);
    for (const a of answered)
      if (a.status !== 200 || a.outcome !== 'IGNORED')
        found.push(`${intent.id}: ${a.eventId} answered ${a.status} ${a.outcome}`);
    if (rowsFound.length > 0) found.push(`${intent.id}: ${rowsFound.length} payment rows`);
    if (refunds.length > 0) found.push(`${intent.id}: ${refunds.length} refunds at Stripe`);
  }
  return { found, answers };
}

/**
 * everyPaidOrderPaidOnce: one APPLIED row per PAID order, whoever learnt the payment first; every later delivery
 * DUPLICATE.
 */
async function paidMoreThanOnce(
  s: StripeLateSale,
  { rows, payments, succeededEventsOf }: Held,
  tap: { answers: TapAnswer[] },
): Promise<{ found: string[]; learntFrom: Record<string, number>; answers: string[] }> {
  const { double } = s.stripe;
  const found: string[] = [];
  if (!s.deliveriesSettled) found.push(`Stripe's deliveries not settled within ${s.p.deliveriesTimeoutMs / 1000} s`);
  const learntFrom = { intentRead: 0, webhook: 0, catchUp: 0 };
  // Who recorded each payment first: the catch-up reads events still undelivered (these are minutes late), so it
  // may record one before its first delivery, which then answers DUPLICATE.
  const recordedBy = new Map(
    (await s.suite.stores.payments.paymentEvidence([...payments.values()].flat().map((p) => p.eventId))).map((e) => [
      e.eventId,
      e.source,
    ]),
  );
  const answers: string[] = [];
  for (const orderNo of s.accepted) {
    const row = rows.get(orderNo);
    if (row?.status !== 'PAID') continue;
    const rowsOfOrder = payments.get(orderNo) ?? [];
    const [payment] = rowsOfOrder;
    if (rowsOfOrder.length !== 1 || payment?.outcome !== 'APPLIED' || !payment.providerRef) {
      found.push(
        `${orderNo}: PAID with payment rows ${JSON.stringify(rowsOfOrder.map((r) => [r.eventId, r.outcome, r.providerRef]))}`,
      );
      continue;
    }
    const intentId = payment.providerRef;
    const caughtUp = recordedBy.get(payment.eventId) === 'catch-up';
    if (payment.eventId === intentId) learntFrom.intentRead++;
    else if (caughtUp) learntFrom.catchUp++;
    else learntFrom.webhook++;
    if (double.intent(intentId)?.status !== 'succeeded')
      found.push(`${orderNo}: paid by ${intentId}, ${double.intent(intentId)?.status} at Stripe`);
    const eventIds = new Set(succeededEventsOf(intentId).map((e) => e.id));
    const answered = tap.answers
      .filter((a) => a.type === 'payment_intent.succeeded' && a.objectId === intentId)
      .sort((a, b) => a.at - b.at);
    answers.push(...answered.map((a) => `${a.status} ${a.outcome}`));
    if (eventIds.size === 0 || answered.length === 0) found.push(`${orderNo}: ${intentId}'s event never delivered`);
    answered.forEach((a, i) => {
      // The first delivery of the event that paid the order is its verdict (or recorded, judged later).
      const first = i === 0 && payment.eventId === a.eventId && !caughtUp;
      const expected = first ? 'APPLIED' : 'DUPLICATE';
      const ok =
        (a.status === 200 && a.outcome === expected) || (first && a.status === 202 && a.outcome === 'RECEIVED');
      if (!ok)
        found.push(
          `${orderNo}: delivery ${i + 1} of ${a.eventId} answered ${a.status} ${a.outcome}, not ${expected} (paid by ${payment.eventId})`,
        );
    });
  }
  return { found, learntFrom, answers };
}

/** The round's own checks (STRIPE_LATE_CHECKS), each from what was observed, and its figures. */
const checkStripe = step<StripeLateSale>("check Stripe's side", async (s) => {
  const { config } = s.suite;
  const { double } = s.stripe;
  const tap = s.tap!;
  const held = await readStripeAndStores(s);
  const { rows, events, intentsOf, statusOf } = held;
  const releaseViolations = unitsReleasedEarly(s, held);
  const { inTime, found: paidViolations } = inTimePaymentsRefunded(s, held);
  const { found: foreignViolations, answers: foreignAnswers } = await foreignIntentsTaken(s, held, tap);
  const { found: onceViolations, learntFrom, answers: paymentAnswers } = await paidMoreThanOnce(s, held, tap);
  // No refund at Stripe at all in this round.
  const refundsAtStripe = double.callsTo('POST', '/v1/refunds');

  // The intents at Stripe naming our orders that no order recorded nor showed (opened behind a hung request).
  const ourIntents = double
    .intents()
    .filter(
      (i) => i.metadata.deployment === s.stripeSettings.deploymentTag && s.accepted.includes(i.metadata.orderNo ?? ''),
    );
  const unrecorded = ourIntents.filter((i) => !intentsOf(i.metadata.orderNo ?? '').has(i.id));

  // Deliveries: by status, duplicates, how late the first attempt of each event came.
  const eventCreated = new Map(events.map((e) => [e.id, e.created * 1_000]));
  const firstAttempts = double.deliveries.filter((d) => d.attempt === 1 && !d.duplicate);
  const lateness = firstAttempts.flatMap((d) => {
    const created = eventCreated.get(d.eventId);
    return created === undefined ? [] : [(d.at - created) / 1_000];
  });

  const { frozenAt: from, thawedAt, freeze, samples } = s;
  const checkouts = s.result.requests.filter((r) => r.kind === 'checkout' && r.sentAt >= from && r.sentAt <= thawedAt);
  const checks: Record<StripeLateCheck, boolean> = {
    checkoutsAnsweredDuringFreeze:
      checkouts.length > 0 && checkouts.every((r) => r.outcome === 202) && freeze.late === 0,
    noUnitReleasedBeforeItsIntentCancelled: s.sampleViolations.length === 0 && releaseViolations.length === 0,
    inTimePaymentsNotRefunded: inTime.length >= s.paidPlaced.length && paidViolations.length === 0,
    foreignIntentsIgnored: s.foreign.length > 0 && foreignViolations.length === 0,
    everyPaidOrderPaidOnce: onceViolations.length === 0 && refundsAtStripe.length === 0,
    everyOrderClosed: s.open.length === 0,
  };
  const figures = {
    frozenSeconds: Math.round((thawedAt - from) / 100) / 10,
    paymentWindow: config.paymentWindow,
    placedBeforeFreeze: s.placed.length,
    deadlinesAfterFreezeStartSeconds: {
      first: Math.round((s.firstDeadline - from) / 100) / 10,
      last: Math.round((s.lastDeadline - from) / 100) / 10,
    },
    placed: {
      paid: countBy(s.paidPlaced.map((o) => statusOf(o.orderNo))),
      unpaid: countBy(s.unpaidPlaced.map((o) => statusOf(o.orderNo))),
      paidSecondsBeforeDeadline: minMax(
        inTime.filter((c) => s.paidPlaced.some((o) => o.orderNo === c.orderNo)).map((c) => (c.deadline - c.at) / 1_000),
      ),
    },
    paidLearntFrom: learntFrom,
    duringFreeze: {
      samples: samples.length,
      placedPastDeadline: minMax(samples.map((x) => x.pastDeadline)),
      awaitingInView: minMax(samples.map((x) => x.awaitingInView)),
      awaitingInMysql: minMax(samples.map((x) => x.awaitingInMysql)),
      heldInRedis: minMax(samples.map((x) => x.heldInRedis)),
      redisReserved: minMax(samples.flatMap((x) => (x.redisReserved === null ? [] : [x.redisReserved]))),
    },
    checkoutsDuringFreeze: countBy(checkouts.map((r) => String(r.outcome))),
    slowestDuringFreeze: freeze.slowest,
    ordersMadeDuringFreeze: {
      ...s.madeDuringFreeze,
      undecided: s.undecided.length,
      final: countBy(s.frozenOrders.map((o) => statusOf(o.orderNo))),
      // Orders whose opening never came back (no intent recorded): their close has nothing to cancel at Stripe.
      cancelledWithoutIntent: countBy(
        s.frozenOrders.flatMap((o) => {
          const row = rows.get(o.orderNo);
          if (row?.status !== 'CANCELLED' || intentsOf(o.orderNo).size > 0) return [];
          const at = row.cancelledAt?.getTime() ?? 0;
          return [at <= thawedAt ? 'duringFreeze' : 'afterThaw'];
        }),
      ),
    },
    deliveries: {
      settled: s.deliveriesSettled,
      settledSecondsAfterEveryOrderClosed: s.settledSeconds,
      attempts: double.deliveries.length,
      byStatus: countBy(double.deliveries.map((d) => String(d.status ?? d.error))),
      duplicatesDelivered: double.deliveries.filter((d) => d.duplicate).length,
      lateSeconds: minMax(lateness),
      answers: countBy(tap.answers.map((a) => `${a.type} ${a.outcome}`)),
      ourPaymentEvents: countBy(paymentAnswers),
    },
    refundsAtStripe: refundsAtStripe.length,
    foreignIntents: { count: s.foreign.length, answers: countBy(foreignAnswers) },
    intentsAtStripe: countBy(ourIntents.map((i) => i.status)),
    unrecordedIntents: countBy(unrecorded.map((i) => `${i.status} (order ${statusOf(i.metadata.orderNo ?? '')})`)),
  };
  const violations = [
    ...s.sampleViolations.slice(0, 20),
    ...releaseViolations,
    ...paidViolations,
    ...foreignViolations,
    ...onceViolations,
    ...s.undecided.slice(0, 10).map((orderNo) => `${orderNo}: neither payable nor closed after the thaw`),
    ...s.open.slice(0, 10).map((orderNo) => `${orderNo}: still running`),
    ...refundsAtStripe.slice(0, 10).map((c) => `refund asked at Stripe: ${JSON.stringify(c.form)}`),
  ];
  s.section = { checks, figures, violations: [...new Set(violations)] };
});

export const stripeLateSale = defineRound<StripeLateSale>({
  name: 'stripe-late-sale',
  faults: "Stripe's API frozen across the deadlines, its webhooks 1 to 5 minutes late, some twice, out of order",
  needs: { stripe: true },
  checks: [...CHAOS_CHECKS, ...STRIPE_LATE_CHECKS],
  recordedPlan: (settings) => ({
    paymentWindow: settings.paymentWindow,
    stripeRound: STRIPE_ROUND_PLAN,
    stripeDelivery: STRIPE_LATE_DELIVERY,
  }),
  state: (suite: Suite) => new StripeLateSale(suite),
  steps: [
    startApi,
    arrange,
    placeOrders,
    payInLastSeconds,
    injectFault,
    saleDuringFreeze,
    heal,
    ordersMadeDuringFreeze,
    everyOrderClosed,
    deliveriesSettled,
    checkStripe,
    waitForStoresToAgree,
    waitForQuiet,
    checkInvariants,
  ],
  cleanup: async (s) => {
    if (s.stripeFrozen) s.thawStripe();
    if (s.tap) {
      s.stripe.double.setWebhook(null);
      await s.tap.stop();
    }
    await s.api?.stop();
  },
  outcome: (s) => {
    if (!s.section) throw new Error('stripe-late-sale judged nothing');
    // The round ran until its checks.
    s.seconds.burst = round1((Date.now() - s.t0) / 1000);
    return { ...s.outcomeBase(), stripe: s.section };
  },
});
