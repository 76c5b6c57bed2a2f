/**
 * A checkout for a sale that does not exist, is closed or has not opened yet is refused from what
 * the API reads, and writes nothing: not the shopper's budget, not the pipeline's active sales
 * (which the starter and the order-number lookups scan), not a reservation. Any signed-in
 * shopper can send such checkouts, so none of them may grow Redis. Checked on a Redis of the
 * test's own (other files write to the shared one), by comparing every key and value before and
 * after; a checkout that does reserve is the control that the comparison sees a change.
 */
import type { RedisClient } from '../src/infra/redis.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { type Stores } from '../src/db/stores.js';
import { SalesService } from '../src/sales/sales-service.js';
import { testConfig } from './helpers/env.js';
import { openStoreClients, type StoreClients } from './helpers/stack-clients.js';
import { uniqueSku } from './helpers/fixtures.js';
import { startApiOnOwnRedis, type ApiOnOwnRedis } from './helpers/own-redis.js';
import { httpAt } from './helpers/http.js';

let own: ApiOnOwnRedis;
let redis: RedisClient;
let clients: StoreClients | undefined;
let stores: Stores;
let token: string;
const open = uniqueSku();
const closed = uniqueSku();
const notYet = uniqueSku();

beforeAll(async () => {
  own = await startApiOnOwnRedis('no-state');
  const config = testConfig(own.redisServer.env);
  clients = openStoreClients(config);
  ({ stores, redis } = clients);
  const sales = SalesService.onClients(stores, redis, config.temporal.taskQueue);
  const hour = 3_600_000;
  await sales.create({ sku: open, name: open, priceCents: 100, stock: 5, perUserLimit: 1 });
  await sales.create({
    sku: closed,
    name: closed,
    priceCents: 100,
    stock: 5,
    perUserLimit: 1,
    startsAt: new Date(Date.now() - 2 * hour).toISOString(),
    endsAt: new Date(Date.now() - hour).toISOString(),
  });
  await sales.create({
    sku: notYet,
    name: notYet,
    priceCents: 100,
    stock: 5,
    perUserLimit: 1,
    startsAt: new Date(Date.now() + hour).toISOString(),
  });
  token = await new ShopperAuth(config).issue('no-state-shopper');
});

afterAll(async () => {
  await clients?.close();
  await own?.close();
});

/** Every key with its type-independent serialisation (DUMP) and time to live. */
async function snapshot(): Promise<Map<string, string>> {
  const keys = await redis.keys('*');
  const entries = await Promise.all(
    keys.map(
      async (key) => [key, `${(await redis.dumpBuffer(key))?.toString('base64')}|${await redis.pttl(key)}`] as const,
    ),
  );
  return new Map(entries);
}

async function checkout(sku: string, idempotencyKey?: string): Promise<{ status: number; code?: string }> {
  const response = await httpAt('POST', `${own.api.url}/api/checkout`, {
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    raw: JSON.stringify({ sku, quantity: 1 }),
  });
  const body = response.body as { error?: { code: string } };
  return { status: response.status, ...(body.error ? { code: body.error.code } : {}) };
}

describe('a checkout for no open sale', () => {
  it('leaves Redis exactly as it was: an unknown SKU (404), a closed sale and one not open yet (409), with or without an Idempotency-Key', async () => {
    const before = await snapshot();
    for (let i = 0; i < 3; i++) {
      expect(await checkout(`NO-SUCH-${uniqueSku()}`)).toEqual({ status: 404, code: 'SKU_NOT_FOUND' });
      expect(await checkout(`NO-SUCH-${uniqueSku()}`, `key-${i}`)).toEqual({ status: 404, code: 'SKU_NOT_FOUND' });
      expect(await checkout(closed)).toEqual({ status: 409, code: 'SALE_NOT_ACTIVE' });
      expect(await checkout(notYet, `key-${i}`)).toEqual({ status: 409, code: 'SALE_NOT_ACTIVE' });
    }
    expect(await snapshot()).toEqual(before);
  });

  it('while a checkout of an open sale does change it (the comparison sees a change)', async () => {
    const before = await snapshot();
    expect((await checkout(open)).status).toBe(202);
    expect(await snapshot()).not.toEqual(before);
  });
});
