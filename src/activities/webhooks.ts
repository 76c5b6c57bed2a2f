/** EndpointDeliveryWorkflow's activity: attempts and next tries are in MySQL; the workflow passes an endpoint id. */
import type { AttemptRecord, DueDelivery, WebhookStore } from '../db/webhooks.js';
import type { DeliveryRound } from '../model/delivery-workflow.js';
import type { EndpointSecretBox } from '../order-events/endpoint-secrets.js';
import { CustomerReferences, orderEventOf } from '../order-events/order-events.js';
import {
  coarseReason,
  type WebhookDeliverySettings,
  type WebhookOutcome,
  type WebhookSender,
} from '../order-events/webhook-sender.js';
import { beat, pause } from './heartbeat.js';

/** How often a round tells Temporal it is alive (the workflow's heartbeat timeout is a few of these). */
export const HEARTBEAT_EVERY_MS = 2_000;
const QUEUE_PAGE = 500;
/** Deliveries sent per batch, in waves of EVENTS_CONCURRENCY: a batch's length is bounded by a few attempt timeouts. */
const WAVES_PER_BATCH = 4;
/** Polling often belongs in a heartbeating activity: an endpoint costs Temporal a round per ROUND_MS, busy or idle. */
export const ROUND_MS = 10_000;
/** Retries double (± 20 %) from EVENTS_RETRY_FIRST up to this, until the delivery's retry period ends. */
export const RETRY_MAX_MS = 3_600_000;

/** Told of each attempt's outcome, and of each delivery given up (the worker's metrics). */
export interface DeliveryObserver {
  attempted(outcome: WebhookOutcome['kind']): void;
  gaveUp(): void;
}

