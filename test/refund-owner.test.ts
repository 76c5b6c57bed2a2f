/**
 * The refund owner (src/payments/refunds.ts) holds each refund under a lease kept in its payment's row (MySQL's
 * clock): two owners looking at once ask Stripe once; a row claimed by an owner that died is asked again only when
 * its lease ends; a refund Stripe left pending is read again until it ends, with no event reaching us. Against the
 * Stripe double over stripe-mock (stack/stripe-double.ts) and the real MySQL of the test stack.
 *
 * Every process's refund owner looks at every due refund of the one MySQL (as in production: one Stripe account).
 * The owners here see only this file's rows (`ownersStore`), so they never ask this file's double about another
 * file's payment; rows are made due only where an owner of this file asks for them at once.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StripeSettings } from '../src/payments/providers/stripe/settings.js';
import { createMysqlPool } from '../src/db/pool.js';
import type { Pool } from 'mysql2/promise';
import { openStores, type Stores } from '../src/db/stores.js';
import type { PaymentRow, Takeback } from '../src/db/rows.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { RefundOwner, type RefundOwnerPacing } from '../src/payments/refunds.js';
import {
  disputeTakeback,
  StripeProvider,
  stripeClient,
  stripeIdempotencyKeys,
} from '../src/payments/providers/stripe/api.js';
import type Stripe from 'stripe';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { refundsScopedTo } from './helpers/worker.js';
import { startStripeApi, type StripeApi } from './helpers/stripe-api.js';
import { settingsOf } from '../src/payments/providers/registry.js';
import { stripe as stripeProvider } from '../src/payments/providers/stripe/definition.js';

let stripeApi: StripeApi;
/** A Stripe whose refunds stay pending until settleRefund (and no webhook endpoint: no event reaches us). */
let pendingApi: StripeApi;
let settings: StripeSettings;
let pendingSettings: StripeSettings;
let pool: Pool;
let stores: Stores;

beforeAll(async () => {
  [stripeApi, pendingApi] = await Promise.all([startStripeApi(), startStripeApi({ refundStatus: 'pending' })]);
  const config = testConfig({
    PAYMENT_PROVIDER: 'stripe',
    STRIPE_SECRET_KEY: 'sk_test_flashcheckout',
    STRIPE_WEBHOOK_SECRET: 'whsec_flashcheckouttest',
    STRIPE_API_URL: stripeApi.url,
    STRIPE_DEPLOYMENT_TAG: 'flash-checkout-refund-owner-test',
    LOG_LEVEL: 'silent',
  });
  settings = settingsOf(config, stripeProvider)!;
  pendingSettings = { ...settings, apiUrl: pendingApi.url };
  pool = createMysqlPool(config);
  stores = openStores(pool);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([stripeApi?.stop(), pendingApi?.stop(), pool?.end()]);
});

/** This file's payments: the only rows its owners see. */
const ours = new Set<string>();

/** The store as an owner of this file uses it: only this file's rows are its refunds. */
const ownersStore = (afterLook?: () => Promise<void>): Stores =>
  refundsScopedTo(stores, (row) => ours.has(row.eventId), afterLook);

function ownerOf(api: 'default' | 'pending', pacing: Partial<RefundOwnerPacing> = {}, afterLook?: () => Promise<void>) {
  return new RefundOwner({
    stores: ownersStore(afterLook),
    providers: { stripe: new StripeProvider(api === 'default' ? settings : pendingSettings) },
    pacing,
  });
}

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
 * A PaymentIntent paid at `api`'s Stripe, and its payment recorded REFUND_REQUIRED (money on an intent no order
 * opened: INTENT_MISMATCH), due at once.
 */
