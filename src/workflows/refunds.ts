/** RefundWorkflow (refund-<event id>): a payment's owed refund until its provider ends it (docs/fault-tolerance.md). */
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { RefundActivities } from '../activities/refunds.js';
import { type RefundRunOutcome, type RefundWorkflowSignature } from '../model/order-workflow.js';

const { refundPayment } = proxyActivities<RefundActivities>({
  // A provider call is bounded by the client's own timeout (seconds); a minute covers a slow MySQL around it.
  startToCloseTimeout: '1 minute',
  // Until the provider answers: the money is owed whatever the wait.
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

/** A refund under way is read again after 1 min, doubling to 6 h (± 20 %): its final webhook may never come. */
const FOLLOW_FIRST_MS = 60_000;
const FOLLOW_MAX_MS = 6 * 3_600_000;

// Pinned (the worker's default): a refund still under way keeps its build until the provider ends it (hours at most).
export async function RefundWorkflow(input: { eventId: string }): Promise<RefundRunOutcome> {
  for (let follows = 0; ; follows++) {
    const outcome = await refundPayment(input);
    if (outcome !== 'REFUND_REQUESTED') return outcome;
    // Math.random is the workflow's own, seeded per run: deterministic on replay.
    const base = Math.min(FOLLOW_MAX_MS, FOLLOW_FIRST_MS * 2 ** follows);
    await sleep(Math.round(base * (0.8 + Math.random() * 0.4)));
  }
}

/** Callers start it by name with RefundWorkflowSignature: this stops compiling if the two part ways. */
const _keepsItsSignature: RefundWorkflowSignature = RefundWorkflow;
