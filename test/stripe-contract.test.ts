/**
 * What the Stripe adapter relies on Stripe to do, as one contract run against each Stripe at hand:
 * the double (stack/stripe-double.ts) always, and Stripe's own test mode when STRIPE_SECRET_KEY is a
 * real test key (sk_test_…; skipped otherwise, and always on this project's machines, which reach no
 * Stripe). A difference between the two fails the real run, so the double can be checked against
 * the real thing. Everything here goes through Stripe's public API as a shopper's client and our
 * adapter do; nothing uses the double's controls.
 */
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stripeClient } from '../src/payments/providers/stripe/api.js';
import { waitFor } from '../stack/wait-for.js';
import { startStripeApi, type StripeApi } from './helpers/stripe-api.js';

/** A real Stripe test-mode key from the environment; the project's own local keys are not one. */
const REAL_KEY = /^sk_test_[A-Za-z0-9]{20,}$/.test(process.env.STRIPE_SECRET_KEY ?? '')
  ? process.env.STRIPE_SECRET_KEY
  : undefined;

interface Target {
  name: string;
  stripe: () => Stripe;
}

let double: StripeApi;
const targets: Target[] = [
  {
    name: 'the double',
    stripe: () =>
      stripeClient({
        secretKey: 'sk_test_flashcheckout',
        webhookSecret: 'whsec_contract',
        apiUrl: double.url,
        currency: 'usd',
        deploymentTag: 'contract',
        paymentMethodTypes: ['card'],
        processingAlertMs: 3_600_000,
        requestsPerSecond: 20,
        catchUpIntervalMs: 60_000,
      }),
  },
  {
    name: 'Stripe test mode',
    stripe: () =>
      stripeClient({
        secretKey: REAL_KEY ?? '',
        webhookSecret: 'whsec_contract',
        apiUrl: null,
        currency: 'usd',
        deploymentTag: 'contract',
        paymentMethodTypes: ['card'],
        processingAlertMs: 3_600_000,
        requestsPerSecond: 20,
        catchUpIntervalMs: 60_000,
      }),
  },
];

beforeAll(async () => {
  double = await startStripeApi({ rateLimitPerSecond: 0 });
}, 60_000);

afterAll(async () => {
  await double?.stop();
});

/** A refusal's Stripe error (type and code), for comparing what each Stripe answered. */
async function refusalOf(request: Promise<unknown>): Promise<{ type: string; code: string | undefined }> {
  const err: unknown = await request.then(
    () => new Error('Stripe accepted the request'),
    (e: unknown) => e,
  );
  if (!(err instanceof Stripe.errors.StripeError)) throw err;
  return { type: err.type, code: err.code };
}

const card = (stripe: Stripe, amount = 1_999) =>
  stripe.paymentIntents.create({
    amount,
    currency: 'usd',
    allowed_payment_method_types: ['card'],
    metadata: { orderNo: `contract-${randomUUID()}`, deployment: 'contract' },
  });

describe.each(targets)('the Stripe contract the adapter relies on: $name', (target) => {
  const skip = target.name === 'Stripe test mode' && !REAL_KEY;

  it.skipIf(skip)(
    'a succeeded intent cannot be cancelled; read again it says succeeded, with what it received',
    async () => {
      const stripe = target.stripe();
      const intent = await card(stripe);
      expect(intent).toMatchObject({ status: 'requires_payment_method', amount_received: 0 });
      expect(intent.client_secret).toMatch(new RegExp(`^${intent.id}_secret_`));
      const paid = await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
      expect(paid.status).toBe('succeeded');
      expect(await refusalOf(stripe.paymentIntents.cancel(intent.id))).toEqual({
        type: 'StripeInvalidRequestError',
        code: 'payment_intent_unexpected_state',
      });
      const read = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
      expect(read).toMatchObject({ status: 'succeeded', amount_received: 1_999, currency: 'usd' });
      expect(typeof (read.latest_charge as Stripe.Charge).created).toBe('number');
    },
  );

  it.skipIf(skip)('a cancelled intent stays cancelled: a second cancel and a payment are refused', async () => {
    const stripe = target.stripe();
    const intent = await card(stripe);
    expect((await stripe.paymentIntents.cancel(intent.id, { cancellation_reason: 'abandoned' })).status).toBe(
      'canceled',
    );
    expect((await refusalOf(stripe.paymentIntents.cancel(intent.id))).code).toBe('payment_intent_unexpected_state');
    expect((await refusalOf(stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' }))).code).toBe(
      'payment_intent_unexpected_state',
    );
    expect((await stripe.paymentIntents.retrieve(intent.id)).status).toBe('canceled');
  });

  it.skipIf(skip)('a key returns its first intent again; the same key with other parameters is refused', async () => {
    const stripe = target.stripe();
    const idempotencyKey = `contract-${randomUUID()}`;
    const params = { amount: 1_999, currency: 'usd', allowed_payment_method_types: ['card'] as ['card'] };
    const first = await stripe.paymentIntents.create(params, { idempotencyKey });
    const again = await stripe.paymentIntents.create(params, { idempotencyKey });
    expect(again.id).toBe(first.id);
    expect((await refusalOf(stripe.paymentIntents.create({ ...params, amount: 2_000 }, { idempotencyKey }))).type).toBe(
      'StripeIdempotencyError',
    );
  });

  it.skipIf(skip)('a refund is listed by its intent with our metadata; nothing is refunded twice', async () => {
    const stripe = target.stripe();
    const intent = await card(stripe);
    await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    const refund = await stripe.refunds.create({
      payment_intent: intent.id,
      amount: 1_999,
      metadata: { paymentEventId: 'evt_contract' },
    });
    expect(['succeeded', 'pending']).toContain(refund.status);
    const listed = await stripe.refunds.list({ payment_intent: intent.id, limit: 100 });
    expect(listed.data.map((r) => [r.id, r.metadata?.paymentEventId])).toEqual([[refund.id, 'evt_contract']]);
    expect((await refusalOf(stripe.refunds.create({ payment_intent: intent.id }))).code).toBe(
      'charge_already_refunded',
    );
  });

  it.skipIf(skip)("the intent's success is an event, stamped by Stripe's clock", async () => {
    const stripe = target.stripe();
    const intent = await card(stripe);
    await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    const event = await waitFor(
      async () =>
        (await stripe.events.list({ type: 'payment_intent.succeeded', limit: 20 })).data.find(
          (e) => (e.data.object as Stripe.PaymentIntent).id === intent.id,
        ) ?? false,
      { what: `payment_intent.succeeded of ${intent.id}`, timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(event.livemode).toBe(false);
    expect(event.created).toBeGreaterThanOrEqual(intent.created);
    expect((event.data.object as Stripe.PaymentIntent).metadata).toMatchObject({ deployment: 'contract' });
  });
});
