/**
 * The benchmark's baselines (bench/baselines) against the real test stack: they must be correct and
 * answer like the real API, or the comparison in bench/run.ts means nothing. Each app runs
 * in-process on a free port; the queue's consumer runs in-process with an AbortController.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import { describe, expect } from 'vitest';
import { createCeilingApp } from '../bench/baselines/ceiling.js';
import { createQueueCheckoutApp, runQueueConsumer } from '../bench/baselines/queue.js';
import { createSyncCheckoutApp } from '../bench/baselines/sync.js';
import { ShopperAuth } from '../src/api/auth.js';
import { createLogger } from '../src/infra/logger.js';
import type { Stores } from '../src/db/stores.js';
import { ORDER_NO_PATTERN } from '../src/model/order-workflow.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { expectInvariants, putOnSale, saleReport, uniqueSku } from './helpers/fixtures.js';
import { httpAt } from './helpers/http.js';

const config = testConfig({ LOG_LEVEL: 'warn' });
const auth = new ShopperAuth(config);

async function serve(app: Koa, servers: Server[]): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The three baselines, each served in-process on a free port: their URLs. */
const it = storeClientsTest(config).extend('urls', { scope: 'file' }, async ({ clients }, { onCleanup }) => {
  const servers: Server[] = [];
  const close = async () => {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  };
  try {
    const logger = createLogger(config, 'baselines-test');
    const urls = {
      ceiling: await serve(createCeilingApp(logger), servers),
      sync: await serve(createSyncCheckoutApp({ config, pool: clients.pool, logger }), servers),
      queue: await serve(createQueueCheckoutApp({ config, redis: clients.redis, logger }), servers),
    };
    onCleanup(close);
    return urls;
  } catch (err) {
    await close();
    throw err;
  }
});

interface Reply {
  status: number;
  body: any;
}

async function checkout(base: string, json: unknown, token?: string): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await httpAt('POST', `${base}/api/checkout`, { headers, raw: JSON.stringify(json) });
  return { status: response.status, body: response.body };
}

/** 50 shoppers, one unit each, all at once. */
async function burst(base: string, sku: string, shoppers = 50): Promise<Reply[]> {
  const tokens = await Promise.all(Array.from({ length: shoppers }, (_, i) => auth.issue(`${sku}-u${i}`)));
  return Promise.all(tokens.map((token) => checkout(base, { sku, quantity: 1 }, token)));
}

const count = (replies: Reply[], status: number, code?: string) =>
  replies.filter((r) => r.status === status && (code === undefined || r.body?.error?.code === code)).length;

function expectAccepted(reply: Reply): void {
  expect(reply.status).toBe(202);
  expect(reply.body).toEqual({
    orderNo: expect.stringMatching(ORDER_NO_PATTERN),
    status: 'PENDING',
    statusUrl: `/api/orders/${reply.body.orderNo}`,
  });
}

/**
 * 50 shoppers at a sale of 10 units: exactly 10 accepted (each answer of the real shape), the other 40 SOLD_OUT. The
 * answers.
 */
async function expectTenSold(base: string, sku: string): Promise<Reply[]> {
  const replies = await burst(base, sku);
  expect(count(replies, 202)).toBe(10);
  expect(count(replies, 409, 'SOLD_OUT')).toBe(40);
  for (const reply of replies.filter((r) => r.status === 202)) expectAccepted(reply);
  return replies;
}

async function mysqlSale(stores: Stores, sku: string) {
  const [sale, awaiting] = await Promise.all([
    stores.sales.getSale(sku),
    stores.reports.countOrders(sku, 'AWAITING_PAYMENT'),
  ]);
  return { available: sale?.available, awaiting };
}

describe('ceiling', () => {
  it('answers a constant 202 of the real shape, and the shared shell still refuses bad bodies', async ({ urls }) => {
    expectAccepted(await checkout(urls.ceiling, { sku: 'anything', quantity: 1 }));
    const raw = await httpAt('POST', `${urls.ceiling}/api/checkout`, {
      headers: { 'content-type': 'text/plain' },
      raw: 'x',
    });
    expect(raw.status).toBe(400);
  });
});

