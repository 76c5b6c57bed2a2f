/**
 * Nothing Stripe knows stays unknown to us (docs/fault-tolerance.md, "Money taken back" and "Catching up with the
 * provider"), against the Stripe double over stripe-mock: refunds made in Stripe's Dashboard and card holders'
 * disputes move a paid order to REFUNDED or DISPUTED, with its unit still sold; events Stripe could not deliver are
 * caught up by PaymentCatchUpWorkflow, each payment applied exactly once. On the real stack: the API (with its payment
 * owner) with PAYMENT_PROVIDER=stripe, a production worker, MySQL, Redis, Temporal.
 */
import { CATCH_UP_WORKFLOW_TYPE } from '../src/model/workflow-types.js';
import { randomUUID } from 'node:crypto';
import type Stripe from 'stripe';
import { describe, expect } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { stripeClient } from '../src/payments/providers/stripe/api.js';
import { ensureCatchUpSchedule } from '../src/workers/schedules.js';
import { catchUpScheduleId } from '../src/model/catch-up-workflow.js';
import type { PaymentCatchUpWorkflow } from '../src/workflows/payments.js';
import { waitFor } from '../stack/wait-for.js';
import { TEST_ADMIN_TOKEN } from './helpers/app.js';
import { saleReport } from './helpers/fixtures.js';
import { httpRequest } from './helpers/http.js';
import type { PerQueueTestbed } from './helpers/per-queue.js';
import { stripeTestbedTest } from './helpers/stack-test.js';
import { signedStripeEvent, type StripeApi } from './helpers/stripe-api.js';
import { checkoutWithIntent } from './helpers/stripe-orders.js';
import { settingsOf } from '../toolkit/provider-config.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { stripe as stripeProvider } from '../src/payments/providers/stripe/definition.js';

const WEBHOOK_SECRET = 'whsec_flashcheckouttest';
const SECRET_KEY = 'sk_test_flashcheckout';
/** Connection refused: an endpoint that is down, or a route a deploy dropped. */
const DEAD_ENDPOINT = 'http://127.0.0.1:1/api/payments/stripe';
const taskQueue = `knowledge-${randomUUID()}`;

/** The file's worker on `taskQueue`, the API a shopper uses, Stripe's webhook pointed at it. */
interface Shop {
  testbed: PerQueueTestbed;
  stripeApi: StripeApi;
  api: string;
  auth: ShopperAuth;
  /** Someone at the Stripe account's Dashboard: the same account's key, none of our metadata. */
  dashboard: Stripe;
}

const it = stripeTestbedTest(
  {
    STRIPE_SECRET_KEY: SECRET_KEY,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    STRIPE_DEPLOYMENT_TAG: 'flash-checkout-knowledge-test',
    STRIPE_CATCH_UP_INTERVAL: '10m',
    // Long: the orders here are paid by their events (or the catch-up), never by the close at their deadline.
    PAYMENT_WINDOW: '10m',
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_WEBHOOK: 'off',
    RATE_LIMIT_CHECKOUT: 'off',
  },
  // Retries after a non-2xx come within a second here, then the event is given up (Stripe: three days).
  { delivery: { retryScheduleMs: [200, 400] } },
).extend('shop', { scope: 'file' }, async ({ testbed, stripeApi }, { onCleanup }): Promise<Shop> => {
  // The catch-up Schedule a test creates on this file's queue goes with the file.
  onCleanup(() =>
    testbed.temporal.schedule
      .getHandle(catchUpScheduleId(taskQueue))
      .delete()
      .catch(() => undefined),
  );
  // No refund owner: nothing here is ours to refund, and the refunds table is shared with other files.
  await testbed.startWorker(taskQueue);
  const api = await testbed.serve(taskQueue);
  stripeApi.setWebhook(`${api}/api/payments/stripe`, WEBHOOK_SECRET);
  return {
    testbed,
    stripeApi,
    api,
    auth: new ShopperAuth(testbed.config),
    dashboard: stripeClient(settingsOf(testbed.config, stripeProvider)!),
  };
});
// Stood up before the first test, under the hook's timeout: the tests' own 60 s are for what they do.
it.beforeAll(({ shop }) => {
  expect(shop.api).toBeTruthy();
});

