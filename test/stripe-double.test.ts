/**
 * The Stripe double (stack/stripe-double.ts, stack/stripe-double.md) against Stripe's documented
 * behaviour, driven through the stripe SDK the adapter uses (no SDK retries, the pinned API version)
 * and, for webhooks, a loopback receiver that verifies signatures with the SDK's constructEvent.
 * Each test names the docs.stripe.com page it follows. One stripe-mock serves every double here.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, freezeGroup, signalGroup } from '../stack/process.js';
import { loadToolPaths } from '../stack/services.js';
import {
  PROCESSING_PAYMENT_METHOD,
  parseStripeForm,
  startStripeDouble,
  type StripeDouble,
  type StripeDoubleOptions,
} from '../stack/stripe-double.js';
import { startStripeMock, type RunningStripeMock } from '../stack/stripe-mock.js';
import { waitFor } from '../stack/wait-for.js';
import { httpAt } from './helpers/http.js';

const API_KEY = 'sk_test_flashcheckout';
const WEBHOOK_SECRET = 'whsec_stripedoubletest';

let mock: RunningStripeMock;
const started: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  mock = await startStripeMock({
    tools: loadToolPaths(),
    dataDir: mkdtempSync(join(tmpdir(), 'stripe-mock-')),
    port: await freePort(),
  });
}, 60_000);

afterAll(async () => {
  for (const server of started.reverse()) await server.stop();
  await mock?.process.stop();
});

/** A double over the shared stripe-mock, without the rate limit unless asked (its own test sets it). */
async function startDouble(options: Omit<StripeDoubleOptions, 'stripeMockUrl'> = {}): Promise<StripeDouble> {
  const double = await startStripeDouble({ rateLimitPerSecond: 0, ...options, stripeMockUrl: mock.url });
  started.push(double);
  return double;
}

/** The SDK as src/payments/providers/stripe/api.ts configures it, pointed at the double. */
function clientOf(double: { url: string }, apiKey = API_KEY): Stripe {
  const url = new URL(double.url);
  return new Stripe(apiKey, {
    apiVersion: '2026-10-28.endive',
    maxNetworkRetries: 0,
    host: url.hostname,
    port: Number(url.port),
    protocol: 'http',
    telemetry: false,
  });
}

const order = (n = Math.floor(Math.random() * 1e9)) => ({
  amount: 1999,
  currency: 'usd',
  metadata: { orderNo: `ORD-${n}` },
  automatic_payment_methods: { enabled: true },
});

/** The error a call throws (a test of a refusal fails when the call succeeds). */
async function refusal(call: Promise<unknown>): Promise<Stripe.errors.StripeError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof Stripe.errors.StripeError) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

interface Received {
  eventId: string;
  type: string;
  body: string;
  signature: string;
  at: number;
}