/** When a delivery that failed `attempts` times (this one included) is tried again. */
export function retryDelayMs(attempts: number, firstMs: number, random: () => number = Math.random): number {
  const base = Math.min(RETRY_MAX_MS, firstMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** What one attempt leaves on its delivery; `now`: this process's clock, against the delivery's retry period. */
export function attemptRecordOf(
  outcome: WebhookOutcome,
  delivery: DueDelivery,
  now: number,
  retryFirstMs: number,
): AttemptRecord {
  const failed = (error: string, httpStatus: number | null, durationMs: number | null, waitMs?: number) => {
    const inMs = waitMs ?? retryDelayMs(delivery.attempts + 1, retryFirstMs);
    const gaveUp = now + inMs > delivery.retryUntil.getTime();
    const next = gaveUp ? ({ status: 'GAVE_UP' } as const) : ({ status: 'PENDING', inMs } as const);
    return { outcome: outcome.kind, httpStatus, error, durationMs, next };
  };
  switch (outcome.kind) {
    case 'delivered':
      return {
        outcome: 'delivered',
        httpStatus: outcome.status,
        error: null,
        durationMs: outcome.ms,
        next: { status: 'DELIVERED' },
      };
    case 'gone':
      return failed(coarseReason(outcome), 410, outcome.ms);
    case 'slow_down':
      return failed(coarseReason(outcome), outcome.status, outcome.ms, outcome.retryAfterMs);
    case 'failed':
      return failed(coarseReason(outcome), outcome.status, outcome.ms);
    case 'refused':
      return failed(coarseReason(outcome), null, null);
  }
}

export function createWebhookActivities(deps: {
  stores: { webhooks: WebhookStore };
  sender: WebhookSender;
  box: EndpointSecretBox;
  settings: Pick<
    WebhookDeliverySettings,
    'retryPeriodMs' | 'retryFirstMs' | 'concurrency' | 'customerSecret' | 'pollIntervalMs'
  >;
  observer?: () => DeliveryObserver;
}) {
  const { webhooks } = deps.stores;
  const customers = new CustomerReferences(deps.settings.customerSecret);
  return {
    /**
     * Batches for ROUND_MS, each reading the endpoint afresh (a rotated secret, a new URL). Ends early when it is gone,
     * answers 410 or asks us to wait, or once `stopping`: the workflow goes on elsewhere, not after the SDK's grace.
     */
    async deliverEndpointEvents(
      input: { endpointId: string },
      stopping: () => boolean = () => false,
    ): Promise<DeliveryRound> {
      const { endpointId } = input;
      const round: DeliveryRound = { stopped: false, queued: 0, sent: 0, delivered: 0, more: false, nextDueInMs: null };
      // On a clock, not per send: an attempt may take 30 s, and a dead worker's round waits out HEARTBEAT_TIMEOUT.
      const beating = setInterval(() => beat(round.sent), HEARTBEAT_EVERY_MS);
      try {
        for (const until = Date.now() + ROUND_MS; ;) {
          const batch = await sendBatch(endpointId, round);
          if (batch === 'stopped') return { ...round, stopped: true };
          if (batch === 'slow_down') return { ...round, nextDueInMs: await webhooks.nextDueInMs(endpointId) };
          if (Date.now() >= until || stopping()) return { ...round, more: true };
          if (batch === 'full') continue;
          const dueInMs = await webhooks.nextDueInMs(endpointId);
          if (dueInMs === null || dueInMs > 0) await pause(Math.min(deps.settings.pollIntervalMs, dueInMs ?? Infinity));
          if (stopping()) return { ...round, more: true };
        }
      } finally {
        clearInterval(beating);
      }
    },
  };

  /** Queues the endpoint's new events and sends what is due, one page; adds what it did to `round`. */
  async function sendBatch(
    endpointId: string,
    round: DeliveryRound,
  ): Promise<'stopped' | 'slow_down' | 'full' | 'done'> {
    const endpoint = await webhooks.getEndpoint(endpointId);
    if (!endpoint || !endpoint.enabled) return 'stopped';
    const queued = await webhooks.queueNewEvents(endpointId, deps.settings.retryPeriodMs, QUEUE_PAGE);
    round.queued += queued.queued;
    const secrets = [deps.box.open(endpointId, endpoint.secretBox)];
    if (endpoint.oldSecretBox && endpoint.oldSecretUntil && endpoint.oldSecretUntil.getTime() > Date.now())
      secrets.push(deps.box.open(endpointId, endpoint.oldSecretBox));

    const limit = deps.settings.concurrency * WAVES_PER_BATCH;
    const due = await webhooks.dueDeliveries(endpointId, limit);
    // A 410 or a slow-down ends the round: nothing more is sent to an endpoint that asked us to stop or wait.
    let halted: 'gone' | 'slow_down' | null = null;
    let next = 0;
    const sendNext = async (): Promise<void> => {
      for (let delivery = due[next++]; delivery && !halted; delivery = due[next++]) {
        const body = JSON.stringify(orderEventOf(delivery.event, { customers, shopperId: endpoint.includeShopperId }));
        const outcome = await deps.sender.send({ url: endpoint.url, id: delivery.event.eventId, body, secrets });
        // Halted at once, before the writes below: the batch's other senders start nothing more meanwhile.
        const halts = (outcome.kind === 'gone' || outcome.kind === 'slow_down') && !halted;
        if (halts) halted = outcome.kind;
        const record = attemptRecordOf(outcome, delivery, Date.now(), deps.settings.retryFirstMs);
        await webhooks.recordAttempt(endpointId, delivery.seq, record);
        deps.observer?.().attempted(outcome.kind);
        if (record.next.status === 'GAVE_UP') deps.observer?.().gaveUp();
        round.sent++;
        if (outcome.kind === 'delivered') round.delivered++;
        if (outcome.kind === 'gone')
          await webhooks.disableEndpoint(endpointId, `answered 410 Gone to event ${delivery.event.eventId}`);
        if (outcome.kind === 'slow_down' && halts)
          await webhooks.pauseEndpoint(endpointId, record.next.status === 'PENDING' ? record.next.inMs : 0);
      }
    };
    await Promise.all(Array.from({ length: Math.min(deps.settings.concurrency, due.length) }, sendNext));
    if (halted === 'gone') return 'stopped';
    if (halted) return 'slow_down';
    return queued.more || due.length === limit ? 'full' : 'done';
  }
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
