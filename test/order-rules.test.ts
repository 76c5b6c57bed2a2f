/**
 * The order's rules (src/model/order-rules.ts) as plain functions: no server, no store.
 */
import { describe, expect, it } from 'vitest';
import {
  closeRequestOf,
  isCancellable,
  isSold,
  paidOrderStatus,
  judgeAtTheDoor,
  judgePayment,
  receivedInTime,
  refundReasonFor,
  STORED_ORDER_STATUSES,
  type PayableOrder,
  type PaymentVerdict,
  type RefundReason,
  type StoredOrderStatus,
} from '../src/model/order-rules.js';

const DEADLINE = '2026-11-25T10:30:00.000Z';
const open: PayableOrder = { totalCents: 1_000, paymentDeadline: DEADLINE, paid: false, closingAs: undefined };
const inTime = { amountCents: 1_000, receivedAt: '2026-11-25T10:29:59.999Z' };

describe('the arrival rule', () => {
  it('counts a payment recorded at the deadline as in time, one a millisecond later as late', () => {
    expect(receivedInTime(DEADLINE, DEADLINE)).toBe(true);
    expect(receivedInTime('2026-11-25T10:30:00.001Z', DEADLINE)).toBe(false);
    expect(receivedInTime('2026-11-25T10:00:00.000Z', DEADLINE)).toBe(true);
  });
});

describe('judgePayment', () => {
  it('applies the full amount recorded in time to an open order', () => {
    expect(judgePayment(open, inTime)).toEqual({ outcome: 'APPLIED' });
  });

  it('refunds the wrong amount first, whenever it came and whatever the order is', () => {
    const short = { amountCents: 999, receivedAt: '2026-11-25T11:00:00.000Z' };
    expect(judgePayment(open, short)).toEqual({ outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' });
    expect(judgePayment({ ...open, paid: true, closingAs: 'PAID' }, short).refundReason).toBe('AMOUNT_MISMATCH');
  });

  it('refunds a payment recorded after the deadline, even if delivered while the order is still open', () => {
    const late = { amountCents: 1_000, receivedAt: '2026-11-25T10:30:00.001Z' };
    expect(judgePayment(open, late)).toEqual({ outcome: 'REFUND_REQUIRED', refundReason: 'RECEIVED_AFTER_DEADLINE' });
  });

  it('refunds a second payment in time as ALREADY_PAID', () => {
    expect(judgePayment({ ...open, paid: true }, inTime)).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ALREADY_PAID',
    });
  });

  it('refunds a payment in time to an order closing without one by why it closes', () => {
    expect(judgePayment({ ...open, closingAs: 'FAILED' }, inTime).refundReason).toBe('ORDER_FAILED');
    expect(judgePayment({ ...open, closingAs: 'CANCELLED' }, inTime).refundReason).toBe('ORDER_NOT_AWAITING_PAYMENT');
  });
});

describe('refundReasonFor', () => {
  it('names why a closed order takes no payment', () => {
    expect(refundReasonFor('PAID')).toBe('ALREADY_PAID');
    expect(refundReasonFor('FAILED')).toBe('ORDER_FAILED');
    expect(refundReasonFor('CANCELLED')).toBe('ORDER_NOT_AWAITING_PAYMENT');
    expect(refundReasonFor(undefined)).toBe('ORDER_NOT_AWAITING_PAYMENT');
  });
});

describe('isCancellable', () => {
  it('asks the row while the order is open; a closed one is refused at once', () => {
    expect(isCancellable('PENDING')).toBe(true);
    expect(isCancellable('AWAITING_PAYMENT')).toBe(true);
    for (const status of ['PAID', 'CANCELLED', 'FAILED', 'DISPUTED', 'REFUNDED'] as const)
      expect(isCancellable(status)).toBe(false);
  });
});

