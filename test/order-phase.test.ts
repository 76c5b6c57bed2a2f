/**
 * OrderRun's phase table (src/workflows/order.ts): every phase is reached from PERSISTING and reaches CLOSED,
 * and a move the table does not list is refused; the status an order shows is its phase's (statusOf), never kept
 * beside it. The workflow's own moves are exercised by
 * test/order-workflow-branches.test.ts and the recorded histories (test/replay.test.ts): a move the run makes
 * that the table lacks fails the workflow task there.
 */
import { describe, expect, it } from 'vitest';
import { assertPhaseMove, PHASE_TRANSITIONS, statusOf } from '../src/workflows/order.js';

type Phase = keyof typeof PHASE_TRANSITIONS;
const PHASES = Object.keys(PHASE_TRANSITIONS) as Phase[];

function reachableFrom(start: Phase): Set<Phase> {
  const seen = new Set<Phase>([start]);
  for (const queue = [start]; queue.length > 0;) {
    for (const next of PHASE_TRANSITIONS[queue.shift() as Phase]) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return seen;
}

describe("OrderRun's phases", () => {
  it('every phase is reached from PERSISTING, and every phase reaches CLOSED, which ends the run', () => {
    expect([...reachableFrom('PERSISTING')].sort()).toEqual([...PHASES].sort());
    for (const phase of PHASES) expect(reachableFrom(phase).has('CLOSED'), phase).toBe(true);
    expect(PHASE_TRANSITIONS.CLOSED).toEqual([]);
  });

  it('no phase moves to itself, and none back to PERSISTING', () => {
    for (const phase of PHASES) {
      expect(PHASE_TRANSITIONS[phase], phase).not.toContain(phase);
      expect(PHASE_TRANSITIONS[phase], phase).not.toContain('PERSISTING');
    }
  });

  it('once decided (PAYING, SETTLING_IN_MYSQL, FAILING), the order never goes back to an open phase', () => {
    const open: Phase[] = [
      'PERSISTING',
      'AWAITING_PAYMENT',
      'CANCEL_REQUESTED',
      'PAYMENT_APPLIED',
      'SETTLING_AT_PROVIDER',
    ];
    for (const decided of ['PAYING', 'SETTLING_IN_MYSQL', 'FAILING'] as const) {
      for (const phase of reachableFrom(decided)) expect(open, `${decided} reaches ${phase}`).not.toContain(phase);
    }
  });

  it('the status shown is read from the phase: PENDING until persisted, AWAITING_PAYMENT until closed, then its end', () => {
    const payment = { eventId: 'evt-1', amountCents: 1_500, receivedAt: '2026-11-27T00:00:00.000Z' };
    expect(statusOf({ kind: 'PERSISTING' })).toBe('PENDING');
    // A persist that failed never showed the order as payable.
    expect(statusOf({ kind: 'FAILING', applied: undefined, persisted: false })).toBe('PENDING');
    expect(statusOf({ kind: 'FAILING', applied: payment, persisted: true })).toBe('AWAITING_PAYMENT');
    for (const kind of [
      'AWAITING_PAYMENT',
      'CANCEL_REQUESTED',
      'SETTLING_AT_PROVIDER',
      'SETTLING_IN_MYSQL',
      'CANCELLING',
    ] as const)
      expect(statusOf({ kind }), kind).toBe('AWAITING_PAYMENT');
    for (const kind of ['PAYMENT_APPLIED', 'PAYING'] as const)
      expect(statusOf({ kind, payment }), kind).toBe('AWAITING_PAYMENT');
    for (const as of ['PAID', 'CANCELLED', 'FAILED'] as const)
      expect(statusOf({ kind: 'CLOSED', as, applied: undefined })).toBe(as);
  });

  it('assertPhaseMove lets every listed move through and refuses any other', () => {
    for (const from of PHASES) {
      for (const to of PHASES) {
        const move = () => assertPhaseMove(from, to);
        if (PHASE_TRANSITIONS[from].includes(to)) expect(move, `${from} → ${to}`).not.toThrow();
        else expect(move, `${from} → ${to}`).toThrow(`no move from phase ${from} to ${to}`);
      }
    }
    // A cancel once a payment was applied, a payment applied once cancelled in MySQL, a closed order reopened.
    expect(() => assertPhaseMove('PAYMENT_APPLIED', 'CANCEL_REQUESTED')).toThrow(Error);
    expect(() => assertPhaseMove('SETTLING_IN_MYSQL', 'PAYMENT_APPLIED')).toThrow(Error);
    expect(() => assertPhaseMove('CLOSED', 'PAYING')).toThrow(Error);
  });
});
