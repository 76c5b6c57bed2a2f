/**
 * The fault suite's second Stripe round, stripe-webhook-drop: mid-sale, Stripe's webhook to our API is dropped for
 * two minutes while shoppers keep checking out and paying by card; then it is restored. Nothing Stripe made in the
 * window ever reaches the API: the payment catch-up (src/workflows/payments.ts, a Temporal Schedule every
 * STRIPE_CATCH_UP_INTERVAL) must find every payment of the window among the events Stripe did not deliver and apply
 * or refund it exactly once.
 *
 * The drop: the double's webhook is pointed at an endpoint of the round's own that answers every POST 404, as a
 * deploy that dropped the route would. The double binds each event to the endpoint it had when the event was made,
 * so every attempt at a window event (first and retries, on Stripe's schedule) is refused and the event is given up,
 * `delivery_success=false`, whatever happens after the restore: the round proves the catch-up, not Stripe's retries.
 * A server of the round's own rather than a port nothing listens on: the port stays the round's (no other process
 * can take it and answer 2xx), and each refused attempt is seen arriving, beside the double's record of it.
 *
 *   before   the sale opens (a waiting checkout per shopper, 2 a second), each shopper reads the order until its
 *            PaymentIntent shows and pays it by card at Stripe (the double's confirm), but one in four who never
 *            pays; Stripe's webhook goes to the API (through a tap recording each answer)
 *   dropped  the same, for `dropMs`: every event goes to the 404 endpoint
 *   restored the webhook to the API again, shoppers for `tailMs` more; then every order closes (the unpaid at their
 *            deadline, their intents cancelled), every delivery ends (given up, or delivered 1 to 5 min late: the
 *            double of this run delivers late, STRIPE_LATE_DELIVERY)
 *
 * Timings. The catch-up reads events older than min(60 s, interval), so with a 20 s interval a payment made at t is
 * read by a run between t + 20 s and t + 40 s, recorded RECEIVED, then delivered by an API's sweep (rows older than
 * 5 s, every 2 s): PAID by about t + 50 s. Its order's own close reads the intent at the deadline and would pay it
 * too, hiding the catch-up: the round's API takes a PAYMENT_WINDOW of 90 s, so a shopper paying a few seconds after
 * checkout leaves the catch-up about 85 s, a margin of 35 s, a failed run and its next one included. The worker runs
 * with STRIPE_CATCH_UP_INTERVAL=20s for this round only (its first step restarts it, and it creates the schedule at
 * boot): the suite's other Stripe round expects its late webhooks, not the catch-up, to be the first to record a
 * payment learnt from an event.
 *
 * Late deliveries. Events made while the webhook is live come 1 to 5 minutes late, so the catch-up (20 s) records
 * the payments made before the drop and after the restore first as well; their deliveries then land on a payment
 * already recorded and must answer DUPLICATE (or, for the first one of the event that recorded it, its verdict). The
 * round waits for every delivery to end and holds each answer to that.
 *
 * Checks beside the invariants (STRIPE_DROP_CHECKS), each from what was observed:
 *   everyDroppedPaymentCaughtUp  every payment whose event was made while the webhook was dropped ends as exactly
 *                                one payments row for its intent, APPLIED to its order, which is PAID; the row was
 *                                recorded by the catch-up (its own evidence row: source `catch-up`), unless the
 *                                order's close read the intent first (counted apart: 0 by the timings above); and
 *                                the catch-up schedule ran at the round's interval
 *   noPaymentTwice               every PAID order of the sale has one payment row (APPLIED, its intent's); every
 *                                payment made in time, in the window or not, pays its order and is never refunded (no
 *                                refund row, no refund asked at Stripe for an intent of a PAID order); an order never
 *                                paid has no payment row; every delivery of a payment's event answers DUPLICATE but
 *                                the first of the event that recorded the payment
 *   webhooksGivenUp              every event made in the window: each of its attempts refused (non-2xx, none at the
 *                                API), its deliveries given up once the double settled, and `delivery_success=false`
 *                                in Stripe's GET /v1/events
 *   everyOrderClosed             every accepted order's workflow closed; every order its shopper never paid
 *                                CANCELLED, its intents cancelled at Stripe
 */
import { CATCH_UP_WORKFLOW_TYPE } from '../../src/model/workflow-types.js';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type Stripe from 'stripe';
import type { PaymentRow } from '../../src/db/rows.js';
import type { Stores } from '../../src/db/stores.js';
import { catchUpScheduleId, type CatchUpInput, type CatchUpResult } from '../../src/model/catch-up-workflow.js';
import { settingsOf } from '../../toolkit/provider-config.js';
import type { StripeSettings } from '../../src/payments/providers/stripe/settings.js';
import { stripe as stripeProvider } from '../../src/payments/providers/stripe/definition.js';
import { serveOnLoopback } from '../../stack/loopback-server.js';
import { waitFor } from '../../stack/wait-for.js';
import { httpCall, isOk } from '../../toolkit/http-client.js';
import { CHAOS_CHECKS, countBy } from '../checks.js';
import { buy } from '../../toolkit/shoppers.js';
import { defineRound, step, type RoundApi, type RoundSection, type Suite, type SuiteStripe } from './round.js';
import {
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
  orderViews,
  ordersStillRunning,
  stripeDeliveriesSettled,
  tapStripeWebhook,
  STRIPE_LATE_DELIVERY,
} from './stripe-tools.js';

