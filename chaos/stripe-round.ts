/**
 * The fault suite's Stripe round, stripe-freeze-sale: Stripe's API (stripe-mock) hangs (SIGSTOP)
 * for `freezeMs` mid-sale, behind an API that sells through Stripe (PAYMENT_PROVIDER=stripe).
 *
 *   before   orders placed and persisted, each with its PaymentIntent (Stripe up)
 *   frozen   shoppers keep checking out; half the placed orders are paid by Stripe's event, the
 *            other half cancelled by their shoppers, then paid anyway (money already processing)
 *   thawed   every order made during the freeze gets its PaymentIntent (or has expired and had it
 *            closed by its key), every cancelled order's PaymentIntent is closed, every payment
 *            that cannot be applied is refunded through Stripe; then the sale's invariants
 *
 * Checks beside the invariants (STRIPE_FREEZE_CHECKS): no checkout was turned away or late while
 * Stripe hung (a checkout never calls Stripe), every webhook was answered with its verdict, every
 * cancel closed its order during the freeze (the stock does not wait for Stripe), and after the
 * thaw every order made during the freeze was paid through Stripe or closed (nothing waits for a
 * PaymentIntent forever), every PaymentIntent of a closed order was closed (its workflow done),
 * every Stripe payment that could not be applied is REFUNDED.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type { AppConfig } from '../src/config/index.js';
import type { Store } from '../src/db/store.js';
import { orderWorkflowId } from '../src/order/contract.js';
import { signedStripeEvent, stripeSucceededIntent } from '../src/payments/stripe.js';
import type { ShopperAuth } from '../src/api/auth.js';
import type { SalesService } from '../src/sales/sales-service.js';
import { waitFor } from '../stack/wait-for.js';
import { countBy } from './checks.js';
import { answersDuringFreeze, deadlinesByKind, type FreezeAnswers } from './gray.js';
import { buy, retrying, type TrafficPlan, type TrafficResult } from './shoppers.js';

export const STRIPE_FREEZE_CHECKS = [
  'checkoutsAnsweredDuringFreeze',
  'webhooksAnsweredDuringFreeze',
  'cancelsClosedDuringFreeze',
  'everyOrderPaidOrClosed',
  'closedPaymentIntentsClosed',
  'stripeRefundsRefunded',
] as const;
export type StripeFreezeCheck = (typeof STRIPE_FREEZE_CHECKS)[number];

export interface StripeRoundPlan {
  freezeMs: number;
  /** Orders placed before the freeze (half paid, half cancelled during it). */
  placed: number;
  /** Shoppers checking out during the freeze, at `arrivalsPerSecond`. */
  duringFreeze: number;
  arrivalsPerSecond: number;
}

export const STRIPE_ROUND_PLAN: StripeRoundPlan = {
  freezeMs: 30_000,
  placed: 12,
  duringFreeze: 60,
  arrivalsPerSecond: 3,
};

export interface StripeRoundDeps {
  store: Store;
  temporal: Client;
  sales: SalesService;
  auth: ShopperAuth;
  config: AppConfig;
  /** An API selling through Stripe, for this round only. */
  apiUrl: string;
  webhookSecret: string;
  /** Hangs Stripe's API (SIGSTOP) and resumes it. */
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
  checks: Record<StripeFreezeCheck, boolean>;
  figures: Record<string, unknown>;
  violations: string[];
  freeze: FreezeAnswers & { from: number; until: number };
}

