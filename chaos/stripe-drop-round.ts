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
 * with STRIPE_CATCH_UP_INTERVAL=20s for this round only (chaos/run.ts restarts it, and it creates the schedule at
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
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type Stripe from 'stripe';
import type { AppConfig } from '../src/config/index.js';
import type { PaymentRow } from '../src/db/rows.js';
import type { Stores } from '../src/db/stores.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import type { ShopperAuth } from '../src/api/auth.js';
import type { SalesService } from '../src/sales/sales-service.js';
import {
  CATCH_UP_WORKFLOW_TYPE,
  catchUpScheduleId,
  type CatchUpInput,
  type CatchUpResult,
} from '../src/payments/catch-up-definitions.js';
import type { StripeDouble } from '../stack/stripe-double.js';
import { waitFor } from '../stack/wait-for.js';
import { countBy } from './checks.js';
import { orderViews, serveOnLoopback, settledWithin, startWebhookTap } from './stripe-round.js';
import { buy, type TrafficPlan, type TrafficResult } from './shoppers.js';
import { settingsOf } from '../src/payments/providers/registry.js';
import { stripe as stripeProvider } from '../src/payments/providers/stripe/definition.js';

/** The round's name in the fault list and the results file. */
export const STRIPE_DROP_ROUND = 'stripe-webhook-drop';

export const STRIPE_DROP_CHECKS = [
  'everyDroppedPaymentCaughtUp',
  'noPaymentTwice',
  'webhooksGivenUp',
  'everyOrderClosed',
] as const;
export type StripeDropCheck = (typeof STRIPE_DROP_CHECKS)[number];

export interface StripeDropPlan {
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

export const STRIPE_DROP_PLAN: StripeDropPlan = {
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

export interface StripeDropDeps {
  stores: Stores;
  temporal: Client;
  sales: SalesService;
  auth: ShopperAuth;
  /** The suite's configuration (its task queue, Stripe's keys); the round's API has its own PAYMENT_WINDOW. */
  config: AppConfig;
  /** An API selling through Stripe with the plan's PAYMENT_WINDOW, for this round only. */
  apiUrl: string;
  double: StripeDouble;
  webhookSecret: string;
  /** When the worker restarted with the round's STRIPE_CATCH_UP_INTERVAL: the catch-up runs counted from then. */
  workerRestartedAt: number;
  say(line: string): void;
}

export interface StripeDropVerdict {
  sku: string;
  result: TrafficResult;
  plan: TrafficPlan;
  t0: number;
  dropAt: number;
  restoreAt: number;
  accepted: string[];
  checks: Record<StripeDropCheck, boolean>;
  figures: Record<string, unknown>;
  violations: string[];
}

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

export async function stripeWebhookDropRound(
  deps: StripeDropDeps,
  p: StripeDropPlan = STRIPE_DROP_PLAN,
): Promise<StripeDropVerdict> {
  const { stores, temporal, sales, auth, config, apiUrl, double, say } = deps;
  const stripeSettings = settingsOf(config, stripeProvider);
  if (!stripeSettings) throw new Error('the Stripe round needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET');
  // Paid a few seconds after checkout, an order must stay open through two catch-up runs and a sweep.
  if (p.paymentWindowMs < 2 * p.catchUpIntervalMs + 30_000)
    throw new Error(`PAYMENT_WINDOW ${p.paymentWindow} leaves the ${p.catchUpInterval} catch-up no time to pay first`);
  const violations: string[] = [];

  // 0. The catch-up's schedule, as the restarted worker left it at boot, and one run of it since.
  const schedule = await catchUpSchedule(temporal, config.temporal.taskQueue, p.catchUpIntervalMs).catch(
    (err: unknown) => ({ error: String(err) }),
  );
  if ('error' in schedule) violations.push(`the catch-up schedule: ${schedule.error}`);
  else
    say(
      `catch-up schedule ${schedule.id}: every ${schedule.everySeconds} s, events older than ${schedule.settleSeconds} s; a run completed ${schedule.firstRunSecondsAfterRestart} s after the worker restarted`,
    );

  const sku = `CHAOS-STRIPE-DROP-${Date.now().toString(36)}`;
  const priceCents = 1_500;
  const shoppers = Math.round(((p.leadMs + p.dropMs + p.tailMs) / 1_000) * p.arrivalsPerSecond);
  await sales.create({ sku, name: sku, priceCents, stock: shoppers + 20, perUserLimit: 1 });
  const result: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  const plan: TrafficPlan = {
    sku,
    priceCents,
    shoppers,
    concurrency: shoppers,
    arrivalsPerSecond: p.arrivalsPerSecond,
    apiUrls: [apiUrl],
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: deps.webhookSecret,
    paymentWindowMs: p.paymentWindowMs,
    retryForMs: 60_000,
  };
  const runId = randomUUID().slice(0, 8);

  const tap = await startWebhookTap(`${apiUrl}/api/payments/stripe`);
  const dead = await startRefusingEndpoint();
  const eventIds = () => new Set(double.events().map((e) => e.id));
  let phase: Phase = 'before';
  double.setWebhook(tap.url, deps.webhookSecret);
  try {
    const viewOf = orderViews(plan, result, auth);
    const paid: Paid[] = [];
    const shopperFailures: string[] = [];

    // 1–3. The sale: shoppers arrive throughout; the webhook is dropped after `leadMs`, restored `dropMs` later.
    const t0 = Date.now();
    const sale = Promise.all(
      Array.from({ length: shoppers }, async (_, index): Promise<Shopper> => {
        await sleep(Math.max(0, t0 + (index / p.arrivalsPerSecond) * 1_000 - Date.now()));
        const shopper: Shopper = {
          index,
          userId: `stripe-drop-${runId}-${index}`,
          pays: index % p.unpaidEvery !== p.unpaidEvery - 1,
          arrived: phase,
        };
        const intent = await buy(plan, shopper.userId, 20_000, true, result);
        result.intents.push(intent);
        if (intent.answer.kind !== 'accepted') {
          shopperFailures.push(`${shopper.userId}: checkout ${JSON.stringify(intent.answer)}`);
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
          shopperFailures.push(`${orderNo}: ${String(err)}`);
          return undefined;
        });
        if (!view?.intentId || !view.deadline) return shopper;
        shopper.intentId = view.intentId;
        shopper.deadline = view.deadline;
        if (!shopper.pays) return shopper;
        // The shopper's card at Stripe: its events are made now, for the webhook Stripe has now.
        const at = Date.now();
        const phaseNow = phase;
        try {
          const confirmed = double.confirm(view.intentId, 'succeeded');
          if (confirmed.status !== 'succeeded') throw new Error(`the intent is ${confirmed.status}`);
          paid.push({ orderNo, intentId: view.intentId, at, deadline: view.deadline, phase: phaseNow });
        } catch (err) {
          shopperFailures.push(`${orderNo}: the shopper could not pay ${view.intentId} (${String(err)})`);
        }
        return shopper;
      }),
    );

    await sleep(Math.max(0, t0 + p.leadMs - Date.now()));
    // Synchronous with the confirms (one thread): an event is in the window exactly when it was made between these.
    const beforeDrop = eventIds();
    double.setWebhook(dead.url, deps.webhookSecret);
    phase = 'dropped';
    const dropAt = Date.now();
    say(`Stripe's webhook dropped (every delivery answered 404 by ${dead.url}) for ${p.dropMs / 1000} s`);
    await sleep(p.dropMs);
    const atRestore = eventIds();
    double.setWebhook(tap.url, deps.webhookSecret);
    phase = 'restored';
    const restoreAt = Date.now();
    const windowEvents = new Set([...atRestore].filter((id) => !beforeDrop.has(id)));
    say(
      `Stripe's webhook restored after ${((restoreAt - dropAt) / 1000).toFixed(1)} s: ${windowEvents.size} events made meanwhile, ${paid.filter((x) => x.phase === 'dropped').length} payments`,
    );
    const everyShopper = await sale;
    const accepted = everyShopper.flatMap((s) => (s.orderNo ? [s.orderNo] : []));
    say(`${accepted.length} orders, ${paid.length} paid; waiting for every order to close`);

    // 4. Every order's workflow closes: paid, or its deadline passed and its intent cancelled.
    const open = await waitFor(
      async () => {
        const running = await Promise.all(
          accepted.map(async (orderNo) =>
            (await temporal.workflow.getHandle(orderWorkflowId(orderNo)).describe()).status.name === 'RUNNING'
              ? orderNo
              : undefined,
          ),
        );
        const left = running.filter((orderNo): orderNo is string => orderNo !== undefined);
        return left.length === 0 ? left : false;
      },
      { what: `every order of ${sku} closed`, timeoutMs: p.paymentWindowMs + p.closeTimeoutMs, intervalMs: 2_000 },
    ).catch(async () => {
      const described = await Promise.all(
        accepted.map(async (orderNo) => ({
          orderNo,
          status: (await temporal.workflow.getHandle(orderWorkflowId(orderNo)).describe()).status.name,
        })),
      );
      return described.filter((d) => d.status === 'RUNNING').map((d) => d.orderNo);
    });
    const closedAt = Date.now();
    say(
      `every order closed ${((closedAt - restoreAt) / 1000).toFixed(1)} s after the restore; waiting for Stripe's deliveries to end`,
    );

    // 5. Every delivery ends: the window's given up at the 404 endpoint, the others' delivered 1 to 5 minutes late.
    const deliveriesSettled = await settledWithin(double, p.deliveriesTimeoutMs);
    const settledSeconds = Math.round((Date.now() - closedAt) / 1000);
    say(`deliveries ${deliveriesSettled ? 'settled' : 'NOT settled'} ${settledSeconds} s after every order closed`);
    // The reconciler (every 3 s here) would start a REFUND_REQUIRED row's refund: give it the time to (it should not).
    await sleep(5_000);

    // 6. What Stripe, the stores and Temporal hold now.
    const events = double.events();
    const succeededEventOf = new Map<string, Stripe.Event[]>();
    for (const event of events) {
      if (event.type !== 'payment_intent.succeeded') continue;
      const intentId = (event.data.object as { id?: string }).id ?? '';
      succeededEventOf.set(intentId, [...(succeededEventOf.get(intentId) ?? []), event]);
    }
    const rows = await stores.orders.getOrders(accepted);
    const payments = new Map(
      await Promise.all(
        accepted.map(async (orderNo) => [orderNo, await stores.payments.paymentsOfOrder(orderNo)] as const),
      ),
    );
    const rowsOfIntent = await paymentRowsOfIntents(
      stores,
      paid.map((x) => x.intentId),
    );
    const evidence = await evidenceOf(stores, [...payments.values()].flat());
    const statusOf = (orderNo: string) => rows.get(orderNo)?.status ?? 'no row';
    /** Which payments were made while the webhook was dropped: their payment event is one of the window's. */
    const inWindow = (x: Paid) => (succeededEventOf.get(x.intentId) ?? []).some((e) => windowEvents.has(e.id));
    const windowPaid = paid.filter(inWindow);
    const otherPaid = paid.filter((x) => !inWindow(x));
    /** Who recorded a payment row: the evidence of its own event (the first to tell of it). */
    const recordedBy = (row: PaymentRow) => evidence.get(row.eventId)?.source ?? 'no evidence';

    // everyDroppedPaymentCaughtUp
    const caughtUpViolations: string[] = [];
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
        caughtUpViolations.push(
          `${x.orderNo}: paid ${x.intentId} while the webhook was dropped; payment rows of the intent ${JSON.stringify(ofIntent.map((r) => [r.eventId, r.outcome]))}, of the order ${JSON.stringify(ofOrder.map((r) => [r.eventId, r.outcome]))}`,
        );
        continue;
      }
      if (row.outcome !== 'APPLIED' || row.orderNo !== x.orderNo || order?.status !== 'PAID') {
        caughtUpViolations.push(
          `${x.orderNo}: ${order?.status ?? 'no row'}, its payment ${row.eventId} ${row.outcome} ${row.refundReason ?? ''}`,
        );
        continue;
      }
      const source = recordedBy(row);
      if (source === 'catch-up') caughtUp++;
      else if (source === 'intent-read' && row.eventId === x.intentId) closeReadFirst++;
      else
        caughtUpViolations.push(
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
    if (windowPaid.length === 0) caughtUpViolations.push('no payment was made while the webhook was dropped');
    if (closeReadFirst > 0)
      caughtUpViolations.push(
        `${closeReadFirst} payments of the window learnt by their order's close reading the intent, not by the catch-up (the timings should leave none)`,
      );

    // noPaymentTwice
    const onceViolations: string[] = [...shopperFailures];
    const paidIntents = new Set(paid.map((x) => x.intentId));
    for (const x of paid) {
      if (x.at >= x.deadline) onceViolations.push(`${x.orderNo}: paid ${x.at - x.deadline} ms after its deadline`);
      const ofIntent = rowsOfIntent.get(x.intentId) ?? [];
      const refunds = double.refundsOf(x.intentId);
      if (refunds.length > 0) onceViolations.push(`${x.orderNo}: ${refunds.length} refunds of ${x.intentId} at Stripe`);
      if (statusOf(x.orderNo) !== 'PAID')
        onceViolations.push(
          `${x.orderNo}: paid ${((x.deadline - x.at) / 1000).toFixed(1)} s before its deadline, ${statusOf(x.orderNo)}`,
        );
      if (ofIntent.length !== 1 || ofIntent[0]?.outcome !== 'APPLIED')
        onceViolations.push(
          `${x.orderNo}: the payment rows of ${x.intentId}: ${JSON.stringify(ofIntent.map((r) => [r.eventId, r.outcome, r.refundReason]))}`,
        );
    }
    const paymentAnswers: string[] = [];
    for (const orderNo of accepted) {
      const ofOrder = payments.get(orderNo) ?? [];
      const status = statusOf(orderNo);
      for (const row of ofOrder.filter((r) => r.outcome !== 'APPLIED'))
        onceViolations.push(`${orderNo} (${status}): payment ${row.eventId} ${row.outcome} ${row.refundReason ?? ''}`);
      if (status !== 'PAID') {
        if (ofOrder.length > 0 && !paid.some((x) => x.orderNo === orderNo))
          onceViolations.push(`${orderNo}: never paid, ${ofOrder.length} payment rows`);
        continue;
      }
      const [payment] = ofOrder;
      if (ofOrder.length !== 1 || !payment?.providerRef || !paidIntents.has(payment.providerRef)) {
        onceViolations.push(
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
          onceViolations.push(
            `${orderNo}: delivery ${i + 1} of ${a.eventId} answered ${a.status} ${a.outcome} (payment ${payment.eventId} recorded by ${recordedBy(payment)})`,
          );
      });
    }
    // Refunds asked at Stripe for the sale's intents: none at all (every payment here is in time).
    const orderOfIntent = new Map(
      double
        .intents()
        .filter((i) => accepted.includes(i.metadata.orderNo ?? ''))
        .map((i) => [i.id, i.metadata.orderNo ?? ''] as const),
    );
    const refundCalls = double
      .callsTo('POST', '/v1/refunds')
      .filter((c) => orderOfIntent.has(c.form.payment_intent ?? ''));
    for (const call of refundCalls) {
      const orderNo = orderOfIntent.get(call.form.payment_intent ?? '') ?? '';
      onceViolations.push(`${orderNo} (${statusOf(orderNo)}): refund asked at Stripe ${JSON.stringify(call.form)}`);
    }

    // webhooksGivenUp
    const givenUpViolations: string[] = [];
    if (!deliveriesSettled)
      givenUpViolations.push(`Stripe's deliveries not settled within ${p.deliveriesTimeoutMs / 1000} s`);
    const windowDeliveries = double.deliveries.filter((d) => windowEvents.has(d.eventId));
    const chains = new Map<string, number>();
    for (const d of windowDeliveries) {
      const chain = `${d.eventId}${d.duplicate ? ' (duplicate)' : ''}`;
      chains.set(chain, Math.max(chains.get(chain) ?? 0, d.attempt));
      if (d.status !== null && d.status >= 200 && d.status < 300)
        givenUpViolations.push(`${d.eventId} (${d.type}): attempt ${d.attempt} answered ${d.status}`);
    }
    const attempted = new Set(windowDeliveries.map((d) => d.eventId));
    for (const id of windowEvents)
      if (!attempted.has(id)) givenUpViolations.push(`${id}: made while the webhook was dropped, never attempted`);
    const atApi = tap.answers.filter((a) => windowEvents.has(a.eventId));
    for (const a of atApi) givenUpViolations.push(`${a.eventId} (${a.type}): reached the API, answered ${a.status}`);
    const listed = await undeliveredAtStripe(double.url, stripeSettings.secretKey, dropAt, restoreAt);
    for (const id of windowEvents)
      if (!listed.has(id)) givenUpViolations.push(`${id}: not listed with delivery_success=false at Stripe`);
    if (windowEvents.size === 0) givenUpViolations.push('no event was made while the webhook was dropped');
    for (const x of windowPaid)
      if (!(succeededEventOf.get(x.intentId) ?? []).every((e) => windowEvents.has(e.id)))
        givenUpViolations.push(`${x.intentId}: a payment event of the window made outside it`);
    const deadSeen = windowDeliveries.filter((d) => d.status === 404).length;

    // everyOrderClosed
    const closeViolations: string[] = [
      ...open.slice(0, 10).map((orderNo) => `${orderNo}: still running`),
      ...everyShopper.flatMap((s) => {
        if (!s.orderNo || s.pays) return [];
        const found: string[] = [];
        if (statusOf(s.orderNo) !== 'CANCELLED') found.push(`${s.orderNo}: never paid, ${statusOf(s.orderNo)}`);
        for (const intent of double.intents().filter((i) => i.metadata.orderNo === s.orderNo))
          if (intent.status !== 'canceled')
            found.push(`${s.orderNo}: never paid, CANCELLED, its intent ${intent.id} ${intent.status} at Stripe`);
        return found;
      }),
    ];

    // The catch-up's runs since the worker restarted with the round's interval, from Temporal.
    const runs = await catchUpRuns(temporal, deps.workerRestartedAt, { from: dropAt, until: restoreAt });
    const windowRows = windowPaid.flatMap((x) => rowsOfIntent.get(x.intentId) ?? []);
    const paidAfterRestore = (orderNo: string) => (rows.get(orderNo)?.paidAt?.getTime() ?? 0) > restoreAt;

    const checks: Record<StripeDropCheck, boolean> = {
      everyDroppedPaymentCaughtUp: caughtUpViolations.length === 0 && !('error' in schedule),
      noPaymentTwice: onceViolations.length === 0,
      webhooksGivenUp: givenUpViolations.length === 0,
      everyOrderClosed: closeViolations.length === 0,
    };
    const figures = {
      timings: {
        paymentWindow: p.paymentWindow,
        catchUpInterval: p.catchUpInterval,
        droppedSeconds: round((restoreAt - dropAt) / 1_000),
        saleSeconds: round((restoreAt + p.tailMs - t0) / 1_000),
      },
      catchUpSchedule: schedule,
      orders: {
        accepted: accepted.length,
        byArrival: countBy(everyShopper.filter((s) => s.orderNo).map((s) => s.arrived)),
        final: countBy(accepted.map(statusOf)),
        neverPaid: countBy(everyShopper.filter((s) => s.orderNo && !s.pays).map((s) => statusOf(s.orderNo!))),
      },
      payments: {
        made: paid.length,
        byPhase: countBy(paid.map((x) => x.phase)),
        inWindow: windowPaid.length,
        caughtUp,
        closeReadFirst,
        paidAfterRestore: windowPaid.filter((x) => paidAfterRestore(x.orderNo)).length,
        outsideWindowRecordedBy: countBy(
          otherPaid.flatMap((x) => (rowsOfIntent.get(x.intentId) ?? []).map((row) => recordedBy(row))),
        ),
        windowRecordedBy: countBy(windowRows.map((row) => recordedBy(row))),
        secondsFromPaymentToRecorded: stats(lagToRecorded),
        secondsFromPaymentToPaid: stats(lagToPaid),
        secondsLeftBeforeDeadlineWhenPaid: stats(marginToDeadline),
        secondsFromRestoreToLastWindowOrderPaid: lastWindowPaidAt
          ? round((lastWindowPaidAt - restoreAt) / 1_000)
          : null,
      },
      catchUpRuns: runs,
      deliveries: {
        settled: deliveriesSettled,
        settledSecondsAfterEveryOrderClosed: settledSeconds,
        windowEvents: windowEvents.size,
        windowEventsByType: countBy(events.filter((e) => windowEvents.has(e.id)).map((e) => e.type)),
        windowAttempts: windowDeliveries.length,
        windowAttemptsByAnswer: countBy(windowDeliveries.map((d) => String(d.status ?? d.error))),
        windowAttemptsPerChain: stats([...chains.values()]),
        refusedAtTheDroppedEndpoint: { seenThere: dead.requests(), recordedByStripe: deadSeen },
        windowEventsListedUndelivered: [...windowEvents].filter((id) => listed.has(id)).length,
        windowEventsAtApi: atApi.length,
        attemptsAtApi: tap.answers.length,
        answersAtApi: countBy(tap.answers.map((a) => `${a.type} ${a.status} ${a.outcome}`)),
        ourPaymentEventAnswers: countBy(paymentAnswers),
      },
      refundsAskedAtStripe: refundCalls.length,
    };
    violations.push(
      ...caughtUpViolations.slice(0, 30),
      ...onceViolations.slice(0, 30),
      ...givenUpViolations.slice(0, 30),
      ...closeViolations.slice(0, 30),
    );
    return {
      sku,
      result,
      plan,
      t0,
      dropAt,
      restoreAt,
      accepted,
      checks,
      figures,
      violations: [...new Set(violations)],
    };
  } finally {
    double.setWebhook(null);
    await tap.stop();
    await dead.stop();
  }
}

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
    firstRunSecondsAfterRestart: round((Date.now() - since) / 1_000),
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
        const response = await fetch(`${url}/v1/events?${query.toString()}`, {
          headers: { authorization: `Bearer ${secretKey}` },
          signal: AbortSignal.timeout(10_000),
        });
        // The double's test-mode rate limit: wait and ask again.
        if (response.status === 429) return false;
        if (!response.ok) throw new Error(`GET /v1/events answered ${response.status}: ${await response.text()}`);
        return (await response.json()) as { data: Array<{ id: string }>; has_more: boolean };
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

const round = (value: number) => Math.round(value * 10) / 10;

function stats(values: number[]): { min: number; median: number; max: number } | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: round(sorted[0]!),
    median: round(sorted[Math.floor(sorted.length / 2)]!),
    max: round(sorted[sorted.length - 1]!),
  };
}