async function paymentToRefund(
  api: StripeApi,
  amountCents = 1_500,
): Promise<{ eventId: string; intentId: string; row: PaymentRow }> {
  const intent = await stripeClient(api === stripeApi ? settings : pendingSettings).paymentIntents.create({
    amount: amountCents,
    currency: 'usd',
  });
  api.confirm(intent.id, 'succeeded');
  const eventId = `evt-refund-owner-${randomUUID()}`;
  ours.add(eventId);
  const { row } = await stores.payments.recordPayment(
    { eventId, orderNo: newOrderNo(), amountCents, provider: 'stripe', providerRef: intent.id },
    'webhook',
    'INTENT_MISMATCH',
  );
  expect(row).toMatchObject({ outcome: 'REFUND_REQUIRED', refundReason: 'INTENT_MISMATCH', refundAttempts: 0 });
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

describe('the refund owner', () => {
  it('two owners looking at once: one takes the refund and asks Stripe once', async () => {
    const { eventId, intentId } = await paymentToRefund(stripeApi);
    // Both owners read the due row before either claims it.
    const bothLooked = barrier(2);
    const owners = [ownerOf('default', {}, bothLooked), ownerOf('default', {}, bothLooked)];
    const asked = await Promise.all(owners.map((owner) => owner.runOnce()));
    const calls = refundsAsked(stripeApi, intentId);
    expect(calls.map((call) => [call.idempotencyKey, call.status])).toEqual([
      [stripeIdempotencyKeys.refund(eventId), 200],
    ]);
    expect([...asked].sort()).toEqual([0, 1]);
    const refunds = stripeApi.refundsOf(intentId);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ amount: 1_500, status: 'succeeded' });
    expect(await stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUNDED',
      refundId: refunds[0]!.id,
      refundAttempts: 1,
    });
    // Done: neither asks again.
    expect(await Promise.all(owners.map((owner) => owner.runOnce()))).toEqual([0, 0]);
    expect(refundsAsked(stripeApi, intentId)).toHaveLength(1);
  });

  it('a refund claimed by an owner that died is asked by a live owner only once its lease ends, and once', async () => {
    const { eventId, intentId } = await paymentToRefund(stripeApi);
    const claimedAt = Date.now();
    // An owner takes it for 2 s, then dies without asking.
    expect(await stores.refunds.claimRefund(eventId, 2_000)).toBe(true);
    const live = ownerOf('default');
    const looks: { startedAt: number; endedAt: number; asked: number }[] = [];
    await waitFor(
      async () => {
        const startedAt = Date.now();
        const asked = await live.runOnce();
        looks.push({ startedAt, endedAt: Date.now(), asked });
        return asked > 0;
      },
      { what: `the live owner to ask for the refund of ${eventId}`, timeoutMs: 10_000, intervalMs: 20 },
    );
    const asking = looks.at(-1);
    const before = looks.slice(0, -1);
    // Every look before it found the row leased (a second and more of them), and asked nothing.
    expect(before.every((look) => look.asked === 0)).toBe(true);
    expect(before.filter((look) => look.endedAt < claimedAt + 1_000).length).toBeGreaterThan(0);
    // Asked once the lease was over (MySQL's clock and this process's are the same host's).
    expect(asking!.endedAt).toBeGreaterThanOrEqual(claimedAt + 2_000);
    expect(refundsAsked(stripeApi, intentId)).toHaveLength(1);
    expect(stripeApi.refundsOf(intentId)).toHaveLength(1);
    // Claimed twice (the dead owner, the live one), asked once.
    expect(await stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'REFUNDED', refundAttempts: 2 });
    expect(await live.runOnce()).toBe(0);
    expect(refundsAsked(stripeApi, intentId)).toHaveLength(1);
  });

  it('a refund Stripe refuses because a dispute holds the charge waits for the dispute, never REFUND_FAILED', async () => {
    // Red on 10aac89: charge_disputed was a refusal like any other, and the row ended REFUND_FAILED for an operator.
    const { eventId, intentId, row } = await paymentToRefund(stripeApi);
    const dispute = stripeApi.dispute(intentId);
    const owner = ownerOf('default');
    expect(await owner.runOnce()).toBe(1);
    expect(refundsAsked(stripeApi, intentId).map((call) => call.status)).toEqual([400]);
    expect(await stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundError: expect.stringMatching(/disputed charge/),
    });
    // The dispute, as its webhook records it (no endpoint here): the chargeback gave the money back.
    await stores.refunds.recordTakeback(disputeTakebackOf(dispute, intentId, row.orderNo));
    expect(await stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'REFUNDED', refundId: dispute.id });
    expect(stripeApi.refundsOf(intentId)).toEqual([]);
  });

  it('a payment judged for refund after its dispute was recorded is given back by that dispute at the first refusal', async () => {
    const intent = await stripeClient(settings).paymentIntents.create({ amount: 1_500, currency: 'usd' });
    stripeApi.confirm(intent.id, 'succeeded');
    const dispute = stripeApi.dispute(intent.id);
    const orderNo = newOrderNo();
    await stores.refunds.recordTakeback(disputeTakebackOf(dispute, intent.id, orderNo));
    // The payment's own event comes after the dispute's (Stripe does not order them): judged for refund only now.
    const eventId = `evt-refund-owner-${randomUUID()}`;
    ours.add(eventId);
    await stores.payments.recordPayment(
      { eventId, orderNo, amountCents: 1_500, provider: 'stripe', providerRef: intent.id },
      'webhook',
      'INTENT_MISMATCH',
    );
    expect(await ownerOf('default').runOnce()).toBe(1);
    expect(await stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'REFUNDED', refundId: dispute.id });
    expect(stripeApi.refundsOf(intent.id)).toEqual([]);
  });

  it('an inquiry (warning_*) withdraws nothing: the payment we owe back stays to be refunded', async () => {
    const { eventId, intentId, row } = await paymentToRefund(stripeApi);
    const inquiry = stripeApi.dispute(intentId);
    await stores.refunds.recordTakeback({
      ...disputeTakebackOf({ ...inquiry, status: 'warning_needs_response' }, intentId, row.orderNo),
    });
    expect(await stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'REFUND_REQUIRED', refundId: null });
    // Nobody's to refund afterwards: the double's charge is a real chargeback, only its record here is an inquiry.
    ours.delete(eventId);
    await stores.refunds.recordRefundProgress(
      { eventId },
      { state: 'REFUND_FAILED', refundId: null, error: 'test: an inquiry on a chargeback' },
    );
  });

  it('a refund Stripe left pending is read again until it ends, REFUNDED or REFUND_FAILED, and never moves back', async () => {
    const toSucceed = await paymentToRefund(pendingApi, 1_200);
    const toFail = await paymentToRefund(pendingApi, 1_300);
    const owner = ownerOf('pending', { followFirstMs: 300, followMaxMs: 1_000 });
    expect(await owner.runOnce()).toBe(2);
    const refundOf = async (eventId: string) => {
      const row = await stores.payments.getPayment(eventId);
      expect(row).toMatchObject({ outcome: 'REFUND_REQUESTED' });
      return row!.refundId!;
    };
    const succeeding = await refundOf(toSucceed.eventId);
    const failing = await refundOf(toFail.eventId);
    expect(pendingApi.refundsOf(toSucceed.intentId).map((refund) => [refund.id, refund.status])).toEqual([
      [succeeding, 'pending'],
    ]);
    const seen = new Map<string, string[]>();
    const look = async () => {
      await owner.runOnce();
      for (const { eventId } of [toSucceed, toFail]) {
        const outcome = (await stores.payments.getPayment(eventId))?.outcome ?? 'none';
        const outcomes = seen.get(eventId) ?? [];
        if (outcomes.at(-1) !== outcome) outcomes.push(outcome);
        seen.set(eventId, outcomes);
      }
    };
    // Read again while still pending at Stripe: it stays REFUND_REQUESTED, and is not asked again.
    await waitFor(
      async () => {
        await look();
        return refundsRead(pendingApi, succeeding).length > 0 && refundsRead(pendingApi, failing).length > 0;
      },
      { what: 'both pending refunds read again', timeoutMs: 10_000, intervalMs: 20 },
    );
    expect(await refundOf(toSucceed.eventId)).toBe(succeeding);
    expect(await refundOf(toFail.eventId)).toBe(failing);
    // The card network answers; Stripe's events about it reach no one here.
    pendingApi.settleRefund(succeeding, 'succeeded');
    pendingApi.settleRefund(failing, 'failed');
    await waitFor(
      async () => {
        await look();
        return (
          seen.get(toSucceed.eventId)?.at(-1) === 'REFUNDED' && seen.get(toFail.eventId)?.at(-1) === 'REFUND_FAILED'
        );
      },
      { what: 'both refunds followed to their end', timeoutMs: 10_000, intervalMs: 20 },
    );
    expect(await stores.payments.getPayment(toSucceed.eventId)).toMatchObject({
      outcome: 'REFUNDED',
      refundId: succeeding,
    });
    expect(await stores.payments.getPayment(toFail.eventId)).toMatchObject({
      outcome: 'REFUND_FAILED',
      refundId: failing,
      refundError: expect.stringMatching(/^refund failed/),
    });
    // Forwards only, every step of the way; one ask each, however many reads.
    expect(seen.get(toSucceed.eventId)).toEqual(['REFUND_REQUESTED', 'REFUNDED']);
    expect(seen.get(toFail.eventId)).toEqual(['REFUND_REQUESTED', 'REFUND_FAILED']);
    expect(refundsAsked(pendingApi, toSucceed.intentId)).toHaveLength(1);
    expect(refundsAsked(pendingApi, toFail.intentId)).toHaveLength(1);
    // Ended: no longer read, and an older word (a late `pending`) moves neither back.
    const reads = refundsRead(pendingApi, succeeding).length + refundsRead(pendingApi, failing).length;
    expect(await owner.runOnce()).toBe(0);
    expect(refundsRead(pendingApi, succeeding).length + refundsRead(pendingApi, failing).length).toBe(reads);
    for (const [eventId, refundId] of [
      [toSucceed.eventId, succeeding],
      [toFail.eventId, failing],
    ] as const)
      expect(await stores.refunds.recordRefundProgress({ eventId }, { state: 'REFUND_REQUESTED', refundId })).toBe(
        false,
      );
    expect(
      await stores.refunds.recordRefundProgress({ eventId: toFail.eventId }, { state: 'REFUNDED', refundId: failing }),
    ).toBe(false);
    expect((await stores.payments.getPayment(toSucceed.eventId))?.outcome).toBe('REFUNDED');
    expect((await stores.payments.getPayment(toFail.eventId))?.outcome).toBe('REFUND_FAILED');
  });
});
