/**
 * The payment phase with a merchant subscribed (`--events-receiver`): one endpoint for every order event, created
 * through the admin API, its receiver in this process (stack/event-receiver.ts, verifying each call with
 * `standardwebhooks`). Reports what the receiver got of the sale (each order.paid once per id, the delay) and
 * Temporal's work for it: the endpoint's delivery history events per paid order, beside an order workflow's own.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import type { AppConfig } from '../src/config/index.js';
import type { Stores } from '../src/db/stores.js';
import { endpointDeliveryWorkflowId } from '../src/model/delivery-workflow.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { startEventReceiver, type EventReceiver, type ReceiverSummary } from '../stack/event-receiver.js';

export interface EventsDeliveryFigures {
  /** The sale's paid orders, and how many distinct order.paid events the receiver accepted of them. */
  paidOrders: number;
  paidReceived: number;
  receiver: Omit<ReceiverSummary, 'acceptedIds'>;
  /** From the phase's end (every order closed) until the receiver had every order.paid (null: not within the bound). */
  allReceivedAfterSeconds: number | null;
  /** History events of the endpoint's delivery workflow (every run of it) during the phase, per paid order. */
  deliveryHistoryEventsPerOrder: number;
  /** An order workflow's own history events (the mean over 20 of the sale's), for scale. */
  orderHistoryEvents: number;
}

export interface SubscribedReceiver {
  receiver: EventReceiver;
  endpointId: string;
  /** The delivery workflow's history length so far (its runs summed). */
  historyEvents(): Promise<number>;
  /** Waits for the sale's order.paid events, then unsubscribes (disables the endpoint) and closes the receiver. */
  finish(options: { sku: string; lastSentAt: number; timeoutMs?: number }): Promise<EventsDeliveryFigures>;
}

export async function subscribeReceiver(options: {
  apiUrl: string;
  config: Pick<AppConfig, 'adminToken' | 'temporal' | 'payloadCodec'>;
  stores: Stores;
}): Promise<SubscribedReceiver> {
  const receiver = await startEventReceiver();
  const created = await fetch(`${options.apiUrl}/api/admin/webhook-endpoints`, {
    method: 'POST',
    headers: { authorization: `Bearer ${options.config.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: receiver.url, description: 'the benchmark’s receiver' }),
  });
  if (created.status !== 201) throw new Error(`endpoint not created: ${created.status} ${await created.text()}`);
  const { endpoint, secret } = (await created.json()) as { endpoint: { endpointId: string }; secret: string };
  receiver.setSecrets([secret]);
  const connection = await Connection.connect({ address: options.config.temporal.address });
  const temporal = new Client({
    connection,
    namespace: options.config.temporal.namespace,
    dataConverter: temporalDataConverter(options.config),
  });
  // Closed runs (continued as new) from visibility, the running one from its own description (visibility's
  // historyLength of a running workflow is not kept current).
  const historyEvents = async (): Promise<number> => {
    const workflowId = endpointDeliveryWorkflowId(endpoint.endpointId);
    let total = 0;
    for await (const run of temporal.workflow.list({
      query: `WorkflowId = '${workflowId}' AND ExecutionStatus != 'Running'`,
    }))
      total += run.historyLength;
    const running = await temporal.workflow.getHandle(workflowId).describe();
    return total + (running.status.name === 'RUNNING' ? running.historyLength : 0);
  };
  const atStart = await historyEvents();
  return {
    receiver,
    endpointId: endpoint.endpointId,
    historyEvents,
    async finish({ sku, lastSentAt, timeoutMs = 120_000 }) {
      try {
        const paid = [...(await options.stores.reports.orderNumbersOfSale(sku, 'PAID'))];
        const wanted = new Set(paid);
        const got = () => receiver.received.filter((e) => e.type === 'order.paid' && wanted.has(e.orderNo)).length;
        const deadline = Date.now() + timeoutMs;
        while (got() < wanted.size && Date.now() < deadline) await sleep(100);
        const allReceivedAfterSeconds = got() >= wanted.size ? (Date.now() - lastSentAt) / 1000 : null;
        // Visibility lags the history by a moment: the count is read after the last round's timer.
        await sleep(2_000);
        const deliveryEvents = (await historyEvents()) - atStart;
        const sample = paid.slice(0, 20);
        const lengths = await Promise.all(
          sample.map(
            async (orderNo) => (await temporal.workflow.getHandle(orderWorkflowId(orderNo)).describe()).historyLength,
          ),
        );
        return {
          paidOrders: wanted.size,
          paidReceived: got(),
          receiver: withoutIds(receiver.summary()),
          allReceivedAfterSeconds:
            allReceivedAfterSeconds === null ? null : Math.round(allReceivedAfterSeconds * 10) / 10,
          deliveryHistoryEventsPerOrder: wanted.size ? Math.round((deliveryEvents / wanted.size) * 1000) / 1000 : 0,
          orderHistoryEvents: lengths.length
            ? Math.round((lengths.reduce((a, b) => a + b, 0) / lengths.length) * 10) / 10
            : 0,
        };
      } finally {
        await options.stores.webhooks.updateEndpoint(endpoint.endpointId, { enabled: false });
        await receiver.close();
        await connection.close();
      }
    },
  };
}

export function describeEventsDelivery(figures: EventsDeliveryFigures): string {
  const { receiver } = figures;
  return (
    `events: ${figures.paidReceived} of ${figures.paidOrders} order.paid received (${receiver.accepted} events in all, ` +
    `${receiver.duplicates} duplicates, ${receiver.unverified} unverified), all within ${figures.allReceivedAfterSeconds ?? '—'} s ` +
    `of the last payment; delay p50 ${receiver.delayMs?.p50 ?? '—'} / p99 ${receiver.delayMs?.p99 ?? '—'} ms; ` +
    `delivery history events per order ${figures.deliveryHistoryEventsPerOrder} (an order's own: ${figures.orderHistoryEvents})`
  );
}

/** The summary as the results file keeps it: counts, not the ids. */
function withoutIds({ acceptedIds: _ids, ...counts }: ReceiverSummary): Omit<ReceiverSummary, 'acceptedIds'> {
  return counts;
}
