/**
 * The admin views over real HTTP against the real stack (Temporal dev server with the production
 * worker, Redis, MariaDB): a sale with orders in several states (awaiting payment, paid by the signed
 * webhook and by the dev simulator, cancelled, a payment to refund), its stats, paged orders,
 * payments and sales, closing it early, and the invariants afterwards.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import { DEV_DEFAULT_ADMIN_TOKEN } from '../src/api/routes/dev.js';
import { startApi } from '../src/api/server.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { loadConfig } from '../src/config/index.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import { visibilityString } from '../src/order/workflow-client.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { expectInvariants, saleReport, uniqueSku } from './helpers/fixtures.js';
import { API_TEST_ENV, type TestApp } from './helpers/app.js';
import { httpAt, httpRequest, replyOf, type HttpOptions, type Reply } from './helpers/http.js';
import { appTest } from './helpers/stack-test.js';

const ADMIN = 'admin-views-token';
const it = appTest('admin', { ...API_TEST_ENV, ADMIN_TOKEN: ADMIN });

const http = (app: TestApp, method: string, path: string, options: HttpOptions = {}): Promise<Reply> =>
  replyOf(app.api.url, method, path, options);

const admin = (app: TestApp, method: string, path: string) => http(app, method, path, { token: ADMIN });
const expectError = (reply: Reply, status: number, code: string) =>
  expect(reply).toEqual({ status, body: { error: { code, message: expect.any(String) } } });

async function checkout(app: TestApp, sku: string, userId: string) {
  const token = await app.auth.issue(userId);
  const reply = await http(app, 'POST', '/api/checkout', {
    json: { sku, quantity: 1 },
    token,
    headers: { 'Idempotency-Key': `k-${userId}` },
  });
  return { reply, token };
}

async function placeOrder(app: TestApp, sku: string, userId: string): Promise<{ orderNo: string; token: string }> {
  const { reply, token } = await checkout(app, sku, userId);
  expect(reply.status).toBe(202);
  const orderNo = reply.body.orderNo as string;
  await untilStatus(app, orderNo, token, 'AWAITING_PAYMENT');
  return { orderNo, token };
}

async function untilStatus(app: TestApp, orderNo: string, token: string, status: string) {
  return waitFor(
    async () => {
      const reply = await http(app, 'GET', `/api/orders/${orderNo}`, { token });
      return reply.body.status === status && reply.body;
    },
    { what: `order ${orderNo} to be ${status}`, timeoutMs: 20_000 },
  );
}

function webhook(app: TestApp, event: { eventId: string; orderNo: string; amountCents: number }) {
  const raw = JSON.stringify({ type: 'payment.succeeded', ...event });
  return http(app, 'POST', '/api/payments/webhook', {
    raw,
    headers: { 'payment-signature': signWebhook(app.config.webhookSecret, raw) },
  });
}

/** Every page of an admin list, following nextCursor; also returns how many pages it took. */
async function walk(app: TestApp, path: string): Promise<{ items: any[]; pages: number }> {
  const items: any[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const reply = await admin(app, 'GET', `${path}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(reply.status).toBe(200);
    items.push(...reply.body.items);
    cursor = reply.body.nextCursor;
    pages++;
    expect(pages).toBeLessThan(1_000);
  } while (cursor);
  return { items, pages };
}

describe('admin views of a sale with orders in every state', () => {
  const priceCents = 2_500;
  let sku: string;
  const placed: Array<{ orderNo: string; token: string }> = [];
  let refundEventId: string;

  it.beforeAll(async ({ app }) => {
    sku = uniqueSku('ADM');
    expect(
      (
        await http(app, 'POST', '/api/sales', {
          json: { sku, name: 'Admin views', priceCents, stock: 10, perUserLimit: 2 },
          token: ADMIN,
        })
      ).status,
    ).toBe(201);
    // Six orders: one paid by the signed webhook, one by the dev simulator, one cancelled, three awaiting payment.
    placed.push(
      ...(await Promise.all(
        ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'].map((user) => placeOrder(app, sku, `${sku}-${user}`)),
      )),
    );
    const [viaWebhook, viaSimulator, cancelled] = placed as [
      (typeof placed)[0],
      (typeof placed)[0],
      (typeof placed)[0],
    ];
    expect(
      (
        await webhook(app, {
          eventId: `evt-${viaWebhook.orderNo}`,
          orderNo: viaWebhook.orderNo,
          amountCents: priceCents,
        })
      ).body.outcome,
    ).toBe('APPLIED');
    const simulated = await http(app, 'POST', '/api/dev/simulate-payment', {
      json: { orderNo: viaSimulator.orderNo },
      token: viaSimulator.token,
    });
    expect(simulated.body.outcome).toBe('APPLIED');
    expect(
      (await http(app, 'POST', `/api/orders/${cancelled.orderNo}/cancel`, { token: cancelled.token })).status,
    ).toBe(202);
    await untilStatus(app, viaWebhook.orderNo, viaWebhook.token, 'PAID');
    await untilStatus(app, viaSimulator.orderNo, viaSimulator.token, 'PAID');
    await untilStatus(app, cancelled.orderNo, cancelled.token, 'CANCELLED');
    // A second payment for a paid order: kept for a refund.
    refundEventId = `evt-again-${viaWebhook.orderNo}`;
    const again = await webhook(app, { eventId: refundEventId, orderNo: viaWebhook.orderNo, amountCents: priceCents });
    expect(again.body).toEqual({ received: true, outcome: 'REFUND_REQUIRED', refundReason: 'ALREADY_PAID' });
  });

  it('stats: Redis, MySQL and Temporal side by side, no drift once quiet', async ({ app }) => {
    // Visibility trails the workflows by a moment: wait until the closed ones are no longer counted.
    const stats = await waitFor(
      async () => {
        const reply = await admin(app, 'GET', `/api/admin/sales/${sku}/stats`);
        expect(reply.status).toBe(200);
        return reply.body.runningWorkflows === 3 && reply.body;
      },
      { what: 'three running workflows in visibility', timeoutMs: 20_000 },
    );
    expect(stats).toEqual({
      sku,
      redis: { stock: 10, available: 5, reserved: 3, sold: 2 },
      mysql: {
        stock: 10,
        available: 5,
        orders: { AWAITING_PAYMENT: 3, PAID: 2, CANCELLED: 1, FAILED: 0, DISPUTED: 0, REFUNDED: 0 },
        units: { AWAITING_PAYMENT: 3, PAID: 2, CANCELLED: 1, FAILED: 0, DISPUTED: 0, REFUNDED: 0 },
      },
      runningWorkflows: 3,
      // Two paid orders, and a second payment of one of them kept for a refund (the generic webhook: an operator's).
      payments: {
        RECEIVED: 0,
        APPLIED: 2,
        REFUND_REQUIRED: 1,
        REFUND_REQUESTED: 0,
        REFUNDED: 0,
        REFUND_FAILED: 0,
      },
      drift: { available: 0, reserved: 0, sold: 0 },
      invariants: {
        ok: true,
        checks: { noOversell: true, conservation: true, storesAgree: true, noLostOrder: true, perUserLimit: true },
      },
    });
  });

  it('stats show drift when Redis and MySQL disagree', async ({ app }) => {
    const { redis } = app;
    // A unit taken in Redis only, as a checkout does before its order is persisted; then put back.
    await redis.hincrby(saleKeys(sku).sale, 'available', -1);
    await redis.hincrby(saleKeys(sku).sale, 'reserved', 1);
    try {
      const { body } = await admin(app, 'GET', `/api/admin/sales/${sku}/stats`);
      expect(body.drift).toEqual({ available: -1, reserved: 1, sold: 0 });
      expect(body.invariants.checks.storesAgree).toBe(false);
    } finally {
      await redis.hincrby(saleKeys(sku).sale, 'reserved', -1);
      await redis.hincrby(saleKeys(sku).sale, 'available', 1);
    }
  });

  it('a disputed or refunded order is sold in both stores: no drift', async ({ app }) => {
    const { pool } = app;
    // What a dispute does to the row (docs/fault-tolerance.md, "Money taken back"): the unit stays sold.
    const paid = placed[0]!.orderNo;
    await pool.query("UPDATE orders SET status = 'DISPUTED' WHERE order_no = ?", [paid]);
    try {
      const { body } = await admin(app, 'GET', `/api/admin/sales/${sku}/stats`);
      expect(body.mysql.units).toMatchObject({ PAID: 1, DISPUTED: 1 });
      expect(body.drift).toEqual({ available: 0, reserved: 0, sold: 0 });
      expect(body.invariants.checks.storesAgree).toBe(true);
    } finally {
      await pool.query("UPDATE orders SET status = 'PAID' WHERE order_no = ?", [paid]);
    }
  });

  it('orders: newest first, by status, and paging walks every row exactly once', async ({ app }) => {
    for (const limit of [1, 2, 4, 6, 50]) {
      const { items, pages } = await walk(app, `/api/admin/orders?sku=${sku}&limit=${limit}`);
      expect(items.map((o) => o.orderNo)).toEqual(
        placed
          .map((o) => o.orderNo)
          .sort()
          .reverse(),
      );
      // The last page is known as such (limit + 1 rows are read): no empty page at the end.
      expect(pages).toBe(Math.ceil(6 / limit));
    }
    const paid = await admin(app, 'GET', `/api/admin/orders?sku=${sku}&status=PAID`);
    expect(paid.status).toBe(200);
    expect(paid.body.nextCursor).toBeNull();
    expect(new Set(paid.body.items.map((o: { orderNo: string }) => o.orderNo))).toEqual(
      new Set([placed[0]?.orderNo, placed[1]?.orderNo]),
    );
    expect(paid.body.items[0]).toMatchObject({
      sku,
      status: 'PAID',
      quantity: 1,
      totalCents: priceCents,
      paidAt: expect.any(String),
      cancelledAt: null,
    });
    const cancelled = await admin(app, 'GET', `/api/admin/orders?sku=${sku}&status=CANCELLED&limit=1`);
    expect(cancelled.body).toEqual({
      items: [
        expect.objectContaining({
          orderNo: placed[2]?.orderNo,
          status: 'CANCELLED',
          cancelReason: 'USER_CANCELLED',
          userId: `${sku}-a3`,
        }),
      ],
      nextCursor: null,
    });
    expect((await admin(app, 'GET', `/api/admin/orders?sku=${sku}&status=FAILED`)).body).toEqual({
      items: [],
      nextCursor: null,
    });
  });

  it("a shopper's orders by userId (Temporal no longer shows who ordered), of one sale or all, by status", async ({
    app,
  }) => {
    const shopper = `${sku}-a3`;
    const all = await admin(app, 'GET', `/api/admin/orders?userId=${encodeURIComponent(shopper)}`);
    expect(all.status).toBe(200);
    expect(all.body.items.map((o: { orderNo: string }) => o.orderNo)).toEqual([placed[2]?.orderNo]);
    expect(all.body.items[0]).toMatchObject({ userId: shopper, sku, status: 'CANCELLED' });
    const ofSale = await admin(
      app,
      'GET',
      `/api/admin/orders?sku=${sku}&userId=${encodeURIComponent(shopper)}&status=PAID`,
    );
    expect(ofSale.body).toEqual({ items: [], nextCursor: null });
    // Neither: every order, newest first (other files' orders too, so only the order is checked).
    const newest = await admin(app, 'GET', '/api/admin/orders?limit=20');
    expect(newest.status).toBe(200);
    const numbers = newest.body.items.map((o: { orderNo: string }) => o.orderNo);
    expect(numbers.length).toBeGreaterThan(0);
    expect(numbers).toEqual([...numbers].sort().reverse());
  });

  it('payments: the refunds to make, oldest first, each exactly once across pages', async ({ app }) => {
    const { items } = await walk(app, '/api/admin/payments?outcome=REFUND_REQUIRED&limit=2');
    const ids = items.map((p) => p.eventId);
    expect(new Set(ids).size).toBe(ids.length);
    const keys = items.map((p) => `${p.receivedAt}\n${p.eventId}`);
    expect(keys).toEqual([...keys].sort());
    expect(items.find((p) => p.eventId === refundEventId)).toEqual({
      eventId: refundEventId,
      orderNo: placed[0]?.orderNo,
      sku,
      amountCents: priceCents,
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ALREADY_PAID',
      receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      // The generic webhook: no provider ids, and the refund stays an operator's.
      provider: 'generic',
      providerRef: null,
      refundId: null,
      refundError: null,
    });
    // REFUND_REQUIRED is the default outcome; APPLIED lists both payments of this sale.
    expect(
      (await admin(app, 'GET', '/api/admin/payments?limit=200')).body.items.map((p: { eventId: string }) => p.eventId),
    ).toContain(refundEventId);
    const applied = await walk(app, '/api/admin/payments?outcome=APPLIED&limit=3');
    expect(applied.items.filter((p) => p.sku === sku).map((p) => p.orderNo)).toEqual(
      expect.arrayContaining([placed[0]?.orderNo, placed[1]?.orderNo]),
    );
    expect(applied.items.filter((p) => p.sku === sku)).toHaveLength(2);
  });

  it('sales: newest first, every sale exactly once across pages', async ({ app }) => {
    const { items } = await walk(app, '/api/admin/sales?limit=3');
    const skus = items.map((s) => s.sku);
    expect(new Set(skus).size).toBe(skus.length);
    expect(items.find((s) => s.sku === sku)).toEqual({
      sku,
      name: 'Admin views',
      priceCents,
      stock: 10,
      available: 5,
      perUserLimit: 2,
      startsAt: null,
      endsAt: null,
      createdAt: expect.any(String),
    });
    const created = items.map((s) => Date.parse(s.createdAt));
    expect(created).toEqual([...created].sort((a, b) => b - a));
  });

  it('answers 401 without or with a wrong admin token, on every admin route', async ({ app }) => {
    const { auth } = app;
    const routes: Array<[string, string]> = [
      ['GET', `/api/admin/sales/${sku}/stats`],
      ['GET', `/api/admin/orders?sku=${sku}`],
      ['GET', '/api/admin/payments'],
      ['GET', '/api/admin/sales'],
      ['POST', `/api/admin/sales/${sku}/close`],
      ['GET', '/api/admin/workers'],
      ['GET', '/api/admin/deployment'],
    ];
    for (const [method, path] of routes) {
      expectError(await http(app, method, path), 401, 'UNAUTHORIZED');
      expectError(await http(app, method, path, { token: 'not-the-admin-token' }), 401, 'UNAUTHORIZED');
      // A shopper's token is not an admin token either.
      expectError(await http(app, method, path, { token: await auth.issue('shopper') }), 401, 'UNAUTHORIZED');
    }
    // Nothing was closed by those attempts.
    expect((await http(app, 'GET', `/api/sales/${sku}`)).body.endsAt).toBeNull();
  });

  it('answers 400 INVALID_REQUEST on bad query parameters and 404 SKU_NOT_FOUND on an unknown sale', async ({
    app,
  }) => {
    const { stores, redis } = app;
    const bad = [
      `/api/admin/orders?sku=${sku}&limit=0`,
      `/api/admin/orders?sku=${sku}&limit=201`,
      `/api/admin/orders?sku=${sku}&limit=abc`,
      `/api/admin/orders?sku=${sku}&limit=1.5`,
      `/api/admin/orders?sku=${sku}&limit=-1`,
      `/api/admin/orders?sku=${sku}&status=PENDING`,
      `/api/admin/orders?sku=${sku}&status=paid`,
      `/api/admin/orders?sku=${sku}&cursor=not-a-cursor`,
      `/api/admin/orders?sku=${sku}&cursor=${Buffer.from('["x"]').toString('base64url')}`,
      `/api/admin/orders?sku=${sku}&sku=${sku}`,
      '/api/admin/orders?sku=bad%20sku',
      '/api/admin/orders?userId=bad%20shopper',
      '/api/admin/payments?outcome=DUPLICATE',
      '/api/admin/payments?limit=',
      `/api/admin/payments?cursor=${Buffer.from('["yesterday","e"]').toString('base64url')}`,
      '/api/admin/sales?limit=1000',
      '/api/admin/sales?cursor=%7B%7D',
    ];
    for (const path of bad) expectError(await admin(app, 'GET', path), 400, 'INVALID_REQUEST');
    // A parameter the document does not declare is ignored, as everywhere: the same page as without it.
    expect(await admin(app, 'GET', `/api/admin/orders?sku=${sku}&colour=blue`)).toEqual(
      await admin(app, 'GET', `/api/admin/orders?sku=${sku}`),
    );
    const unknown = uniqueSku('NOPE');
    expectError(await admin(app, 'GET', `/api/admin/sales/${unknown}/stats`), 404, 'SKU_NOT_FOUND');
    expectError(await admin(app, 'GET', `/api/admin/orders?sku=${unknown}`), 404, 'SKU_NOT_FOUND');
    expectError(await admin(app, 'POST', `/api/admin/sales/${unknown}/close`), 404, 'SKU_NOT_FOUND');
    expectError(await admin(app, 'GET', `/api/admin/sales/${'x'.repeat(300)}/stats`), 404, 'SKU_NOT_FOUND');
    expect(await stores.sales.getSale(unknown)).toBeNull();
    expect(await redis.exists(saleKeys(unknown).sale)).toBe(0);
  });

  it('counts running workflows with the SKU quoted safely', async ({ app }) => {
    const { orders } = app;
    expect(visibilityString(`it's \\ odd`)).toBe(`'it\\'s \\\\ odd'`);
    // A quote cannot end the literal and widen the query: an odd SKU simply matches nothing.
    expect(await orders.countRunning(`${sku}' OR OrderSku != '`)).toBe(0);
    expect(await orders.countRunning(sku)).toBe(3);
  });
});

describe('closing a sale early', () => {
  it('refuses checkouts from then on, lets placed orders be paid, is idempotent, and a retry repairs MySQL', async ({
    app,
  }) => {
    const { config, pool, stores, redis, orders } = app;
    const sku = uniqueSku('CLOSE');
    expect(
      (
        await http(app, 'POST', '/api/sales', {
          json: { sku, name: 'Closing', priceCents: 900, stock: 5, perUserLimit: 1 },
          token: ADMIN,
        })
      ).status,
    ).toBe(201);
    const before = await placeOrder(app, sku, `${sku}-early`);
    const other = await placeOrder(app, sku, `${sku}-late-payer`);

    const t0 = Date.now();
    const closed = await admin(app, 'POST', `/api/admin/sales/${sku}/close`);
    expect(closed.status).toBe(200);
    expect(closed.body).toMatchObject({ sku, stock: 5, available: 3, reserved: 2, endsAt: expect.any(String) });
    const endsAt = closed.body.endsAt as string;
    expect(Date.parse(endsAt)).toBeGreaterThanOrEqual(t0 - 5);
    expect(Date.parse(endsAt)).toBeLessThanOrEqual(Date.now());

    // Both stores carry the end.
    expect((await stores.sales.getSale(sku))?.endsAt?.toISOString()).toBe(endsAt);
    expect((await new RedisInventory(redis, config.temporal.taskQueue).getSale(sku))?.endsAt?.toISOString()).toBe(
      endsAt,
    );
    expect((await http(app, 'GET', `/api/sales/${sku}`)).body.endsAt).toBe(endsAt);

    const refused = await checkout(app, sku, `${sku}-too-late`);
    expectError(refused.reply, 409, 'SALE_NOT_ACTIVE');

    // Closing again answers the same end.
    const again = await admin(app, 'POST', `/api/admin/sales/${sku}/close`);
    expect(again).toEqual({ status: 200, body: closed.body });

    // Orders placed before run to their end: one is paid, one cancelled.
    expect(
      (await http(app, 'POST', '/api/dev/simulate-payment', { json: { orderNo: before.orderNo }, token: before.token }))
        .body.outcome,
    ).toBe('APPLIED');
    await untilStatus(app, before.orderNo, before.token, 'PAID');
    expect((await http(app, 'POST', `/api/orders/${other.orderNo}/cancel`, { token: other.token })).status).toBe(202);
    await untilStatus(app, other.orderNo, other.token, 'CANCELLED');
    // The returned unit cannot be bought: the sale is closed.
    expectError((await checkout(app, sku, `${sku}-after-return`)).reply, 409, 'SALE_NOT_ACTIVE');

    // Only the Redis write landed (MySQL's end lost): a retry writes Redis's end to MySQL.
    await pool.query('UPDATE sales SET ends_at = NULL WHERE sku = ?', [sku]);
    const retried = await admin(app, 'POST', `/api/admin/sales/${sku}/close`);
    expect(retried.status).toBe(200);
    expect(retried.body.endsAt).toBe(endsAt);
    expect((await stores.sales.getSale(sku))?.endsAt?.toISOString()).toBe(endsAt);

    await waitFor(
      async () =>
        (await orders.workflowState(other.orderNo)) === 'CLOSED' &&
        (await orders.workflowState(before.orderNo)) === 'CLOSED',
      {
        what: 'both workflows closed',
        timeoutMs: 20_000,
      },
    );
    expectInvariants(
      await saleReport(stores, redis, sku, { perUserLimit: 1, acceptedOrderNos: [before.orderNo, other.orderNo] }),
    );
    const stats = await admin(app, 'GET', `/api/admin/sales/${sku}/stats`);
    expect(stats.body).toMatchObject({
      redis: { stock: 5, available: 4, reserved: 0, sold: 1 },
      mysql: { available: 4, orders: { PAID: 1, CANCELLED: 1, AWAITING_PAYMENT: 0, FAILED: 0 } },
      drift: { available: 0, reserved: 0, sold: 0 },
    });
  });

  it('closing a sale whose window is already over keeps its end', async ({ app }) => {
    const sku = uniqueSku('ENDED');
    const endsAt = new Date(Date.now() + 1_500).toISOString();
    const created = await http(app, 'POST', '/api/sales', {
      json: { sku, name: 'Ends soon', priceCents: 100, stock: 2, perUserLimit: 1, endsAt },
      token: ADMIN,
    });
    expect(created.status).toBe(201);
    await waitFor(() => Date.now() > Date.parse(endsAt) + 50, { what: 'the sale window to end', timeoutMs: 5_000 });
    const closed = await admin(app, 'POST', `/api/admin/sales/${sku}/close`);
    expect(closed.status).toBe(200);
    expect(closed.body.endsAt).toBe(endsAt);
  });
});

describe('invariants across the admin sale', () => {
  it('still hold for every sale this file created', async ({ app }) => {
    const { stores, redis } = app;
    const { items } = await walk(app, '/api/admin/sales?limit=200');
    const mine = items.filter((s) => /^(ADM|CLOSE|ENDED)-/.test(s.sku));
    expect(mine.length).toBeGreaterThanOrEqual(3);
    for (const sale of mine)
      expectInvariants(await saleReport(stores, redis, sale.sku, { perUserLimit: sale.perUserLimit }));
  });
});

describe('wrong operator tokens (RATE_LIMIT_AUTH_FAILURES)', () => {
  it('are counted per address: past the limit that address gets 429 even with the right token; others go on', async () => {
    const eventsToken = randomBytes(24).toString('hex');
    const limited = await startApi(
      testConfig({
        ...API_TEST_ENV,
        ADMIN_TOKEN: ADMIN,
        EVENTS_READ_TOKEN: eventsToken,
        RATE_LIMIT_AUTH_FAILURES: '3/1m',
        TRUST_PROXY: 'true',
      }),
      0,
    );
    const from = (address: string, token: string | undefined, path = '/api/admin/sales') =>
      replyOf(limited.url, 'GET', path, { ...(token ? { token } : {}), headers: { 'X-Forwarded-For': address } });
    try {
      const guesser = '203.0.113.7';
      for (const token of ['guess-1', undefined, 'guess-3'])
        expectError(await from(guesser, token), 401, 'UNAUTHORIZED');
      const spent = await httpRequest(limited.url, 'GET', '/api/admin/sales', {
        token: ADMIN,
        headers: { 'X-Forwarded-For': guesser },
      });
      expect(spent.status).toBe(429);
      expect(spent.body.error.code).toBe('RATE_LIMITED');
      expect(Number(spent.headers.get('retry-after'))).toBeGreaterThan(0);
      // The events feed's token is refused from there too: the count is per address, not per route.
      expect((await from(guesser, eventsToken, '/api/admin/events')).status).toBe(429);
      // Another address is not held back by the guesser, and the right token is not counted.
      for (let i = 0; i < 5; i++) expect((await from('203.0.113.8', ADMIN)).status).toBe(200);
      expect((await from('203.0.113.8', eventsToken, '/api/admin/events')).status).toBe(200);
      expectError(await from('203.0.113.8', 'guess'), 401, 'UNAUTHORIZED');
    } finally {
      await limited.close();
    }
  });
});

describe('GET /api/dev/config (the dashboard settings)', () => {
  it('tells the Web UI URL and namespace, the admin token only when it is the dev default, and is 404 without dev login', async ({
    app,
  }) => {
    const { config } = app;
    expect(loadConfig({}).adminToken).toBe(DEV_DEFAULT_ADMIN_TOKEN);
    expect(await http(app, 'GET', '/api/dev/config')).toEqual({
      status: 200,
      body: { temporalUiUrl: null, namespace: config.temporal.namespace, devAdminToken: null },
    });
    const withUi = await startApi(
      testConfig({
        AUTH_DEV_LOGIN: 'true',
        ADMIN_TOKEN: '',
        TEMPORAL_UI_URL: 'http://ui.example.test:8233/',
        LOG_LEVEL: 'warn',
      }),
      0,
    );
    const locked = await startApi(testConfig({ AUTH_DEV_LOGIN: 'false', LOG_LEVEL: 'warn' }), 0);
    try {
      const reply = await httpAt('GET', `${withUi.url}/api/dev/config`);
      expect(reply.body).toEqual({
        temporalUiUrl: 'http://ui.example.test:8233',
        namespace: config.temporal.namespace,
        devAdminToken: 'dev-admin-token',
      });
      const off = await httpAt('GET', `${locked.url}/api/dev/config`);
      expect(off.status).toBe(404);
      expect(off.body).toEqual({ error: { code: 'NOT_FOUND', message: expect.any(String) } });
      // The dashboard itself is served either way.
      expect((await httpAt('GET', `${locked.url}/`)).headers.get('content-type')).toMatch(/^text\/html/);
    } finally {
      await Promise.all([withUi.close(), locked.close()]);
    }
  });
});