const STRIPE_DROP_CHECKS = [
  'everyDroppedPaymentCaughtUp',
  'noPaymentTwice',
  'webhooksGivenUp',
  'everyOrderClosed',
] as const;
type StripeDropCheck = (typeof STRIPE_DROP_CHECKS)[number];

interface StripeDropPlan {
  /** The worker's STRIPE_CATCH_UP_INTERVAL in this round (its schedule's interval, and the events' settle time). */
  catchUpInterval: string;
  catchUpIntervalMs: number;
  /** The round's API's PAYMENT_WINDOW: long enough that the catch-up pays an order before its close reads it. */
  paymentWindow: string;
  paymentWindowMs: number;
  /** The sale runs this long with the webhook live, then the webhook is dropped for `dropMs`, then `tailMs` more. */
  leadMs: number;
  dropMs: number;
  tailMs: number;
  /** Shoppers arriving per second, throughout; one in `unpaidEvery` never pays. */
  arrivalsPerSecond: number;
  unpaidEvery: number;
  /** How long every order is waited for to close, beyond the payment window. */
  closeTimeoutMs: number;
  /** How long Stripe's deliveries (given up, or late) are waited for once every order closed. */
  deliveriesTimeoutMs: number;
}

const STRIPE_DROP_PLAN: StripeDropPlan = {
  catchUpInterval: '20s',
  catchUpIntervalMs: 20_000,
  paymentWindow: '90s',
  paymentWindowMs: 90_000,
  leadMs: 10_000,
  dropMs: 120_000,
  tailMs: 10_000,
  arrivalsPerSecond: 2,
  unpaidEvery: 4,
  closeTimeoutMs: 180_000,
  deliveriesTimeoutMs: 480_000,
};

type Phase = 'before' | 'dropped' | 'restored';

interface Shopper {
  index: number;
  userId: string;
  pays: boolean;
  /** When the shopper arrived, by the webhook's state then. */
  arrived: Phase;
  orderNo?: string;
  intentId?: string;
  deadline?: number;
}

/** A shopper's card payment at Stripe (the double's confirm), when it happened and which webhook Stripe had then. */
interface Paid {
  orderNo: string;
  intentId: string;
  at: number;
  deadline: number;
  phase: Phase;
}

interface Evidence {
  eventId: string;
  paymentEventId: string;
  source: string;
}

type CatchUpSchedule = Awaited<ReturnType<typeof catchUpSchedule>> | { error: string };

/** The round's state, filled in by its steps in order. */
class StripeWebhookDrop extends SaleUnderFault {
  readonly p = STRIPE_DROP_PLAN;
  /** The worker runs with the round's catch-up interval: restarted as it was by the cleanup. */
  workerChanged = false;
  workerRestartedAt = 0;
  api: RoundApi | undefined;
  stripe!: SuiteStripe;
  stripeSettings!: StripeSettings;
  schedule!: CatchUpSchedule;
  runId = randomUUID().slice(0, 8);
  tap: Awaited<ReturnType<typeof tapStripeWebhook>> | undefined;
  /** The webhook's route gone: every delivery answered 404 there. */
  dead: Awaited<ReturnType<typeof startRefusingEndpoint>> | undefined;
  /** The webhook's state, as the shoppers paying now meet it. */
  phase: Phase = 'before';
  paid: Paid[] = [];
  shopperFailures: string[] = [];
  shopping: Promise<Shopper[]> | undefined;
  everyShopper: Shopper[] = [];
  eventsBeforeDrop = new Set<string>();
  dropAt = 0;
  restoreAt = 0;
  /** The events Stripe made while the webhook was dropped. */
  windowEvents = new Set<string>();
  open: string[] = [];
  closedAt = 0;
  deliveriesSettled = false;
  settledSeconds = 0;
  section: RoundSection | undefined;

  eventIds(): Set<string> {
    return new Set(this.stripe.double.events().map((e) => e.id));
  }
}

/** The worker restarted with STRIPE_CATCH_UP_INTERVAL (it puts the catch-up schedule at that interval at boot). */
const restartWorker = step<StripeWebhookDrop>("restart the worker with the round's catch-up interval", async (s) => {
  s.workerChanged = true;
  await s.suite.restartWorkerWithEnv({ STRIPE_CATCH_UP_INTERVAL: s.p.catchUpInterval });
  s.workerRestartedAt = Date.now();
});

const startApi = step<StripeWebhookDrop>('start its API', async (s) => {
  if (!s.suite.stripe) throw new Error('the Stripe double is not running');
  s.stripe = s.suite.stripe;
  s.api = await s.suite.startStripeApi({ name: 'api-stripe-drop', env: { PAYMENT_WINDOW: s.p.paymentWindow } });
});

