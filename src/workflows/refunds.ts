/**
 * RefundWorkflow (refund-<event id>, started by the reconciler): refunds one payment its row says is owed back. A run
 * that ends with the row still due (bound passed, refund under way) leaves the next start to the reconciler.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { RefundActivities } from '../activities/refunds.js';
import { REFUND_RUN_BOUND_MS, type RefundRunOutcome, type RefundWorkflowSignature } from '../model/order-workflow.js';

const { refundPayment } = proxyActivities<RefundActivities>({
  // A provider call is bounded by the client's own timeout (seconds); a minute covers a slow MySQL around it.
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: REFUND_RUN_BOUND_MS,
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

// Pinned (the worker's default; only the endpoint delivery auto-upgrades): a run lasts an hour at most, so a
// rollout keeps the old build no longer than that.
export async function RefundWorkflow(input: { eventId: string }): Promise<RefundRunOutcome> {
  return refundPayment(input);
}

/** The reconciler starts it by name with RefundWorkflowSignature: this stops compiling if the two part ways. */
const _keepsItsSignature: RefundWorkflowSignature = RefundWorkflow;
