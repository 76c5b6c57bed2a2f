/**
 * Order status reads against the real stack (Temporal dev server + production worker, Redis,
 * MariaDB) over real HTTP: the one read (the promise before its row exists, the row after; never the
 * workflow), single-flight, the status-aware cache, invalidation by a payment or a cancel delivered
 * through this API process, the long-poll (change, timeout, wake, bad input, disconnect, bound), and
 * the order-change notifications that let the cache keep answers long. The cache is set to 60 s here
 * so that "served from memory" and "read the row" cannot be confused: anything that shows a change
 * within seconds did not wait for it.
 *
 * An order is held PENDING (persistence retrying) by pendingOrder below.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import { ApiMetrics } from '../src/api/metrics.js';
import { startApi } from '../src/api/server.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { OrderStatusReader } from '../src/order/status-reads.js';
import { waitFor } from '../stack/wait-for.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { API_TEST_ENV, TEST_ADMIN_TOKEN as ADMIN, type TestApp } from './helpers/app.js';
import { awaitClosed } from './helpers/orders.js';
import { saleThroughApi, uniqueSku } from './helpers/fixtures.js';
import { httpAt, httpRequest, type HttpOptions, type HttpReply } from './helpers/http.js';
import { appTest } from './helpers/stack-test.js';

const it = appTest('status-reads', {
  ...API_TEST_ENV,
  RATE_LIMIT_CHECKOUT: 'off',
  STATUS_CACHE_MS: '60000',
  // One long-poll at a time in this process: the bound's test needs it; the other tests hold at most one.
  STATUS_LONG_POLL_MAX_WAITERS: '1',
});

const http = (app: TestApp, method: string, path: string, options: HttpOptions = {}): Promise<HttpReply> =>
  httpRequest(app.api.url, method, path, options);

/**
 * A long-poll's answer: 200, whether the status changed (its Order-Status-Changed header), and the order it carries.
 */
function expectLongPollAnswer(answer: HttpReply, changed: boolean, order: Record<string, unknown>): void {
  expect(answer.status).toBe(200);
  expect(answer.headers.get('order-status-changed')).toBe(String(changed));
  expect(answer.body).toMatchObject(order);
}

/**
 * The order's answer once its status reads `status`; a final status must show within seconds, whatever the cache holds.
 */
async function shownAs(app: TestApp, orderNo: string, token: string, status: string): Promise<HttpReply['body']> {
  return waitFor(
    async () => {
      const reply = await http(app, 'GET', `/api/orders/${orderNo}`, { token });
      return reply.body.status === status && reply.body;
    },
    { what: `order ${orderNo} to show ${status}`, timeoutMs: 10_000 },
  );
}

async function createSale(app: TestApp): Promise<string> {
  const sale = { sku: uniqueSku('READ'), name: 'Status reads', priceCents: 1_500, stock: 20, perUserLimit: 5 };
  return (await saleThroughApi(app.api.url, ADMIN, sale)).sku;
}

async function checkout(app: TestApp, sku: string, token: string): Promise<string> {
  const reply = await http(app, 'POST', '/api/checkout', { json: { sku, quantity: 1 }, token });
  expect(reply.status).toBe(202);
  return reply.body.orderNo as string;
}

/** The API's status-read counters by source, and its current long-poll waiters, from GET /metrics. */
async function statusMetrics(app: TestApp): Promise<{
  cache: number;
  coalesced: number;
  database: number;
  stores: number;
  waiters: number;
}> {
  const text = (await httpAt('GET', `${app.api.url}/metrics`)).body;
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
  const reads = (source: string) =>
    value(new RegExp(`^flash_order_status_reads_total\\{source="${source}"\\} (\\d+)`, 'm'));
  return {
    cache: reads('cache'),
    coalesced: reads('coalesced'),
    database: reads('database'),
    stores: reads('stores'),
    waiters: value(/^flash_order_status_waiters (\d+)/m),
  };
}

/**
 * A PENDING order whose workflow runs: reserved as the checkout does, but its reservation record is
 * made unreadable, so persistOrder's claim fails (a Redis error, retried) and no row is written: its
 * promise answers, PENDING. `release` puts the record back; the next attempt persists the order.
 */