const arrange = step<StripeWebhookDrop>('arrange', async (s) => {
  const { suite, p } = s;
  const stripeSettings = settingsOf(suite.config, stripeProvider);
  if (!stripeSettings) throw new Error('the Stripe round needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET');
  s.stripeSettings = stripeSettings;
  // Paid a few seconds after checkout, an order must stay open through two catch-up runs and a sweep.
  if (p.paymentWindowMs < 2 * p.catchUpIntervalMs + 30_000)
    throw new Error(`PAYMENT_WINDOW ${p.paymentWindow} leaves the ${p.catchUpInterval} catch-up no time to pay first`);

  // The catch-up's schedule, as the restarted worker left it at boot, and one run of it since.
  s.schedule = await catchUpSchedule(suite.temporal, suite.config.temporal.taskQueue, p.catchUpIntervalMs).catch(
    (err: unknown) => ({ error: String(err) }),
  );
  if (!('error' in s.schedule))
    suite.say(
      `catch-up schedule ${s.schedule.id}: every ${s.schedule.everySeconds} s, events older than ${s.schedule.settleSeconds} s; a run completed ${s.schedule.firstRunSecondsAfterRestart} s after the worker restarted`,
    );

  const apiUrl = s.api!.url;
  s.sku = skuOf('stripe-drop');
  const shoppers = Math.round(((p.leadMs + p.dropMs + p.tailMs) / 1_000) * p.arrivalsPerSecond);
  await suite.sales.create({ sku: s.sku, name: s.sku, priceCents: PRICE_CENTS, stock: shoppers + 20, perUserLimit: 1 });
  s.result = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  s.plan = trafficPlan(suite, {
    sku: s.sku,
    shoppers,
    concurrency: shoppers,
    arrivalsPerSecond: p.arrivalsPerSecond,
    apiUrls: [apiUrl],
    webhookSecret: s.stripe.webhookSecret,
    paymentWindowMs: p.paymentWindowMs,
  });
  s.tap = await tapStripeWebhook(apiUrl);
  s.dead = await startRefusingEndpoint();
  s.stripe.double.setWebhook(s.tap.url, s.stripe.webhookSecret);
});

/** The sale: shoppers arrive throughout, each paying by card once the order shows its intent (one in four never). */
const startTraffic = step<StripeWebhookDrop>('start traffic', async (s) => {
  const { suite, p } = s;
  const viewOf = orderViews(s.plan, s.result, suite.auth);
  s.t0 = Date.now();
  s.shopping = Promise.all(
    Array.from({ length: s.plan.shoppers }, async (_, index): Promise<Shopper> => {
      await sleepUntil(s.t0 + (index / p.arrivalsPerSecond) * 1_000);
      const shopper: Shopper = {
        index,
        userId: `stripe-drop-${s.runId}-${index}`,
        pays: index % p.unpaidEvery !== p.unpaidEvery - 1,
        arrived: s.phase,
      };
      const intent = await buy(s.plan, shopper.userId, 20_000, true, s.result);
      s.result.intents.push(intent);
      if (intent.answer.kind !== 'accepted') {
        s.shopperFailures.push(`${shopper.userId}: checkout ${JSON.stringify(intent.answer)}`);
        return shopper;
      }
      const orderNo = intent.answer.orderNo;
      shopper.orderNo = orderNo;
      const view = await waitFor(
        async () => {
          const order = await viewOf(orderNo, shopper.userId);
          return order.intentId && order.deadline ? order : false;
        },
        { what: `the PaymentIntent of ${orderNo}`, timeoutMs: 30_000, intervalMs: 250 },
      ).catch((err: unknown) => {
        s.shopperFailures.push(`${orderNo}: ${String(err)}`);
        return undefined;
      });
      if (!view?.intentId || !view.deadline) return shopper;
      shopper.intentId = view.intentId;
      shopper.deadline = view.deadline;
      if (!shopper.pays) return shopper;
      // The shopper's card at Stripe: its events are made now, for the webhook Stripe has now.
      const at = Date.now();
      const phaseNow = s.phase;
      try {
        const confirmed = s.stripe.double.confirm(view.intentId, 'succeeded');
        if (confirmed.status !== 'succeeded') throw new Error(`the intent is ${confirmed.status}`);
        s.paid.push({ orderNo, intentId: view.intentId, at, deadline: view.deadline, phase: phaseNow });
      } catch (err) {
        s.shopperFailures.push(`${orderNo}: the shopper could not pay ${view.intentId} (${String(err)})`);
      }
      return shopper;
    }),
  );
});

/** `leadMs` into the sale, Stripe's webhook pointed at an endpoint that answers every POST 404. */
const injectFault = step<StripeWebhookDrop>('inject fault', async (s) => {
  await sleepUntil(s.t0 + s.p.leadMs);
  // Synchronous with the confirms (one thread): an event is in the window exactly when it was made between these.
  s.eventsBeforeDrop = s.eventIds();
  s.stripe.double.setWebhook(s.dead!.url, s.stripe.webhookSecret);
  s.phase = 'dropped';
  s.dropAt = Date.now();
  s.faultAt = s.dropAt;
  s.suite.say(`Stripe's webhook dropped (every delivery answered 404 by ${s.dead!.url}) for ${s.p.dropMs / 1000} s`);
});

/** `dropMs` later, the webhook to the API again. */
const heal = step<StripeWebhookDrop>('heal', async (s) => {
  await sleep(s.p.dropMs);
  const atRestore = s.eventIds();
  s.stripe.double.setWebhook(s.tap!.url, s.stripe.webhookSecret);
  s.phase = 'restored';
  s.restoreAt = Date.now();
  s.windowEvents = new Set([...atRestore].filter((id) => !s.eventsBeforeDrop.has(id)));
  s.suite.say(
    `Stripe's webhook restored after ${((s.restoreAt - s.dropAt) / 1000).toFixed(1)} s: ${s.windowEvents.size} events made meanwhile, ${s.paid.filter((x) => x.phase === 'dropped').length} payments`,
  );
});

