/**
 * The Stripe adapter against Stripe's own API surface (stripe-mock, behind a relay that records the
 * calls and can answer 5xx: test/helpers/stripe-api.ts), on the real stack: the API with
 * PAYMENT_PROVIDER=stripe, a production worker with its refund owner, MySQL, Redis, Temporal.
 * Webhook events are signed with the Stripe SDK's own test-header helper. Each test names the
 * provider calls it expects, so a missing piece of the adapter fails it.
 */
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { signedStripeEvent, stripeIdempotencyKeys, stripeSucceededIntent } from '../src/payments/stripe.js';
import { waitFor } from '../stack/wait-for.js';
import { putOnSale } from './helpers/fixtures.js';
import { httpRequest, type HttpReply } from './helpers/http.js';
import { openPerQueueTestbed, type PerQueueTestbed } from './helpers/per-queue.js';
import { startStripeApi, type StripeApi } from './helpers/stripe-api.js';

const WEBHOOK_SECRET = 'whsec_flashcheckouttest';
let stripeApi: StripeApi;
let bed: PerQueueTestbed;
let api: string;
let auth: ShopperAuth;

beforeAll(async () => {
  stripeApi = await startStripeApi();
  bed = await openPerQueueTestbed({
    PAYMENT_PROVIDER: 'stripe',
    STRIPE_SECRET_KEY: 'sk_test_flashcheckout',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    STRIPE_API_URL: stripeApi.url,
    // Long enough to pay at once on a busy machine, short enough to watch the timer cancel.
    PAYMENT_WINDOW: '6s',
    LOG_LEVEL: 'silent',
    RATE_LIMIT_WEBHOOK: 'off',
    RATE_LIMIT_CHECKOUT: 'off',
  });
  const taskQueue = `stripe-${randomUUID()}`;
  await bed.startWorker(taskQueue, { refunds: {} });
  api = await bed.serve(taskQueue);
  auth = new ShopperAuth(bed.config);
}, 120_000);

afterAll(async () => {
  await bed?.close();
  await stripeApi?.stop();
});

/** A Stripe event, signed as Stripe signs it with this file's endpoint secret (or `secret`), sent to the API. */
async function sendStripeEvent(
  type: string,
  object: Record<string, unknown>,
  options: { eventId?: string; secret?: string } = {},
): Promise<HttpReply> {
  const { payload, signature } = signedStripeEvent(options.secret ?? WEBHOOK_SECRET, type, object, options.eventId);
  return httpRequest(api, 'POST', '/api/payments/stripe', { raw: payload, headers: { 'stripe-signature': signature } });
}

const succeeded = stripeSucceededIntent;

/** A shopper's checkout of one unit, and its order once its PaymentIntent shows in the order view. */
async function checkoutWithIntent(): Promise<{
  orderNo: string;
  token: string;
  intent: { id: string; clientSecret: string };
  totalCents: number;
}> {
  const sale = await putOnSale(bed.store, bed.redis, { stock: 5 });
  const token = await auth.issue(`stripe-${randomUUID().slice(0, 8)}`);
  const accepted = await httpRequest(api, 'POST', '/api/checkout', { json: { sku: sale.sku, quantity: 1 }, token });
  expect(accepted.status).toBe(202);
  const orderNo: string = accepted.body.orderNo;
  const order = await waitFor(
    async () => {
      const read = await httpRequest(api, 'GET', `/api/orders/${orderNo}`, { token });
      return read.body?.paymentIntent ? read.body : false;
    },
    { what: `the PaymentIntent of ${orderNo} in its order view`, timeoutMs: 20_000 },
  );
  expect(order).toMatchObject({ status: 'AWAITING_PAYMENT', paymentProvider: 'stripe', totalCents: sale.priceCents });
  return { orderNo, token, intent: order.paymentIntent, totalCents: sale.priceCents };
}

/** The payment row once Stripe's refund of it is recorded done. */
const refundedRow = (eventId: string) =>
  waitFor(
    async () => {
      const row = await bed.store.getPayment(eventId);
      return row?.outcome === 'REFUNDED' && row;
    },
    { what: `the refund of ${eventId}`, timeoutMs: 20_000 },
  );

const statusOf = async (orderNo: string, token: string) =>
  (await httpRequest(api, 'GET', `/api/orders/${orderNo}`, { token })).body?.status;

