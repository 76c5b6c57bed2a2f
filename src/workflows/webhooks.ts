/** EndpointDeliveryWorkflow, one per enabled endpoint: its work grows with endpoints, not orders. */
import {
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import type { WebhookActivities } from '../activities/webhooks.js';
import { wakeDeliverySignal, type EndpointDeliveryInput } from '../events/delivery-definitions.js';

const { deliverEndpointEvents } = proxyActivities<WebhookActivities>({
  // A round sends a few waves of EVENTS_CONCURRENCY, each bounded by EVENTS_ATTEMPT_TIMEOUT_MS (at most 30 s).
  startToCloseTimeout: '5 minutes',
  // A few of the activity's 2 s heartbeats: a round whose worker died is retried within seconds, not a minute.
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
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
  for (let rounds = 1; ; rounds++) {
    woken = false;
    const round = await deliverEndpointEvents({ endpointId: input.endpointId });
    if (round.stopped) return { rounds };
    if (rounds >= ROUNDS_PER_RUN || workflowInfo().continueAsNewSuggested)
      await continueAsNew<typeof EndpointDeliveryWorkflow>(input);
    if (round.more) continue;
    const waitMs = Math.max(MIN_WAIT_MS, Math.min(input.pollIntervalMs, round.nextDueInMs ?? Infinity));
    await condition(() => woken, waitMs);
  }
}

// Auto-upgrade: it lives as long as its endpoint, so a rollout moves it at its next task (its state is in MySQL). A run
// in flight replays on the new build: a change to its commands needs a patch (no recorded history guards that yet).
setWorkflowOptions({ versioningBehavior: 'AUTO_UPGRADE' }, EndpointDeliveryWorkflow);