/** A webhook endpoint: records what arrives; `answer` picks the status of each attempt (or 'hang'). */
async function startReceiver(answer: (eventId: string, attempt: number) => number | 'hang' = () => 200) {
  const received: Received[] = [];
  const attempts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const { id, type } = JSON.parse(body) as { id: string; type: string };
      const attempt = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, attempt);
      received.push({ eventId: id, type, body, signature: String(req.headers['stripe-signature']), at: Date.now() });
      const status = answer(id, attempt);
      if (status === 'hang') return;
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const receiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`,
    received,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  started.push(receiver);
  return receiver;
}

describe('PaymentIntents (docs.stripe.com/payments/paymentintents/lifecycle, /api/payment_intents)', () => {
  let double: StripeDouble;
  let stripe: Stripe;
  beforeAll(async () => {
    double = await startDouble();
    stripe = clientOf(double);
  });

  it('lifecycle: created requires_payment_method, confirmed with pm_card_visa succeeds with a charge; retrieve, expand latest_charge, 404 (docs.stripe.com/api/payment_intents/create, /confirm, /retrieve)', async () => {
    const before = Math.floor(Date.now() / 1000);
    const created = await stripe.paymentIntents.create(order(1));
    expect(created).toMatchObject({
      object: 'payment_intent',
      status: 'requires_payment_method',
      amount: 1999,
      currency: 'usd',
      amount_received: 0,
      latest_charge: null,
      livemode: false,
      metadata: { orderNo: 'ORD-1' },
    });
    expect(created.id).toMatch(/^pi_[A-Za-z0-9]{24}$/);
    expect(created.client_secret).toMatch(new RegExp(`^${created.id}_secret_[A-Za-z0-9]+$`));
    expect(created.created).toBeGreaterThanOrEqual(before);
    expect(created.canceled_at).toBeNull();
    expect(created.last_payment_error).toBeNull();

    const paid = await stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_visa' });
    expect(paid).toMatchObject({ id: created.id, status: 'succeeded', amount_received: 1999 });
    expect(paid.latest_charge).toMatch(/^ch_/);

    const read = await stripe.paymentIntents.retrieve(created.id, { expand: ['latest_charge'] });
    const charge = read.latest_charge as Stripe.Charge;
    expect(charge).toMatchObject({
      id: paid.latest_charge,
      object: 'charge',
      amount: 1999,
      amount_refunded: 0,
      refunded: false,
      status: 'succeeded',
      payment_intent: created.id,
    });
    expect(charge.created).toBeGreaterThanOrEqual(before);
    expect(double.intent(created.id)).toMatchObject({ status: 'succeeded', client_secret: created.client_secret });

    const missing = await refusal(stripe.paymentIntents.retrieve('pi_doesnotexist'));
    expect(missing).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(missing).toMatchObject({ statusCode: 404, code: 'resource_missing' });
    expect(missing.message).toBe("No such payment_intent: 'pi_doesnotexist'");
    expect(missing.requestId).toMatch(/^req_/);
  });

  it('a declined card: 402 card_declined, back to requires_payment_method with last_payment_error; another card then pays (docs.stripe.com/testing#declined-payments)', async () => {
    const intent = await stripe.paymentIntents.create(order());
    const declined = await refusal(
      stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_chargeDeclined' }),
    );
    expect(declined).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect(declined).toMatchObject({ statusCode: 402, code: 'card_declined', decline_code: 'generic_decline' });
    const after = await stripe.paymentIntents.retrieve(intent.id);
    expect(after.status).toBe('requires_payment_method');
    expect(after.last_payment_error).toMatchObject({ type: 'card_error', code: 'card_declined' });
    expect(double.events().find((e) => e.type === 'payment_intent.payment_failed')?.data.object).toMatchObject({
      id: intent.id,
      status: 'requires_payment_method',
    });
    const paid = await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    expect(paid).toMatchObject({ status: 'succeeded', last_payment_error: null });
  });

  it('cancel: allowed before payment (canceled_at, cancellation_reason); refused for succeeded, processing and canceled with payment_intent_unexpected_state (docs.stripe.com/api/payment_intents/cancel)', async () => {
    const open = await stripe.paymentIntents.create(order());
    const cancelled = await stripe.paymentIntents.cancel(open.id, { cancellation_reason: 'abandoned' });
    expect(cancelled).toMatchObject({ status: 'canceled', cancellation_reason: 'abandoned' });
    expect(cancelled.canceled_at).toBeGreaterThan(0);
    expect(double.events()[0]).toMatchObject({ type: 'payment_intent.canceled', data: { object: { id: open.id } } });

    const succeeded = await stripe.paymentIntents.create(order());
    double.confirm(succeeded.id, 'succeeded');
    const processing = await stripe.paymentIntents.create(order());
    double.confirm(processing.id, 'processing');
    for (const [id, status] of [
      [succeeded.id, 'succeeded'],
      [processing.id, 'processing'],
      [open.id, 'canceled'],
    ] as const) {
      const refused = await refusal(stripe.paymentIntents.cancel(id, { cancellation_reason: 'abandoned' }));
      expect(refused).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect(refused).toMatchObject({
        statusCode: 400,
        type: 'StripeInvalidRequestError',
        code: 'payment_intent_unexpected_state',
      });
      expect(refused.message).toBe(
        `You cannot cancel this PaymentIntent because it has a status of ${status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.`,
      );
      expect(double.intent(id)?.status).toBe(status);
    }
    // A canceled intent cannot be paid either.
    const late = await refusal(stripe.paymentIntents.confirm(open.id, { payment_method: 'pm_card_visa' }));
    expect(late).toMatchObject({ statusCode: 400, code: 'payment_intent_unexpected_state' });
  });

  it(`processing (the double's ${PROCESSING_PAYMENT_METHOD}): payment_intent.processing, then the bank settles it succeeded or failed (docs.stripe.com/payments/paymentintents/lifecycle, /payments/ach-direct-debit)`, async () => {
    const toSucceed = await stripe.paymentIntents.create(order());
    const processing = await stripe.paymentIntents.confirm(toSucceed.id, { payment_method: PROCESSING_PAYMENT_METHOD });
    expect(processing).toMatchObject({ status: 'processing', amount_received: 0 });
    expect(double.events()[0]).toMatchObject({
      type: 'payment_intent.processing',
      data: { object: { id: toSucceed.id } },
    });
    expect(double.settleProcessing(toSucceed.id, 'succeeded')).toMatchObject({
      status: 'succeeded',
      amount_received: 1999,
    });
    expect(double.events()[0]).toMatchObject({ type: 'payment_intent.succeeded', request: { id: null } });

    const toFail = await stripe.paymentIntents.create(order());
    double.confirm(toFail.id, 'processing');
    const failed = double.settleProcessing(toFail.id, 'failed');
    expect(failed).toMatchObject({
      status: 'requires_payment_method',
      last_payment_error: { code: 'insufficient_funds' },
    });
    expect(double.events()[0]).toMatchObject({
      type: 'payment_intent.payment_failed',
      data: { object: { id: toFail.id, status: 'requires_payment_method' } },
    });
    expect(() => double.settleProcessing(toFail.id, 'succeeded')).toThrow(/not processing/);
  });
});

