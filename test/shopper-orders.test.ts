/**
 * A shopper's own orders (GET /api/orders) over real HTTP against the real stack (Temporal dev server with the
 * production worker, Redis, MariaDB): the token's shopper's orders only, newest first, each as GET
 * /api/orders/:orderNo shows it; every page walked once at several limits; one sale's; a promise listed PENDING
 * before its row is written; 401 and 400 for bad input, changing nothing; the shopper's budget; and EXPLAIN of each
 * form of the store's query: its index, no sort.
 */
import { randomUUID } from 'node:crypto';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { afterAll, describe, expect } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { ORDERS_LIST_LIMIT, RATE_LIMIT_KEY_PREFIX } from '../src/api/rate-limit.js';
import { createMysqlPool } from '../src/db/pool.js';
import { ReportStore } from '../src/db/reports.js';
import { encodeCursor } from '../src/infra/cursor.js';
import { waitFor } from '../stack/wait-for.js';
import { API_TEST_ENV } from './helpers/app.js';
import { putOnSale, uniqueSku } from './helpers/fixtures.js';
import { httpRequest, type HttpOptions, type HttpReply } from './helpers/http.js';
import { testbedTest } from './helpers/stack-test.js';

// The API and its worker on a queue of the file's.
const queue = `shopper-orders-${randomUUID()}`;

/** The file's API (its base URL) and the shoppers' tokens for it. */
interface Shop {
  base: string;
  auth: ShopperAuth;
}

const it = testbedTest({ ...API_TEST_ENV, RATE_LIMIT_CHECKOUT: 'off' }).extend(
  'shop',
  { scope: 'file' },
  async ({ testbed }): Promise<Shop> => {
    const auth = new ShopperAuth(testbed.config);
    await testbed.startWorker(queue);
    return { base: await testbed.serve(queue), auth };
  },
);

const http = ({ base }: Shop, method: string, path: string, options: HttpOptions = {}): Promise<HttpReply> =>
  httpRequest(base, method, path, options);

const expectError = (reply: HttpReply, status: number, code: string) =>
  expect({ status: reply.status, body: reply.body }).toEqual({
    status,
    body: { error: { code, message: expect.any(String) } },
  });

/** A checkout of one unit that waits for its row (Prefer: wait); long-polled on if it was not written within. */
async function placeOrder(shop: Shop, sku: string, token: string): Promise<string> {
  const reply = await http(shop, 'POST', '/api/checkout', {
    json: { sku, quantity: 1 },
    token,
    headers: { Prefer: 'wait=10', 'Idempotency-Key': randomUUID() },
  });
  expect([201, 202], JSON.stringify(reply.body)).toContain(reply.status);
  const orderNo = reply.body.orderNo as string;
  if (reply.status === 202) await untilStatus(shop, orderNo, token, (status) => status !== 'PENDING');
  return orderNo;
}

function untilStatus(
  { base }: Shop,
  orderNo: string,
  token: string,
  done: (status: string) => boolean,
): Promise<HttpReply['body']> {
  return untilStatusAt(base, orderNo, token, done);
}

function untilStatusAt(
  api: string,
  orderNo: string,
  token: string,
  done: (status: string) => boolean,
): Promise<HttpReply['body']> {
  return waitFor(
    async () => {
      const reply = await httpRequest(api, 'GET', `/api/orders/${orderNo}`, { token });
      return done(String(reply.body.status)) && reply.body;
    },
    { what: `order ${orderNo} to change`, timeoutMs: 30_000 },
  );
}