describe('sync (one MySQL transaction per checkout)', () => {
  it('sells exactly the stock under a concurrent burst', async ({ clients, urls }) => {
    const { stores, redis } = clients;
    const { sku } = await putOnSale(stores, redis, { stock: 10 });
    await expectTenSold(urls.sync, sku);
    expect(await mysqlSale(stores, sku)).toEqual({ available: 0, awaiting: 10 });
    // It never touches Redis: the counters are as the sale left them.
    expect((await saleReport(stores, redis, sku)).figures.redis).toMatchObject({ available: 10, reserved: 0 });
  });

  it('enforces the per-user limit, sequentially and concurrently', async ({ clients, urls }) => {
    const { stores, redis } = clients;
    const { sku } = await putOnSale(stores, redis, { stock: 10, perUserLimit: 1 });
    const token = await auth.issue(`${sku}-once`);
    expectAccepted(await checkout(urls.sync, { sku, quantity: 1 }, token));
    const again = await checkout(urls.sync, { sku, quantity: 1 }, token);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('PURCHASE_LIMIT_EXCEEDED');

    const eager = await auth.issue(`${sku}-eager`);
    const replies = await Promise.all(
      Array.from({ length: 8 }, () => checkout(urls.sync, { sku, quantity: 1 }, eager)),
    );
    expect(count(replies, 202)).toBe(1);
    expect(count(replies, 409, 'PURCHASE_LIMIT_EXCEEDED')).toBe(7);
    expect(await mysqlSale(stores, sku)).toEqual({ available: 8, awaiting: 2 });
  });

  it('answers 404, 401 and 400 like the real API', async ({ urls }) => {
    const token = await auth.issue('sync-errors');
    const unknown = await checkout(urls.sync, { sku: uniqueSku('NOPE'), quantity: 1 }, token);
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'SKU_NOT_FOUND']);
    const anonymous = await checkout(urls.sync, { sku: 'X', quantity: 1 });
    expect([anonymous.status, anonymous.body.error.code]).toEqual([401, 'UNAUTHORIZED']);
    const invalid = await checkout(urls.sync, { sku: 'X', quantity: 0 }, token);
    expect([invalid.status, invalid.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
  });
});

describe('queue (Lua reservation + Redis list + consumer, seed 000)', () => {
  const abort = new AbortController();
  let consuming: Promise<void>;
  it.beforeAll(({ clients }) => {
    consuming = runQueueConsumer({
      redis: clients.redis,
      pool: clients.pool,
      logger: createLogger(config, 'baselines-consumer'),
      signal: abort.signal,
    });
  });
  it.afterAll(async () => {
    abort.abort();
    await consuming;
  });

  it('reserves exactly the stock, and the consumer drains every accepted order into MySQL', async ({
    clients,
    urls,
  }) => {
    const { stores, redis } = clients;
    const { sku } = await putOnSale(stores, redis, { stock: 10 });
    const replies = await expectTenSold(urls.queue, sku);

    await waitFor(async () => (await mysqlSale(stores, sku)).awaiting >= 10, {
      what: 'the consumer to write all 10 orders',
      timeoutMs: 30_000,
    });
    expect(await mysqlSale(stores, sku)).toEqual({ available: 0, awaiting: 10 });
    const accepted = replies.filter((r) => r.status === 202).map((r) => String(r.body.orderNo));
    expect(await stores.reports.orderNumbersOfSale(sku)).toEqual(new Set(accepted));
    const report = await saleReport(stores, redis, sku, { perUserLimit: 1, acceptedOrderNos: accepted });
    expect(report.figures.redis).toMatchObject({ available: 0, reserved: 10 });
    expectInvariants(report);
  });

  it('maps the reservation outcomes to the real error codes', async ({ clients, urls }) => {
    const { stores, redis } = clients;
    const { sku } = await putOnSale(stores, redis, { stock: 5, perUserLimit: 1 });
    const token = await auth.issue(`${sku}-q`);
    expectAccepted(await checkout(urls.queue, { sku, quantity: 1 }, token));
    const again = await checkout(urls.queue, { sku, quantity: 1 }, token);
    expect([again.status, again.body.error.code]).toEqual([409, 'PURCHASE_LIMIT_EXCEEDED']);
    const unknown = await checkout(urls.queue, { sku: uniqueSku('NOPE'), quantity: 1 }, token);
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'SKU_NOT_FOUND']);
    const anonymous = await checkout(urls.queue, { sku, quantity: 1 });
    expect([anonymous.status, anonymous.body.error.code]).toEqual([401, 'UNAUTHORIZED']);
  });
});