const shoppersDone = step<StripeWebhookDrop>('shoppers done', async (s) => {
  s.everyShopper = (await s.shopping) ?? [];
  s.accepted = s.everyShopper.flatMap((shopper) => (shopper.orderNo ? [shopper.orderNo] : []));
  s.suite.say(`${s.accepted.length} orders, ${s.paid.length} paid; waiting for every order to close`);
});

/** Every order's workflow closes: paid, or its deadline passed and its intent cancelled. */
const everyOrderClosed = step<StripeWebhookDrop>('every order closed', async (s) => {
  s.open = await ordersStillRunning(s.suite.temporal, s.accepted, {
    what: `every order of ${s.sku} closed`,
    timeoutMs: s.p.paymentWindowMs + s.p.closeTimeoutMs,
    intervalMs: 2_000,
  });
  s.closedAt = Date.now();
  s.suite.say(
    `every order closed ${((s.closedAt - s.restoreAt) / 1000).toFixed(1)} s after the restore; waiting for Stripe's deliveries to end`,
  );
});

/** Every delivery ends: the window's given up at the 404 endpoint, the others' delivered 1 to 5 minutes late. */
const deliveriesSettled = stripeDeliveriesSettled<StripeWebhookDrop>();

/** What Stripe, the stores and Temporal hold once every order closed and every delivery ended. */
async function readStripeAndStores(s: StripeWebhookDrop) {
  const { stores } = s.suite;
  const events = s.stripe.double.events();
  const succeededEventOf = new Map<string, Stripe.Event[]>();
  for (const event of events) {
    if (event.type !== 'payment_intent.succeeded') continue;
    const intentId = (event.data.object as { id?: string }).id ?? '';
    succeededEventOf.set(intentId, [...(succeededEventOf.get(intentId) ?? []), event]);
  }
  const rows = await stores.orders.getOrders(s.accepted);
  const payments = new Map(
    await Promise.all(
      s.accepted.map(async (orderNo) => [orderNo, await stores.payments.paymentsOfOrder(orderNo)] as const),
    ),
  );
  const rowsOfIntent = await paymentRowsOfIntents(
    stores,
    s.paid.map((x) => x.intentId),
  );
  const evidence = await evidenceOf(stores, [...payments.values()].flat());
  const statusOf = (orderNo: string) => rows.get(orderNo)?.status ?? 'no row';
  /** Which payments were made while the webhook was dropped: their payment event is one of the window's. */
  const inWindow = (x: Paid) => (succeededEventOf.get(x.intentId) ?? []).some((e) => s.windowEvents.has(e.id));
  /** Who recorded a payment row: the evidence of its own event (the first to tell of it). */
  const recordedBy = (row: PaymentRow) => evidence.get(row.eventId)?.source ?? 'no evidence';
  return {
    events,
    succeededEventOf,
    rows,
    payments,
    rowsOfIntent,
    statusOf,
    recordedBy,
    windowPaid: s.paid.filter(inWindow),
    otherPaid: s.paid.filter((x) => !inWindow(x)),
  };
}

type Held = Awaited<ReturnType<typeof readStripeAndStores>>;

/** everyDroppedPaymentCaughtUp: each payment of the window one row, APPLIED, recorded by the catch-up. */
function droppedPaymentsMissed(s: StripeWebhookDrop, held: Held) {
  const { rows, payments, rowsOfIntent, recordedBy, windowPaid } = held;
  const found: string[] = [];
  let caughtUp = 0;
  let closeReadFirst = 0;
  const lagToRecorded: number[] = [];
  const lagToPaid: number[] = [];
  const marginToDeadline: number[] = [];
  let lastWindowPaidAt = 0;
  for (const x of windowPaid) {
    const ofIntent = rowsOfIntent.get(x.intentId) ?? [];
    const ofOrder = payments.get(x.orderNo) ?? [];
    const order = rows.get(x.orderNo);
    const [row] = ofIntent;
    if (ofIntent.length !== 1 || !row || ofOrder.length !== 1 || ofOrder[0]?.eventId !== row.eventId) {
      found.push(
        `${x.orderNo}: paid ${x.intentId} while the webhook was dropped; payment rows of the intent ${JSON.stringify(ofIntent.map((r) => [r.eventId, r.outcome]))}, of the order ${JSON.stringify(ofOrder.map((r) => [r.eventId, r.outcome]))}`,
      );
      continue;
    }
    if (row.outcome !== 'APPLIED' || row.orderNo !== x.orderNo || order?.status !== 'PAID') {
      found.push(
        `${x.orderNo}: ${order?.status ?? 'no row'}, its payment ${row.eventId} ${row.outcome} ${row.refundReason ?? ''}`,
      );
      continue;
    }
    const source = recordedBy(row);
    if (source === 'catch-up') caughtUp++;
    else if (source === 'intent-read' && row.eventId === x.intentId) closeReadFirst++;
    else
      found.push(
        `${x.orderNo}: its payment ${row.eventId} recorded by ${source}, not by the catch-up (the webhook was dropped)`,
      );
    lagToRecorded.push((row.receivedAt.getTime() - x.at) / 1_000);
    const paidAt = order.paidAt?.getTime();
    if (paidAt !== undefined) {
      lagToPaid.push((paidAt - x.at) / 1_000);
      marginToDeadline.push((x.deadline - paidAt) / 1_000);
      lastWindowPaidAt = Math.max(lastWindowPaidAt, paidAt);
    }
  }
  if (windowPaid.length === 0) found.push('no payment was made while the webhook was dropped');
  if (closeReadFirst > 0)
    found.push(
      `${closeReadFirst} payments of the window learnt by their order's close reading the intent, not by the catch-up (the timings should leave none)`,
    );
  return { found, caughtUp, closeReadFirst, lagToRecorded, lagToPaid, marginToDeadline, lastWindowPaidAt };
}

