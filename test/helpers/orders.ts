/**
 * The order client and lookup as the worker and the tools build them (no breakers), for tests that
 * call the order directly or subclass one to inject a fault.
 */
import type { Client } from '@temporalio/client';
import { payloadCodecOf } from '../../src/infra/data-converter.js';
import { textSealerOf } from '../../src/infra/payload-codec.js';
import { testConfig } from './env.js';
import { isMysqlFailure } from '../../src/db/rows.js';
import type { Stores } from '../../src/db/stores.js';
import { DependencyGuard } from '../../src/infra/dependency-guard.js';
import type { RedisInventory } from '../../src/inventory/redis-inventory.js';
import { OrderWorkflowClient } from '../../src/order/workflow-client.js';
import { OrderLookup, type OrderLookupDeps } from '../../src/order/lookup.js';
import { StartPacing } from '../../src/order/start-pacing.js';

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
export function lookupDeps(
  orders: OrderWorkflowClient,
  stores: Stores,
  inventory: RedisInventory | null = null,
): OrderLookupDeps {
  return {
    orders,
    stores,
    inventory,
    storesReadMs: 0,
    mysql: DependencyGuard.neverOpen('mysql', isMysqlFailure),
    secrets: textSealerOf(payloadCodecOf(testConfig())),
  };
}

/** The client and the lookup over it, on `taskQueue`; promised orders found in `inventory` when given. */
export function orderAccess(
  temporal: Client,
  stores: Stores,
  taskQueue: string,
  inventory: RedisInventory | null = null,
): { orders: OrderWorkflowClient; lookup: OrderLookup } {
  const orders = ordersWithoutBreakers(temporal, taskQueue);
  return { orders, lookup: new OrderLookup(lookupDeps(orders, stores, inventory)) };
}