interface PaidOrder {
  orderNo: string;
  sku: string;
  token: string;
  intentId: string;
  totalCents: number;
}

/** A shopper's checkout of one unit and its PaymentIntent, once the order view shows it. */
async function orderWithIntent({ testbed, api, auth }: Shop): Promise<PaidOrder> {
  const order = await checkoutWithIntent({ api, auth, stores: testbed.stores, redis: testbed.redis });
  return { ...order, intentId: order.intent.id };
}

const readOrder = async ({ api }: Shop, order: { orderNo: string; token: string }) =>
  (await httpRequest(api, 'GET', `/api/orders/${order.orderNo}`, { token: order.token })).body;

const untilStatus = (shop: Shop, order: { orderNo: string; token: string }, status: string, timeoutMs = 20_000) =>
  waitFor(async () => ((await readOrder(shop, order))?.status === status ? readOrder(shop, order) : false), {
    what: `${order.orderNo} ${status}`,
    timeoutMs,
  });

/** Paid at Stripe, and closed: PAID as its row decided, then its workflow told and done (its unit sold in Redis). */
async function paidOrder(shop: Shop): Promise<PaidOrder> {
  const order = await orderWithIntent(shop);
  shop.stripeApi.confirm(order.intentId, 'succeeded');
  await untilStatus(shop, order, 'PAID');
  await untilClosed(shop, order);
  return order;
}

/** The order's workflow has ended (every closing step done). */
const untilClosed = ({ testbed }: Shop, order: { orderNo: string }) =>
  testbed.temporal.workflow
    .getHandle(orderWorkflowId(order.orderNo))
    .result()
    .catch(() => undefined);

const adminPayments = async ({ api }: Shop, orderNo: string) =>
  (await httpRequest(api, 'GET', `/api/admin/orders/${orderNo}/payments`, { token: TEST_ADMIN_TOKEN })).body;