async function pendingOrder(
  app: TestApp,
  userId: string,
): Promise<{ sku: string; orderNo: string; token: string; release(): Promise<void> }> {
  const sku = await createSale(app);
  const token = await app.auth.issue(userId);
  const now = Date.now();
  const orderNo = newOrderNo(now);
  const input = {
    orderNo,
    sku,
    userId,
    quantity: 1,
    createdAt: new Date(now).toISOString(),
    paymentWindow: app.config.paymentWindow,
  };
  // As the checkout reserves it, with its promise (its handoff far ahead: the starters leave it to this test).
  const reserved = await new RedisInventory(app.redis, app.config.temporal.taskQueue).reserve({
    orderNo,
    sku,
    userId,
    quantity: 1,
    nowMs: now,
    promise: { input, handoffMs: 600_000 },
  });
  if (reserved.outcome !== 'RESERVED') throw new Error(`reservation: ${reserved.outcome}`);
  const records = saleKeys(sku).reservations;
  const record = await app.redis.hget(records, orderNo);
  await app.redis.hset(records, orderNo, `?${record}`);
  const started = await app.orders.start({ ...input, unitPriceCents: 1_500 });
  expect(started).toBe('STARTED');
  return {
    sku,
    orderNo,
    token,
    async release() {
      await app.redis.hset(records, orderNo, record!);
    },
  };
}