describe('Refunds (docs.stripe.com/api/refunds, /refunds)', () => {
  it('refunds a succeeded intent up to its charge: amount_too_large, charge_already_refunded, listed newest first by payment_intent (docs.stripe.com/api/refunds/create, /api/refunds/list)', async () => {
    const double = await startDouble();
    const stripe = clientOf(double);
    const unpaid = await stripe.paymentIntents.create(order());
    const notYet = await refusal(stripe.refunds.create({ payment_intent: unpaid.id }));
    expect(notYet).toMatchObject({ statusCode: 400, type: 'StripeInvalidRequestError' });
    expect(notYet.message).toBe(`This PaymentIntent (${unpaid.id}) does not have a successful charge to refund.`);

    const intent = await stripe.paymentIntents.create(order());
    await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    const first = await stripe.refunds.create({
      payment_intent: intent.id,
      amount: 500,
      metadata: { paymentEventId: 'evt_1' },
    });
    expect(first).toMatchObject({
      object: 'refund',
      amount: 500,
      status: 'succeeded',
      payment_intent: intent.id,
      metadata: { paymentEventId: 'evt_1' },
    });
    expect(first.id).toMatch(/^re_/);
    const tooLarge = await refusal(stripe.refunds.create({ payment_intent: intent.id, amount: 1500 }));
    expect(tooLarge).toMatchObject({ statusCode: 400, code: 'amount_too_large' });
    expect(tooLarge.message).toBe('Refund amount ($15.00) is greater than unrefunded amount on charge ($14.99)');
    // No amount: all that remains.
    const rest = await stripe.refunds.create({ payment_intent: intent.id });
    expect(rest.amount).toBe(1499);
    const again = await refusal(stripe.refunds.create({ payment_intent: intent.id }));
    expect(again).toMatchObject({ statusCode: 400, code: 'charge_already_refunded' });

    const charge = (await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] })).latest_charge;
    expect(charge).toMatchObject({ amount_refunded: 1999, refunded: true });
    const listed = await stripe.refunds.list({ payment_intent: intent.id, limit: 1 });
    expect(listed).toMatchObject({ object: 'list', has_more: true, url: '/v1/refunds' });
    expect(listed.data.map((r) => r.id)).toEqual([rest.id]);
    const all = await stripe.refunds.list({ payment_intent: intent.id });
    expect(all.data.map((r) => r.id)).toEqual([rest.id, first.id]);
    expect(double.refundsOf(intent.id).map((r) => r.id)).toEqual([rest.id, first.id]);
    expect(await stripe.refunds.retrieve(first.id)).toMatchObject({ id: first.id, amount: 500 });
    expect(double.events().map((e) => e.type)).toEqual(expect.arrayContaining(['refund.created', 'charge.refunded']));
  });

  it('pending refunds settle succeeded (refund.updated) or failed (refund.failed, the amount refundable again) (docs.stripe.com/refunds#failed-refunds)', async () => {
    const double = await startDouble({ refundStatus: 'pending' });
    const stripe = clientOf(double);
    const intent = await stripe.paymentIntents.create(order());
    double.confirm(intent.id, 'succeeded');
    const refund = await stripe.refunds.create({ payment_intent: intent.id });
    expect(refund.status).toBe('pending');
    expect(double.settleRefund(refund.id, 'failed')).toMatchObject({
      status: 'failed',
      failure_reason: 'expired_or_canceled_card',
    });
    expect(
      double
        .events()
        .slice(0, 2)
        .map((e) => e.type),
    ).toEqual(['refund.failed', 'refund.updated']);
    // The failed amount can be refunded again.
    const retry = await stripe.refunds.create({ payment_intent: intent.id });
    expect(retry.amount).toBe(1999);
    expect(double.settleRefund(retry.id, 'succeeded').status).toBe('succeeded');
    expect(double.events()[0]).toMatchObject({
      type: 'refund.updated',
      data: { object: { id: retry.id, status: 'succeeded' }, previous_attributes: { status: 'pending' } },
    });
    expect(() => double.settleRefund(retry.id, 'failed')).toThrow(/not pending/);
  });
});

