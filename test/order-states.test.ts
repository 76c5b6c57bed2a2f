/**
 * The one state machine of each thing (src/model/order-rules.ts): an order's row (ORDER_MOVES), a payment
 * (PAYMENT_MOVES), and what Redis holds for each row status (RESERVATION_OF_STATUS); the guards the SQL moves on; and
 * the workflow's report of its run (statusOf), which keeps no status of its own. The stores' moves along these tables
 * are exercised by test/activities.test.ts (the one close) against MySQL.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  isFinal,
  isSold,
  ORDER_FIRST_STATUSES,
  ORDER_MOVES,
  PAYMENT_MOVES,
  paymentOutcomesMovingTo,
  RESERVATION_OF_STATUS,
  statusesMovingTo,
  STORED_ORDER_STATUSES,
  STORED_PAYMENT_OUTCOMES,
  type StoredOrderStatus,
  type StoredPaymentOutcome,
} from '../src/model/order-rules.js';
import { statusOf } from '../src/workflows/order.js';

function reachable<S extends string>(moves: { readonly [From in S]: readonly S[] }, from: readonly S[]): Set<S> {
  const seen = new Set<S>(from);
  for (const queue = [...from]; queue.length > 0;)
    for (const next of moves[queue.shift() as S]) {
      if (seen.has(next)) continue;
      seen.add(next);
      queue.push(next);
    }
  return seen;
}

describe("an order row's statuses (ORDER_MOVES)", () => {
  it('lists every stored status; each is reached from how a row is first written', () => {
    expect(Object.keys(ORDER_MOVES).sort()).toEqual([...STORED_ORDER_STATUSES].sort());
    expect([...reachable(ORDER_MOVES, ORDER_FIRST_STATUSES)].sort()).toEqual([...STORED_ORDER_STATUSES].sort());
  });

  it('CANCELLED and FAILED are final, the only final ones; nothing moves back to AWAITING_PAYMENT', () => {
    expect(STORED_ORDER_STATUSES.filter(isFinal).sort()).toEqual(['CANCELLED', 'FAILED']);
    for (const from of STORED_ORDER_STATUSES) expect(ORDER_MOVES[from], from).not.toContain('AWAITING_PAYMENT');
  });

  it('a sold order stays sold, but for failing when Redis lost its units; an unpaid one is never sold but by a payment', () => {
    for (const from of ['PAID', 'DISPUTED', 'REFUNDED'] as const)
      for (const to of ORDER_MOVES[from]) expect(isSold(to) || to === 'FAILED', `${from} → ${to}`).toBe(true);
    expect(statusesMovingTo('PAID')).toEqual(['AWAITING_PAYMENT', 'DISPUTED', 'REFUNDED']);
    expect(statusesMovingTo('CANCELLED')).toEqual(['AWAITING_PAYMENT']);
    expect(statusesMovingTo('FAILED')).toEqual(['AWAITING_PAYMENT', 'PAID', 'DISPUTED', 'REFUNDED']);
    expect(statusesMovingTo('AWAITING_PAYMENT')).toEqual([]);
  });

  it('Redis holds a unit as its row says: claimed while payable, sold once paid, given back once final', () => {
    for (const status of STORED_ORDER_STATUSES) {
      const held = RESERVATION_OF_STATUS[status];
      if (isSold(status)) expect(held, status).toBe('SOLD');
      else if (isFinal(status)) expect(held, status).toBe('RELEASED');
      else expect(held, status).toBe('CLAIMED');
    }
  });
});

describe("a payment's outcomes (PAYMENT_MOVES)", () => {
  it("lists every outcome; each is reached from RECEIVED, and REFUND_FAILED (an operator's) ends it", () => {
    expect(Object.keys(PAYMENT_MOVES).sort()).toEqual([...STORED_PAYMENT_OUTCOMES].sort());
    expect([...reachable(PAYMENT_MOVES, ['RECEIVED'] as const)].sort()).toEqual([...STORED_PAYMENT_OUTCOMES].sort());
    expect(PAYMENT_MOVES.REFUND_FAILED).toEqual([]);
  });

  it('never moves back to RECEIVED or APPLIED once owed back; a refund only moves forwards', () => {
    const owed: StoredPaymentOutcome[] = ['REFUND_REQUIRED', 'REFUND_REQUESTED', 'REFUNDED', 'REFUND_FAILED'];
    for (const from of owed)
      for (const to of ['RECEIVED', 'APPLIED', 'REFUND_REQUIRED'] as const)
        expect(PAYMENT_MOVES[from] as readonly string[], `${from} → ${to}`).not.toContain(to);
    expect(paymentOutcomesMovingTo('REFUNDED')).toEqual(['REFUND_REQUIRED', 'REFUND_REQUESTED']);
    expect(paymentOutcomesMovingTo('APPLIED')).toEqual(['RECEIVED']);
  });
});

describe('the SQL that moves them', () => {
  const dbDir = join(import.meta.dirname, '..', 'src', 'db');
  const sources = readdirSync(dbDir)
    .filter((file) => file.endsWith('.ts'))
    .map((file) => ({ file, text: readFileSync(join(dbDir, file), 'utf8') }));

  it("guards every statement that moves an order's status on ORDER_MOVES", () => {
    const statements = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/UPDATE orders(?: [a-z])? SET (?:[a-z]\.)?status = [^`]*`/g)].map((m) => ({ file, sql: m[0] })),
    );
    expect(statements.length).toBeGreaterThan(0);
    for (const { file, sql } of statements) expect(sql, `${file}: ${sql}`).toMatch(/status IN \(\?\)/);
  });

  it("guards every statement that moves a payment's outcome on PAYMENT_MOVES (or names the outcomes it moves from)", () => {
    const statements = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/UPDATE payments SET outcome = [^`]*`/g)].map((m) => ({ file, sql: m[0] })),
    );
    expect(statements.length).toBeGreaterThan(0);
    for (const { file, sql } of statements) expect(sql, `${file}: ${sql}`).toMatch(/outcome (IN \(\?\)|= '[A-Z_]+')/);
  });
});

describe("the workflow's report of its run (statusOf): no status of its own", () => {
  it('PENDING until persisted, AWAITING_PAYMENT until its row closed it, then what the row said', () => {
    expect(statusOf('PERSISTING', false, undefined)).toBe('PENDING');
    // A persist that failed never showed the order as payable.
    expect(statusOf('CLOSING', false, undefined)).toBe('PENDING');
    for (const phase of ['AWAITING_PAYMENT', 'SETTLING_AT_PROVIDER', 'CLOSING'] as const)
      expect(statusOf(phase, true, undefined), phase).toBe('AWAITING_PAYMENT');
    const sold: StoredOrderStatus[] = ['PAID', 'DISPUTED', 'REFUNDED'];
    for (const status of sold)
      expect(statusOf('CLOSED', true, { outcome: 'PAID', status: status as 'PAID', paidAt: null })).toBe(status);
    expect(statusOf('CLOSED', true, { outcome: 'CANCELLED', reason: 'USER_CANCELLED' })).toBe('CANCELLED');
    expect(statusOf('CLOSED', false, { outcome: 'FAILED', reason: 'SaleNotFound: x' })).toBe('FAILED');
  });
});