/** noPaymentTwice: every payment in time pays its order once and is never refunded; later deliveries DUPLICATE. */
function paidTwice(s: StripeWebhookDrop, held: Held, tap: NonNullable<StripeWebhookDrop['tap']>) {
  const { double } = s.stripe;
  const { payments, rowsOfIntent, statusOf, recordedBy } = held;
  const found: string[] = [...s.shopperFailures];
  const paidIntents = new Set(s.paid.map((x) => x.intentId));
  for (const x of s.paid) {
    if (x.at >= x.deadline) found.push(`${x.orderNo}: paid ${x.at - x.deadline} ms after its deadline`);
    const ofIntent = rowsOfIntent.get(x.intentId) ?? [];
    const refunds = double.refundsOf(x.intentId);
    if (refunds.length > 0) found.push(`${x.orderNo}: ${refunds.length} refunds of ${x.intentId} at Stripe`);
    if (statusOf(x.orderNo) !== 'PAID')
      found.push(
        `${x.orderNo}: paid ${((x.deadline - x.at) / 1000).toFixed(1)} s before its deadline, ${statusOf(x.orderNo)}`,
      );
    if (ofIntent.length !== 1 || ofIntent[0]?.outcome !== 'APPLIED')
      found.push(
        `${x.orderNo}: the payment rows of ${x.intentId}: ${JSON.stringify(ofIntent.map((r) => [r.eventId, r.outcome, r.refundReason]))}`,
      );
  }
  const paymentAnswers: string[] = [];
  for (const orderNo of s.accepted) {
    const ofOrder = payments.get(orderNo) ?? [];
    const status = statusOf(orderNo);
    for (const row of ofOrder.filter((r) => r.outcome !== 'APPLIED'))
      found.push(`${orderNo} (${status}): payment ${row.eventId} ${row.outcome} ${row.refundReason ?? ''}`);
    if (status !== 'PAID') {
      if (ofOrder.length > 0 && !s.paid.some((x) => x.orderNo === orderNo))
        found.push(`${orderNo}: never paid, ${ofOrder.length} payment rows`);
      continue;
    }
    const [payment] = ofOrder;
    if (ofOrder.length !== 1 || !payment?.providerRef || !paidIntents.has(payment.providerRef)) {
      found.push(
        `${orderNo}: PAID with payment rows ${JSON.stringify(ofOrder.map((r) => [r.eventId, r.outcome, r.providerRef]))}`,
      );
      continue;
    }
    // Every delivery of the payment's events: DUPLICATE, but the first of the event that recorded the payment.
    const intentId = payment.providerRef;
    const answers = tap.answers
      .filter((a) => a.type === 'payment_intent.succeeded' && a.objectId === intentId)
      .sort((a, b) => a.at - b.at);
    paymentAnswers.push(...answers.map((a) => `${a.status} ${a.outcome}`));
    answers.forEach((a, i) => {
      const first = i === 0 && payment.eventId === a.eventId && recordedBy(payment) === 'webhook';
      const ok = first
        ? (a.status === 200 && a.outcome === 'APPLIED') || (a.status === 202 && a.outcome === 'RECEIVED')
        : a.status === 200 && a.outcome === 'DUPLICATE';
      if (!ok)
        found.push(
          `${orderNo}: delivery ${i + 1} of ${a.eventId} answered ${a.status} ${a.outcome} (payment ${payment.eventId} recorded by ${recordedBy(payment)})`,
        );
    });
  }
  // Refunds asked at Stripe for the sale's intents: none at all (every payment here is in time).
  const orderOfIntent = new Map(
    double
      .intents()
      .filter((i) => s.accepted.includes(i.metadata.orderNo ?? ''))
      .map((i) => [i.id, i.metadata.orderNo ?? ''] as const),
  );
  const refundCalls = double
    .callsTo('POST', '/v1/refunds')
    .filter((c) => orderOfIntent.has(c.form.payment_intent ?? ''));
  for (const call of refundCalls) {
    const orderNo = orderOfIntent.get(call.form.payment_intent ?? '') ?? '';
    found.push(`${orderNo} (${statusOf(orderNo)}): refund asked at Stripe ${JSON.stringify(call.form)}`);
  }
  return { found, paymentAnswers, refundCalls };
}

