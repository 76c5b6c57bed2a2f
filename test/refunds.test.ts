/**
 * Refunds as Temporal runs them (src/workflows/refunds.ts, src/activities/refunds.ts): one RefundWorkflow per payment
 * its row says is owed, started after the commit that owed it, and by the reconciler only where none runs (two runs
 * looking at once join one; a workflow that is gone is started again); the activity asks Stripe once per payment
 * event (what a Dashboard refund gave back already is not asked again), waits for a dispute that holds the charge, and
 * reads a refund Stripe left pending again until it ends, with no event reaching us. Against the Stripe double over
 * stripe-mock (stack/stripe-double.ts), the real MySQL and Temporal of the test stack.
 *
 * The reconciler's page sees only this file's rows (`refundsScopedTo`): other files' refunds are asked of their own
 * Stripe doubles.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import type Stripe from 'stripe';
import type { StripeSettings } from '../src/payments/providers/stripe/settings.js';
import type { PaymentRow, Takeback } from '../src/db/rows.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { createRefundActivities, RefundFailureTypes } from '../src/activities/refunds.js';
import { createReconcileActivities } from '../src/activities/reconcile.js';
import { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { StartPacing } from '../src/order/start-pacing.js';
import { refundWorkflowId } from '../src/model/order-workflow.js';
import {
  disputeTakeback,
  refundTakeback,
  StripeProvider,
  stripeClient,
  stripeIdempotencyKeys,
} from '../src/payments/providers/stripe/api.js';
import type { PerQueueTestbed } from './helpers/per-queue.js';
import { stripeTestbedTest } from './helpers/stack-test.js';
import { refundsScopedTo } from './helpers/worker.js';
import { startStripeApi, type StripeApi } from './helpers/stripe-api.js';
import { settingsOf } from '../toolkit/provider-config.js';
import { stripe as stripeProvider } from '../src/payments/providers/stripe/definition.js';
import { OrderChangeNotifier } from '../src/order/status-reads.js';

const taskQueue = `refunds-${randomUUID()}`;

/** The file's worker on `taskQueue`, its default Stripe double, and the adapter's settings that ask that double. */
interface Refunder {
  testbed: PerQueueTestbed;
  stripeApi: StripeApi;
  settings: StripeSettings;
}

const it = stripeTestbedTest({
  STRIPE_SECRET_KEY: 'sk_test_flashcheckout',
  STRIPE_WEBHOOK_SECRET: 'whsec_flashcheckouttest',
  STRIPE_DEPLOYMENT_TAG: 'flash-checkout-refunds-test',
  LOG_LEVEL: 'silent',
})
  .extend('refunder', { scope: 'file' }, async ({ testbed, stripeApi }): Promise<Refunder> => {
    // The worker that runs this file's RefundWorkflows (its refundPayment asks this file's default double).
    await testbed.startWorker(taskQueue);
    return { testbed, stripeApi, settings: settingsOf(testbed.config, stripeProvider)! };
  })
  /** A Stripe whose refunds stay pending until settleRefund (and no webhook endpoint: no event reaches us). */
  .extend('pendingApi', { scope: 'file' }, async ({}, { onCleanup }) => {
    const pendingApi = await startStripeApi({ refundStatus: 'pending' });
    onCleanup(() => pendingApi.stop());
    return pendingApi;
  });

/** This file's payments: the only rows its reconciler pages see. */
const ours = new Set<string>();

/** The reconciler's refund page over this file's rows, starting workflows on this file's queue. */
function reconcilerOf(testbed: PerQueueTestbed, afterLook?: () => Promise<void>) {
  return createReconcileActivities({
    changes: new OrderChangeNotifier(testbed.redis),
    stores: refundsScopedTo(testbed.stores, (row) => ours.has(row.eventId), afterLook),
    inventory: testbed.inventory,
    orders: OrderWorkflowClient.withoutBreakers(testbed.temporal, taskQueue, new StartPacing({ maxLimit: 10 })),
    refundProviders: ['stripe'],
  });
}

/** The refund activity as Temporal runs it, asking the Stripe that `settings` name. */
const refundActivity = (testbed: PerQueueTestbed, settings: StripeSettings) =>
  createRefundActivities({
    stores: testbed.stores,
    providers: { stripe: new StripeProvider(settings) },
  }).refundPayment;

const refundRun = (testbed: PerQueueTestbed, eventId: string) =>
  testbed.temporal.workflow.getHandle(refundWorkflowId(eventId)).result();