describe('Stripe: a PaymentIntent per order, its webhook, refunds through its API (stripe-mock)', () => {
  it("pays in time: one PaymentIntent made with the order's key, shown to its shopper only, paid by its event", async () => {
    const { orderNo, token, intent, totalCents } = await checkoutWithIntent();
    const created = stripeApi
      .callsTo('POST', '/v1/payment_intents')
      .filter((c) => c.form['metadata[orderNo]'] === orderNo);
    expect(created.length).toBeGreaterThanOrEqual(1);
    for (const call of created) {
      expect(call.idempotencyKey).toBe(stripeIdempotencyKeys.openPayment(orderNo));
      expect(call.form).toMatchObject({ amount: String(totalCents), currency: 'usd' });
    }
    expect(intent.clientSecret).toMatch(/_secret_/);
    // Another shopper never sees the order, let alone its client secret.
    const stranger = await auth.issue('stripe-stranger');
    expect((await httpRequest(api, 'GET', `/api/orders/${orderNo}`, { token: stranger })).status).toBe(403);

    const eventId = `evt_paid_${orderNo}`;
    const paid = await sendStripeEvent('payment_intent.succeeded', succeeded(orderNo, intent.id, totalCents), {
      eventId,
    });
    expect(paid.status).toBe(200);
    expect(paid.body).toEqual({ received: true, type: 'payment_intent.succeeded', outcome: 'APPLIED' });
    await waitFor(async () => (await statusOf(orderNo, token)) === 'PAID', {
      what: `${orderNo} PAID`,
      timeoutMs: 15_000,
    });
    // Stripe sends it again: nothing changes.
    const again = await sendStripeEvent('payment_intent.succeeded', succeeded(orderNo, intent.id, totalCents), {
      eventId,
    });
    expect(again.body).toMatchObject({ outcome: 'DUPLICATE' });
    expect(await bed.store.getPayment(eventId)).toMatchObject({
      outcome: 'APPLIED',
      provider: 'stripe',
      providerRef: intent.id,
    });
    // Paid: the PaymentIntent is not cancelled, nothing is refunded.
    expect(stripeApi.callsTo('POST', `/v1/payment_intents/${intent.id}/cancel`)).toEqual([]);
    expect(stripeApi.callsTo('POST', '/v1/refunds').filter((c) => c.form.payment_intent === intent.id)).toEqual([]);
  });

  it("a cancelled order's PaymentIntent is cancelled; money that still arrives is refunded through Stripe, once, after a 5xx", async () => {
    const { orderNo, token, intent, totalCents } = await checkoutWithIntent();
    expect((await httpRequest(api, 'POST', `/api/orders/${orderNo}/cancel`, { token })).status).toBe(202);
    await waitFor(async () => (await statusOf(orderNo, token)) === 'CANCELLED', {
      what: `${orderNo} CANCELLED`,
      timeoutMs: 15_000,
    });
    const cancels = await waitFor(
      async () => {
        const calls = stripeApi.callsTo('POST', `/v1/payment_intents/${intent.id}/cancel`);
        return calls.length > 0 && calls;
      },
      { what: `the cancel of ${intent.id}`, timeoutMs: 15_000 },
    );
    expect(cancels[0]).toMatchObject({ idempotencyKey: stripeIdempotencyKeys.cancelPayment(orderNo), status: 200 });

    // Stripe is unwell for the first refund request.
    stripeApi.failNext('/v1/refunds', 1, 500);
    const eventId = `evt_after_cancel_${orderNo}`;
    const late = await sendStripeEvent('payment_intent.succeeded', succeeded(orderNo, intent.id, totalCents), {
      eventId,
    });
    expect(late.body).toMatchObject({ outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_NOT_AWAITING_PAYMENT' });
    const refunded = await refundedRow(eventId);
    expect(refunded.refundId).toMatch(/^re_/);
    expect(refunded.refundAttempts).toBe(2);
    const asks = stripeApi.callsTo('POST', '/v1/refunds').filter((c) => c.form['metadata[paymentEventId]'] === eventId);
    expect(asks.map((c) => c.status)).toEqual([500, 200]);
    for (const ask of asks) {
      expect(ask.idempotencyKey).toBe(stripeIdempotencyKeys.refund(eventId));
      expect(ask.form).toMatchObject({ payment_intent: intent.id, amount: String(totalCents) });
    }
    const view = await httpRequest(api, 'GET', `/api/admin/orders/${orderNo}/payments`, {
      headers: { authorization: `Bearer ${bed.config.adminToken}` },
    });
    expect(view.body.payments).toMatchObject([
      { eventId, outcome: 'REFUNDED', provider: 'stripe', providerRef: intent.id, refundId: refunded.refundId },
    ]);
  });

  it('the timer cancels an unpaid order and its PaymentIntent; a payment recorded late is refunded; later refund events never move it back', async () => {
    const { orderNo, token, intent, totalCents } = await checkoutWithIntent();
    await waitFor(async () => (await statusOf(orderNo, token)) === 'CANCELLED', {
      what: `${orderNo} cancelled by its deadline`,
      timeoutMs: 30_000,
    });
    await waitFor(async () => stripeApi.callsTo('POST', `/v1/payment_intents/${intent.id}/cancel`).length > 0, {
      what: `the cancel of ${intent.id}`,
      timeoutMs: 15_000,
    });
    const eventId = `evt_late_${orderNo}`;
    const late = await sendStripeEvent('payment_intent.succeeded', succeeded(orderNo, intent.id, totalCents), {
      eventId,
    });
    expect(late.body).toMatchObject({ outcome: 'REFUND_REQUIRED', refundReason: 'RECEIVED_AFTER_DEADLINE' });
    const refunded = await refundedRow(eventId);

    // Stripe's refund events come late, twice and out of order: forwards only.
    const refund = (status: string) => ({
      id: refunded.refundId,
      object: 'refund',
      amount: totalCents,
      status,
      payment_intent: intent.id,
      metadata: { paymentEventId: eventId },
    });
    expect((await sendStripeEvent('refund.created', refund('pending'))).body).toMatchObject({ outcome: 'RECORDED' });
    expect((await bed.store.getPayment(eventId))?.outcome).toBe('REFUNDED');
    // A refund can still fail after it succeeded (the card was closed): then an operator's.
    await sendStripeEvent('refund.failed', { ...refund('failed'), failure_reason: 'expired_or_canceled_card' });
    expect(await bed.store.getPayment(eventId)).toMatchObject({
      outcome: 'REFUND_FAILED',
      refundError: 'refund failed: expired_or_canceled_card',
    });
    await sendStripeEvent('refund.updated', refund('succeeded'));
    expect((await bed.store.getPayment(eventId))?.outcome).toBe('REFUND_FAILED');
  }, 60_000);

  it('a failed payment attempt is recorded, other events are ignored, a bad signature changes nothing', async () => {
    const { orderNo, intent } = await checkoutWithIntent();
    const failedEvent = `evt_failed_${orderNo}`;
    const failed = await sendStripeEvent(
      'payment_intent.payment_failed',
      {
        id: intent.id,
        object: 'payment_intent',
        status: 'requires_payment_method',
        metadata: { orderNo },
        last_payment_error: {
          code: 'card_declined',
          decline_code: 'insufficient_funds',
          message: 'Your card has insufficient funds.',
        },
      },
      { eventId: failedEvent },
    );
    expect(failed.body).toEqual({ received: true, type: 'payment_intent.payment_failed', outcome: 'RECORDED' });
    // Visible to support: the order's payments view lists the failed attempt.
    const view = await httpRequest(api, 'GET', `/api/admin/orders/${orderNo}/payments`, {
      headers: { authorization: `Bearer ${bed.config.adminToken}` },
    });
    expect(view.body).toMatchObject({
      orderNo,
      payments: [],
      failedAttempts: [
        {
          eventId: failedEvent,
          provider: 'stripe',
          providerRef: intent.id,
          code: 'insufficient_funds',
          message: 'Your card has insufficient funds.',
        },
      ],
    });

    const other = await sendStripeEvent('customer.created', { id: 'cus_1', object: 'customer' });
    expect(other.body).toEqual({ received: true, type: 'customer.created', outcome: 'IGNORED' });

    // Signed but malformed: refused as such, never a crash, nothing recorded.
    const emptyId = `evt_empty_${orderNo}`;
    const noOrder = signedStripeEvent(WEBHOOK_SECRET, 'payment_intent.succeeded', {}, emptyId);
    const foreign = await httpRequest(api, 'POST', '/api/payments/stripe', {
      raw: noOrder.payload,
      headers: { 'stripe-signature': noOrder.signature },
    });
    expect(foreign.status).toBe(200);
    expect(foreign.body).toMatchObject({ outcome: 'IGNORED' }); // names no order of this service
    const malformed = signedStripeEvent(WEBHOOK_SECRET, 'payment_intent.succeeded', { metadata: { orderNo } }, emptyId);
    const refused = await httpRequest(api, 'POST', '/api/payments/stripe', {
      raw: malformed.payload,
      headers: { 'stripe-signature': malformed.signature },
    });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: { code: 'INVALID_REQUEST' } });
    expect(await bed.store.getPayment(emptyId)).toBeNull();
    // An event type the order uses, signed, without its data.object.
    const bareId = `evt_bare_${orderNo}`;
    const bare = JSON.stringify({ id: bareId, object: 'event', type: 'payment_intent.succeeded', data: {} });
    const bareReply = await httpRequest(api, 'POST', '/api/payments/stripe', {
      raw: bare,
      headers: {
        'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: bare, secret: WEBHOOK_SECRET }),
      },
    });
    expect(bareReply.status).toBe(400);
    expect(bareReply.body).toMatchObject({
      error: { code: 'INVALID_REQUEST', message: expect.stringContaining('data.object') },
    });
    expect(await bed.store.getPayment(bareId)).toBeNull();

    const forgedId = `evt_forged_${orderNo}`;
    const forged = await sendStripeEvent('payment_intent.succeeded', succeeded(orderNo, intent.id, 1), {
      eventId: forgedId,
      secret: 'whsec_notthisendpoint',
    });
    expect(forged.status).toBe(400);
    expect(forged.body).toMatchObject({ error: { code: 'INVALID_SIGNATURE' } });
    expect(await bed.store.getPayment(forgedId)).toBeNull();
  });
});