describe('money taken back after the order was paid', () => {
  it("a refund made in Stripe's Dashboard: part of it leaves the order PAID, all of it makes it REFUNDED; the unit stays sold", async ({
    testbed,
    stripeApi,
    shop,
  }) => {
    const { dashboard } = shop;
    const order = await paidOrder(shop);
    await dashboard.refunds.create({ payment_intent: order.intentId, amount: 500 });
    const partly = await waitFor(
      async () => ((await readOrder(shop, order))?.refundedCents === 500 ? readOrder(shop, order) : false),
      {
        what: 'the partial refund on the order',
        timeoutMs: 15_000,
      },
    );
    expect(partly).toMatchObject({ status: 'PAID', refundedCents: 500 });
    await dashboard.refunds.create({ payment_intent: order.intentId });
    const refunded = await untilStatus(shop, order, 'REFUNDED');
    expect(refunded).toMatchObject({ status: 'REFUNDED', refundedCents: order.totalCents });
    // Recorded against the payment, which still paid the order; nothing of ours refunded it.
    const admin = await adminPayments(shop, order.orderNo);
    expect(admin.payments).toMatchObject([{ outcome: 'APPLIED', providerRef: order.intentId }]);
    expect(admin.takenBack).toHaveLength(2);
    expect(
      admin.takenBack.every((t: { kind: string; status: string }) => t.kind === 'REFUND' && t.status === 'SUCCEEDED'),
    ).toBe(true);
    expect(
      stripeApi.callsTo('POST', '/v1/refunds').filter((c) => c.idempotencyKey?.startsWith('flash-checkout')),
    ).toEqual([]);
    // The unit was sold and stays sold: the invariants count a REFUNDED order's unit as sold.
    const report = await saleReport(testbed.stores, testbed.redis, order.sku);
    expect(report.figures.redis).toMatchObject({ sold: 1, reserved: 0 });
    expect(report.figures.mysql).toMatchObject({ paid: 0, refunded: 1 });
    expect(report.ok).toBe(true);
  }, 60_000);

  it("a card holder's dispute: DISPUTED with its due_by while open; won, PAID again; a late or repeated event moves nothing back", async ({
    testbed,
    stripeApi,
    shop,
  }) => {
    const { api } = shop;
    const order = await paidOrder(shop);
    const dispute = stripeApi.dispute(order.intentId, { reason: 'product_not_received' });
    const disputed = await untilStatus(shop, order, 'DISPUTED');
    expect(disputed.dispute).toEqual({
      standing: 'OPEN',
      reason: 'product_not_received',
      dueBy: new Date(dispute.evidence_details.due_by! * 1000).toISOString(),
      amountCents: order.totalCents,
    });
    stripeApi.updateDispute(dispute.id, 'under_review');
    stripeApi.closeDispute(dispute.id, 'won');
    const won = await untilStatus(shop, order, 'PAID');
    expect(won.dispute).toMatchObject({ standing: 'WON' });
    // The first event again, signed by Stripe (a retry arriving last): the dispute stays won.
    const created = stripeApi
      .events()
      .find((e) => e.type === 'charge.dispute.created' && (e.data.object as { id: string }).id === dispute.id)!;
    const { payload, signature } = signedStripeEvent(
      WEBHOOK_SECRET,
      created.type,
      created.data.object as unknown as Record<string, unknown>,
      created.id,
    );
    const again = await httpRequest(api, 'POST', '/api/payments/stripe', {
      raw: payload,
      headers: { 'stripe-signature': signature },
    });
    expect(again.body).toMatchObject({ outcome: 'RECORDED' });
    expect(await readOrder(shop, order)).toMatchObject({ status: 'PAID', dispute: { standing: 'WON' } });
    expect((await saleReport(testbed.stores, testbed.redis, order.sku)).ok).toBe(true);
  }, 60_000);

  it('a dispute lost: REFUNDED, the unit still sold; a dispute of an intent not ours is ignored', async ({
    testbed,
    stripeApi,
    shop,
  }) => {
    const { dashboard } = shop;
    const order = await paidOrder(shop);
    const dispute = stripeApi.dispute(order.intentId);
    await untilStatus(shop, order, 'DISPUTED');
    stripeApi.closeDispute(dispute.id, 'lost');
    const lost = await untilStatus(shop, order, 'REFUNDED');
    expect(lost).toMatchObject({ dispute: { standing: 'LOST', reason: 'fraudulent' } });
    const report = await saleReport(testbed.stores, testbed.redis, order.sku);
    expect(report.figures.redis).toMatchObject({ sold: 1 });
    expect(report.ok).toBe(true);

    // Someone else's payment on the same account, disputed: not ours, nothing recorded.
    const foreign = await dashboard.paymentIntents.create({ amount: 700, currency: 'usd' });
    stripeApi.confirm(foreign.id, 'succeeded');
    const theirs = stripeApi.dispute(foreign.id);
    const event = await waitFor(
      async () =>
        stripeApi
          .events()
          .find((e) => e.type === 'charge.dispute.created' && (e.data.object as { id: string }).id === theirs.id) ??
        false,
      { what: 'the foreign dispute event', timeoutMs: 10_000 },
    );
    await waitFor(async () => stripeApi.deliveries.some((d) => d.eventId === event.id && d.status === 200), {
      what: 'the foreign dispute delivered',
      timeoutMs: 10_000,
    });
    expect(await testbed.stores.refunds.getTakeback(theirs.id)).toBeNull();
  }, 60_000);
});