describe('Disputes (docs.stripe.com/disputes/how-disputes-work, /api/disputes)', () => {
  const disputeTypes = (double: StripeDouble) =>
    double
      .events()
      .filter((e) => e.type.startsWith('charge.dispute.'))
      .map((e) => e.type)
      .reverse();
  /** POSTs a form to one of the double's HTTP controls. */
  const control = async (double: StripeDouble, path: string, body: string) => {
    const answer = await httpAt('POST', `${double.url}/_double/${path}`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      raw: body,
    });
    return { status: answer.status, body: answer.body as Record<string, unknown> };
  };

  it('a dispute opened, updated and won: needs_response, under_review, won; events in order and delivered; charge.disputed; retrieve and list (docs.stripe.com/api/disputes, /api/events/types)', async () => {
    const receiver = await startReceiver();
    const double = await startDouble({ webhook: { url: receiver.url, secret: WEBHOOK_SECRET } });
    const stripe = clientOf(double);
    const intent = await stripe.paymentIntents.create(order(800));
    const paid = await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    const before = Math.floor(Date.now() / 1000);

    const opened = double.dispute(intent.id);
    expect(opened).toMatchObject({
      object: 'dispute',
      amount: 1999,
      currency: 'usd',
      charge: paid.latest_charge,
      payment_intent: intent.id,
      status: 'needs_response',
      reason: 'fraudulent',
      livemode: false,
      metadata: {},
      is_charge_refundable: false,
      balance_transactions: [],
      evidence_details: {
        due_by: opened.created + 7 * 24 * 60 * 60,
        has_evidence: false,
        past_due: false,
        submission_count: 0,
      },
    });
    expect(opened.id).toMatch(/^dp_[A-Za-z0-9]{24}$/);
    expect(opened.created).toBeGreaterThanOrEqual(before);
    const charge = await stripe.charges.retrieve(paid.latest_charge as string);
    expect(charge.disputed).toBe(true);

    expect(double.updateDispute(opened.id, 'under_review')).toMatchObject({
      status: 'under_review',
      evidence_details: { has_evidence: true, submission_count: 1, past_due: false },
    });
    expect(double.closeDispute(opened.id, 'won').status).toBe('won');
    expect(() => double.closeDispute(opened.id, 'lost')).toThrow(/already closed \(won\)/);
    expect(() => double.updateDispute(opened.id, 'under_review')).toThrow(/not needs_response/);

    expect(disputeTypes(double)).toEqual([
      'charge.dispute.created',
      'charge.dispute.funds_withdrawn',
      'charge.dispute.updated',
      'charge.dispute.closed',
      'charge.dispute.funds_reinstated',
    ]);
    const [reinstated, closed, updated] = double.events();
    expect(updated).toMatchObject({
      data: { object: { id: opened.id, status: 'under_review' }, previous_attributes: { status: 'needs_response' } },
      request: { id: null },
    });
    expect(closed).toMatchObject({
      data: { object: { status: 'won' }, previous_attributes: { status: 'under_review' } },
    });
    expect(reinstated!.data.object).toMatchObject({ object: 'dispute', id: opened.id, status: 'won' });
    await double.settled();
    expect(receiver.received.map((r) => r.type).filter((type) => type.startsWith('charge.dispute.'))).toEqual(
      disputeTypes(double),
    );
    const delivered = await stripe.events.list({ type: 'charge.dispute.*', delivery_success: true });
    expect(delivered.data.map((e) => e.type)).toEqual([...disputeTypes(double)].reverse());

    expect(await stripe.disputes.retrieve(opened.id)).toMatchObject({
      id: opened.id,
      status: 'won',
      charge: paid.latest_charge,
      payment_intent: intent.id,
    });
    const missing = await refusal(stripe.disputes.retrieve('dp_missing'));
    expect(missing).toMatchObject({ statusCode: 404, code: 'resource_missing' });
    expect(missing.message).toBe("No such dispute: 'dp_missing'");

    // A second dispute, partial and due in an hour: listed newest first, filtered by intent or charge.
    const other = await stripe.paymentIntents.create(order(801));
    double.confirm(other.id, 'succeeded');
    const partial = double.dispute(other.id, { reason: 'product_not_received', amount: 500, dueInMs: 3_600_000 });
    expect(partial).toMatchObject({ amount: 500, reason: 'product_not_received', status: 'needs_response' });
    expect(partial.evidence_details.due_by).toBeGreaterThanOrEqual(before + 3_600);
    expect(partial.evidence_details.due_by).toBeLessThan(partial.created + 7 * 24 * 60 * 60);
    expect((await stripe.disputes.list()).data.map((d) => d.id)).toEqual([partial.id, opened.id]);
    expect(double.disputes().map((d) => d.id)).toEqual([partial.id, opened.id]);
    expect((await stripe.disputes.list({ payment_intent: intent.id })).data.map((d) => d.id)).toEqual([opened.id]);
    expect((await stripe.disputes.list({ charge: partial.charge as string })).data.map((d) => d.id)).toEqual([
      partial.id,
    ]);
    const page = await stripe.disputes.list({ limit: 1 });
    expect(page).toMatchObject({ object: 'list', has_more: true, url: '/v1/disputes' });
    expect((await stripe.disputes.list({ limit: 1, starting_after: page.data[0]!.id })).data.map((d) => d.id)).toEqual([
      opened.id,
    ]);
  });

  it('a dispute lost, through the HTTP controls: charge.dispute.closed and no funds_reinstated; late evidence is past_due (docs.stripe.com/disputes/how-disputes-work)', async () => {
    const double = await startDouble();
    const stripe = clientOf(double);
    const intent = await stripe.paymentIntents.create(order(810));
    double.confirm(intent.id, 'succeeded');
    const opened = await control(double, `payment_intents/${intent.id}/dispute`, 'reason=duplicate&amount=1000');
    expect(opened).toMatchObject({
      status: 200,
      body: { object: 'dispute', payment_intent: intent.id, amount: 1000, reason: 'duplicate' },
    });
    const id = opened.body.id as string;
    expect(await control(double, `disputes/${id}/close`, 'outcome=lost')).toMatchObject({
      status: 200,
      body: { id, status: 'lost' },
    });
    const again = await control(double, `disputes/${id}/close`, 'outcome=won');
    expect(again).toMatchObject({
      status: 400,
      body: { error: { message: `Dispute ${id} is already closed (lost)` } },
    });
    expect(double.disputes()[0]).toMatchObject({ id, status: 'lost' });
    expect(disputeTypes(double)).toEqual([
      'charge.dispute.created',
      'charge.dispute.funds_withdrawn',
      'charge.dispute.closed',
    ]);
    expect(double.events()[0]).toMatchObject({ data: { previous_attributes: { status: 'needs_response' } } });
    expect((await control(double, 'disputes/dp_missing/close', 'outcome=lost')).status).toBe(400);
    expect((await control(double, `disputes/${id}/close`, 'outcome=maybe')).status).toBe(400);

    // Evidence after due_by: under_review, but past_due.
    const late = await stripe.paymentIntents.create(order(811));
    double.confirm(late.id, 'succeeded');
    const overdue = await control(double, `payment_intents/${late.id}/dispute`, 'due_in_ms=-60000');
    const overdueId = overdue.body.id as string;
    expect(await control(double, `disputes/${overdueId}/update`, 'status=under_review')).toMatchObject({
      status: 200,
      body: { status: 'under_review', evidence_details: { has_evidence: true, past_due: true, submission_count: 1 } },
    });
    expect(double.events()[0]).toMatchObject({
      type: 'charge.dispute.updated',
      data: { previous_attributes: { evidence_details: { past_due: false, has_evidence: false } } },
    });
    expect((await control(double, `disputes/${overdueId}/update`, 'status=won')).status).toBe(400);
  });

  it('a refund of a disputed charge: 400 charge_disputed, nothing refunded (docs.stripe.com/error-codes)', async () => {
    const double = await startDouble();
    const stripe = clientOf(double);
    const intent = await stripe.paymentIntents.create(order(820));
    const paid = await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    await stripe.refunds.create({ payment_intent: intent.id, amount: 500 });
    double.dispute(intent.id);
    for (const params of [{ payment_intent: intent.id }, { charge: paid.latest_charge as string, amount: 100 }]) {
      const refused = await refusal(stripe.refunds.create(params));
      expect(refused).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect(refused).toMatchObject({ statusCode: 400, code: 'charge_disputed' });
      expect(refused.message).toBe(
        `Charge ${paid.latest_charge as string} has been charged back; cannot issue a refund.`,
      );
    }
    expect(double.refundsOf(intent.id)).toMatchObject([{ amount: 500 }]);
    expect((await stripe.charges.retrieve(paid.latest_charge as string)).amount_refunded).toBe(500);
  });

  it('a dispute on an intent not succeeded is refused, as is a second dispute of one charge', async () => {
    const double = await startDouble();
    const stripe = clientOf(double);
    const open = await stripe.paymentIntents.create(order());
    expect(() => double.dispute(open.id)).toThrow(
      `PaymentIntent ${open.id} is requires_payment_method, not succeeded: it has no charge to dispute`,
    );
    const processing = await stripe.paymentIntents.create(order());
    double.confirm(processing.id, 'processing');
    expect(() => double.dispute(processing.id)).toThrow(/is processing, not succeeded/);
    expect(() => double.dispute('pi_missing')).toThrow("No such payment_intent: 'pi_missing'");
    expect((await control(double, `payment_intents/${open.id}/dispute`, '')).status).toBe(400);

    const paid = await stripe.paymentIntents.create(order());
    double.confirm(paid.id, 'succeeded');
    expect(() => double.dispute(paid.id, { amount: 2000 })).toThrow(/from 1 to the charge's 1999/);
    double.dispute(paid.id);
    expect(() => double.dispute(paid.id)).toThrow(/already disputed/);
    expect(double.disputes()).toHaveLength(1);
    expect(double.events().filter((e) => e.type.startsWith('charge.dispute.'))).toHaveLength(2);
  });
});

