/**
 * RefundWorkflow: the refund of one payment its row says is owed back, started by the reconciler (ReconcileWorkflow)
 * with the id refund-<event id>. Its one activity asks the provider or reads a refund under way again; Temporal retries
 * what the provider did not answer, 2 s doubling to 5 min, for at most an hour (REFUND_RUN_BOUND_MS). A run that ends
 * without moving the row on (its bound passed, a refund still under way) leaves it due: the reconciler starts the next.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { RefundActivities, RefundRunOutcome } from '../activities/refunds.js';
import { REFUND_RUN_BOUND_MS, type RefundWorkflowSignature } from '../model/order-workflow.js';

const { refundPayment } = proxyActivities<RefundActivities>({
  // A provider call is bounded by the client's own timeout (seconds); a minute covers a slow MySQL around it.
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: REFUND_RUN_BOUND_MS,
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

// Pinned, as every workflow here: a run lasts an hour at most, so a rollout keeps the old build no longer than that.
export async function RefundWorkflow(input: { eventId: string }): Promise<RefundRunOutcome> {
  return refundPayment(input);
}

/** The reconciler starts it by name with RefundWorkflowSignature: this stops compiling if the two part ways. */
const _keepsItsSignature: RefundWorkflowSignature = RefundWorkflow;