describe('events Stripe did not deliver are caught up', () => {
  it('the webhook dropped for a window: the catch-up applies every payment of it exactly once, and a second run changes nothing', async ({
    testbed,
    stripeApi,
    shop,
  }) => {
    const { api } = shop;
    const orders = await Promise.all([1, 2, 3, 4].map(() => orderWithIntent(shop)));
    stripeApi.setWebhook(DEAD_ENDPOINT, WEBHOOK_SECRET);
    try {
      for (const order of orders) stripeApi.confirm(order.intentId, 'succeeded');
      const succeeded = await waitFor(
        () => {
          const events = stripeApi
            .events()
            .filter(
              (e) =>
                e.type === 'payment_intent.succeeded' &&
                orders.some((o) => o.intentId === (e.data.object as { id: string }).id),
            );
          return events.length === orders.length && events;
        },
        { what: 'the four payments made at Stripe', timeoutMs: 10_000 },
      );
      // Stripe gives each up: three attempts refused, never delivered.
      await waitFor(
        () =>
          succeeded.every(
            (e) => stripeApi.deliveries.filter((d) => d.eventId === e.id && d.status === null).length >= 3,
          ),
        { what: 'the events given up', timeoutMs: 15_000 },
      );
      for (const order of orders) expect((await readOrder(shop, order)).status).toBe('AWAITING_PAYMENT');
    } finally {
      stripeApi.setWebhook(`${api}/api/payments/stripe`, WEBHOOK_SECRET);
    }

    const run = () =>
      testbed.temporal.workflow.execute<typeof PaymentCatchUpWorkflow>(CATCH_UP_WORKFLOW_TYPE, {
        taskQueue,
        workflowId: `catch-up-test-${randomUUID()}`,
        args: [{ provider: 'stripe', settleSeconds: 0 }],
      });
    const first = await run();
    // Each judged as it was recorded (its order awaited payment): applied, the order PAID; its workflow told after.
    expect(first.outcomes.APPLIED).toBeGreaterThanOrEqual(orders.length);
    for (const order of orders) await untilStatus(shop, order, 'PAID', 30_000);
    for (const order of orders) await untilClosed(shop, order);
    for (const order of orders) {
      const payments = await testbed.stores.payments.paymentsOfOrder(order.orderNo);
      expect(payments).toMatchObject([{ outcome: 'APPLIED', providerRef: order.intentId }]);
      const evidence = await testbed.stores.payments.paymentEvidence([payments[0]!.eventId]);
      expect(evidence.map((e) => e.source)).toEqual(['catch-up']);
    }
    // Read again (the window overlaps): every event a duplicate of what is recorded, nothing paid twice.
    const second = await run();
    expect(second.outcomes.RECEIVED ?? 0).toBe(0);
    expect(second.outcomes.DUPLICATE).toBeGreaterThanOrEqual(orders.length);
    for (const order of orders) expect(await testbed.stores.payments.paymentsOfOrder(order.orderNo)).toHaveLength(1);
    for (const order of orders) expect((await saleReport(testbed.stores, testbed.redis, order.sku)).ok).toBe(true);
  }, 90_000);

  it('runs on a Temporal Schedule at STRIPE_CATCH_UP_INTERVAL, one run at a time', async ({ shop }) => {
    // The file's queue, whose catch-up Schedule the shop deletes when the file ends.
    const { testbed } = shop;
    const config = { ...testbed.config, temporal: { ...testbed.config.temporal, taskQueue } };
    expect(await ensureCatchUpSchedule(testbed.temporal, config)).toBe('CREATED');
    expect(await ensureCatchUpSchedule(testbed.temporal, config)).toBe('UPDATED');
    const described = await testbed.temporal.schedule.getHandle(catchUpScheduleId(taskQueue)).describe();
    expect(described.spec.intervals).toMatchObject([{ every: 600_000 }]);
    expect(described.action).toMatchObject({ workflowType: CATCH_UP_WORKFLOW_TYPE, taskQueue });
    expect(described.policies.overlap).toBe('SKIP');
  });
});