/** webhooksGivenUp: every attempt at a window event refused, none at the API, each listed undelivered at Stripe. */
async function windowEventsDelivered(s: StripeWebhookDrop, held: Held, tap: NonNullable<StripeWebhookDrop['tap']>) {
  const { double } = s.stripe;
  const { windowEvents } = s;
  const found: string[] = [];
  if (!s.deliveriesSettled) found.push(`Stripe's deliveries not settled within ${s.p.deliveriesTimeoutMs / 1000} s`);
  const windowDeliveries = double.deliveries.filter((d) => windowEvents.has(d.eventId));
  const chains = new Map<string, number>();
  for (const d of windowDeliveries) {
    const chain = `${d.eventId}${d.duplicate ? ' (duplicate)' : ''}`;
    chains.set(chain, Math.max(chains.get(chain) ?? 0, d.attempt));
    if (d.status !== null && d.status >= 200 && d.status < 300)
      found.push(`${d.eventId} (${d.type}): attempt ${d.attempt} answered ${d.status}`);
  }
  const attempted = new Set(windowDeliveries.map((d) => d.eventId));
  for (const id of windowEvents)
    if (!attempted.has(id)) found.push(`${id}: made while the webhook was dropped, never attempted`);
  const atApi = tap.answers.filter((a) => windowEvents.has(a.eventId));
  for (const a of atApi) found.push(`${a.eventId} (${a.type}): reached the API, answered ${a.status}`);
  const listed = await undeliveredAtStripe(double.url, s.stripeSettings.secretKey, s.dropAt, s.restoreAt);
  for (const id of windowEvents)
    if (!listed.has(id)) found.push(`${id}: not listed with delivery_success=false at Stripe`);
  if (windowEvents.size === 0) found.push('no event was made while the webhook was dropped');
  for (const x of held.windowPaid)
    if (!(held.succeededEventOf.get(x.intentId) ?? []).every((e) => windowEvents.has(e.id)))
      found.push(`${x.intentId}: a payment event of the window made outside it`);
  const deadSeen = windowDeliveries.filter((d) => d.status === 404).length;
  return { found, windowDeliveries, chains, atApi, listed, deadSeen };
}

/** everyOrderClosed: every workflow closed; every order never paid CANCELLED, its intents cancelled at Stripe. */
function ordersLeftOpen(s: StripeWebhookDrop, { statusOf }: Held): string[] {
  const { double } = s.stripe;
  return [
    ...s.open.slice(0, 10).map((orderNo) => `${orderNo}: still running`),
    ...s.everyShopper.flatMap((shopper) => {
      if (!shopper.orderNo || shopper.pays) return [];
      const found: string[] = [];
      if (statusOf(shopper.orderNo) !== 'CANCELLED')
        found.push(`${shopper.orderNo}: never paid, ${statusOf(shopper.orderNo)}`);
      for (const intent of double.intents().filter((i) => i.metadata.orderNo === shopper.orderNo))
        if (intent.status !== 'canceled')
          found.push(`${shopper.orderNo}: never paid, CANCELLED, its intent ${intent.id} ${intent.status} at Stripe`);
      return found;
    }),
  ];
}