describe('Idempotency (docs.stripe.com/api/idempotent_requests, /error-low-level#idempotency)', () => {
  let double: StripeDouble;
  let stripe: Stripe;
  beforeAll(async () => {
    double = await startDouble();
    stripe = clientOf(double);
  });

  it('the same key and parameters replay the first answer with Idempotent-Replayed; one intent is made', async () => {
    const params = order(101);
    const first = await stripe.paymentIntents.create(params, { idempotencyKey: 'order-101' });
    const second = await stripe.paymentIntents.create(params, { idempotencyKey: 'order-101' });
    expect(second.id).toBe(first.id);
    expect(second.lastResponse.headers['idempotent-replayed']).toBe('true');
    expect(double.intents().filter((i) => i.metadata.orderNo === 'ORD-101')).toHaveLength(1);
    expect(double.callsTo('POST', '/v1/payment_intents').filter((c) => c.idempotencyKey === 'order-101')).toMatchObject(
      [
        { status: 200, replayed: false, form: { amount: '1999', 'metadata[orderNo]': 'ORD-101' } },
        { status: 200, replayed: true },
      ],
    );
    // Errors are results too: a refused cancel is replayed, even once the intent could be cancelled.
    const cancelKey = { idempotencyKey: 'cancel-101' };
    double.confirm(first.id, 'processing');
    await refusal(stripe.paymentIntents.cancel(first.id, {}, cancelKey));
    double.settleProcessing(first.id, 'failed');
    const replayed = await refusal(stripe.paymentIntents.cancel(first.id, {}, cancelKey));
    expect(replayed).toMatchObject({ statusCode: 400, code: 'payment_intent_unexpected_state' });
    expect(replayed.headers?.['idempotent-replayed']).toBe('true');
    expect(double.intent(first.id)?.status).toBe('requires_payment_method');
  });

  it('a key reused with other parameters, or on another endpoint, is an idempotency_error (StripeIdempotencyError)', async () => {
    await stripe.paymentIntents.create(order(102), { idempotencyKey: 'order-102' });
    for (const reuse of [
      stripe.paymentIntents.create({ ...order(102), amount: 2500 }, { idempotencyKey: 'order-102' }),
      stripe.refunds.create({ payment_intent: 'pi_x' }, { idempotencyKey: 'order-102' }),
    ]) {
      const refused = await refusal(reuse);
      expect(refused).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
      expect(refused.statusCode).toBe(400);
      expect(refused.message).toBe(
        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'order-102' if you meant to execute a different request.",
      );
    }
    // Keys belong to an API key: another account's same key is its own.
    const other = await clientOf(double, 'sk_test_otheraccount').paymentIntents.create(
      { ...order(102), amount: 2500 },
      { idempotencyKey: 'order-102' },
    );
    expect(other.amount).toBe(2500);
  });

  it('a 500 before execution is stored and replayed; nothing was made (failNext, executed: false)', async () => {
    double.failNext('/v1/payment_intents', 1, 500);
    const params = order(103);
    const failed = await refusal(stripe.paymentIntents.create(params, { idempotencyKey: 'order-103' }));
    expect(failed).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(failed.statusCode).toBe(500);
    expect(double.intents().filter((i) => i.metadata.orderNo === 'ORD-103')).toEqual([]);
    const replayed = await refusal(stripe.paymentIntents.create(params, { idempotencyKey: 'order-103' }));
    expect(replayed).toMatchObject({ statusCode: 500 });
    expect(replayed.headers?.['idempotent-replayed']).toBe('true');
    expect((await stripe.paymentIntents.create(params, { idempotencyKey: 'order-103-b' })).status).toBe(
      'requires_payment_method',
    );
  });

  it('a 500 after execution: the refund is made, the caller gets the 500, and the key replays it (failNext, executed: true)', async () => {
    const intent = await stripe.paymentIntents.create(order());
    double.confirm(intent.id, 'succeeded');
    double.failNext('/v1/refunds', 1, 500, { executed: true });
    const params = { payment_intent: intent.id, amount: 700 };
    expect(await refusal(stripe.refunds.create(params, { idempotencyKey: `refund-${intent.id}` }))).toMatchObject({
      statusCode: 500,
    });
    expect(double.refundsOf(intent.id)).toMatchObject([{ amount: 700, status: 'succeeded' }]);
    const replayed = await refusal(stripe.refunds.create(params, { idempotencyKey: `refund-${intent.id}` }));
    expect(replayed.headers?.['idempotent-replayed']).toBe('true');
    expect(double.refundsOf(intent.id)).toHaveLength(1);
    expect(
      double
        .callsTo('POST', '/v1/refunds')
        .slice(-2)
        .map((c) => [c.status, c.replayed]),
    ).toEqual([
      [500, false],
      [500, true],
    ]);
  });

  it("a request refused by validation (stripe-mock's 400) stores nothing under its key", async () => {
    const invalid = await httpAt('POST', `${double.url}/v1/payment_intents`, {
      headers: {
        authorization: `Bearer ${API_KEY}`,
        'content-type': 'application/x-www-form-urlencoded',
        'idempotency-key': 'order-104',
      },
      raw: 'amount=lots&currency=usd',
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatchObject({ error: { type: 'invalid_request_error' } });
    const valid = await stripe.paymentIntents.create(order(104), { idempotencyKey: 'order-104' });
    expect(valid.lastResponse.headers['idempotent-replayed']).toBeUndefined();
    expect(valid.status).toBe('requires_payment_method');
  });

  it('a second request while the first is still executing gets 409 idempotency_error; the first then completes', async () => {
    const params = order(105);
    await freezeGroup(mock.process.pid);
    let first: Promise<Stripe.PaymentIntent>;
    try {
      first = stripe.paymentIntents.create(params, { idempotencyKey: 'order-105' });
      await waitFor(() => double.callsTo('POST', '/v1/payment_intents').some((c) => c.idempotencyKey === 'order-105'), {
        what: 'the first request to reach the double',
        timeoutMs: 5_000,
      });
      const second = await refusal(stripe.paymentIntents.create(params, { idempotencyKey: 'order-105' }));
      expect(second).toMatchObject({ statusCode: 409, rawType: 'idempotency_error' });
      expect(second.message).toMatch(/another in-progress request using this Idempotent Key/);
    } finally {
      signalGroup(mock.process.pid, 'SIGCONT');
    }
    const made = await first;
    expect((await stripe.paymentIntents.create(params, { idempotencyKey: 'order-105' })).id).toBe(made.id);
  });

  it('a key expires after 24 hours: then it is new again', async () => {
    let now = Date.now();
    const clocked = await startDouble({ now: () => now });
    const client = clientOf(clocked);
    const first = await client.paymentIntents.create(order(106), { idempotencyKey: 'order-106' });
    now += 24 * 60 * 60 * 1000 - 1_000;
    expect((await client.paymentIntents.create(order(106), { idempotencyKey: 'order-106' })).id).toBe(first.id);
    now += 2_000;
    const fresh = await client.paymentIntents.create({ ...order(106), amount: 999 }, { idempotencyKey: 'order-106' });
    expect(fresh.id).not.toBe(first.id);
  });
});

describe('Requests (docs.stripe.com/rate-limits, /api/authentication, /api/errors)', () => {
  it('over the rate limit: 429 rate_limit (StripeRateLimitError), not stored under the idempotency key (docs.stripe.com/rate-limits)', async () => {
    const double = await startDouble({ rateLimitPerSecond: 5 });
    const stripe = clientOf(double);
    const answers = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        stripe.paymentIntents.create(order(200 + i), { idempotencyKey: `limited-${i}` }),
      ),
    );
    const limited = answers.flatMap((a) => (a.status === 'rejected' ? [a.reason as Stripe.errors.StripeError] : []));
    expect(limited.length).toBeGreaterThanOrEqual(2);
    for (const err of limited) {
      expect(err).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
      expect(err).toMatchObject({ statusCode: 429, code: 'rate_limit', rawType: 'invalid_request_error' });
    }
    const limitedKey = double.calls.find((c) => c.status === 429)!.idempotencyKey!;
    // The bucket refills; the limited key was never used, so other parameters are fine.
    await waitFor(
      async () => {
        try {
          return await stripe.paymentIntents.create({ ...order(), amount: 4321 }, { idempotencyKey: limitedKey });
        } catch (err) {
          if (err instanceof Stripe.errors.StripeRateLimitError) return false;
          throw err;
        }
      },
      { what: 'the bucket to refill', timeoutMs: 5_000, intervalMs: 250 },
    );
  });

  it('a secret test key is required: 401 otherwise (docs.stripe.com/api/authentication)', async () => {
    const double = await startDouble();
    const none = await httpAt('GET', `${double.url}/v1/payment_intents/pi_1`);
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ error: { type: 'invalid_request_error' } });
    expect(none.headers.get('request-id')).toMatch(/^req_/);
    const publishable = await refusal(clientOf(double, 'pk_test_flashcheckout').paymentIntents.retrieve('pi_1'));
    expect(publishable).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    // HTTP Basic with the key as the user, as Stripe's own curl examples send it (`curl -u sk_test_…:`).
    const intent = await clientOf(double).paymentIntents.create(order());
    const basic = await httpAt('GET', `${double.url}/v1/payment_intents/${intent.id}`, {
      headers: { authorization: `Basic ${Buffer.from(`${API_KEY}:`).toString('base64')}` },
    });
    expect(basic.status).toBe(200);
    expect(basic.body).toMatchObject({ id: intent.id });
  });

  it("endpoints it does not model are stripe-mock's answers; bracketed form keys parse into objects and arrays; a bodiless POST is taken", async () => {
    const double = await startDouble();
    const customer = await clientOf(double).customers.retrieve('cus_relayed');
    expect(customer).toMatchObject({ id: 'cus_relayed', object: 'customer' });
    // Stripe takes `curl -X POST .../cancel` without a body or content type; stripe-mock alone would not.
    const intent = await clientOf(double).paymentIntents.create(order());
    const bodiless = await httpAt('POST', `${double.url}/v1/payment_intents/${intent.id}/cancel`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(bodiless.status).toBe(200);
    expect(bodiless.body).toMatchObject({ id: intent.id, status: 'canceled' });
    expect(
      parseStripeForm(
        new URLSearchParams(
          'metadata[orderNo]=A1&expand[0]=latest_charge&types[]=a&types[]=b&created[gte]=5&__proto__[polluted]=1',
        ),
      ),
    ).toEqual({ metadata: { orderNo: 'A1' }, expand: ['latest_charge'], types: ['a', 'b'], created: { gte: '5' } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('hang(): the request is never answered, the SDK times out; the next one is answered', async () => {
    const double = await startDouble();
    double.hang('/v1/payment_intents', 1);
    const url = new URL(double.url);
    const impatient = new Stripe(API_KEY, {
      apiVersion: '2026-10-28.endive',
      maxNetworkRetries: 0,
      host: url.hostname,
      port: Number(url.port),
      protocol: 'http',
      timeout: 300,
    });
    expect(await refusal(impatient.paymentIntents.retrieve('pi_hung'))).toBeInstanceOf(
      Stripe.errors.StripeConnectionError,
    );
    expect(double.calls[0]).toMatchObject({ path: '/v1/payment_intents/pi_hung', status: 0 });
    expect((await impatient.paymentIntents.create(order())).status).toBe('requires_payment_method');
  });
});

describe('Events and webhooks (docs.stripe.com/api/events, /webhooks)', () => {
  it('every change is an event: listed newest first by type, types[], created[gte], paged with starting_after; retrieved by id (docs.stripe.com/api/events/list)', async () => {
    const double = await startDouble();
    const stripe = clientOf(double);
    const since = Math.floor(Date.now() / 1000);
    const intent = await stripe.paymentIntents.create(order(300), { idempotencyKey: 'order-300' });
    await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    await stripe.refunds.create({ payment_intent: intent.id });

    const all = await stripe.events.list({ created: { gte: since } });
    expect(all.data.map((e) => e.type)).toEqual([
      'charge.refunded',
      'refund.created',
      'payment_intent.succeeded',
      'charge.succeeded',
      'payment_intent.created',
    ]);
    const created = all.data.at(-1)!;
    expect(created).toMatchObject({
      object: 'event',
      api_version: '2026-10-28.endive',
      livemode: false,
      pending_webhooks: 0,
      request: { idempotency_key: 'order-300' },
      data: { object: { id: intent.id, status: 'requires_payment_method', metadata: { orderNo: 'ORD-300' } } },
    });
    expect(created.id).toMatch(/^evt_/);
    expect(created.request?.id).toMatch(/^req_/);

    expect((await stripe.events.list({ type: 'payment_intent.*' })).data.map((e) => e.type)).toEqual([
      'payment_intent.succeeded',
      'payment_intent.created',
    ]);
    expect(
      (await stripe.events.list({ types: ['refund.created', 'charge.succeeded'] })).data.map((e) => e.type),
    ).toEqual(['refund.created', 'charge.succeeded']);
    expect((await stripe.events.list({ created: { gte: since + 3600 } })).data).toEqual([]);
    const firstPage = await stripe.events.list({ limit: 2 });
    expect(firstPage.has_more).toBe(true);
    const secondPage = await stripe.events.list({ limit: 2, starting_after: firstPage.data[1]!.id });
    expect(secondPage.data.map((e) => e.id)).toEqual(all.data.slice(2, 4).map((e) => e.id));
    expect(await stripe.events.retrieve(created.id)).toMatchObject({ id: created.id, type: 'payment_intent.created' });
    expect(await refusal(stripe.events.retrieve('evt_missing'))).toMatchObject({
      statusCode: 404,
      code: 'resource_missing',
    });
  });

  it('webhooks are signed as Stripe signs them (constructEvent verifies them) and mark events delivered (docs.stripe.com/webhooks#verify-official-libraries)', async () => {
    const receiver = await startReceiver();
    const double = await startDouble({ webhook: { url: receiver.url, secret: WEBHOOK_SECRET } });
    const stripe = clientOf(double);
    const intent = await stripe.paymentIntents.create(order(400));
    double.confirm(intent.id, 'succeeded');
    await double.settled();

    expect(receiver.received.map((r) => r.type)).toEqual([
      'payment_intent.created',
      'charge.succeeded',
      'payment_intent.succeeded',
    ]);
    for (const delivery of receiver.received) {
      expect(delivery.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      const event = Stripe.webhooks.constructEvent(delivery.body, delivery.signature, WEBHOOK_SECRET);
      expect(event.id).toBe(delivery.eventId);
      expect(() => Stripe.webhooks.constructEvent(delivery.body, delivery.signature, 'whsec_other')).toThrow();
    }
    const succeeded = Stripe.webhooks.constructEvent(
      receiver.received[2]!.body,
      receiver.received[2]!.signature,
      WEBHOOK_SECRET,
    );
    expect(succeeded).toMatchObject({
      type: 'payment_intent.succeeded',
      data: { object: { id: intent.id, amount_received: 1999 } },
    });
    expect(double.deliveries.map((d) => [d.type, d.attempt, d.status])).toEqual([
      ['payment_intent.created', 1, 200],
      ['charge.succeeded', 1, 200],
      ['payment_intent.succeeded', 1, 200],
    ]);
    expect((await stripe.events.list({ delivery_success: true })).data).toHaveLength(3);
    expect((await stripe.events.list({ delivery_success: false })).data).toEqual([]);
    expect(await stripe.events.retrieve(succeeded.id)).toMatchObject({ pending_webhooks: 0 });
  });

  it('a non-2xx or a timeout is retried on the schedule; an event whose attempts all fail stays delivery_success=false (docs.stripe.com/webhooks#retries)', async () => {
    const failing = new Set<string>();
    // The first attempt of each event is answered 500; events of `failing` are always 500.
    const receiver = await startReceiver((eventId, attempt) => (failing.has(eventId) || attempt === 1 ? 500 : 200));
    const double = await startDouble({
      webhook: { url: receiver.url, secret: WEBHOOK_SECRET },
      delivery: { retryScheduleMs: [50, 100] },
    });
    const stripe = clientOf(double);
    const intent = await stripe.paymentIntents.create(order(500));
    await double.settled();
    const [createdEvent] = double.events();
    expect(double.deliveries.map((d) => [d.attempt, d.status])).toEqual([
      [1, 500],
      [2, 200],
    ]);
    expect(double.deliveries[1]!.at - double.deliveries[0]!.at).toBeGreaterThanOrEqual(50);
    expect(receiver.received.map((r) => r.eventId)).toEqual([createdEvent!.id, createdEvent!.id]);

    double.pauseDelivery();
    await stripe.paymentIntents.cancel(intent.id);
    const [canceledEvent] = double.events();
    failing.add(canceledEvent!.id);
    expect((await stripe.events.list({ delivery_success: false })).data.map((e) => e.id)).toEqual([canceledEvent!.id]);
    double.resumeDelivery();
    await double.settled();
    expect(double.deliveries.filter((d) => d.eventId === canceledEvent!.id).map((d) => d.status)).toEqual([
      500, 500, 500,
    ]);
    expect(await stripe.events.retrieve(canceledEvent!.id)).toMatchObject({ pending_webhooks: 1 });
    expect((await stripe.events.list({ delivery_success: false })).data.map((e) => e.id)).toEqual([canceledEvent!.id]);

    // A receiver that never answers: the attempt times out and is retried like a 500.
    const silent = await startReceiver((_id, attempt) => (attempt === 1 ? 'hang' : 200));
    const patient = await startDouble({
      webhook: { url: silent.url, secret: WEBHOOK_SECRET },
      delivery: { retryScheduleMs: [10], timeoutMs: 200 },
    });
    await clientOf(patient).paymentIntents.create(order());
    await patient.settled();
    expect(patient.deliveries.map((d) => [d.status, d.error])).toEqual([
      [null, 'timed out after 200 ms'],
      [200, null],
    ]);
  });

  it('duplicates, delays and reordering: each event may come twice, late and out of order (docs.stripe.com/webhooks#handle-duplicate-events, #event-ordering)', async () => {
    const receiver = await startReceiver();
    const double = await startDouble({
      webhook: { url: receiver.url, secret: WEBHOOK_SECRET },
      delivery: { duplicateRate: 1, delayMs: [150, 200], reorder: true },
    });
    const stripe = clientOf(double);
    const sent = Date.now();
    const intent = await stripe.paymentIntents.create(order(600));
    await double.settled();
    expect(receiver.received).toHaveLength(2);
    expect(receiver.received.map((r) => r.eventId)).toEqual([double.events()[0]!.id, double.events()[0]!.id]);
    expect(Math.min(...receiver.received.map((r) => r.at)) - sent).toBeGreaterThanOrEqual(150);
    expect(double.deliveries.map((d) => d.duplicate).sort()).toEqual([false, true]);

    // Held back, then let go together: newest first.
    receiver.received.length = 0;
    double.pauseDelivery();
    await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    await double.deliverNow();
    const arrivals = receiver.received.map((r) => r.type);
    expect(arrivals).toHaveLength(4);
    expect(arrivals.indexOf('payment_intent.succeeded')).toBeLessThan(arrivals.lastIndexOf('charge.succeeded'));
    expect(arrivals.slice(0, 2)).toEqual(['payment_intent.succeeded', 'payment_intent.succeeded']);
  });

  it('stop() bounds delivery: timers cleared, nothing is sent after it', async () => {
    const receiver = await startReceiver();
    const double = await startDouble({
      webhook: { url: receiver.url, secret: WEBHOOK_SECRET },
      delivery: { delayMs: [200, 200] },
    });
    await clientOf(double).paymentIntents.create(order());
    await double.stop();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(receiver.received).toEqual([]);
    expect(double.deliveries).toEqual([]);
    await double.settled();
  });

  it('setWebhook() later: events from then on are delivered; HTTP controls settle a processing debit and list deliveries', async () => {
    const receiver = await startReceiver();
    const double = await startDouble();
    const stripe = clientOf(double);
    const intent = await stripe.paymentIntents.create(order(700));
    double.setWebhook(receiver.url, WEBHOOK_SECRET);
    await stripe.paymentIntents.confirm(intent.id, { payment_method: PROCESSING_PAYMENT_METHOD });
    const settle = await httpAt('POST', `${double.url}/_double/payment_intents/${intent.id}/settle`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      raw: 'outcome=succeeded',
    });
    expect(settle.status).toBe(200);
    expect(settle.body).toMatchObject({ id: intent.id, status: 'succeeded' });
    await double.settled();
    expect(receiver.received.map((r) => r.type)).toEqual([
      'charge.pending',
      'payment_intent.processing',
      'charge.succeeded',
      'payment_intent.succeeded',
    ]);
    const deliveries = (await httpAt('GET', `${double.url}/_double/deliveries`)).body;
    expect(deliveries.data).toHaveLength(4);
    const again = await httpAt('POST', `${double.url}/_double/payment_intents/${intent.id}/settle`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      raw: 'outcome=failed',
    });
    expect(again.status).toBe(400);
  });
});
