/** EndpointDeliveryWorkflow, one per enabled endpoint: its work grows with endpoints, not orders. */
import {
  condition,
  continueAsNew,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { WebhookActivities } from '../activities/webhooks.js';
import { wakeDeliverySignal, type EndpointDeliveryInput } from '../model/delivery-workflow.js';
import { deliveryTaskQueue } from '../model/order-workflow.js';

const ROUND_OPTIONS = {
  // A round sends a few waves of EVENTS_CONCURRENCY, each bounded by EVENTS_ATTEMPT_TIMEOUT_MS (at most 30 s).
  startToCloseTimeout: '5 minutes',
  // A few of the activity's 2 s heartbeats: a round whose worker died is retried within seconds, not a minute.
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
} as const;

/**
 * Patch (docs/testing.md, "Changing the workflow"): rounds run on the deliveries' own queue; a run begun before keeps
 * the orders' queue (its history replays so) until it continues as new.
 */
const DELIVERIES_OWN_QUEUE_PATCH = 'deliveries-own-queue';

/** The next run starts on the deployment's current version (upgrade on continue-as-new); later tasks pin it there. */
const continueOnTargetVersion = makeContinueAsNewFunc<typeof EndpointDeliveryWorkflow>({
  initialVersioningBehavior: 'AUTO_UPGRADE',
});

/** Rounds per run before continuing as new: about 10 events each keeps a run's history small. */
const ROUNDS_PER_RUN = 200;
/** The shortest wait between rounds that found nothing due now. */
const MIN_WAIT_MS = 50;

export async function EndpointDeliveryWorkflow(input: EndpointDeliveryInput): Promise<{ rounds: number }> {
  let woken = false;
  setHandler(wakeDeliverySignal, () => {
    woken = true;
  });
  const patchedRun = patched(DELIVERIES_OWN_QUEUE_PATCH);
  const { deliverEndpointEvents } = proxyActivities<WebhookActivities>(
    patchedRun ? { ...ROUND_OPTIONS, taskQueue: deliveryTaskQueue(workflowInfo().taskQueue) } : ROUND_OPTIONS,
  );
  for (let rounds = 1; ; rounds++) {
    woken = false;
    const round = await deliverEndpointEvents({ endpointId: input.endpointId });
    if (round.stopped) return { rounds };
    // Pinned (the workers' default) so a run never replays another build's code; a rollout moves it at its next round.
    if (patchedRun && workflowInfo().targetWorkerDeploymentVersionChanged) await continueOnTargetVersion(input);
    if (rounds >= ROUNDS_PER_RUN || workflowInfo().continueAsNewSuggested)
      await continueAsNew<typeof EndpointDeliveryWorkflow>(input);
    if (round.more) continue;
    const waitMs = Math.max(MIN_WAIT_MS, Math.min(input.pollIntervalMs, round.nextDueInMs ?? Infinity));
    await condition(() => woken, waitMs);
  }
}
