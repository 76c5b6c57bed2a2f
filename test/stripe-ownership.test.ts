/**
 * Which Stripe payments are this deployment's to judge (src/payments/stripe.ts): the event's mode
 * and the intent's deployment tag (translateStripeEvent), then what MySQL knows of the intent and its
 * order (intentOwnership). Pure functions: no stack.
 */
import type Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import type { IntentStanding } from '../src/db/store.js';
import { intentOwnership, translateStripeEvent } from '../src/payments/stripe.js';

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
