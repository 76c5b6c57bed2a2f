/** Workflow start latency from Temporal's visibility store: reservation to workflow start, per order. */
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import type { AppConfig } from '../src/config/index.js';
import type { Stores } from '../src/db/stores.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { StartPacing } from '../src/order/start-pacing.js';
import { pct, sorted } from './stats.js';

/** Reservation (orders.created_at) to workflow start (Temporal's startTime), per order. */
export async function workflowStartLatency(
  config: Pick<AppConfig, 'temporal' | 'payloadCodec'>,
  stores: Stores,
  sku: string,
  expected: number,
) {
  const connection = await Connection.connect({ address: config.temporal.address });
  try {
    const client = new Client({
      connection,
      namespace: config.temporal.namespace,
      dataConverter: temporalDataConverter(config),
    });
    const createdAt = new Map(
      [...(await stores.reports.orderCreationTimes(sku))].map(([orderNo, at]) => [
        orderWorkflowId(orderNo),
        at.getTime(),
      ]),
    );
    let starts: number[] = [];
    // Visibility is eventually consistent: list until every workflow shows up (or 20 s pass).
    for (let attempt = 0; attempt < 100; attempt++) {
      starts = [];
      for await (const wf of client.workflow.list({ query: `OrderSku = '${sku}'` })) {
        const created = createdAt.get(wf.workflowId);
        starts.push(created === undefined ? NaN : wf.startTime.getTime() - created);
      }
      if (starts.length >= expected) break;
      await sleep(200);
    }
    const valid = sorted(starts.filter((n) => Number.isFinite(n)));
    return { p50Ms: pct(valid, 50) ?? 0, p99Ms: pct(valid, 99) ?? 0, count: starts.length };
  } finally {
    await connection.close();
  }
}

/**
 * Counts a sale's running OrderWorkflows (visibility), for the payment phase's "every workflow closed"; one connection
 * kept until `close()`.
 */
export async function runningOrderWorkflows(
  config: Pick<AppConfig, 'temporal' | 'payloadCodec'>,
): Promise<{ count(sku: string): Promise<number>; close(): Promise<void> }> {
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: temporalDataConverter(config),
  });
  const orders = OrderWorkflowClient.withoutBreakers(
    client,
    config.temporal.taskQueue,
    new StartPacing({ maxLimit: 1 }),
  );
  return { count: (sku) => orders.countRunning(sku), close: () => connection.close() };
}
