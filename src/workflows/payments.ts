/**
 * PaymentCatchUpWorkflow: run by a Temporal Schedule every STRIPE_CATCH_UP_INTERVAL. Its one activity reads the
 * provider's events it has not delivered since the cursor kept in MySQL and takes each in through the webhook's own
 * path (src/activities/payments.ts), so a payment missed while the endpoint was down or refusing is applied or
 * refunded exactly once, like one delivered.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { CatchUpActivities } from '../activities/payments.js';
import type { CatchUpInput, CatchUpResult } from '../payments/catch-up-definitions.js';

const { catchUpProviderEvents } = proxyActivities<CatchUpActivities>({
  // A backlog of days is read page by page, heartbeating; the cursor moves only once a window is read whole.
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  // The next scheduled run starts over anyway: a few attempts, then give up on this one.
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumAttempts: 3 },
});

// Pinned: a run lasts minutes at most and the schedule starts the next on the current build; the old build is kept
// until its runs close (no patches for a run that would outlive a rollout). Pinned by the worker's default.
export async function PaymentCatchUpWorkflow(input: CatchUpInput): Promise<CatchUpResult> {
  return catchUpProviderEvents(input);
}
