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
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type Stripe from 'stripe';
import type { AppConfig } from '../src/config/index.js';
import type { Stores } from '../src/db/stores.js';
import type { RedisInventory } from '../src/inventory/redis-inventory.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { stripeClient } from '../src/payments/providers/stripe/api.js';
import type { ShopperAuth } from '../src/api/auth.js';
import type { SalesService } from '../src/sales/sales-service.js';
import type { StripeDouble } from '../stack/stripe-double.js';
import { waitFor } from '../stack/wait-for.js';
import { countBy } from './checks.js';
import { answersDuringFreeze, deadlinesByKind, type FreezeAnswers } from './gray.js';
import { buy, retrying, type TrafficPlan, type TrafficResult } from './shoppers.js';
import { settingsOf } from '../src/payments/providers/registry.js';
import { stripe as stripeProvider } from '../src/payments/providers/stripe/definition.js';

/** The round's name in the fault list and the results file. */
export const STRIPE_ROUND = 'stripe-late-sale';

export const STRIPE_LATE_CHECKS = [
  'checkoutsAnsweredDuringFreeze',
  'noUnitReleasedBeforeItsIntentCancelled',
  'inTimePaymentsNotRefunded',
  'foreignIntentsIgnored',
  'everyPaidOrderPaidOnce',
  'everyOrderClosed',
] as const;
export type StripeLateCheck = (typeof STRIPE_LATE_CHECKS)[number];

/** How the double delivers Stripe's webhooks in this round: 1 to 5 minutes late, some twice, out of order. */
export const STRIPE_LATE_DELIVERY = {
  delayMs: [60_000, 300_000] as [number, number],
  duplicateRate: 0.3,
  reorder: true,
};