/** The round's own checks (STRIPE_DROP_CHECKS), each from what was observed, and its figures. */
const checkStripe = step<StripeWebhookDrop>("check Stripe's side", async (s) => {
  const { suite, p, tap } = s;
  if (!tap) throw new Error("Stripe's webhook was never tapped");
  const held = await readStripeAndStores(s);
  const { events, rows, rowsOfIntent, statusOf, recordedBy, windowPaid, otherPaid } = held;
  const caught = droppedPaymentsMissed(s, held);
  const twice = paidTwice(s, held, tap);
  const givenUp = await windowEventsDelivered(s, held, tap);
  const closeViolations = ordersLeftOpen(s, held);

  // The catch-up's runs since the worker restarted with the round's interval, from Temporal.
  const runs = await catchUpRuns(suite.temporal, s.workerRestartedAt, { from: s.dropAt, until: s.restoreAt });
  const windowRows = windowPaid.flatMap((x) => rowsOfIntent.get(x.intentId) ?? []);
  const paidAfterRestore = (orderNo: string) => (rows.get(orderNo)?.paidAt?.getTime() ?? 0) > s.restoreAt;

  const checks: Record<StripeDropCheck, boolean> = {
    everyDroppedPaymentCaughtUp: caught.found.length === 0 && !('error' in s.schedule),
    noPaymentTwice: twice.found.length === 0,
    webhooksGivenUp: givenUp.found.length === 0,
    everyOrderClosed: closeViolations.length === 0,
  };
  const figures = {
    timings: {
      paymentWindow: p.paymentWindow,
      catchUpInterval: p.catchUpInterval,
      droppedSeconds: round1((s.restoreAt - s.dropAt) / 1_000),
      saleSeconds: round1((s.restoreAt + p.tailMs - s.t0) / 1_000),
    },
    catchUpSchedule: s.schedule,
    orders: {
      accepted: s.accepted.length,
      byArrival: countBy(s.everyShopper.filter((x) => x.orderNo).map((x) => x.arrived)),
      final: countBy(s.accepted.map(statusOf)),
      neverPaid: countBy(s.everyShopper.filter((x) => x.orderNo && !x.pays).map((x) => statusOf(x.orderNo!))),
    },
    payments: {
      made: s.paid.length,
      byPhase: countBy(s.paid.map((x) => x.phase)),
      inWindow: windowPaid.length,
      caughtUp: caught.caughtUp,
      closeReadFirst: caught.closeReadFirst,
      paidAfterRestore: windowPaid.filter((x) => paidAfterRestore(x.orderNo)).length,
      outsideWindowRecordedBy: countBy(
        otherPaid.flatMap((x) => (rowsOfIntent.get(x.intentId) ?? []).map((row) => recordedBy(row))),
      ),
      windowRecordedBy: countBy(windowRows.map((row) => recordedBy(row))),
      secondsFromPaymentToRecorded: stats(caught.lagToRecorded),
      secondsFromPaymentToPaid: stats(caught.lagToPaid),
      secondsLeftBeforeDeadlineWhenPaid: stats(caught.marginToDeadline),
      secondsFromRestoreToLastWindowOrderPaid: caught.lastWindowPaidAt
        ? round1((caught.lastWindowPaidAt - s.restoreAt) / 1_000)
        : null,
    },
    catchUpRuns: runs,
    deliveries: {
      settled: s.deliveriesSettled,
      settledSecondsAfterEveryOrderClosed: s.settledSeconds,
      windowEvents: s.windowEvents.size,
      windowEventsByType: countBy(events.filter((e) => s.windowEvents.has(e.id)).map((e) => e.type)),
      windowAttempts: givenUp.windowDeliveries.length,
      windowAttemptsByAnswer: countBy(givenUp.windowDeliveries.map((d) => String(d.status ?? d.error))),
      windowAttemptsPerChain: stats([...givenUp.chains.values()]),
      refusedAtTheDroppedEndpoint: { seenThere: s.dead?.requests() ?? 0, recordedByStripe: givenUp.deadSeen },
      windowEventsListedUndelivered: [...s.windowEvents].filter((id) => givenUp.listed.has(id)).length,
      windowEventsAtApi: givenUp.atApi.length,
      attemptsAtApi: tap.answers.length,
      answersAtApi: countBy(tap.answers.map((a) => `${a.type} ${a.status} ${a.outcome}`)),
      ourPaymentEventAnswers: countBy(twice.paymentAnswers),
    },
    refundsAskedAtStripe: twice.refundCalls.length,
  };
  const violations = [
    ...('error' in s.schedule ? [`the catch-up schedule: ${s.schedule.error}`] : []),
    ...caught.found.slice(0, 30),
    ...twice.found.slice(0, 30),
    ...givenUp.found.slice(0, 30),
    ...closeViolations.slice(0, 30),
  ];
  s.section = { checks, figures, violations: [...new Set(violations)] };
});

export const stripeWebhookDrop = defineRound<StripeWebhookDrop>({
  name: 'stripe-webhook-drop',
  faults: "Stripe's webhook dropped for 2 minutes mid-sale while shoppers keep paying by card",
  needs: { stripe: true },
  checks: [...CHAOS_CHECKS, ...STRIPE_DROP_CHECKS],
  recordedPlan: () => ({ stripeDropRound: STRIPE_DROP_PLAN, stripeDelivery: STRIPE_LATE_DELIVERY }),
  state: (suite: Suite) => new StripeWebhookDrop(suite),
  steps: [
    restartWorker,
    startApi,
    arrange,
    startTraffic,
    injectFault,
    heal,
    shoppersDone,
    everyOrderClosed,
    deliveriesSettled,
    checkStripe,
    waitForStoresToAgree,
    waitForQuiet,
    checkInvariants,
  ],
  cleanup: async (s) => {
    if (s.stripe) s.stripe.double.setWebhook(null);
    await s.tap?.stop();
    await s.dead?.stop();
    await s.api?.stop();
    if (s.workerChanged)
      await s.suite
        .restartWorkerWithEnv(undefined)
        .catch((err: unknown) =>
          s.suite.say(`the worker did not come back with the suite's environment: ${String(err)}`),
        );
  },
  outcome: (s) => {
    if (!s.section) throw new Error('stripe-webhook-drop judged nothing');
    // The round ran until its checks.
    s.seconds.burst = round1((Date.now() - s.t0) / 1000);
    return { ...s.outcomeBase(), stripe: s.section };
  },
});

/**
 * The catch-up's schedule as the worker keeps it: waits until it runs at `everyMs` (the restarted worker updates it at
 * boot) and one of its runs started since completed.
 */
async function catchUpSchedule(
  temporal: Client,
  taskQueue: string,
  everyMs: number,
): Promise<{ id: string; everySeconds: number; settleSeconds: number; firstRunSecondsAfterRestart: number }> {
  const id = catchUpScheduleId(taskQueue);
  const since = Date.now();
  const described = await waitFor(
    async () => {
      const description = await temporal.schedule.getHandle(id).describe();
      const every = description.spec.intervals?.[0]?.every;
      return every === everyMs ? description : false;
    },
    {
      what: `the catch-up schedule ${id} every ${everyMs / 1000} s`,
      timeoutMs: 60_000,
      intervalMs: 500,
      retryErrors: true,
    },
  );
  const action = described.action as { args?: unknown[] };
  const input = action.args?.[0] as CatchUpInput | undefined;
  // One run started after the schedule took the interval, completed: the catch-up runs.
  const startedFrom = new Date(since - 1_000).toISOString();
  await waitFor(
    async () => {
      const { count } = await temporal.workflow.count(
        `WorkflowType = '${CATCH_UP_WORKFLOW_TYPE}' AND StartTime >= '${startedFrom}' AND ExecutionStatus = 'Completed'`,
      );
      return count > 0;
    },
    { what: 'a catch-up run to complete', timeoutMs: everyMs * 3 + 30_000, intervalMs: 1_000, retryErrors: true },
  );
  return {
    id,
    everySeconds: everyMs / 1_000,
    settleSeconds: input?.settleSeconds ?? -1,
    firstRunSecondsAfterRestart: round1((Date.now() - since) / 1_000),
  };
}