describe('closeRequestOf: what the workflow asks the row when its wait ends', () => {
  const wait = { operatorCancelled: false, shopperCancelled: false, deadlinePassed: false };
  it("an operator's cancel first, then the shopper's", () => {
    expect(closeRequestOf({ ...wait, operatorCancelled: true, shopperCancelled: true })).toEqual({
      kind: 'CANCEL',
      reason: 'OPERATOR_CANCELLED',
    });
    expect(closeRequestOf({ ...wait, shopperCancelled: true, deadlinePassed: true })).toEqual({
      kind: 'CANCEL',
      reason: 'USER_CANCELLED',
    });
  });
  it('a payment the provider would not make fails the order, unless it was cancelled first', () => {
    const refused = 'PaymentRefused: amount too small';
    expect(closeRequestOf({ ...wait, paymentUnavailable: refused })).toEqual({ kind: 'FAIL', reason: refused });
    expect(closeRequestOf({ ...wait, shopperCancelled: true, paymentUnavailable: refused }).kind).toBe('CANCEL');
  });
  it('the deadline cancels; a Signal only asks whether the row was paid (a payment first is applied by the row)', () => {
    expect(closeRequestOf({ ...wait, deadlinePassed: true })).toEqual({ kind: 'CANCEL', reason: 'PAYMENT_TIMEOUT' });
    expect(closeRequestOf(wait)).toEqual({ kind: 'PAYMENT' });
  });
});

describe('money taken back after payment', () => {
  it('an open dispute makes the order DISPUTED, whatever was refunded', () => {
    expect(paidOrderStatus(1_000, { refundedCents: 0, dispute: 'OPEN' })).toBe('DISPUTED');
    expect(paidOrderStatus(1_000, { refundedCents: 1_000, dispute: 'OPEN' })).toBe('DISPUTED');
  });
  it('all of it refunded, or a dispute lost, makes it REFUNDED; a part refunded or a dispute won leaves it PAID', () => {
    expect(paidOrderStatus(1_000, { refundedCents: 1_000, dispute: null })).toBe('REFUNDED');
    expect(paidOrderStatus(1_000, { refundedCents: 0, dispute: 'LOST' })).toBe('REFUNDED');
    expect(paidOrderStatus(1_000, { refundedCents: 999, dispute: null })).toBe('PAID');
    expect(paidOrderStatus(1_000, { refundedCents: 0, dispute: 'WON' })).toBe('PAID');
  });
  it('its units stay sold, and money arriving for it later is refunded ALREADY_PAID', () => {
    for (const status of ['PAID', 'DISPUTED', 'REFUNDED'] as const) {
      expect(isSold(status)).toBe(true);
      expect(refundReasonFor(status)).toBe('ALREADY_PAID');
      expect(
        judgeAtTheDoor({ status, totalCents: 1_000, paymentDeadline: DEADLINE, intentDecides: false }, inTime),
      ).toEqual({ outcome: 'REFUND_REQUIRED', refundReason: 'ALREADY_PAID' });
    }
    expect(isSold('CANCELLED')).toBe(false);
    expect(isSold('AWAITING_PAYMENT')).toBe(false);
  });
});

