/** PaymentCatchUpWorkflow, on a Schedule: the provider's undelivered events, through the webhook's path (each once). */
import { proxyActivities } from '@temporalio/workflow';
import type { CatchUpActivities } from '../activities/payments.js';
import type { CatchUpInput, CatchUpResult } from '../model/catch-up-workflow.js';

const { catchUpProviderEvents } = proxyActivities<CatchUpActivities>({
  // A backlog of days is read page by page, heartbeating; the cursor moves only once a window is read whole.
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  // The next scheduled run starts over anyway: a few attempts, then give up on this one.
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumAttempts: 3 },
});

// Pinned (the worker's default): a run lasts minutes, so a rollout keeps the old build no longer than that.
export async function PaymentCatchUpWorkflow(input: CatchUpInput): Promise<CatchUpResult> {
  return catchUpProviderEvents(input);
}