async function awaitingOrder(app: TestApp, userId: string): Promise<{ sku: string; orderNo: string; token: string }> {
  const sku = await createSale(app);
  const token = await app.auth.issue(userId);
  const orderNo = await checkout(app, sku, token);
  await waitFor(
    async () => (await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status === 'AWAITING_PAYMENT',
    {
      what: `order ${orderNo} to be AWAITING_PAYMENT`,
      timeoutMs: 15_000,
    },
  );
  return { sku, orderNo, token };
}

describe('OrderStatusReader', () => {
  it('shares one read of the row among concurrent reads of one order (single-flight), counted by the metric', async ({
    app,
  }) => {
    const { orderNo } = await awaitingOrder(app, 'reader-flight');
    const metrics = new ApiMetrics({ defaultMetrics: false });
    // The cache off: only single-flight can explain one read for twenty.
    const reader = new OrderStatusReader(app.lookup, {
      cacheMs: 0,
      maxEntries: 100,
      maxWaiters: 10,
      observer: metrics,
    });
    const answers = await Promise.all(Array.from({ length: 20 }, () => reader.read(orderNo)));
    expect(answers.map((a) => a?.view.status)).toEqual(Array(20).fill('AWAITING_PAYMENT'));
    const text = await metrics.registry.getSingleMetricAsString('flash_order_status_reads_total');
    expect(text).toContain('flash_order_status_reads_total{source="database"} 1');
    expect(text).toContain('flash_order_status_reads_total{source="coalesced"} 19');
    expect(text).toContain('flash_order_status_reads_total{source="cache"} 0');

    // Read again after the first settled: a new read (no cache), not a stale share.
    await reader.read(orderNo);
    expect(await metrics.registry.getSingleMetricAsString('flash_order_status_reads_total')).toContain(
      'flash_order_status_reads_total{source="database"} 2',
    );
  });
});

describe('OrderStatusReader cache bounds', () => {
  it('serves AWAITING_PAYMENT from the cache for at most cacheMs, then reads the row again', async ({ app }) => {
    const { orderNo } = await awaitingOrder(app, 'reader-expiry');
    const metrics = new ApiMetrics({ defaultMetrics: false });
    const reader = new OrderStatusReader(app.lookup, {
      cacheMs: 400,
      maxEntries: 100,
      maxWaiters: 10,
      observer: metrics,
    });
    const count = async (source: string) =>
      Number(
        new RegExp(`source="${source}"\\} (\\d+)`).exec(
          await metrics.registry.getSingleMetricAsString('flash_order_status_reads_total'),
        )?.[1],
      );
    await reader.read(orderNo);
    await reader.read(orderNo);
    expect({ database: await count('database'), cache: await count('cache') }).toEqual({ database: 1, cache: 1 });
    await sleep(450);
    expect((await reader.read(orderNo))?.view.status).toBe('AWAITING_PAYMENT');
    expect({ database: await count('database'), cache: await count('cache') }).toEqual({ database: 2, cache: 1 });
  });

  it('never serves AWAITING_PAYMENT past its paymentDeadline: the timeout shows despite a 60 s cache, and ends a long-poll', async ({
    app,
  }) => {
    // An order with a 4 s payment window, started as the checkout does.
    const sku = await createSale(app);
    const userId = 'reader-deadline';
    const token = await app.auth.issue(userId);
    const now = Date.now();
    const reserved = await new RedisInventory(app.redis, app.config.temporal.taskQueue).reserve({
      orderNo: newOrderNo(now),
      sku,
      userId,
      quantity: 1,
      nowMs: now,
    });
    if (reserved.outcome !== 'RESERVED') throw new Error(`reservation: ${reserved.outcome}`);
    const { orderNo } = reserved;
    const createdAt = new Date(now).toISOString();
    expect(
      await app.orders.start({
        orderNo,
        sku,
        userId,
        quantity: 1,
        unitPriceCents: 1_500,
        createdAt,
        paymentWindow: '4s',
      }),
    ).toBe('STARTED');
    await waitFor(
      async () => (await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status === 'AWAITING_PAYMENT',
      {
        what: `order ${orderNo} to be AWAITING_PAYMENT`,
        timeoutMs: 15_000,
      },
    );
    const before = await statusMetrics(app);
    const cached = await http(app, 'GET', `/api/orders/${orderNo}`, { token });
    expect(cached.body.status).toBe('AWAITING_PAYMENT');
    expect((await statusMetrics(app)).cache - before.cache).toBe(1);
    // 4 s from when the order became payable, a moment after the reservation.
    const deadline = Date.parse(cached.body.paymentDeadline);
    expect(deadline - now).toBeGreaterThanOrEqual(4_000);

    const answer = await http(app, 'GET', `/api/orders/${orderNo}?waitForChange=AWAITING_PAYMENT&timeoutSeconds=25`, {
      token,
    });
    expectLongPollAnswer(answer, true, { orderNo, status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    // Seconds after the deadline, not the cache's 60 s nor the wait's 25 s.
    expect(Date.now() - deadline).toBeLessThan(10_000);
  });
});

describe('GET /api/orders/:orderNo through the status reader', () => {
  it('never serves PENDING from the cache, and serves AWAITING_PAYMENT from it', async ({ app }) => {
    const order = await pendingOrder(app, 'reader-cache');
    const { orderNo, token } = order;
    let released = false;
    try {
      const before = await statusMetrics(app);
      for (let i = 0; i < 3; i++) {
        const reply = await http(app, 'GET', `/api/orders/${orderNo}`, { token });
        expect(reply.status).toBe(200);
        expect(reply.body.status).toBe('PENDING');
      }
      // Its promise answers (no row yet), never from memory.
      const pending = await statusMetrics(app);
      expect(pending.stores - before.stores).toBe(3);
      expect(pending.cache - before.cache).toBe(0);
      await order.release();
      released = true;
    } finally {
      if (!released) await order.release();
    }
    await waitFor(
      async () => (await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status === 'AWAITING_PAYMENT',
      {
        what: 'the order to be persisted',
        timeoutMs: 30_000,
      },
    );
    const before = await statusMetrics(app);
    for (let i = 0; i < 3; i++) {
      const reply = await http(app, 'GET', `/api/orders/${orderNo}`, { token });
      expect(reply.body).toMatchObject({ orderNo, status: 'AWAITING_PAYMENT' });
    }
    const after = await statusMetrics(app);
    expect(after.cache - before.cache).toBe(3);
    expect(after.database - before.database).toBe(0);
  });

  it('a payment delivered through this API shows at once despite the 60 s cache', async ({ app }) => {
    const { orderNo, token } = await awaitingOrder(app, 'reader-pay');
    // Cached now (awaitingOrder's last read); one more read proves it.
    const before = await statusMetrics(app);
    expect((await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status).toBe('AWAITING_PAYMENT');
    expect((await statusMetrics(app)).cache - before.cache).toBe(1);

    const paid = await http(app, 'POST', '/api/dev/simulate-payment', { json: { orderNo }, token });
    expect(paid.body).toMatchObject({ received: true, outcome: 'APPLIED' });
    const startedAt = Date.now();
    // Applied as it was recorded (the order row decides it): shown at once, not after the cache's 60 s.
    const final = await shownAs(app, orderNo, token, 'PAID');
    expect(final.paidAt).toEqual(expect.any(String));
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    // Decided: served from the cache from now on, once the workflow's close (told after the payment was applied as it
    // was recorded) has announced it too: that announcement makes one more read ask MySQL.
    await awaitClosed(app.temporal, orderNo);
    await waitFor(
      async () => {
        const cachedBefore = (await statusMetrics(app)).cache;
        expect((await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status).toBe('PAID');
        return (await statusMetrics(app)).cache - cachedBefore === 1;
      },
      { what: `${orderNo} served from the cache`, timeoutMs: 10_000 },
    );
    const cachedBefore = (await statusMetrics(app)).cache;
    expect((await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status).toBe('PAID');
    expect((await statusMetrics(app)).cache - cachedBefore).toBe(1);
  });

  it('a cancel delivered through this API shows at once despite the 60 s cache', async ({ app }) => {
    const { orderNo, token } = await awaitingOrder(app, 'reader-cancel');
    expect((await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status).toBe('AWAITING_PAYMENT');
    expect((await http(app, 'POST', `/api/orders/${orderNo}/cancel`, { token })).status).toBe(202);
    const final = await shownAs(app, orderNo, token, 'CANCELLED');
    expect(final.cancelReason).toBe('USER_CANCELLED');
  });
});

describe('GET /api/orders/:orderNo?waitForChange= (long-poll)', () => {
  const waitPath = (orderNo: string, status: string, timeoutSeconds?: number) =>
    `/api/orders/${orderNo}?waitForChange=${status}${timeoutSeconds === undefined ? '' : `&timeoutSeconds=${timeoutSeconds}`}`;

  it('answers as soon as a PENDING order is persisted', async ({ app }) => {
    const order = await pendingOrder(app, 'poller-change');
    let released = false;
    try {
      await waitFor(
        async () =>
          (await http(app, 'GET', `/api/orders/${order.orderNo}`, { token: order.token })).body.status === 'PENDING',
        { what: `${order.orderNo} read PENDING`, timeoutMs: 15_000 },
      );
      const startedAt = Date.now();
      let settled = false;
      const reply = http(app, 'GET', waitPath(order.orderNo, 'PENDING', 25), { token: order.token }).finally(
        () => (settled = true),
      );
      await sleep(800);
      expect(settled).toBe(false);
      await order.release();
      released = true;
      const answer = await reply;
      expectLongPollAnswer(answer, true, { orderNo: order.orderNo, status: 'AWAITING_PAYMENT' });
      expect(Date.now() - startedAt).toBeLessThan(25_000);
    } finally {
      if (!released) await order.release();
    }
  });

  it('answers at once when the status already differs', async ({ app }) => {
    const { orderNo, token } = await awaitingOrder(app, 'poller-already');
    const startedAt = Date.now();
    const answer = await http(app, 'GET', waitPath(orderNo, 'PENDING', 20), { token });
    expectLongPollAnswer(answer, true, { status: 'AWAITING_PAYMENT' });
    expect(Date.now() - startedAt).toBeLessThan(2_000);
  });

  it('answers after the timeout with the current order when nothing changes', async ({ app }) => {
    const { orderNo, token } = await awaitingOrder(app, 'poller-timeout');
    const startedAt = Date.now();
    const answer = await http(app, 'GET', waitPath(orderNo, 'AWAITING_PAYMENT', 1), { token });
    const elapsed = Date.now() - startedAt;
    expectLongPollAnswer(answer, false, { orderNo, status: 'AWAITING_PAYMENT' });
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(5_000);
    // A plain GET carries no such header.
    expect(
      (await http(app, 'GET', `/api/orders/${orderNo}`, { token })).headers.get('order-status-changed'),
    ).toBeNull();
  });

  it('a payment through this API wakes the waiter at once (the 60 s cache would hold it until the timeout)', async ({
    app,
  }) => {
    const { orderNo, token } = await awaitingOrder(app, 'poller-wake');
    const startedAt = Date.now();
    const waiting = http(app, 'GET', waitPath(orderNo, 'AWAITING_PAYMENT', 25), { token });
    await waitFor(async () => (await statusMetrics(app)).waiters === 1, {
      what: 'the long-poll to wait',
      timeoutMs: 5_000,
    });
    const paid = await http(app, 'POST', '/api/dev/simulate-payment', { json: { orderNo }, token });
    expect(paid.body.outcome).toBe('APPLIED');
    const answer = await waiting;
    expectLongPollAnswer(answer, true, { status: 'PAID' });
    expect(Date.now() - startedAt).toBeLessThan(15_000);
  });

  it('answers 400 INVALID_REQUEST to bad parameters and changes nothing', async ({ app }) => {
    const { orderNo, token } = await awaitingOrder(app, 'poller-bad');
    const bad = [
      'waitForChange=SHIPPED',
      'waitForChange=pending',
      'waitForChange=',
      'waitForChange=PENDING&waitForChange=PAID',
      'waitForChange=PENDING&timeoutSeconds=0',
      'waitForChange=PENDING&timeoutSeconds=26',
      'waitForChange=PENDING&timeoutSeconds=1.5',
      'waitForChange=PENDING&timeoutSeconds=-1',
      'waitForChange=PENDING&timeoutSeconds=abc',
      'waitForChange=PENDING&timeoutSeconds=',
    ];
    const before = await statusMetrics(app);
    for (const query of bad) {
      const reply = await http(app, 'GET', `/api/orders/${orderNo}?${query}`, { token });
      expect(reply.status, query).toBe(400);
      expect(reply.body, query).toEqual({ error: { code: 'INVALID_REQUEST', message: expect.any(String) } });
    }
    const after = await statusMetrics(app);
    // Refused before any read or wait.
    expect(after.cache + after.coalesced + after.database + after.stores).toBe(
      before.cache + before.coalesced + before.database + before.stores,
    );
    expect(after.waiters).toBe(0);
    expect((await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status).toBe('AWAITING_PAYMENT');
    // timeoutSeconds alone bounds no wait: legal, and the read answers at once, as a plain read.
    const startedAt = Date.now();
    const alone = await http(app, 'GET', `/api/orders/${orderNo}?timeoutSeconds=5`, { token });
    expect({
      status: alone.status,
      changed: alone.headers.get('order-status-changed'),
      order: alone.body.status,
    }).toEqual({
      status: 200,
      changed: null,
      order: 'AWAITING_PAYMENT',
    });
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    // Someone else's order: 403 before any wait.
    const other = await app.auth.issue('poller-other');
    const forbidden = await http(app, 'GET', waitPath(orderNo, 'AWAITING_PAYMENT', 5), { token: other });
    expect(forbidden.status).toBe(403);
  });

  it('a client that goes away stops its wait; beyond STATUS_LONG_POLL_MAX_WAITERS it answers 503 with Retry-After', async ({
    app,
  }) => {
    const { orderNo, token } = await awaitingOrder(app, 'poller-bound');
    const gone = new AbortController();
    // fetch, not the test client: only it lets a caller walk away (abort) in the middle of a request.
    const first = fetch(`${app.api.url}${waitPath(orderNo, 'AWAITING_PAYMENT', 25)}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: gone.signal,
    }).catch((err: unknown) => err);
    await waitFor(async () => (await statusMetrics(app)).waiters === 1, {
      what: 'the first long-poll to wait',
      timeoutMs: 5_000,
    });

    const refused = await http(app, 'GET', waitPath(orderNo, 'AWAITING_PAYMENT', 5), { token });
    expect(refused.status).toBe(503);
    expect(refused.body).toEqual({ error: { code: 'UNAVAILABLE', message: expect.any(String) } });
    expect(refused.headers.get('retry-after')).toBe('1');

    const abortedAt = Date.now();
    gone.abort();
    expect(await first).toBeInstanceOf(Error);
    // The server ends the wait when the connection closes, long before its 25 s.
    await waitFor(async () => (await statusMetrics(app)).waiters === 0, {
      what: 'the abandoned wait to end',
      timeoutMs: 5_000,
    });
    expect(Date.now() - abortedAt).toBeLessThan(5_000);
    const next = await http(app, 'GET', waitPath(orderNo, 'AWAITING_PAYMENT', 1), { token });
    expect(next.status).toBe(200);
    expect(next.headers.get('order-status-changed')).toBe('false');
  });

  it('a shutting-down API answers its long-polls at once instead of holding them to their timeout', async ({ app }) => {
    const { orderNo, token } = await awaitingOrder(app, 'poller-shutdown');
    const second = await startApi(app.config, 0);
    let closed = false;
    try {
      const startedAt = Date.now();
      const waiting = httpRequest(second.url, 'GET', waitPath(orderNo, 'AWAITING_PAYMENT', 25), { token });
      await waitFor(
        async () => /^flash_order_status_waiters 1/m.test((await httpAt('GET', `${second.url}/metrics`)).body),
        {
          what: 'the long-poll to wait on the second API',
          timeoutMs: 5_000,
        },
      );
      const closing = second.close().then(() => (closed = true));
      const answer = await waiting;
      expectLongPollAnswer(answer, false, { status: 'AWAITING_PAYMENT' });
      expect(answer.headers.get('connection')).toBe('close');
      expect(Date.now() - startedAt).toBeLessThan(10_000);
      // Nor does the server wait out the keep-alive of the connection that carried it.
      await closing;
      expect(Date.now() - startedAt).toBeLessThan(15_000);
    } finally {
      if (!closed) await second.close();
    }
  });
});

describe('order-change notifications (Redis pub/sub): a long cache that still shows every change', () => {
  /** The status reads a given API process counted, by source. */
  const readsOf = async (url: string, source: string) => {
    const text = (await httpAt('GET', `${url}/metrics`)).body;
    return Number(
      new RegExp(`^flash_order_status_reads_total\\{source="${source}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0,
    );
  };

  it('an operator cancel outside the API (Temporal Web UI / CLI) shows within seconds despite the 60 s cache', async ({
    app,
  }) => {
    const { orderNo, token } = await awaitingOrder(app, 'notified-operator-cancel');
    expect((await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body.status).toBe('AWAITING_PAYMENT');
    // What the Web UI's "Cancel" does: no API process is involved; the worker's cancelOrder announces it.
    await app.temporal.workflow.getHandle(orderWorkflowId(orderNo)).cancel();
    const final = await shownAs(app, orderNo, token, 'CANCELLED');
    expect(final.cancelReason).toBe('OPERATOR_CANCELLED');
  });

  it('while notifications are live an answer outlives STATUS_CACHE_MS; a payment through another API process shows at once', async ({
    app,
  }) => {
    const { orderNo, token } = await awaitingOrder(app, 'notified-other-api');
    // A second API process with a short unnotified bound (300 ms) and a long notified one (60 s).
    const second = await startApi({ ...app.config, statusCacheMs: 300, statusCacheNotifiedMs: 60_000 }, 0);
    try {
      const read = async () =>
        (await httpRequest(second.url, 'GET', `/api/orders/${orderNo}`, { token })).body.status as string;
      // Its subscription comes up just after it starts; until then answers are kept 300 ms only.
      await waitFor(
        async () => {
          await read();
          await sleep(400);
          const before = await readsOf(second.url, 'cache');
          await read();
          return (await readsOf(second.url, 'cache')) === before + 1;
        },
        { what: 'the second API to serve a 400 ms old answer from its cache', timeoutMs: 10_000 },
      );
      // The payment is delivered by the first API; the second is told through Redis.
      expect((await http(app, 'POST', '/api/dev/simulate-payment', { json: { orderNo }, token })).body).toMatchObject({
        outcome: 'APPLIED',
      });
      await waitFor(async () => (await read()) === 'PAID', {
        what: `the second API to show ${orderNo} PAID`,
        timeoutMs: 10_000,
      });
    } finally {
      await second.close();
    }
  });
});