/** Resolves for every caller once `parties` have called it: owners that looked at the same moment. */
function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const all = new Promise<void>((resolve) => (open = resolve));
  return () => {
    if (++arrived >= parties) open();
    return all;
  };
}

/**
 * A PaymentIntent paid at `api`'s Stripe (asked with `settings`), and its payment recorded REFUND_REQUIRED (money on
 * an intent no order opened: INTENT_MISMATCH), due at once.
 */
async function paymentToRefund(
  testbed: PerQueueTestbed,
  api: StripeApi,
  settings: StripeSettings,
  amountCents = 1_500,
): Promise<{ eventId: string; intentId: string; row: PaymentRow }> {
  const intent = await stripeClient(settings).paymentIntents.create({
    amount: amountCents,
    currency: 'usd',
  });
  api.confirm(intent.id, 'succeeded');
  const eventId = `evt-refunds-${randomUUID()}`;
  ours.add(eventId);
  const { row } = await testbed.stores.payments.recordPayment(
    { eventId, orderNo: newOrderNo(), amountCents, provider: 'stripe', providerRef: intent.id },
    'webhook',
    'INTENT_MISMATCH',
  );
  expect(row).toMatchObject({ outcome: 'REFUND_REQUIRED', refundReason: 'INTENT_MISMATCH' });
  return { eventId, intentId: intent.id, row };
}

/** A dispute of the double as the webhook records it (no endpoint here): through the adapter's own reading. */
const disputeTakebackOf = (dispute: Stripe.Dispute, intentId: string, orderNo: string): Takeback => ({
  ...disputeTakeback(dispute, intentId),
  provider: 'stripe',
  orderNo,
});

const refundsAsked = (api: StripeApi, intentId: string) =>
  api.callsTo('POST', '/v1/refunds').filter((call) => call.form.payment_intent === intentId);

const refundsRead = (api: StripeApi, refundId: string) => api.callsTo('GET', `/v1/refunds/${refundId}`);

