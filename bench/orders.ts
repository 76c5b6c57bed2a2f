/**
 * What the benchmarks that drive OrderWorkflows without HTTP share (bench/pipeline.ts,
 * bench/tracing-cost.ts): orders reserved and started exactly as the API's checkout does them, a
 * sale's invariants afterwards, and the clean-up of a phase's reconcile schedule.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { payloadCodecOf } from '../src/infra/data-converter.js';
import type { TextSealer } from '../src/infra/payload-codec.js';
import { DependencyGuard } from '../src/infra/dependency-guard.js';
import { isMysqlFailure } from '../src/db/rows.js';
import { loadConfig, type AppConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores, type Stores } from '../src/db/stores.js';
import { createRedis, type RedisClient } from '../src/infra/redis.js';
import { createTemporalClient } from '../src/infra/temporal-connection.js';
import { checkSaleInvariants, type InvariantReport } from '../src/invariants/check.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { reconcileScheduleId } from '../src/model/reconcile-workflow.js';
import { timedStarts, type TimedStarts } from './starts.js';
import { SalesService } from '../src/sales/sales-service.js';
import { OrderLookup } from '../src/order/lookup.js';
import { StartPacing } from '../src/order/start-pacing.js';

/** What the benchmark drives: the same services the API uses, minus HTTP. */
/** A run's own clients of the stack named in `env` (the schema migrated), as the API would open them. */
export interface BenchClients {
  config: AppConfig;
  stores: Stores;
  redis: RedisClient;
  inventory: RedisInventory;
  sales: SalesService;
  temporal: Client;
  close(): Promise<void>;
}

export async function openBenchClients(env: Record<string, string | undefined>): Promise<BenchClients> {
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  const stores = openStores(pool);
  const redis = createRedis(config);
  let temporal: Client | undefined;
  const close = async () => {
    await Promise.allSettled([pool.end(), redis.quit(), temporal?.connection.close()]);
  };
  try {
    await migrate(pool);
    temporal = await createTemporalClient(config);
  } catch (err) {
    await close();
    throw err;
  }
  const { taskQueue } = config.temporal;
  return {
    config,
    stores,
    redis,
    inventory: new RedisInventory(redis, taskQueue),
    sales: SalesService.onClients(stores, redis, taskQueue),
    temporal,
    close,
  };
}

export interface Pipeline {
  config: AppConfig;
  stores: Stores;
  inventory: RedisInventory;
  orders: OrderWorkflowClient;
  lookup: OrderLookup;
}

/** The pipeline of `config`'s task queue, driven as the tools drive it: an order client and lookup without breakers. */
export function pipelineOf(config: AppConfig, stores: Stores, inventory: RedisInventory, temporal: Client): Pipeline {
  const orders = OrderWorkflowClient.withoutBreakers(
    temporal,
    config.temporal.taskQueue,
    new StartPacing({ maxLimit: 32 }),
  );
  return {
    config,
    stores,
    inventory,
    orders,
    lookup: lookupWithoutBreaker(stores, payloadCodecOf(config)),
  };
}

/** The tools' lookup: MySQL's reads bounded by their deadlines only, no breaker, no promises. */
function lookupWithoutBreaker(stores: Stores, secrets: TextSealer): OrderLookup {
  return new OrderLookup({
    stores,
    inventory: null,
    secrets,
    promiseReadMs: 0,
    mysql: DependencyGuard.neverOpen('mysql', isMysqlFailure),
  });
}

/**
 * Reserves and starts `count` orders on the sale, `concurrency` at a time, each exactly as the
 * API's checkout does (reserve.lua, then OrderWorkflowClient.start), one shopper per order. Times each
 * start (the Temporal round trip), not the reservation. Returns the order numbers as `started`.
 */
export async function startOrders(
  pipeline: Pipeline,
  sale: { sku: string; priceCents: number },
  count: number,
  users: string,
  concurrency: number,
): Promise<TimedStarts<string>> {
  const { sku, priceCents } = sale;
  return timedStarts(
    count,
    concurrency,
    async (i) => {
      const now = Date.now();
      const userId = `pipe-${users}-${i}`;
      const reserved = await pipeline.inventory.reserve({
        orderNo: newOrderNo(now),
        sku,
        userId,
        quantity: 1,
        nowMs: now,
      });
      if (reserved.outcome !== 'RESERVED') throw new Error(`reservation ${i} of ${sku}: ${reserved.outcome}`);
      return { orderNo: reserved.orderNo, userId, createdAt: new Date(now).toISOString() };
    },
    async ({ orderNo, userId, createdAt }) => {
      const started = await pipeline.orders.start({
        orderNo,
        sku,
        userId,
        quantity: 1,
        unitPriceCents: priceCents,
        createdAt,
        paymentWindow: pipeline.config.paymentWindow,
      });
      if (started !== 'STARTED') throw new Error(`order ${orderNo}: ${started}`);
      return orderNo;
    },
  );
}

/** The sale's invariants (docs/fault-tolerance.md), exactly one workflow per accepted order included. */
export async function checkSale(pipeline: Pipeline, sku: string, orderNos: string[]): Promise<InvariantReport> {
  // Visibility is eventually consistent, so wait (≤ 20 s) for every workflow to show.
  let workflowCount = 0;
  for (let attempt = 0; attempt < 100; attempt++) {
    workflowCount = await pipeline.orders.countRunning(sku);
    if (workflowCount >= orderNos.length) break;
    await sleep(200);
  }
  return checkSaleInvariants(
    { stores: pipeline.stores, inventory: pipeline.inventory },
    { sku, perUserLimit: 1, acceptedOrderNos: orderNos, workflowCount },
  );
}

/**
 * The workers put the reconciler's schedule in place for their task queue; with them gone it would
 * go on firing into a queue nobody polls, on the server the next phases measure. A failure is said, not thrown.
 */
export async function deleteReconcileSchedule(
  temporal: Client,
  taskQueue: string,
  say: (line: string) => void,
): Promise<void> {
  await temporal.schedule
    .getHandle(reconcileScheduleId(taskQueue))
    .delete()
    .catch((err: unknown) =>
      say(
        `could not delete the reconcile schedule of ${taskQueue}: ${err instanceof Error ? err.message : String(err)}`,
      ),
    );
}
