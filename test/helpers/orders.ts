/**
 * The order client and lookup as the worker and the tools build them (no breakers), for tests that
 * call the order directly or subclass one to inject a fault.
 */
import type { Client } from '@temporalio/client';
import { payloadCodecOf } from '../../src/infra/data-converter.js';
import { testConfig } from './env.js';
import { isMysqlFailure } from '../../src/db/rows.js';
import type { Stores } from '../../src/db/stores.js';
import { DependencyGuard } from '../../src/infra/dependency-guard.js';
import type { RedisInventory } from '../../src/redis/inventory.js';
import { OrderWorkflowClient } from '../../src/order/workflow-client.js';
import { OrderLookup, type OrderLookupDeps } from '../../src/order/lookup.js';
import { StartPacing } from '../../src/order/start-pacing.js';
import { newOrderOf } from '../../src/order/close.js';
import type { ClosedOrder } from '../../src/db/orders.js';
import { orderWorkflowId, type CloseRequest } from '../../src/model/order-workflow.js';

/** Starts paced at `maxConcurrentStarts` in flight, as MAX_CONCURRENT_STARTS's default. */
export function pacingOf(maxConcurrentStarts = 32): StartPacing {
  return new StartPacing({ maxLimit: maxConcurrentStarts });
}

export function ordersWithoutBreakers(
  temporal: Client,
  taskQueue: string,
  maxConcurrentStarts = 32,
): OrderWorkflowClient {
  return OrderWorkflowClient.withoutBreakers(temporal, taskQueue, pacingOf(maxConcurrentStarts));
}

/** What an OrderLookup (or a subclass) is built from, with a MySQL guard that never opens. */
export function lookupDeps(stores: Stores, inventory: RedisInventory | null = null): OrderLookupDeps {
  return {
    stores,
    inventory,
    promiseReadMs: 0,
    mysql: DependencyGuard.neverOpen('mysql', isMysqlFailure),
    secrets: payloadCodecOf(testConfig()),
  };
}

/** The client and the lookup over it, on `taskQueue`; orders pending their start found in `inventory` when given. */
export function orderAccess(
  temporal: Client,
  stores: Stores,
  taskQueue: string,
  inventory: RedisInventory | null = null,
): { orders: OrderWorkflowClient; lookup: OrderLookup } {
  const orders = ordersWithoutBreakers(temporal, taskQueue);
  return { orders, lookup: new OrderLookup(lookupDeps(stores, inventory)) };
}

/** The one close of an order by its number, in MySQL only (no Redis step): its row decides, as in OrderStore.close. */
export async function closeRow(
  stores: Pick<Stores, 'orders'>,
  orderNo: string,
  request: CloseRequest,
): Promise<ClosedOrder> {
  const row = await stores.orders.getOrder(orderNo);
  if (!row) throw new Error(`order ${orderNo} has no row to close`);
  return stores.orders.close(newOrderOf(row), request);
}

/** Resolves once the order's workflow has closed, however it ended. */
export async function awaitClosed(temporal: Client, orderNo: string): Promise<void> {
  await temporal.workflow
    .getHandle(orderWorkflowId(orderNo))
    .result()
    .catch(() => undefined);
}