/**
 * The catch-up's runs started since `since`, by status; those started while the webhook was dropped; what the
 * completed ones took in (an event is read again by every run for OVERLAP_SECONDS: DUPLICATE once recorded).
 */
async function catchUpRuns(
  temporal: Client,
  since: number,
  dropped: { from: number; until: number },
): Promise<{
  runs: number;
  byStatus: Record<string, number>;
  startedWhileDropped: number;
  recordingPayments: number;
  events: number;
  outcomes: Record<string, number>;
}> {
  const statuses: string[] = [];
  const outcomes: Record<string, number> = {};
  let startedWhileDropped = 0;
  let recordingPayments = 0;
  let events = 0;
  for await (const run of temporal.workflow.list({
    query: `WorkflowType = '${CATCH_UP_WORKFLOW_TYPE}' AND StartTime >= '${new Date(since).toISOString()}'`,
  })) {
    statuses.push(run.status.name);
    const started = run.startTime.getTime();
    if (started >= dropped.from && started < dropped.until) startedWhileDropped++;
    if (run.status.name !== 'COMPLETED') continue;
    const report = (await temporal.workflow.getHandle(run.workflowId, run.runId).result()) as CatchUpResult;
    events += report.events;
    if ((report.outcomes.RECEIVED ?? 0) > 0) recordingPayments++;
    for (const [outcome, count] of Object.entries(report.outcomes))
      outcomes[outcome] = (outcomes[outcome] ?? 0) + count;
  }
  return {
    runs: statuses.length,
    byStatus: countBy(statuses),
    startedWhileDropped,
    recordingPayments,
    events,
    outcomes,
  };
}

/** Every payments row of each intent (one at most by the schema; more would be a payment twice). */
async function paymentRowsOfIntents(stores: Stores, intentIds: string[]): Promise<Map<string, PaymentRow[]>> {
  const found = new Map<string, PaymentRow[]>();
  for (const row of await stores.payments.paymentsOfIntents('stripe', intentIds))
    if (row.providerRef) found.set(row.providerRef, [...(found.get(row.providerRef) ?? []), row]);
  return found;
}

/** The evidence row of each payment's own event (who recorded the payment first), by the payment's event id. */
async function evidenceOf(stores: Stores, payments: PaymentRow[]): Promise<Map<string, Evidence>> {
  const evidence = await stores.payments.paymentEvidence(payments.map((p) => p.eventId));
  return new Map(evidence.map((e) => [e.eventId, e]));
}

/**
 * The ids of the events Stripe lists as not delivered (`delivery_success=false`) made between `from` and `until`,
 * read through its API as the catch-up reads them, page by page.
 */
async function undeliveredAtStripe(url: string, secretKey: string, from: number, until: number): Promise<Set<string>> {
  const ids = new Set<string>();
  let startingAfter: string | undefined;
  for (let page = 0; page < 200; page++) {
    const query = new URLSearchParams({
      delivery_success: 'false',
      'created[gte]': String(Math.floor(from / 1_000) - 1),
      'created[lte]': String(Math.ceil(until / 1_000) + 1),
      limit: '100',
      ...(startingAfter ? { starting_after: startingAfter } : {}),
    });
    const answer = await waitFor(
      async () => {
        const answer = await httpCall('GET', `${url}/v1/events?${query.toString()}`, {
          headers: { authorization: `Bearer ${secretKey}` },
          timeoutMs: 10_000,
        });
        if (answer.failure) throw new Error(`GET /v1/events got no answer: ${answer.failure.message}`);
        // The double's test-mode rate limit: wait and ask again.
        if (answer.status === 429) return false;
        if (!isOk(answer)) throw new Error(`GET /v1/events answered ${answer.status}: ${answer.body}`);
        return answer.json as { data: Array<{ id: string }>; has_more: boolean };
      },
      { what: 'the undelivered events at Stripe', timeoutMs: 30_000, intervalMs: 200 },
    );
    for (const event of answer.data) ids.add(event.id);
    startingAfter = answer.data.at(-1)?.id;
    if (!answer.has_more || !startingAfter) break;
  }
  return ids;
}

/** The webhook's route gone (a deploy that dropped it): every POST answered 404, and counted. */
async function startRefusingEndpoint(): Promise<{ url: string; requests(): number; stop(): Promise<void> }> {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'Not Found' } }));
    });
  });
  const served = await serveOnLoopback(server);
  return { url: `${served.url}/api/payments/stripe`, requests: () => requests, stop: served.stop };
}

function stats(values: number[]): { min: number; median: number; max: number } | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: round1(sorted[0]!),
    median: round1(sorted[Math.floor(sorted.length / 2)]!),
    max: round1(sorted[sorted.length - 1]!),
  };
}
