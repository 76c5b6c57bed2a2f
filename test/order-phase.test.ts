/**
 * OrderRun's phase table (src/workflows/order.ts): every phase is reached from PERSISTING and reaches CLOSED,
 * and a move the table does not list is refused. The workflow's own moves are exercised by
 * test/order-workflow-branches.test.ts and the recorded histories (test/replay.test.ts): a move the run makes
 * that the table lacks fails the workflow task there.
 */
import { describe, expect, it } from 'vitest';
import { assertPhaseMove, PHASE_TRANSITIONS } from '../src/workflows/order.js';

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