export interface StripeRoundPlan {
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

export const STRIPE_ROUND_PLAN: StripeRoundPlan = {
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

export interface StripeRoundDeps {
  stores: Stores;
  temporal: Client;
  sales: SalesService;
  inventory: RedisInventory;
  auth: ShopperAuth;
  config: AppConfig;
  /** An API selling through Stripe, for this round only. */
  apiUrl: string;
  /** Stripe: the double in front of stripe-mock (the app's STRIPE_API_URL). */
  double: StripeDouble;
  webhookSecret: string;
  /** Hangs Stripe's API (SIGSTOP of stripe-mock) and resumes it. */
  freezeStripe(): void;
  thawStripe(): void;
  say(line: string): void;
}

export interface StripeRoundVerdict {
  sku: string;
  result: TrafficResult;
  plan: TrafficPlan;
  t0: number;
  accepted: string[];
  checks: Record<StripeLateCheck, boolean>;
  figures: Record<string, unknown>;
  violations: string[];
  freeze: FreezeAnswers & { from: number; until: number };
}

/** One delivery of Stripe's webhook as the API answered it (the tap in front of the API records it). */
export interface TapAnswer {
  eventId: string;
  type: string;
  /** The event's object's id (the PaymentIntent's, for payment_intent.*). */
  objectId: string;
  status: number;
  outcome: string;
  at: number;
}

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

export async function stripeLateRound(deps: StripeRoundDeps, p = STRIPE_ROUND_PLAN): Promise<StripeRoundVerdict> {
  const { stores, temporal, sales, inventory, auth, config, apiUrl, double, say } = deps;
  const stripeSettings = settingsOf(config, stripeProvider);
  if (!stripeSettings) throw new Error('the Stripe round needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET');
  const ourTag = stripeSettings.deploymentTag;
  const sku = `CHAOS-STRIPE-LATE-${Date.now().toString(36)}`;
  const priceCents = 1_500;
  await sales.create({ sku, name: sku, priceCents, stock: p.placed + p.duringFreeze + 20, perUserLimit: 1 });
  const t0 = Date.now();
  const result: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  const plan: TrafficPlan = {
    sku,
    priceCents,
    shoppers: p.placed + p.duringFreeze,
    concurrency: p.duringFreeze,
    arrivalsPerSecond: p.arrivalsPerSecond,
    apiUrls: [apiUrl],
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: deps.webhookSecret,
    paymentWindowMs: config.paymentWindowMs,
    retryForMs: 60_000,
  };
  const runId = randomUUID().slice(0, 8);
  const violations: string[] = [];

  // Stripe's webhook, through a tap that records each answer, to the API selling through Stripe.
  const tap = await startWebhookTap(`${apiUrl}/api/payments/stripe`);
  double.setWebhook(tap.url, deps.webhookSecret);
  try {
    const viewOf = orderViews(plan, result, auth);
    /** Every intent the order views showed, by order: a shopper could have paid any of them. */
    const shown = new Map<string, Set<string>>();
    const sawIntent = (orderNo: string, intentId: string) =>
      shown.set(orderNo, (shown.get(orderNo) ?? new Set()).add(intentId));
    const confirmed: Confirmed[] = [];
    /** Payments a shopper tried in time that Stripe would not take. */
    const payFailures: string[] = [];
    const pay = (orderNo: string, intentId: string, deadline: number): boolean => {
      const at = Date.now();
      try {
        const intent = double.confirm(intentId, 'succeeded');
        if (intent.status !== 'succeeded') throw new Error(`the intent is ${intent.status}`);
        confirmed.push({ orderNo, intentId, at, deadline });
        return true;
      } catch (err) {
        payFailures.push(`${orderNo}: the shopper could not pay ${intentId} before the deadline (${String(err)})`);
        return false;
      }
    };

    // 1. Before: foreign intents (another deployment's; one untagged), and the orders with their intents.
    const someoneElse = stripeClient({ ...stripeSettings, deploymentTag: 'staging' });
    const foreign: Stripe.PaymentIntent[] = [];
    for (let i = 0; i <= p.foreign; i++) {
      const metadata: Record<string, string> =
        i < p.foreign ? { orderNo: newOrderNo(), deployment: 'staging' } : { orderNo: newOrderNo() };
      foreign.push(await someoneElse.paymentIntents.create({ amount: 1_999, currency: 'usd', metadata }));
    }
    const placed: Placed[] = await Promise.all(
      Array.from({ length: p.placed }, async (_, i) => {
        const userId = `stripe-${runId}-placed-${i}`;
        const intent = await buy(plan, userId, 20_000, true, result);
        result.intents.push(intent);
        if (intent.answer.kind !== 'accepted') throw new Error(`placing ${userId}: ${JSON.stringify(intent.answer)}`);
        const orderNo = intent.answer.orderNo;
        const view = await waitFor(
          async () => {
            const order = await viewOf(orderNo, userId);
            return order.intentId && order.deadline ? order : false;
          },
          { what: `the PaymentIntent of ${orderNo}`, timeoutMs: 30_000, intervalMs: 200 },
        );
        sawIntent(orderNo, view.intentId!);
        return { orderNo, userId, intentId: view.intentId!, deadline: view.deadline! };
      }),
    );
    const firstDeadline = Math.min(...placed.map((o) => o.deadline));
    const lastDeadline = Math.max(...placed.map((o) => o.deadline));
    const payAt = firstDeadline - p.payBeforeDeadlineMs;
    if (payAt < Date.now() + 500)
      throw new Error(
        `PAYMENT_WINDOW ${config.paymentWindow} leaves no time to pay ${p.payBeforeDeadlineMs / 1000} s before the deadlines (${((firstDeadline - Date.now()) / 1000).toFixed(1)} s left once every intent showed)`,
      );
    say(
      `${placed.length} orders placed with their PaymentIntents; deadlines in ${((firstDeadline - Date.now()) / 1000).toFixed(1)}–${((lastDeadline - Date.now()) / 1000).toFixed(1)} s; ${foreign.length} foreign intents`,
    );

    // 2. The last seconds: half the shoppers pay, the foreign intents are paid; then Stripe freezes.
    await sleep(Math.max(0, payAt - Date.now()));
    const paidPlaced = placed.filter((_, i) => i % 2 === 0);
    const unpaidPlaced = placed.filter((_, i) => i % 2 === 1);
    for (const order of paidPlaced) pay(order.orderNo, order.intentId, order.deadline);
    for (const intent of foreign) double.confirm(intent.id, 'succeeded');
    const from = Date.now();
    deps.freezeStripe();
    const thawAt = Math.max(from + p.freezeMs, lastDeadline + p.thawAfterLastDeadlineMs);
    say(
      `${paidPlaced.length} paid ${((firstDeadline - from) / 1000).toFixed(1)} s before the first deadline; Stripe frozen for ${((thawAt - from) / 1000).toFixed(1)} s`,
    );

    const sampleHeld = async (orders: Placed[]): Promise<{ figures: FreezeSample; violations: string[] }> => {
      const at = Date.now();
      const due = orders.filter((o) => o.deadline < at);
      const [views, rows, reservations, sale] = await Promise.all([
        Promise.all(due.map((o) => viewOf(o.orderNo, o.userId))),
        stores.orders.getOrders(due.map((o) => o.orderNo)),
        inventory.getReservations(
          sku,
          due.map((o) => o.orderNo),
        ),
        inventory.getSale(sku),
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
    };

    // 3. Frozen: checkouts go on; the placed orders past their deadline are looked at until the thaw.
    const samples: FreezeSample[] = [];
    const sampleViolations: string[] = [];
    let thawedAt = 0;
    try {
      const checkouts = Promise.all(
        Array.from({ length: p.duringFreeze }, async (_, i) => {
          await sleep((i / p.arrivalsPerSecond) * 1_000);
          if (Date.now() >= thawAt - 1_000) return;
          result.intents.push(await buy(plan, `stripe-${runId}-frozen-${i}`, 20_000, false, result));
        }),
      );
      while (Date.now() < thawAt) {
        await sleep(Math.min(p.sampleEveryMs, Math.max(0, thawAt - Date.now() - 1_500)));
        const sample = await sampleHeld(placed);
        samples.push(sample.figures);
        sampleViolations.push(...sample.violations);
        if (Date.now() >= thawAt - 1_500) break;
      }
      await checkouts;
      await sleep(Math.max(0, thawAt - Date.now()));
    } finally {
      deps.thawStripe();
      thawedAt = Date.now();
    }
    const freeze = {
      ...answersDuringFreeze(result.requests, from, thawedAt, deadlinesByKind(config)),
      from,
      until: thawedAt,
    };
    say(`thawed Stripe; during the freeze: ${JSON.stringify(freeze.byOutcome)}, late ${freeze.late}`);

    // 4. Thawed: the orders made during the freeze get their PaymentIntent; every other one is paid in time.
    const frozenOrders = result.intents.flatMap((intent) =>
      intent.answer.kind === 'accepted' && intent.userId.includes('-frozen-')
        ? [{ orderNo: intent.answer.orderNo, userId: intent.userId }]
        : [],
    );
    const madeDuringFreeze = { accepted: frozenOrders.length, gotIntent: 0, paid: 0, leftToTimeOut: 0, noIntent: 0 };
    const undecided: string[] = [];
    let payNext = true;
    await Promise.all(
      frozenOrders.map(async ({ orderNo, userId }) => {
        const seen = await waitFor(
          async () => {
            const order = await viewOf(orderNo, userId);
            return order.intentId || (order.status !== undefined && order.status !== 'AWAITING_PAYMENT')
              ? order
              : false;
          },
          { what: `${orderNo} payable or closed`, timeoutMs: config.paymentWindowMs + 90_000, intervalMs: 500 },
        ).catch(() => undefined);
        if (!seen) return void undecided.push(orderNo);
        if (!seen.intentId) return void madeDuringFreeze.noIntent++;
        madeDuringFreeze.gotIntent++;
        sawIntent(orderNo, seen.intentId);
        // Every other shopper pays, in time (a second to spare); the others let the order time out.
        const paying = payNext && seen.deadline !== undefined && Date.now() < seen.deadline - 1_000;
        payNext = !payNext;
        if (paying && pay(orderNo, seen.intentId, seen.deadline!)) madeDuringFreeze.paid++;
        else madeDuringFreeze.leftToTimeOut++;
      }),
    );
    const accepted = result.intents.flatMap((intent) =>
      intent.answer.kind === 'accepted' ? [intent.answer.orderNo] : [],
    );

    // 5. Every order's workflow closes (its intents cancelled, or its payment learnt).
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
      { what: `every order of ${sku} closed`, timeoutMs: config.paymentWindowMs + 180_000, intervalMs: 1_000 },
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
      `every order closed ${((closedAt - thawedAt) / 1000).toFixed(1)} s after the thaw; waiting for Stripe's late deliveries`,
    );

    // 6. Every event delivered (1 to 5 minutes late, some twice), bounded.
    const deliveriesSettled = await settledWithin(double, p.deliveriesTimeoutMs);
    const settledSeconds = Math.round((Date.now() - closedAt) / 1000);
    say(`deliveries ${deliveriesSettled ? 'settled' : 'NOT settled'} ${settledSeconds} s after every order closed`);
    // The reconciler (every 3 s here) would start a REFUND_REQUIRED row's refund: give it the time to (it should not).
    await sleep(5_000);

    // 7. What Stripe and the stores hold now.
    const rows = await stores.orders.getOrders(accepted);
    const events = double.events();
    const succeededEventsOf = (intentId: string) =>
      events.filter((e) => e.type === 'payment_intent.succeeded' && (e.data.object as { id?: string }).id === intentId);
    const recorded = new Map(
      await Promise.all(
        accepted.map(async (orderNo) => [orderNo, await stores.payments.paymentIntentsOf(orderNo)] as const),
      ),
    );
    const payments = new Map(
      await Promise.all(
        accepted.map(async (orderNo) => [orderNo, await stores.payments.paymentsOfOrder(orderNo)] as const),
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
        ...(shown.get(orderNo) ?? []),
        ...atStripe(orderNo),
      ]);

    // noUnitReleasedBeforeItsIntentCancelled
    const releaseViolations: string[] = [];
    const everyDeadlineSampled = samples.some((s) => s.pastDeadline === placed.length);
    if (!everyDeadlineSampled)
      releaseViolations.push('no sample during the freeze saw every placed order past its deadline');
    for (const orderNo of accepted) {
      const row = rows.get(orderNo);
      if (row?.status !== 'CANCELLED') continue;
      const ids = intentsOf(orderNo);
      const cancelledAt = row.cancelledAt?.getTime() ?? 0;
      // Every order here opened its payment: none may close while Stripe cannot say its intents are cancelled.
      if (cancelledAt >= from && cancelledAt <= thawedAt)
        releaseViolations.push(
          `${orderNo}: cancelled while Stripe was frozen (intents ${[...ids].join(', ') || 'none'})`,
        );
      for (const id of ids) {
        const intent = double.intent(id);
        if (intent?.status !== 'canceled')
          releaseViolations.push(`${orderNo}: CANCELLED, its intent ${id} ${intent?.status ?? 'unknown'} at Stripe`);
        // canceled_at is in whole seconds, rounded down: later than the order's cancel, the unit went first.
        else if (intent.canceled_at && intent.canceled_at * 1_000 > cancelledAt)
          releaseViolations.push(
            `${orderNo}: cancelled at ${row.cancelledAt?.toISOString()}, before Stripe cancelled ${id} (${new Date(intent.canceled_at * 1_000).toISOString()})`,
          );
      }
    }
    for (const order of unpaidPlaced) {
      const status = rows.get(order.orderNo)?.status;
      if (status !== 'CANCELLED') releaseViolations.push(`${order.orderNo}: never paid, ${status ?? 'no row'}`);
    }

    // inTimePaymentsNotRefunded
    const inTime = confirmed.filter((c) => c.at < c.deadline);
    const paidViolations: string[] = [...payFailures];
    for (const c of confirmed)
      if (c.at >= c.deadline) paidViolations.push(`${c.orderNo}: confirmed ${c.at - c.deadline} ms after its deadline`);
    for (const c of inTime) {
      const status = rows.get(c.orderNo)?.status;
      const refunds = double.refundsOf(c.intentId);
      const refundRows = (payments.get(c.orderNo) ?? []).filter((row) => row.outcome !== 'APPLIED');
      if (status !== 'PAID')
        paidViolations.push(`${c.orderNo}: paid ${c.deadline - c.at} ms before its deadline, ${status}`);
      if (refunds.length > 0) paidViolations.push(`${c.orderNo}: ${refunds.length} refunds of ${c.intentId} at Stripe`);
      for (const row of refundRows)
        paidViolations.push(`${c.orderNo}: payment ${row.eventId} ${row.outcome} ${row.refundReason ?? ''}`);
    }

    // foreignIntentsIgnored
    const foreignViolations: string[] = [];
    const foreignAnswers: string[] = [];
    for (const intent of foreign) {
      const orderNo = intent.metadata.orderNo ?? '';
      const eventIds = succeededEventsOf(intent.id).map((e) => e.id);
      const answers = tap.answers.filter((a) => a.type === 'payment_intent.succeeded' && a.objectId === intent.id);
      foreignAnswers.push(...answers.map((a) => `${a.status} ${a.outcome}`));
      const rowsFound = [
        ...(await Promise.all([intent.id, ...eventIds].map((id) => stores.payments.getPayment(id)))).filter(
          (r) => r !== null,
        ),
        ...(await stores.payments.paymentsOfOrder(orderNo)),
      ];
      const refunds = double.refundsOf(intent.id);
      if (double.intent(intent.id)?.status !== 'succeeded')
        foreignViolations.push(`${intent.id}: ${double.intent(intent.id)?.status} at Stripe, not paid`);
      if (eventIds.length === 0 || answers.length === 0)
        foreignViolations.push(`${intent.id}: its payment event was never delivered`);
      for (const a of answers)
        if (a.status !== 200 || a.outcome !== 'IGNORED')
          foreignViolations.push(`${intent.id}: ${a.eventId} answered ${a.status} ${a.outcome}`);
      if (rowsFound.length > 0) foreignViolations.push(`${intent.id}: ${rowsFound.length} payment rows`);
      if (refunds.length > 0) foreignViolations.push(`${intent.id}: ${refunds.length} refunds at Stripe`);
    }

    // everyPaidOrderPaidOnce
    const onceViolations: string[] = [];
    if (!deliveriesSettled)
      onceViolations.push(`Stripe's deliveries not settled within ${p.deliveriesTimeoutMs / 1000} s`);
    let learntFromRead = 0;
    let learntFromEvent = 0;
    let learntFromCatchUp = 0;
    // Who recorded each payment first: the catch-up reads events still undelivered (these are minutes late), so it
    // may record one before its first delivery, which then answers DUPLICATE.
    const recordedBy = new Map(
      (await stores.payments.paymentEvidence([...payments.values()].flat().map((p) => p.eventId))).map((e) => [
        e.eventId,
        e.source,
      ]),
    );
    const paymentAnswers: string[] = [];
    for (const orderNo of accepted) {
      const row = rows.get(orderNo);
      if (row?.status !== 'PAID') continue;
      const rowsOfOrder = payments.get(orderNo) ?? [];
      const [payment] = rowsOfOrder;
      if (rowsOfOrder.length !== 1 || payment?.outcome !== 'APPLIED' || !payment.providerRef) {
        onceViolations.push(
          `${orderNo}: PAID with payment rows ${JSON.stringify(rowsOfOrder.map((r) => [r.eventId, r.outcome, r.providerRef]))}`,
        );
        continue;
      }
      const intentId = payment.providerRef;
      const caughtUp = recordedBy.get(payment.eventId) === 'catch-up';
      if (payment.eventId === intentId) learntFromRead++;
      else if (caughtUp) learntFromCatchUp++;
      else learntFromEvent++;
      if (double.intent(intentId)?.status !== 'succeeded')
        onceViolations.push(`${orderNo}: paid by ${intentId}, ${double.intent(intentId)?.status} at Stripe`);
      const eventIds = new Set(succeededEventsOf(intentId).map((e) => e.id));
      const answers = tap.answers
        .filter((a) => a.type === 'payment_intent.succeeded' && a.objectId === intentId)
        .sort((a, b) => a.at - b.at);
      paymentAnswers.push(...answers.map((a) => `${a.status} ${a.outcome}`));
      if (eventIds.size === 0 || answers.length === 0)
        onceViolations.push(`${orderNo}: ${intentId}'s event never delivered`);
      answers.forEach((a, i) => {
        // The first delivery of the event that paid the order is its verdict (or recorded, judged later).
        const first = i === 0 && payment.eventId === a.eventId && !caughtUp;
        const expected = first ? 'APPLIED' : 'DUPLICATE';
        const ok =
          (a.status === 200 && a.outcome === expected) || (first && a.status === 202 && a.outcome === 'RECEIVED');
        if (!ok)
          onceViolations.push(
            `${orderNo}: delivery ${i + 1} of ${a.eventId} answered ${a.status} ${a.outcome}, not ${expected} (paid by ${payment.eventId})`,
          );
      });
    }
    // No refund at Stripe at all in this round.
    const refundsAtStripe = double.callsTo('POST', '/v1/refunds');

    // The intents at Stripe naming our orders that no order recorded nor showed (opened behind a hung request).
    const ourIntents = double
      .intents()
      .filter((i) => i.metadata.deployment === ourTag && accepted.includes(i.metadata.orderNo ?? ''));
    const unrecorded = ourIntents.filter((i) => !intentsOf(i.metadata.orderNo ?? '').has(i.id));

    // Deliveries: by status, duplicates, how late the first attempt of each event came.
    const eventCreated = new Map(events.map((e) => [e.id, e.created * 1_000]));
    const firstAttempts = double.deliveries.filter((d) => d.attempt === 1 && !d.duplicate);
    const lateness = firstAttempts.flatMap((d) => {
      const created = eventCreated.get(d.eventId);
      return created === undefined ? [] : [(d.at - created) / 1_000];
    });
    const statusOf = (orderNo: string) => rows.get(orderNo)?.status ?? 'no row';

    const checkouts = result.requests.filter((r) => r.kind === 'checkout' && r.sentAt >= from && r.sentAt <= thawedAt);
    const checks: Record<StripeLateCheck, boolean> = {
      checkoutsAnsweredDuringFreeze:
        checkouts.length > 0 && checkouts.every((r) => r.outcome === 202) && freeze.late === 0,
      noUnitReleasedBeforeItsIntentCancelled: sampleViolations.length === 0 && releaseViolations.length === 0,
      inTimePaymentsNotRefunded: inTime.length >= paidPlaced.length && paidViolations.length === 0,
      foreignIntentsIgnored: foreign.length > 0 && foreignViolations.length === 0,
      everyPaidOrderPaidOnce: onceViolations.length === 0 && refundsAtStripe.length === 0,
      everyOrderClosed: open.length === 0,
    };
    const figures = {
      frozenSeconds: Math.round((thawedAt - from) / 100) / 10,
      paymentWindow: config.paymentWindow,
      placedBeforeFreeze: placed.length,
      deadlinesAfterFreezeStartSeconds: {
        first: Math.round((firstDeadline - from) / 100) / 10,
        last: Math.round((lastDeadline - from) / 100) / 10,
      },
      placed: {
        paid: countBy(paidPlaced.map((o) => statusOf(o.orderNo))),
        unpaid: countBy(unpaidPlaced.map((o) => statusOf(o.orderNo))),
        paidSecondsBeforeDeadline: minMax(
          inTime.filter((c) => paidPlaced.some((o) => o.orderNo === c.orderNo)).map((c) => (c.deadline - c.at) / 1_000),
        ),
      },
      paidLearntFrom: { intentRead: learntFromRead, webhook: learntFromEvent, catchUp: learntFromCatchUp },
      duringFreeze: {
        samples: samples.length,
        placedPastDeadline: minMax(samples.map((s) => s.pastDeadline)),
        awaitingInView: minMax(samples.map((s) => s.awaitingInView)),
        awaitingInMysql: minMax(samples.map((s) => s.awaitingInMysql)),
        heldInRedis: minMax(samples.map((s) => s.heldInRedis)),
        redisReserved: minMax(samples.flatMap((s) => (s.redisReserved === null ? [] : [s.redisReserved]))),
      },
      checkoutsDuringFreeze: countBy(checkouts.map((r) => String(r.outcome))),
      slowestDuringFreeze: freeze.slowest,
      ordersMadeDuringFreeze: {
        ...madeDuringFreeze,
        undecided: undecided.length,
        final: countBy(frozenOrders.map((o) => statusOf(o.orderNo))),
        // Orders whose opening never came back (no intent recorded): their close has nothing to cancel at Stripe.
        cancelledWithoutIntent: countBy(
          frozenOrders.flatMap((o) => {
            const row = rows.get(o.orderNo);
            if (row?.status !== 'CANCELLED' || intentsOf(o.orderNo).size > 0) return [];
            const at = row.cancelledAt?.getTime() ?? 0;
            return [at <= thawedAt ? 'duringFreeze' : 'afterThaw'];
          }),
        ),
      },
      deliveries: {
        settled: deliveriesSettled,
        settledSecondsAfterEveryOrderClosed: settledSeconds,
        attempts: double.deliveries.length,
        byStatus: countBy(double.deliveries.map((d) => String(d.status ?? d.error))),
        duplicatesDelivered: double.deliveries.filter((d) => d.duplicate).length,
        lateSeconds: minMax(lateness),
        answers: countBy(tap.answers.map((a) => `${a.type} ${a.outcome}`)),
        ourPaymentEvents: countBy(paymentAnswers),
      },
      refundsAtStripe: refundsAtStripe.length,
      foreignIntents: { count: foreign.length, answers: countBy(foreignAnswers) },
      intentsAtStripe: countBy(ourIntents.map((i) => i.status)),
      unrecordedIntents: countBy(unrecorded.map((i) => `${i.status} (order ${statusOf(i.metadata.orderNo ?? '')})`)),
    };
    violations.push(
      ...sampleViolations.slice(0, 20),
      ...releaseViolations,
      ...paidViolations,
      ...foreignViolations,
      ...onceViolations,
      ...undecided.slice(0, 10).map((orderNo) => `${orderNo}: neither payable nor closed after the thaw`),
      ...open.slice(0, 10).map((orderNo) => `${orderNo}: still running`),
      ...refundsAtStripe.slice(0, 10).map((c) => `refund asked at Stripe: ${JSON.stringify(c.form)}`),
    );
    return { sku, result, plan, t0, accepted, checks, figures, violations: [...new Set(violations)], freeze };
  } finally {
    double.setWebhook(null);
    await tap.stop();
  }
}

function minMax(values: number[]): { min: number; max: number } | null {
  if (values.length === 0) return null;
  const round = (v: number) => Math.round(v * 10) / 10;
  return { min: round(Math.min(...values)), max: round(Math.max(...values)) };
}

/** Whether the double has no delivery waiting, ready or in flight within `timeoutMs` (and stays so a moment). */
export async function settledWithin(double: StripeDouble, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) return false;
    const timer = new AbortController();
    const settled = await Promise.race([
      double.settled().then(() => true),
      sleep(left, false, { signal: timer.signal }).catch(() => false),
    ]);
    timer.abort();
    if (!settled) return false;
    // An answer can make a new event (a refund asked, say): settled only if nothing new came.
    const before = double.deliveries.length;
    await sleep(1_000);
    if (double.deliveries.length === before) {
      const again = await Promise.race([double.settled().then(() => true), sleep(10, false)]);
      if (again) return true;
    }
  }
}

/**
 * A pass-through in front of the API's Stripe webhook: each delivery is forwarded as it came (body and
 * signature), the API's answer returned as it is, and recorded with the event it answered.
 */
export async function startWebhookTap(
  target: string,
): Promise<{ url: string; answers: TapAnswer[]; stop(): Promise<void> }> {
  const answers: TapAnswer[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const at = Date.now();
        let status = 502;
        let text = '';
        try {
          const answer = await fetch(target, {
            method: 'POST',
            headers: {
              'content-type': req.headers['content-type'] ?? 'application/json',
              'stripe-signature': String(req.headers['stripe-signature'] ?? ''),
            },
            body,
            signal: AbortSignal.timeout(15_000),
          });
          status = answer.status;
          text = await answer.text();
        } catch (err) {
          text = JSON.stringify({ error: { code: 'TAP', message: String(err) } });
        }
        let event: { id?: string; type?: string; data?: { object?: { id?: string } } } = {};
        let outcome = '';
        try {
          event = JSON.parse(body) as typeof event;
          const parsed = JSON.parse(text) as { outcome?: string; error?: { code?: string } };
          outcome = parsed.outcome ?? parsed.error?.code ?? '';
        } catch {
          outcome = outcome || 'unparsed';
        }
        answers.push({
          eventId: event.id ?? '',
          type: event.type ?? '',
          objectId: event.data?.object?.id ?? '',
          status,
          outcome,
          at,
        });
        if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
        res.end(text);
      })();
    });
  });
  const served = await serveOnLoopback(server);
  return { url: `${served.url}/api/payments/stripe`, answers, stop: served.stop };
}

/** Reads orders as their shoppers do (retried across APIs): status, the PaymentIntent shown, the deadline. */
export function orderViews(
  plan: TrafficPlan,
  result: TrafficResult,
  auth: ShopperAuth,
): (orderNo: string, userId: string) => Promise<{ status?: string; intentId?: string; deadline?: number }> {
  return async (orderNo, userId) => {
    const read = await retrying(plan, 'read', result, async (api) =>
      fetch(`${api}/api/orders/${orderNo}`, {
        headers: { authorization: `Bearer ${await auth.issue(userId)}` },
        signal: AbortSignal.timeout(5_000),
      }),
    );
    const body = (read.status === 200 ? read.body : {}) as {
      status?: string;
      paymentDeadline?: string;
      paymentIntent?: { id: string };
    };
    return {
      status: body.status,
      intentId: body.paymentIntent?.id,
      deadline: body.paymentDeadline ? Date.parse(body.paymentDeadline) : undefined,
    };
  };
}

/** Listens on a free loopback port; its base URL, and a stop that drops its connections. */
export async function serveOnLoopback(server: Server): Promise<{ url: string; stop(): Promise<void> }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
