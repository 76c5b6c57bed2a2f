/**
 * Durable when the shopper hears it (REDIS_WAIT_REPLICAS): Redis replication is asynchronous, and a
 * checkout answers from Redis alone, so its 202 waits until a replica holds the reservation and
 * its promise; not in time: 503 OUTCOME_UNKNOWN with the order number, and the reservation stands.
 * Whatever Temporal does never changes that (the checkout does not call it). Real API on a real
 * Redis master with a real replica (stopped with SIGSTOP), real MariaDB, Temporal behind a proxy
 * that can hold its traffic.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { startApi, type RunningApi } from '../src/api/server.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores } from '../src/db/stores.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { signalGroup, freePort } from '../stack/process.js';
import { loadToolPaths, startRedis, type RunningService } from '../stack/services.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { putOnSale } from './helpers/fixtures.js';
import { httpRequest, type HttpReply } from './helpers/http.js';
import { startHoldingProxy, type HoldingProxy } from './helpers/tcp-proxy.js';

const config = testConfig();
const auth = new ShopperAuth(config);
const pool = createMysqlPool(config);
const stores = openStores(pool);
let master: RunningService;
let replica: RunningService;
let masterClient: Redis;
let temporalProxy: HoldingProxy;
let api: RunningApi;

beforeAll(async () => {
  const dataDir = (name: string) => mkdtempSync(join(inject('stackDataDir'), `replica-wait-${name}-`));
  const tools = loadToolPaths();
  master = await startRedis({ tools, dataDir: dataDir('master'), port: await freePort() });
  const masterPort = Number(new URL(master.env.REDIS_URL ?? '').port);
  replica = await startRedis({ tools, dataDir: dataDir('replica'), port: await freePort(), replicaOf: masterPort });
  masterClient = new Redis(master.env.REDIS_URL ?? '');
  await waitFor(async () => /state=online/.test(await masterClient.info('replication')), {
    what: 'the replica to be in sync',
    timeoutMs: 20_000,
  });
  const [host, port] = config.temporal.address.split(':');
  temporalProxy = await startHoldingProxy({ host: host ?? '127.0.0.1', port: Number(port) });
  api = await startApi(
    testConfig({
      REDIS_URL: master.env.REDIS_URL ?? '',
      REDIS_WAIT_REPLICAS: '1',
      // The time kept after the reservation for the replica's acknowledgement.
      CHECKOUT_START_BUDGET: '2s',
      CHECKOUT_DEADLINE: '4s',
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalProxy.port}`,
      // No worker serves it: the orders need not run.
      TEMPORAL_TASK_QUEUE: `replica-wait-${randomUUID()}`,
      RATE_LIMIT_CHECKOUT: 'off',
      LOG_LEVEL: 'silent',
    }),
    0,
  );
});

afterAll(async () => {
  if (replica) signalGroup(replica.process.pid, 'SIGCONT');
  temporalProxy?.release();
  await api?.close();
  await temporalProxy?.close();
  masterClient?.disconnect();
  await Promise.all([replica?.process.stop(), master?.process.stop()]);
  await pool.end();
});

async function checkout(sku: string, userId: string, idempotencyKey: string): Promise<HttpReply> {
  return httpRequest(api.url, 'POST', '/api/checkout', {
    json: { sku, quantity: 1 },
    token: await auth.issue(userId),
    headers: { 'idempotency-key': idempotencyKey },
  });
}

const orderNoOf = (reply: HttpReply): string => String((reply.body as { orderNo?: string }).orderNo ?? '');
const errorOf = (reply: HttpReply) =>
  (reply.body as { error?: { code: string; details?: { orderNo?: string } } }).error;

describe('REDIS_WAIT_REPLICAS=1: a 202 waits for a replica', () => {
  it('answers 202 while the replica acknowledges, though Temporal does not answer', async () => {
    const sale = await putOnSale(stores, masterClient, { stock: 5, perUserLimit: 1 });
    temporalProxy.hold();
    try {
      const reply = await checkout(sale.sku, 'replica-up', `k-${randomUUID()}`);
      expect(reply.status, JSON.stringify(reply.body)).toBe(202);
      expect(
        await new RedisInventory(masterClient, config.temporal.taskQueue).getReservation(sale.sku, orderNoOf(reply)),
      ).toMatchObject({ state: 'RESERVED' });
    } finally {
      temporalProxy.release();
    }
  });

  // Before REDIS_WAIT_REPLICAS this answered 202: a failover of the master then lost the order of a 202.
  it('answers 503 OUTCOME_UNKNOWN with the order number when the replica did not confirm it; the same key then answers 202 for that order', async () => {
    const sale = await putOnSale(stores, masterClient, { stock: 5, perUserLimit: 1 });
    const key = `k-${randomUUID()}`;
    signalGroup(replica.process.pid, 'SIGSTOP');
    temporalProxy.hold();
    let orderNo: string;
    try {
      const reply = await checkout(sale.sku, 'replica-stopped', key);
      expect(reply.status, JSON.stringify(reply.body)).toBe(503);
      expect(errorOf(reply)?.code).toBe('OUTCOME_UNKNOWN');
      expect(reply.headers.get('retry-after')).not.toBeNull();
      orderNo = errorOf(reply)?.details?.orderNo ?? '';
      expect(orderNo).toMatch(/^[0-9A-Z]{26}$/);
      // The reservation stands: nothing is undone behind an unknown outcome.
      expect(
        await new RedisInventory(masterClient, config.temporal.taskQueue).getReservation(sale.sku, orderNo),
      ).toMatchObject({ state: 'RESERVED' });
    } finally {
      signalGroup(replica.process.pid, 'SIGCONT');
      temporalProxy.release();
    }
    const retried = await checkout(sale.sku, 'replica-stopped', key);
    expect(retried.status, JSON.stringify(retried.body)).toBe(202);
    expect(orderNoOf(retried)).toBe(orderNo);
  });

  // Before the checkout answered from Redis alone, a start that answered in time skipped the
  // replica: a failover then lost the reservation behind a 202 whose workflow would find it gone.
  it('never answers 202 before a replica holds the reservation, with Temporal answering as well', async () => {
    const sale = await putOnSale(stores, masterClient, { stock: 5, perUserLimit: 1 });
    signalGroup(replica.process.pid, 'SIGSTOP');
    try {
      const reply = await checkout(sale.sku, 'temporal-up', `k-${randomUUID()}`);
      expect(reply.status, JSON.stringify(reply.body)).toBe(503);
      expect(errorOf(reply)?.code).toBe('OUTCOME_UNKNOWN');
    } finally {
      signalGroup(replica.process.pid, 'SIGCONT');
    }
  });
});