/** Every page of the shopper's list at `query`, following nextCursor: the items and how many pages it took. */
async function walk(shop: Shop, token: string, query: string): Promise<{ items: any[]; pages: number }> {
  const items: any[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const path = `/api/orders?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const reply = await http(shop, 'GET', path, { token });
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    items.push(...reply.body.items);
    cursor = reply.body.nextCursor;
    pages++;
    expect(pages).toBeLessThan(100);
  } while (cursor);
  return { items, pages };
}

const orderNos = (items: Array<{ orderNo: string }>) => items.map((item) => item.orderNo);
const newestFirst = (numbers: string[]) => [...numbers].sort().reverse();

describe("a shopper's own orders", () => {
  const shopper = `shopper-${randomUUID()}`;
  const other = `other-${randomUUID()}`;
  let token: string;
  let otherToken: string;
  let saleA: string;
  let saleB: string;
  /** The shopper's orders as placed, oldest first, with their sale. */
  const placed: Array<{ orderNo: string; sku: string }> = [];
  const others: string[] = [];

  it.beforeAll(async ({ testbed, shop }) => {
    const { stores, redis } = testbed;
    const { auth } = shop;
    [token, otherToken] = await Promise.all([auth.issue(shopper), auth.issue(other)]);
    ({ sku: saleA } = await putOnSale(stores, redis, { sku: uniqueSku('MINE-A'), stock: 20, perUserLimit: 10 }));
    ({ sku: saleB } = await putOnSale(stores, redis, { sku: uniqueSku('MINE-B'), stock: 20, perUserLimit: 10 }));
    // One at a time: each order's number is later (greater) than the one before.
    for (const [sku, mine] of [
      [saleA, true],
      [saleB, true],
      [saleA, false],
      [saleA, true],
      [saleB, true],
      [saleA, true],
      [saleB, false],
      [saleB, true],
      [saleA, true],
    ] as const) {
      const orderNo = await placeOrder(shop, sku, mine ? token : otherToken);
      if (mine) placed.push({ orderNo, sku });
      else others.push(orderNo);
    }
    // Statuses beyond AWAITING_PAYMENT: one paid, one cancelled.
    const [paid, cancelled] = [placed[1]!.orderNo, placed[2]!.orderNo];
    expect(
      (await http(shop, 'POST', '/api/dev/simulate-payment', { json: { orderNo: paid }, token })).body.outcome,
    ).toBe('APPLIED');
    expect((await http(shop, 'POST', `/api/orders/${cancelled}/cancel`, { token })).status).toBe(202);
    await untilStatus(shop, paid, token, (status) => status === 'PAID');
    await untilStatus(shop, cancelled, token, (status) => status === 'CANCELLED');
  });

  it("lists only the token's shopper's orders, newest first, each as GET /api/orders/:orderNo shows it", async ({
    shop,
  }) => {
    const { auth } = shop;
    const reply = await http(shop, 'GET', '/api/orders', { token });
    expect(reply.status).toBe(200);
    expect(Object.keys(reply.body).sort()).toEqual(['items', 'nextCursor']);
    expect(reply.body.nextCursor).toBeNull();
    const mine = placed.map((order) => order.orderNo);
    expect(orderNos(reply.body.items)).toEqual([...mine].reverse());
    expect(orderNos(reply.body.items)).toEqual(newestFirst(mine));
    expect(reply.body.items.map((item: { status: string }) => item.status)).toEqual([
      'AWAITING_PAYMENT',
      'AWAITING_PAYMENT',
      'AWAITING_PAYMENT',
      'AWAITING_PAYMENT',
      'CANCELLED',
      'PAID',
      'AWAITING_PAYMENT',
    ]);
    for (const item of reply.body.items) {
      const { source: _source, ...read } = (await http(shop, 'GET', `/api/orders/${item.orderNo}`, { token })).body;
      expect(item).toEqual(read);
    }

    const theirs = await http(shop, 'GET', '/api/orders', { token: otherToken });
    expect(orderNos(theirs.body.items)).toEqual(newestFirst(others));
    const stranger = await http(shop, 'GET', '/api/orders', { token: await auth.issue(`stranger-${randomUUID()}`) });
    expect(stranger.body).toEqual({ items: [], nextCursor: null });
  });

  it('paging walks every order exactly once, newest first, at every limit', async ({ shop }) => {
    const all = newestFirst(placed.map((order) => order.orderNo));
    for (const limit of [1, 2, 3, 6, 7, 8, 100]) {
      const { items, pages } = await walk(shop, token, `limit=${limit}`);
      expect(orderNos(items), `limit=${limit}`).toEqual(all);
      expect(pages, `limit=${limit}`).toBe(Math.max(1, Math.ceil(all.length / limit)));
    }
    // Without a limit: 20 a page.
    const first = await http(shop, 'GET', '/api/orders?limit=2', { token });
    expect(first.body.items).toHaveLength(2);
    const rest = await http(shop, 'GET', `/api/orders?cursor=${first.body.nextCursor}`, { token });
    expect(orderNos(rest.body.items)).toEqual(all.slice(2));
  });

  it('?sku= lists the orders of that sale only, paged alike; a sale without any lists none', async ({ shop }) => {
    for (const sku of [saleA, saleB]) {
      const ofSale = newestFirst(placed.filter((order) => order.sku === sku).map((order) => order.orderNo));
      for (const limit of [1, 2, 20]) {
        const { items } = await walk(shop, token, `sku=${sku}&limit=${limit}`);
        expect(orderNos(items), `${sku} limit=${limit}`).toEqual(ofSale);
        expect(new Set(items.map((item: { sku: string }) => item.sku))).toEqual(new Set([sku]));
      }
    }
    expect((await http(shop, 'GET', `/api/orders?sku=${uniqueSku('NONE')}`, { token })).body).toEqual({
      items: [],
      nextCursor: null,
    });
  });

  it("another shopper's cursor only moves within the caller's own orders", async ({ shop }) => {
    const cursor = encodeCursor([others[others.length - 1]!]);
    const reply = await http(shop, 'GET', `/api/orders?cursor=${cursor}`, { token });
    expect(reply.status).toBe(200);
    const mine = placed.map((order) => order.orderNo);
    expect(orderNos(reply.body.items)).toEqual(newestFirst(mine.filter((orderNo) => orderNo < others.at(-1)!)));
  });

  describe("the store's query: each form reads its index, in order, no sort", () => {
    let pool: Pool;
    it.beforeAll(({ testbed }) => {
      pool = createMysqlPool(testbed.config);
    });
    afterAll(async () => {
      await pool?.end();
    });

    /** The statement shopperOrdersPage runs for `query`, as MySQL plans it. */
    async function planOf(query: Parameters<ReportStore['shopperOrdersPage']>[0]): Promise<RowDataPacket[]> {
      const statements: Array<{ sql: string; values: unknown[] }> = [];
      const recording = new Proxy(pool, {
        get(target, property, receiver) {
          if (property !== 'query') return Reflect.get(target, property, receiver) as unknown;
          return (sql: string, values: unknown[]) => {
            statements.push({ sql, values });
            return target.query(sql, values);
          };
        },
      });
      await new ReportStore(recording).shopperOrdersPage(query);
      expect(statements).toHaveLength(1);
      const [statement] = statements as [{ sql: string; values: unknown[] }];
      const [plan] = await pool.query<RowDataPacket[]>(`EXPLAIN ${statement.sql}`, statement.values);
      return plan;
    }

    type Query = Parameters<ReportStore['shopperOrdersPage']>[0];
    it.each<[string, string, () => Query]>([
      ['all their orders', 'orders_by_user_order_no', () => ({ userId: shopper, limit: 21 })],
      [
        'all their orders, after a cursor',
        'orders_by_user_order_no',
        () => ({ userId: shopper, beforeOrderNo: placed[3]!.orderNo, limit: 3 }),
      ],
      // Unhinted, MariaDB read this one along the primary key: nothing is older than that cursor.
      [
        'a shopper without orders, after the oldest cursor',
        'orders_by_user_order_no',
        () => ({ userId: `nobody-${randomUUID()}`, beforeOrderNo: '01ARZ3NDEKTSV4RRFFQ69G5FAV', limit: 21 }),
      ],
      ['one sale', 'orders_by_user', () => ({ userId: shopper, sku: saleA, limit: 21 })],
      [
        'one sale, after a cursor',
        'orders_by_user',
        () => ({ userId: shopper, sku: saleA, beforeOrderNo: placed[4]!.orderNo, limit: 3 }),
      ],
    ])('%s reads %s', async (_form, index, query) => {
      const plan = await planOf(query());
      expect(plan).toHaveLength(1);
      const [row] = plan as [RowDataPacket];
      expect({ table: row.table, key: row.key, type: row.type }, JSON.stringify(row)).toEqual({
        table: 'orders',
        key: index,
        type: expect.stringMatching(/^(ref|range)$/),
      });
      expect(String(row.Extra ?? ''), JSON.stringify(row)).not.toMatch(/filesort|temporary/i);
    });
  });
});

describe('an order that is only a promise (no worker: reserved in Redis, its workflow and row not written)', () => {
  it('is listed PENDING as GET /api/orders/:orderNo answers it, paged with the orders that have rows, and from its row once written', async ({
    testbed,
    shop,
  }) => {
    const { stores, redis } = testbed;
    const { auth } = shop;
    // An API on a task queue no worker serves yet: nothing starts its promises.
    const idleQueue = `shopper-orders-idle-${randomUUID()}`;
    const idle = await testbed.serve(idleQueue);
    const list = async (path: string) => (await httpRequest(idle, 'GET', path, { token })).body;
    const userId = `promised-${randomUUID()}`;
    const token = await auth.issue(userId);
    const { sku: persistedSku } = await putOnSale(stores, redis, { sku: uniqueSku('ROW'), stock: 5, perUserLimit: 2 });
    const persisted = await placeOrder(shop, persistedSku, token);
    const { sku } = await putOnSale(stores, redis, { sku: uniqueSku('PROMISE'), stock: 5, perUserLimit: 2 });
    const checkout = await httpRequest(idle, 'POST', '/api/checkout', { json: { sku, quantity: 1 }, token });
    expect(checkout.status).toBe(202);
    const orderNo = checkout.body.orderNo as string;

    const { source, ...read } = (await httpRequest(idle, 'GET', `/api/orders/${orderNo}`, { token })).body;
    expect({ source, status: read.status }).toEqual({ source: 'stores', status: 'PENDING' });
    expect(await list('/api/orders')).toEqual({
      items: [read, expect.objectContaining({ orderNo: persisted, status: 'AWAITING_PAYMENT' })],
      nextCursor: null,
    });
    expect((await list(`/api/orders?sku=${sku}`)).items).toEqual([read]);
    expect(
      (await list(`/api/orders?sku=${persistedSku}`)).items.map((item: { orderNo: string }) => item.orderNo),
    ).toEqual([persisted]);
    const first = await list('/api/orders?limit=1');
    expect(first.items).toEqual([read]);
    const second = await list(`/api/orders?limit=1&cursor=${encodeURIComponent(first.nextCursor)}`);
    expect(orderNos(second.items)).toEqual([persisted]);
    expect(second.nextCursor).toBeNull();

    // Its worker comes: the promise is started and persisted, and listed once, from its row.
    await testbed.startWorker(idleQueue);
    await untilStatusAt(idle, orderNo, token, (status) => status === 'AWAITING_PAYMENT');
    const after = await list('/api/orders');
    expect(orderNos(after.items)).toEqual([orderNo, persisted]);
    expect(after.items[0]).toMatchObject({ orderNo, status: 'AWAITING_PAYMENT' });
  });
});

describe('bad input: a clear error with a stable code, and nothing changed', () => {
  it('401 UNAUTHORIZED without a valid token, before the query is read', async ({ testbed, shop }) => {
    const { config } = testbed;
    for (const path of ['/api/orders', '/api/orders?limit=0', '/api/orders?cursor=!'])
      expectError(await http(shop, 'GET', path), 401, 'UNAUTHORIZED');
    expectError(await http(shop, 'GET', '/api/orders', { token: 'not-a-jwt' }), 401, 'UNAUTHORIZED');
    expectError(await http(shop, 'GET', '/api/orders', { token: config.adminToken }), 401, 'UNAUTHORIZED');
  });

  it('400 INVALID_REQUEST for a bad limit, sku or cursor; the budget is not spent', async ({ testbed, shop }) => {
    const { redis } = testbed;
    const { auth } = shop;
    const userId = `bad-input-${randomUUID()}`;
    const token = await auth.issue(userId);
    const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
    const bad = [
      'limit=0',
      'limit=101',
      'limit=-1',
      'limit=1.5',
      'limit=abc',
      'limit=',
      'sku=not%20a%20sku',
      'sku=',
      'cursor=',
      'cursor=not*base64',
      // Base64url, but not a cursor of this list: not JSON, another shape, a payment's position, not an order number.
      `cursor=${b64('nope')}`,
      `cursor=${b64('{"orderNo":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}')}`,
      `cursor=${encodeCursor(['2026-11-23T17:12:00.000Z', 'evt_1'])}`,
      `cursor=${encodeCursor(['not-an-order-number'])}`,
      `cursor=${encodeCursor([])}`,
    ];
    for (const query of bad) {
      const reply = await http(shop, 'GET', `/api/orders?${query}`, { token });
      expectError(reply, 400, 'INVALID_REQUEST');
      expect(reply.body.error.message, query).toMatch(/limit|sku|cursor/);
    }
    expect(await redis.exists(`${RATE_LIMIT_KEY_PREFIX}:orders:${userId}`)).toBe(0);
  });
});

describe("the shopper's budget", () => {
  it(`429 RATE_LIMITED with Retry-After past ${ORDERS_LIST_LIMIT.points} pages a window; another shopper still reads`, async ({
    shop,
  }) => {
    const { auth } = shop;
    const token = await auth.issue(`hammer-${randomUUID()}`);
    for (let i = 0; i < ORDERS_LIST_LIMIT.points; i++)
      expect((await http(shop, 'GET', '/api/orders?limit=1', { token })).status).toBe(200);
    const refused = await http(shop, 'GET', '/api/orders?limit=1', { token });
    expectError(refused, 429, 'RATE_LIMITED');
    expect(refused.body.error.message).toMatch(/^too many order lists from this shopper/);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(ORDERS_LIST_LIMIT.durationSeconds);
    expect((await http(shop, 'GET', '/api/orders', { token: await auth.issue(`calm-${randomUUID()}`) })).status).toBe(
      200,
    );
  });
});