describe('refunds run by Temporal', () => {
  it('two reconciler runs looking at once join one RefundWorkflow, and Stripe is asked once', async ({ refunder }) => {
    const { testbed, stripeApi, settings } = refunder;
    const { eventId, intentId } = await paymentToRefund(testbed, stripeApi, settings);
    // Both runs read the owed row before either starts its workflow.
    const bothLooked = barrier(2);
    const runs = [reconcilerOf(testbed, bothLooked), reconcilerOf(testbed, bothLooked)];
    await Promise.all(runs.map((run) => run.startOwedRefunds({ afterEventId: '', limit: 50 })));
    expect(await refundRun(testbed, eventId)).toBe('REFUNDED');
    // One run of refund-<eventId>: the second start joined the first (USE_EXISTING).
    const runsOfIt = [];
    for await (const run of testbed.temporal.workflow.list({ query: `WorkflowId = '${refundWorkflowId(eventId)}'` }))
      runsOfIt.push(run.runId);
    expect(runsOfIt).toHaveLength(1);
    const calls = refundsAsked(stripeApi, intentId);
    expect(calls.map((call) => [call.idempotencyKey, call.status])).toEqual([
      [stripeIdempotencyKeys.refund(eventId), 200],
    ]);
    const refunds = stripeApi.refundsOf(intentId);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ amount: 1_500, status: 'succeeded' });
    expect(await testbed.stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUNDED',
      refundId: refunds[0]!.id,
    });
    // Done: no run finds it owed again.
    expect((await runs[0]!.startOwedRefunds({ afterEventId: '', limit: 50 })).read).toBe(0);
    expect(refundsAsked(stripeApi, intentId)).toHaveLength(1);
  });

  it('a refund whose workflow is gone (terminated before it asked) is started again by the reconciler, and asked once', async ({
    refunder,
  }) => {
    const { testbed, stripeApi, settings } = refunder;
    const { eventId, intentId } = await paymentToRefund(testbed, stripeApi, settings);
    // Its first run on a queue no worker polls, then terminated from the Web UI: nothing was asked.
    const lost = await testbed.temporal.workflow.start('RefundWorkflow', {
      workflowId: refundWorkflowId(eventId),
      taskQueue: `no-worker-${randomUUID()}`,
      args: [{ eventId }],
    });
    await lost.terminate('test: the refund run is lost');
    const page = await reconcilerOf(testbed).startOwedRefunds({ afterEventId: '', limit: 50 });
    expect(page).toMatchObject({ read: 1, started: 1, failed: 0 });
    expect(await refundRun(testbed, eventId)).toBe('REFUNDED');
    expect(refundsAsked(stripeApi, intentId)).toHaveLength(1);
    // A run started again anyway finds the row past it and asks nothing.
    expect(await refundActivity(testbed, settings)({ eventId })).toBe('REFUNDED');
    expect(refundsAsked(stripeApi, intentId)).toHaveLength(1);
  });

  // Defect 5 of "One close" (red on 7b2150e: the full amount was asked, Stripe refused it as more than the charge
  // still held, and the payment ended REFUND_FAILED for an operator).
  it('a payment owed back after a part of it was refunded in the Dashboard: the rest is asked, and it ends REFUNDED', async ({
    refunder,
  }) => {
    const { testbed, stripeApi, settings } = refunder;
    const { eventId, intentId, row } = await paymentToRefund(testbed, stripeApi, settings);
    // A merchant refunds 500 of the 1,500 in the Dashboard (no metadata of ours); its webhook records it.
    const dashboard = await stripeClient(settings).refunds.create({ payment_intent: intentId, amount: 500 });
    await testbed.stores.refunds.recordTakeback({
      ...refundTakeback(dashboard, intentId),
      provider: 'stripe',
      orderNo: row.orderNo,
    });
    expect(await refundActivity(testbed, settings)({ eventId })).toBe('REFUNDED');
    expect(refundsAsked(stripeApi, intentId).map((call) => [call.form.amount, call.status])).toEqual([
      ['500', 200],
      ['1000', 200],
    ]);
    expect(stripeApi.refundsOf(intentId).map((refund) => refund.amount)).toEqual([1_000, 500]);
  });

  it('a payment owed back that a Dashboard refund gave back in full: REFUNDED, nothing asked', async ({ refunder }) => {
    const { testbed, stripeApi, settings } = refunder;
    const { eventId, intentId, row } = await paymentToRefund(testbed, stripeApi, settings);
    const dashboard = await stripeClient(settings).refunds.create({ payment_intent: intentId });
    await testbed.stores.refunds.recordTakeback({
      ...refundTakeback(dashboard, intentId),
      provider: 'stripe',
      orderNo: row.orderNo,
    });
    expect(await refundActivity(testbed, settings)({ eventId })).toBe('REFUNDED');
    expect(refundsAsked(stripeApi, intentId)).toHaveLength(1);
  });

  it('a refund Stripe refuses because a dispute holds the charge waits for the dispute, never REFUND_FAILED', async ({
    refunder,
  }) => {
    const { testbed, stripeApi, settings } = refunder;
    // Red on 10aac89: charge_disputed was a refusal like any other, and the row ended REFUND_FAILED for an operator.
    const { eventId, intentId, row } = await paymentToRefund(testbed, stripeApi, settings);
    const dispute = stripeApi.dispute(intentId);
    // Thrown for Temporal to ask again later, the row still owed.
    const refused = await refundActivity(testbed, settings)({ eventId }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect(refused).toMatchObject({ type: RefundFailureTypes.disputeNotRecorded, nonRetryable: false });
    expect(refundsAsked(stripeApi, intentId).map((call) => call.status)).toEqual([400]);
    expect(await testbed.stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundError: expect.stringMatching(/disputed charge/),
    });
    // The dispute, as its webhook records it (no endpoint here): the chargeback gave the money back.
    await testbed.stores.refunds.recordTakeback(disputeTakebackOf(dispute, intentId, row.orderNo));
    expect(await testbed.stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUNDED',
      refundId: dispute.id,
    });
    expect(stripeApi.refundsOf(intentId)).toEqual([]);
    // Temporal's next attempt finds it ended.
    expect(await refundActivity(testbed, settings)({ eventId })).toBe('REFUNDED');
  });

  it('a payment judged for refund after its dispute was recorded is given back by that dispute at the first refusal', async ({
    refunder,
  }) => {
    const { testbed, stripeApi, settings } = refunder;
    const intent = await stripeClient(settings).paymentIntents.create({ amount: 1_500, currency: 'usd' });
    stripeApi.confirm(intent.id, 'succeeded');
    const dispute = stripeApi.dispute(intent.id);
    const orderNo = newOrderNo();
    await testbed.stores.refunds.recordTakeback(disputeTakebackOf(dispute, intent.id, orderNo));
    // The payment's own event comes after the dispute's (Stripe does not order them): judged for refund only now.
    const eventId = `evt-refunds-${randomUUID()}`;
    ours.add(eventId);
    await testbed.stores.payments.recordPayment(
      { eventId, orderNo, amountCents: 1_500, provider: 'stripe', providerRef: intent.id },
      'webhook',
      'INTENT_MISMATCH',
    );
    expect(await refundActivity(testbed, settings)({ eventId })).toBe('REFUNDED');
    expect(await testbed.stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUNDED',
      refundId: dispute.id,
    });
    expect(stripeApi.refundsOf(intent.id)).toEqual([]);
  });

  it('an inquiry (warning_*) withdraws nothing: the payment we owe back stays to be refunded', async ({ refunder }) => {
    const { testbed, stripeApi, settings } = refunder;
    const { eventId, intentId, row } = await paymentToRefund(testbed, stripeApi, settings);
    const inquiry = stripeApi.dispute(intentId);
    await testbed.stores.refunds.recordTakeback({
      ...disputeTakebackOf({ ...inquiry, status: 'warning_needs_response' }, intentId, row.orderNo),
    });
    expect(await testbed.stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundId: null,
    });
    // Nobody's to refund afterwards: the double's charge is a real chargeback, only its record here is an inquiry.
    ours.delete(eventId);
    await testbed.stores.refunds.recordRefundProgress(
      { eventId },
      { state: 'REFUND_FAILED', refundId: null, error: 'test: an inquiry on a chargeback' },
    );
  });

  it('a refund Stripe left pending is due for a look later, read again until it ends, and never moves back', async ({
    refunder,
    pendingApi,
  }) => {
    const { testbed, settings } = refunder;
    const pendingSettings: StripeSettings = { ...settings, apiUrl: pendingApi.url };
    const toSucceed = await paymentToRefund(testbed, pendingApi, pendingSettings, 1_200);
    const toFail = await paymentToRefund(testbed, pendingApi, pendingSettings, 1_300);
    const refund = refundActivity(testbed, pendingSettings);
    for (const { eventId } of [toSucceed, toFail]) expect(await refund({ eventId })).toBe('REFUND_REQUESTED');
    const refundOf = async (eventId: string) => {
      const row = await testbed.stores.payments.getPayment(eventId);
      expect(row).toMatchObject({ outcome: 'REFUND_REQUESTED' });
      return row!.refundId!;
    };
    const succeeding = await refundOf(toSucceed.eventId);
    const failing = await refundOf(toFail.eventId);
    expect(pendingApi.refundsOf(toSucceed.intentId).map((r) => [r.id, r.status])).toEqual([[succeeding, 'pending']]);
    // Its workflow's next look (a timer later): read again while still pending, it stays REFUND_REQUESTED and is not
    // asked again.
    expect(await refund({ eventId: toSucceed.eventId })).toBe('REFUND_REQUESTED');
    expect(refundsRead(pendingApi, succeeding)).toHaveLength(1);
    expect(await refundOf(toSucceed.eventId)).toBe(succeeding);
    // The card network answers; Stripe's events about it reach no one here.
    pendingApi.settleRefund(succeeding, 'succeeded');
    pendingApi.settleRefund(failing, 'failed');
    expect(await refund({ eventId: toSucceed.eventId })).toBe('REFUNDED');
    expect(await refund({ eventId: toFail.eventId })).toBe('REFUND_FAILED');
    expect(await testbed.stores.payments.getPayment(toSucceed.eventId)).toMatchObject({
      outcome: 'REFUNDED',
      refundId: succeeding,
    });
    expect(await testbed.stores.payments.getPayment(toFail.eventId)).toMatchObject({
      outcome: 'REFUND_FAILED',
      refundId: failing,
      refundError: expect.stringMatching(/^refund failed/),
    });
    // One ask each, however many reads.
    expect(refundsAsked(pendingApi, toSucceed.intentId)).toHaveLength(1);
    expect(refundsAsked(pendingApi, toFail.intentId)).toHaveLength(1);
    // Ended: a run started anyway reads nothing, and an older word (a late `pending`) moves neither back.
    const reads = refundsRead(pendingApi, succeeding).length + refundsRead(pendingApi, failing).length;
    expect(await refund({ eventId: toSucceed.eventId })).toBe('REFUNDED');
    expect(refundsRead(pendingApi, succeeding).length + refundsRead(pendingApi, failing).length).toBe(reads);
    for (const [eventId, refundId] of [
      [toSucceed.eventId, succeeding],
      [toFail.eventId, failing],
    ] as const)
      expect(
        await testbed.stores.refunds.recordRefundProgress({ eventId }, { state: 'REFUND_REQUESTED', refundId }),
      ).toBe(false);
    expect(
      await testbed.stores.refunds.recordRefundProgress(
        { eventId: toFail.eventId },
        { state: 'REFUNDED', refundId: failing },
      ),
    ).toBe(false);
  });
});