describe('judgeAtTheDoor: the one judge, the order row deciding every payment it is told of', () => {
  const awaiting = {
    status: 'AWAITING_PAYMENT' as const,
    totalCents: 1_000,
    paymentDeadline: DEADLINE,
    intentDecides: false,
  };
  const late = { amountCents: 1_000, receivedAt: '2026-11-25T10:30:00.001Z' };

  it('applies the full amount recorded in time to an order awaiting payment', () => {
    expect(judgeAtTheDoor(awaiting, inTime)).toEqual({ outcome: 'APPLIED' });
  });

  it('refunds the wrong amount, a late one, and any payment to an order closed unpaid, for its reason', () => {
    expect(judgeAtTheDoor(awaiting, { ...inTime, amountCents: 999 })).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'AMOUNT_MISMATCH',
    });
    expect(judgeAtTheDoor(awaiting, late)).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'RECEIVED_AFTER_DEADLINE',
    });
    expect(judgeAtTheDoor({ ...awaiting, status: 'CANCELLED' }, inTime)).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ORDER_NOT_AWAITING_PAYMENT',
    });
    expect(judgeAtTheDoor({ ...awaiting, status: 'FAILED' }, inTime)).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ORDER_FAILED',
    });
  });

  it("lets a provider's intent pay its order after the deadline: the provider's state machine decides", () => {
    expect(judgeAtTheDoor({ ...awaiting, intentDecides: true }, late)).toEqual({ outcome: 'APPLIED' });
  });

  it('refunds a payment to an order already sold, for the reason a closed order gives it', () => {
    for (const status of ['PAID', 'DISPUTED', 'REFUNDED'] as const) {
      const sold = { ...awaiting, status };
      expect(judgeAtTheDoor(sold, inTime)).toEqual({ outcome: 'REFUND_REQUIRED', refundReason: 'ALREADY_PAID' });
      // What the payment itself says comes first: late is late, sold or not.
      expect(judgeAtTheDoor(sold, late)).toEqual({
        outcome: 'REFUND_REQUIRED',
        refundReason: 'RECEIVED_AFTER_DEADLINE',
      });
    }
  });

  /** A cell's verdict: APPLIED, or the reason the payment is to be refunded for. */
  type Expected = 'APPLIED' | RefundReason;
  const verdictFor = (expected: Expected): PaymentVerdict =>
    expected === 'APPLIED' ? { outcome: 'APPLIED' } : { outcome: 'REFUND_REQUIRED', refundReason: expected };
  /** The payments of the table's columns, in order. */
  const arrivals = [
    ['the full amount in time', inTime],
    ['a cent short', { ...inTime, amountCents: 999 }],
    ['the full amount late', late],
    ['a cent short and late', { ...late, amountCents: 999 }],
  ] as const;
  // Every stored status, for an order the deadline decides and one its provider's intent decides (Stripe): its
  // verdict on each of `arrivals`. Written by hand, not derived from the rule, so a wrong verdict in any cell fails.
  // prettier-ignore
  const table: ReadonlyArray<[StoredOrderStatus, boolean, Expected, Expected, Expected, Expected]> = [
    ['AWAITING_PAYMENT', false, 'APPLIED',                    'AMOUNT_MISMATCH', 'RECEIVED_AFTER_DEADLINE',    'AMOUNT_MISMATCH'],
    ['AWAITING_PAYMENT', true,  'APPLIED',                    'AMOUNT_MISMATCH', 'APPLIED',                    'AMOUNT_MISMATCH'],
    ['PAID',             false, 'ALREADY_PAID',               'AMOUNT_MISMATCH', 'RECEIVED_AFTER_DEADLINE',    'AMOUNT_MISMATCH'],
    ['PAID',             true,  'ALREADY_PAID',               'AMOUNT_MISMATCH', 'ALREADY_PAID',               'AMOUNT_MISMATCH'],
    ['DISPUTED',         false, 'ALREADY_PAID',               'AMOUNT_MISMATCH', 'RECEIVED_AFTER_DEADLINE',    'AMOUNT_MISMATCH'],
    ['DISPUTED',         true,  'ALREADY_PAID',               'AMOUNT_MISMATCH', 'ALREADY_PAID',               'AMOUNT_MISMATCH'],
    ['REFUNDED',         false, 'ALREADY_PAID',               'AMOUNT_MISMATCH', 'RECEIVED_AFTER_DEADLINE',    'AMOUNT_MISMATCH'],
    ['REFUNDED',         true,  'ALREADY_PAID',               'AMOUNT_MISMATCH', 'ALREADY_PAID',               'AMOUNT_MISMATCH'],
    ['CANCELLED',        false, 'ORDER_NOT_AWAITING_PAYMENT', 'AMOUNT_MISMATCH', 'RECEIVED_AFTER_DEADLINE',    'AMOUNT_MISMATCH'],
    ['CANCELLED',        true,  'ORDER_NOT_AWAITING_PAYMENT', 'AMOUNT_MISMATCH', 'ORDER_NOT_AWAITING_PAYMENT', 'AMOUNT_MISMATCH'],
    ['FAILED',           false, 'ORDER_FAILED',               'AMOUNT_MISMATCH', 'RECEIVED_AFTER_DEADLINE',    'AMOUNT_MISMATCH'],
    ['FAILED',           true,  'ORDER_FAILED',               'AMOUNT_MISMATCH', 'ORDER_FAILED',               'AMOUNT_MISMATCH'],
  ];

  it('decides every stored status, deadline or intent deciding, and every kind of payment as its table says', () => {
    // The table leaves no status out: a new one must be given its rows.
    expect(new Set(table.map(([status, intentDecides]) => `${status}:${intentDecides}`))).toEqual(
      new Set(STORED_ORDER_STATUSES.flatMap((status) => [`${status}:false`, `${status}:true`])),
    );
    for (const [status, intentDecides, ...expected] of table) {
      const order = { ...awaiting, status, intentDecides };
      arrivals.forEach(([arrival, payment], i) =>
        expect
          .soft(judgeAtTheDoor(order, payment), `${status}, intentDecides ${intentDecides}: ${arrival}`)
          .toEqual(verdictFor(expected[i]!)),
      );
    }
  });
});
