/**
 * Which Stripe payments are this deployment's to judge (src/payments/providers/stripe/api.ts): the event's mode
 * and the intent's deployment tag (translateStripeEvent), then what MySQL knows of the intent and its
 * order (intentOwnership). Pure functions: no stack.
 */
import type Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import type { IntentStanding } from '../src/db/payments.js';
import {
  disputeTakeback,
  intentOwnership,
  refundTakeback,
  translateStripeEvent,
} from '../src/payments/providers/stripe/api.js';

const ORDER = '01M89AXPAVXGKQWGHDF59178FB';
const OTHER_ORDER = '01M89B0RDAFVWH6WMTF9PXSVS4';
const owner = { deploymentTag: 'prod', livemode: false };

function succeeded(metadata: Record<string, string>, livemode = false): Stripe.Event {
  return {
    id: 'evt_1',
    object: 'event',
    created: 1_790_000_000,
    livemode,
    type: 'payment_intent.succeeded',
    data: { object: { id: 'pi_1', object: 'payment_intent', amount_received: 1_999, currency: 'usd', metadata } },
  } as unknown as Stripe.Event;
}

const standing = (over: Partial<IntentStanding> = {}): IntentStanding => ({
  intent: null,
  orderExists: true,
  orderIntents: 1,
  ...over,
});

describe('translateStripeEvent: the mode and the tag', () => {
  it("an intent tagged by this deployment is a payment, with Stripe's time and what the intent says of itself", () => {
    expect(translateStripeEvent(succeeded({ orderNo: ORDER, deployment: 'prod' }), owner)).toMatchObject({
      kind: 'payment',
      payment: { eventId: 'evt_1', orderNo: ORDER, amountCents: 1_999, providerRef: 'pi_1' },
      intent: { tagged: true, currency: 'usd' },
    });
  });

  it("another deployment's intent, or the other mode's event, is ignored", () => {
    expect(translateStripeEvent(succeeded({ orderNo: ORDER, deployment: 'staging' }), owner)).toMatchObject({
      kind: 'ignored',
    });
    expect(translateStripeEvent(succeeded({ orderNo: ORDER, deployment: 'prod' }, true), owner)).toMatchObject({
      kind: 'ignored',
    });
  });

  it('an untagged intent is a payment that still has to be matched to an order of ours', () => {
    expect(translateStripeEvent(succeeded({ orderNo: ORDER }), owner)).toMatchObject({
      kind: 'payment',
      intent: { tagged: false },
    });
  });
});

describe('intentOwnership: what MySQL knows', () => {
  const tagged = { tagged: true, currency: 'usd' };

  it('an intent its order opened, in our currency, is ours', () => {
    expect(intentOwnership(standing({ intent: { orderNo: ORDER, currency: 'usd' } }), ORDER, tagged, 'usd')).toBe(
      'OURS',
    );
  });

  it('tagged ours but opened for another order, or in another currency, is our money wrongly paid', () => {
    expect(intentOwnership(standing({ intent: { orderNo: OTHER_ORDER, currency: 'usd' } }), ORDER, tagged, 'usd')).toBe(
      'MISMATCH',
    );
    expect(
      intentOwnership(
        standing({ intent: { orderNo: ORDER, currency: 'eur' } }),
        ORDER,
        { ...tagged, currency: 'eur' },
        'usd',
      ),
    ).toBe('MISMATCH');
    // Not recorded, for an order that recorded its own intents.
    expect(intentOwnership(standing(), ORDER, tagged, 'usd')).toBe('MISMATCH');
  });

  it('tagged ours, no intent recorded for an order that recorded none: the order judges (opened before intents were kept, or no such order)', () => {
    expect(intentOwnership(standing({ orderIntents: 0 }), ORDER, tagged, 'usd')).toBe('OURS');
    expect(intentOwnership(standing({ orderIntents: 0, orderExists: false }), ORDER, tagged, 'usd')).toBe('OURS');
  });

  it('untagged: ours only if its order is, else ignored (never refunded)', () => {
    const untagged = { tagged: false, currency: 'usd' };
    expect(intentOwnership(standing(), ORDER, untagged, 'usd')).toBe('OURS');
    expect(intentOwnership(standing({ orderExists: false, orderIntents: 0 }), ORDER, untagged, 'usd')).toBe('FOREIGN');
  });
});

describe('refunds and disputes we did not ask for, folded', () => {
  const refund = (status: string) =>
    ({ id: 're_1', amount: 500, status, created: 1_700_000_000, reason: null }) as unknown as Stripe.Refund;
  it('a refund pending or succeeded counts as money back; failed or canceled does not; the stage only grows', () => {
    expect(refundTakeback(refund('pending'), 'pi_1')).toMatchObject({ kind: 'REFUND', status: 'PENDING', stage: 1 });
    expect(refundTakeback(refund('succeeded'), 'pi_1')).toMatchObject({ status: 'SUCCEEDED', stage: 2 });
    expect(refundTakeback(refund('failed'), 'pi_1')).toMatchObject({ status: 'FAILED', stage: 3 });
    expect(refundTakeback(refund('canceled'), 'pi_1')).toMatchObject({ status: 'FAILED', stage: 3 });
  });
  const dispute = (status: string) =>
    ({
      id: 'dp_1',
      amount: 1_000,
      status,
      created: 1_700_000_000,
      reason: 'fraudulent',
      evidence_details: { due_by: 1_700_604_800 },
    }) as unknown as Stripe.Dispute;
  it('a dispute is OPEN until won or lost (an inquiry closed counts as won), with its due_by', () => {
    expect(disputeTakeback(dispute('needs_response'), 'pi_1')).toMatchObject({
      kind: 'DISPUTE',
      status: 'OPEN',
      stage: 1,
      dueBy: new Date(1_700_604_800_000),
    });
    expect(disputeTakeback(dispute('warning_under_review'), 'pi_1')).toMatchObject({ status: 'OPEN', stage: 2 });
    expect(disputeTakeback(dispute('won'), 'pi_1')).toMatchObject({ status: 'WON', stage: 3 });
    expect(disputeTakeback(dispute('warning_closed'), 'pi_1')).toMatchObject({ status: 'WON', stage: 3 });
    expect(disputeTakeback(dispute('lost'), 'pi_1')).toMatchObject({ status: 'LOST', stage: 3 });
  });
  it('translates a Dashboard refund (no payment event of ours) as taken back, ours as our refund', () => {
    const event = (metadata: Record<string, string>) =>
      ({
        id: 'evt_1',
        type: 'refund.created',
        livemode: false,
        data: { object: { ...refund('succeeded'), payment_intent: 'pi_1', metadata } },
      }) as unknown as Stripe.Event;
    const owner = { deploymentTag: 'tag', livemode: false };
    expect(translateStripeEvent(event({}), owner)).toMatchObject({ kind: 'refund', taken: { intentId: 'pi_1' } });
    expect(translateStripeEvent(event({ paymentEventId: 'evt_0' }), owner)).toMatchObject({
      kind: 'refund',
      paymentEventId: 'evt_0',
      taken: null,
    });
  });
});