export async function stripeFreezeRound(deps: StripeRoundDeps, p = STRIPE_ROUND_PLAN): Promise<StripeRoundVerdict> {
  const { store, temporal, sales, auth, config, apiUrl, say } = deps;
  const sku = `CHAOS-STRIPE-FREEZE-${Date.now().toString(36)}`;
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
  const intentOf = async (orderNo: string, userId: string) => {
    const read = await retrying(plan, 'read', result, async (api) =>
      fetch(`${api}/api/orders/${orderNo}`, {
        headers: { authorization: `Bearer ${await auth.issue(userId)}` },
        signal: AbortSignal.timeout(5_000),
      }),
    );
    const body = (read.status === 200 ? read.body : {}) as { status?: string; paymentIntent?: { id: string } };
    return { status: body.status, intentId: body.paymentIntent?.id };
  };
  const pay = (orderNo: string, intentId: string) => {
    const { payload, signature } = signedStripeEvent(
      deps.webhookSecret,
      'payment_intent.succeeded',
      stripeSucceededIntent(orderNo, intentId, priceCents),
    );
    return retrying(
      plan,
      'webhook',
      result,
      (api) =>
        fetch(`${api}/api/payments/stripe`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'stripe-signature': signature },
          body: payload,
          signal: AbortSignal.timeout(10_000),
        }),
      orderNo,
    );
  };

  // 1. Before: orders placed and persisted (waiting checkouts), each with its PaymentIntent.
  const placed = await Promise.all(
    Array.from({ length: p.placed }, async (_, i) => {
      const userId = `stripe-${runId}-placed-${i}`;
      const intent = await buy(plan, userId, 20_000, true, result);
      result.intents.push(intent);
      if (intent.answer.kind !== 'accepted') throw new Error(`placing ${userId}: ${JSON.stringify(intent.answer)}`);
      const orderNo = intent.answer.orderNo;
      const { intentId } = await waitFor(
        async () => {
          const order = await intentOf(orderNo, userId);
          return order.intentId ? order : false;
        },
        { what: `the PaymentIntent of ${orderNo}`, timeoutMs: 30_000, intervalMs: 200 },
      );
      if (!intentId) throw new Error(`no PaymentIntent for ${orderNo}`);
      return { orderNo, userId, intentId };
    }),
  );
  say(`${placed.length} orders placed, each with its PaymentIntent; freezing Stripe for ${p.freezeMs / 1000} s`);

  // 2. Frozen: checkouts go on; half the placed orders are paid, half cancelled then paid anyway.
  const from = Date.now();
  deps.freezeStripe();
  const verdicts: { orderNo: string; outcome: string; status: number | string }[] = [];
  const cancelledInFreeze: string[] = [];
  let thawedAt = 0;
  try {
    const checkouts = Promise.all(
      Array.from({ length: p.duringFreeze }, async (_, i) => {
        await sleep((i / p.arrivalsPerSecond) * 1_000);
        result.intents.push(await buy(plan, `stripe-${runId}-frozen-${i}`, 20_000, false, result));
      }),
    );
    await Promise.all(
      placed.map(async (order, i) => {
        if (i % 2 === 0) {
          const answer = await pay(order.orderNo, order.intentId);
          verdicts.push({ orderNo: order.orderNo, outcome: outcomeOf(answer), status: answer.status });
          return;
        }
        const cancel = await retrying(
          plan,
          'cancel',
          result,
          async (api) =>
            fetch(`${api}/api/orders/${order.orderNo}/cancel`, {
              method: 'POST',
              headers: { authorization: `Bearer ${await auth.issue(order.userId)}` },
              signal: AbortSignal.timeout(10_000),
            }),
          order.orderNo,
        );
        result.cancels.push({
          orderNo: order.orderNo,
          status: cancel.status === 'gave-up' ? 'gave-up' : cancel.status,
        });
        // The order closes (its units back on sale) while Stripe still hangs.
        const closed = await waitFor(async () => (await intentOf(order.orderNo, order.userId)).status === 'CANCELLED', {
          what: `${order.orderNo} cancelled`,
          timeoutMs: p.freezeMs / 2,
          intervalMs: 250,
        }).catch(() => false);
        if (closed && Date.now() < from + p.freezeMs) cancelledInFreeze.push(order.orderNo);
        // Money that was already processing arrives after the cancel: refunded, through Stripe.
        const answer = await pay(order.orderNo, order.intentId);
        verdicts.push({ orderNo: order.orderNo, outcome: outcomeOf(answer), status: answer.status });
      }),
    );
    await checkouts;
    await sleep(Math.max(0, from + p.freezeMs - Date.now()));
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

  // 3. Thawed: the orders made during the freeze get their PaymentIntent and are paid, or have closed.
  const frozenOrders = result.intents.flatMap((intent) =>
    intent.answer.kind === 'accepted' && intent.userId.includes('-frozen-')
      ? [{ orderNo: intent.answer.orderNo, userId: intent.userId }]
      : [],
  );
  let paidAfterThaw = 0;
  let closedUnpaid = 0;
  const undecided: string[] = [];
  await Promise.all(
    frozenOrders.map(async ({ orderNo, userId }) => {
      const seen = await waitFor(
        async () => {
          const order = await intentOf(orderNo, userId);
          return order.intentId || (order.status !== 'AWAITING_PAYMENT' && order.status !== 'PENDING') ? order : false;
        },
        { what: `${orderNo} payable or closed`, timeoutMs: 90_000, intervalMs: 500 },
      ).catch(() => undefined);
      if (!seen) return void undecided.push(orderNo);
      if (!seen.intentId || seen.status !== 'AWAITING_PAYMENT') return void closedUnpaid++;
      const answer = await pay(orderNo, seen.intentId);
      if (outcomeOf(answer) === 'APPLIED') paidAfterThaw++;
      verdicts.push({ orderNo, outcome: outcomeOf(answer), status: answer.status });
    }),
  );
  const accepted = result.intents.flatMap((intent) =>
    intent.answer.kind === 'accepted' ? [intent.answer.orderNo] : [],
  );
  // Every order's workflow closes, so every PaymentIntent of a cancelled or expired order was closed at Stripe.
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
    { what: `every order of ${sku} closed`, timeoutMs: config.paymentWindowMs + 90_000, intervalMs: 1_000 },
  ).catch(() => ['(some still running)']);
  // Every Stripe payment that could not be applied is refunded through Stripe.
  const payments = async () => (await Promise.all(accepted.map((orderNo) => store.paymentsOfOrder(orderNo)))).flat();
  const refunds = await waitFor(
    async () => {
      const rows = (await payments()).filter((row) => row.provider === 'stripe' && row.outcome !== 'APPLIED');
      return rows.every((row) => row.outcome === 'REFUNDED') ? rows : false;
    },
    { what: `the refunds of ${sku} done`, timeoutMs: 120_000, intervalMs: 1_000 },
  ).catch(async () => (await payments()).filter((row) => row.provider === 'stripe' && row.outcome !== 'APPLIED'));

  const checkouts = result.requests.filter((r) => r.kind === 'checkout' && r.sentAt >= from && r.sentAt <= thawedAt);
  const webhooksInFreeze = result.requests.filter(
    (r) => r.kind === 'webhook' && r.sentAt >= from && r.sentAt <= thawedAt,
  );
  const checks: Record<StripeFreezeCheck, boolean> = {
    checkoutsAnsweredDuringFreeze:
      checkouts.length > 0 && checkouts.every((r) => r.outcome === 202) && freeze.late === 0,
    webhooksAnsweredDuringFreeze: webhooksInFreeze.length > 0 && webhooksInFreeze.every((r) => r.outcome === 200),
    cancelsClosedDuringFreeze: cancelledInFreeze.length === Math.floor(p.placed / 2),
    everyOrderPaidOrClosed: undecided.length === 0,
    closedPaymentIntentsClosed: open.length === 0,
    stripeRefundsRefunded: refunds.length > 0 && refunds.every((row) => row.outcome === 'REFUNDED'),
  };
  const figures = {
    frozenSeconds: Math.round((thawedAt - from) / 100) / 10,
    placedBeforeFreeze: placed.length,
    checkoutsDuringFreeze: countBy(checkouts.map((r) => String(r.outcome))),
    slowestDuringFreeze: freeze.slowest,
    cancelsClosedDuringFreeze: cancelledInFreeze.length,
    webhookVerdicts: countBy(verdicts.map((v) => v.outcome)),
    ordersMadeDuringFreeze: { paidAfterThaw, closedUnpaid, undecided: undecided.length },
    refunds: countBy(refunds.map((row) => row.outcome)),
    refundAttempts: refunds.map((row) => row.refundAttempts).sort((a, b) => a - b),
  };
  const violations = [
    ...undecided.slice(0, 10).map((orderNo) => `${orderNo}: neither payable nor closed 90 s after the thaw`),
    ...open.slice(0, 10).map((orderNo) => `${orderNo}: still running (its PaymentIntent not closed?)`),
    ...refunds
      .filter((row) => row.outcome !== 'REFUNDED')
      .slice(0, 10)
      .map((row) => `${row.eventId}: ${row.outcome} (${row.refundError ?? 'no error'})`),
  ];
  return { sku, result, plan, t0, accepted, checks, figures, violations, freeze };
}

function outcomeOf(answer: Awaited<ReturnType<typeof retrying>>): string {
  if (answer.status === 'gave-up') return 'gave-up';
  return (answer.body as { outcome?: string; error?: { code?: string } }).outcome ?? `${answer.status}`;
}
