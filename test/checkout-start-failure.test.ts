/**
 * A workflow start that reports an error after the server accepted it (a timeout on the way back)
 * used to release the reservation while the running workflow persisted the order anyway: the
 * shopper got 503 for an order that existed, and Redis and MySQL disagreed. Now the reservation
 * decides: claimed by the workflow, the answer is 202 and the order goes on; released first, the
 * answer is 503 and the workflow, finding its reservation released, fails without persisting.
 * Real API, real Temporal dev server, real worker; the fault is injected around the real start.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { Client } from '@temporalio/client';
import type { RedisClient } from '../src/infra/redis.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/api/app.js';
import { ShopperAuth } from '../src/api/auth.js';
import type { AppConfig } from '../src/config/index.js';
import { createMysqlPool } from '../src/db/pool.js';
import { Store } from '../src/db/store.js';
import { createLogger } from '../src/infra/logger.js';
import { createRedis } from '../src/infra/redis.js';
import { createTemporalClient } from '../src/infra/temporal-connection.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { OrderClient } from '../src/orders/order-client.js';
import { waitFor } from '../stack/wait-for.js';
import type { OrderInput } from '../src/workflows/definitions.js';
import { testConfig } from './helpers/env.js';
import { expectInvariants, putOnSale, saleReport } from './helpers/fixtures.js';
import { listen } from './helpers/http.js';
import { startTestWorker, type TestWorker } from './helpers/worker.js';

/** The real start, then an error as if the answer had been lost after the server accepted it. */
class StartReportsFailureAfterAccepting extends OrderClient {
  constructor(
    temporal: Client,
    store: Store,
    taskQueue: string,
    private readonly beforeFailing: (orderNo: string) => Promise<void>,
  ) {
    super(temporal, store, taskQueue);
  }

  override async start(input: OrderInput): Promise<'STARTED' | 'ALREADY_CLOSED'> {
    await super.start(input);
    await this.beforeFailing(input.orderNo);
    throw Object.assign(new Error('4 DEADLINE_EXCEEDED: start timed out (injected after the server accepted it)'), { code: 4 });
  }
}

let config: AppConfig;
let store: Store;
let redis: RedisClient;
let inventory: RedisInventory;
let temporal: Client;
const servers: Server[] = [];
const workers: TestWorker[] = [];
const auth = () => new ShopperAuth(config);

beforeAll(async () => {
  config = testConfig({ TEMPORAL_TASK_QUEUE: `start-failure-${randomUUID()}`, LOG_LEVEL: 'silent' });
  store = new Store(createMysqlPool(config));
  redis = createRedis(config);
  inventory = new RedisInventory(redis);
  temporal = await createTemporalClient(config);
});

afterAll(async () => {
  for (const server of servers) server.close();
  await Promise.all(workers.map((worker) => worker.close()));
  await Promise.allSettled([temporal?.connection.close(), store?.close(), redis?.quit()]);
});

async function startWorker(taskQueue: string): Promise<void> {
  workers.push(await startTestWorker({ config: { temporal: { ...config.temporal, taskQueue } }, store, redis }));
}

async function serve(taskQueue: string, beforeFailing: (orderNo: string) => Promise<void>): Promise<string> {
  const orders = new StartReportsFailureAfterAccepting(temporal, store, taskQueue, beforeFailing);
  const app = createApp({
    config: { ...config, temporal: { ...config.temporal, taskQueue } },
    redis,
    store,
    temporal,
    logger: createLogger(config, 'test'),
    orders,
  });
  return listen(app, servers);
}

async function checkout(base: string, sku: string, userId: string) {
  const response = await fetch(`${base}/api/checkout`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await auth().issue(userId)}` },
    body: JSON.stringify({ sku, quantity: 1 }),
  });
  return { status: response.status, body: (await response.json()) as { orderNo?: string; error?: { code: string } } };
}

describe('a workflow start that reports an error after the server accepted it', () => {
  it('answers 202 when the workflow has already claimed its reservation, and the order goes on', async () => {
    const taskQueue = `start-claimed-${randomUUID()}`;
    await startWorker(taskQueue);
    const sale = await putOnSale(store, redis, { stock: 3 });
    const base = await serve(taskQueue, async (orderNo) => {
      await waitFor(async () => (await inventory.getReservation(sale.sku, orderNo))?.state === 'CLAIMED', {
        what: `${orderNo} to be claimed`,
        timeoutMs: 10_000,
      });
    });
    const reply = await checkout(base, sale.sku, 'claimed-before-error');
    expect(reply.status).toBe(202);
    const orderNo = reply.body.orderNo ?? '';
    await waitFor(async () => (await store.getOrder(orderNo))?.status === 'AWAITING_PAYMENT', { what: `${orderNo} to be persisted`, timeoutMs: 10_000 });
    const report = await saleReport(store, redis, sale.sku);
    expect(report.figures.redis).toMatchObject({ available: 2, reserved: 1 });
    expect(report.figures.mysql).toMatchObject({ available: 2, awaitingPayment: 1 });
    expectInvariants(report);
  });

  it('answers 503 when the API releases the reservation first, and the workflow then fails without persisting', async () => {
    // No worker yet: the workflow exists but cannot claim before the API has released.
    const taskQueue = `start-released-${randomUUID()}`;
    const sale = await putOnSale(store, redis, { stock: 3 });
    const base = await serve(taskQueue, async () => {});
    const reply = await checkout(base, sale.sku, 'released-before-claim');
    expect(reply.status).toBe(503);
    expect(reply.body.error?.code).toBe('UNAVAILABLE');
    expect(await inventory.getSale(sale.sku)).toMatchObject({ available: 3, reserved: 0 });

    await startWorker(taskQueue);
    const [failed] = await waitFor(
      async () => {
        const rows = [...(await store.orderNumbersOfSale(sale.sku))];
        const row = rows[0] ? await store.getOrder(rows[0]) : null;
        return row?.status === 'FAILED' && [row];
      },
      { what: 'the started workflow to fail its order', timeoutMs: 15_000 },
    );
    expect(failed?.failureReason).toMatch(/^ReservationReleased/);
    const report = await saleReport(store, redis, sale.sku);
    expect(report.figures.mysql.available).toBe(3);
    expect(report.figures.redis).toMatchObject({ available: 3, reserved: 0 });
    expectInvariants(report);
  });
});
