/** The order events' delivery contract: one long-lived workflow per endpoint (types and constants only). */
import { defineSignal } from '@temporalio/workflow';

export function endpointDeliveryWorkflowId(endpointId: string): string {
  return `order-events-${endpointId}`;
}

/** Something changed for the endpoint (created, enabled, an event resent, a secret rotated): look now. */
export const wakeDeliverySignal = defineSignal('wake');

export interface EndpointDeliveryInput {
  endpointId: string;
  /** The longest wait between rounds (EVENTS_POLL_INTERVAL): a round itself watches the feed that often. */
  pollIntervalMs: number;
}

/** One round of the endpoint's delivery: what it queued and sent, and when it has work again. */
export interface DeliveryRound {
  /** The endpoint is disabled or gone: the workflow ends (enabling it starts it again). */
  stopped: boolean;
  queued: number;
  sent: number;
  delivered: number;
  /** Go on at once: more is due now (a full page, an event, a retry), or the round watched the feed its while. */
  more: boolean;
  /** When the next owed event is due, from now; null when none is owed. */
  nextDueInMs: number | null;
}
