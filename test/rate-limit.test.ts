/**
 * Rate limits over real HTTP against the real stack (Temporal dev server with the production
 * worker, Redis, MariaDB): per shopper on checkout, per client IP on the dev login and the payment
 * webhook, and which IP counts with TRUST_PROXY off and on.
 *
 * Per-IP requests leave from an address of their own in 127.0.0.0/8 (all of it is loopback on
 * Linux), and forwarded addresses are random too, so no other test file sharing this Redis can
 * spend the budgets these tests count, nor these tests theirs.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { newOrderNo } from '../src/order/order-numbers.js';
import { describe, expect } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { RATE_LIMIT_KEY_PREFIX } from '../src/api/rate-limit.js';
import { startApi, type RunningApi } from '../src/api/server.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { saleKeys } from '../src/redis/layout.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { clientsTest } from './helpers/stack-test.js';
import { expectInvariants, putOnSale, saleReport } from './helpers/fixtures.js';
import { startTestWorker, type TestWorker } from './helpers/worker.js';

// Windows far longer than a test, so no budget refills half-way through one on a slow machine.
const LIMITS = { RATE_LIMIT_CHECKOUT: '10/60s', RATE_LIMIT_LOGIN: '3/60s', RATE_LIMIT_WEBHOOK: '5/60s' };
const common = { TEMPORAL_TASK_QUEUE: `rate-${randomUUID()}`, AUTH_DEV_LOGIN: 'true', LOG_LEVEL: 'warn', ...LIMITS };
const config = testConfig(common);
const auth = new ShopperAuth(config);

/** The production worker of this file's queue, and two APIs on it: `proxied` trusts X-Forwarded-For. */
interface Apis {
  api: RunningApi;
  proxied: RunningApi;
}

const it = clientsTest(config).extend('apis', { scope: 'file' }, async ({ clients }, { onCleanup }): Promise<Apis> => {
  let worker: TestWorker | undefined;
  let api: RunningApi | undefined;
  let proxied: RunningApi | undefined;
  const close = async () => {
    await Promise.allSettled([api?.close(), proxied?.close()]);
    await worker?.close();
  };
  try {
    worker = await startTestWorker({ config, stores: clients.stores, redis: clients.redis });
    api = await startApi(config, 0);
    proxied = await startApi(testConfig({ ...common, TRUST_PROXY: 'true' }), 0);
  } catch (err) {
    await close();
    throw err;
  }
  onCleanup(close);
  return { api, proxied };
});

interface Reply {
  status: number;
  retryAfter: string | undefined;
  body: any;
}

/** One request over node:http, so that it can leave from a chosen local address. */
function send(
  base: string,
  method: string,
  path: string,
  options: { json?: unknown; raw?: string; headers?: Record<string, string>; from?: string } = {},
): Promise<Reply> {
  const body = options.raw ?? (options.json === undefined ? undefined : JSON.stringify(options.json));
  const headers: Record<string, string> = {
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      { method, headers, agent: false, ...(options.from ? { localAddress: options.from } : {}) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
            body: text ? JSON.parse(text) : undefined,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A loopback address no other test uses (127.0.0.1 is everyone's). */
const ownLoopback = () => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(2, 255)}`;
/** A forwarded client address (TEST-NET-2), random per call. */
const forwardedAddress = () => `198.51.100.${randomInt(1, 255)}`;

function expectRateLimited(reply: Reply, windowSeconds: number): void {
  expect(reply.status).toBe(429);
  expect(reply.body).toEqual({ error: { code: 'RATE_LIMITED', message: expect.stringMatching(/^too many /) } });
  expect(reply.retryAfter).toMatch(/^\d+$/);
  expect(Number(reply.retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(reply.retryAfter)).toBeLessThanOrEqual(windowSeconds);
}

const tally = (replies: Reply[]) =>
  replies.reduce<Record<number, number>>((counts, r) => ({ ...counts, [r.status]: (counts[r.status] ?? 0) + 1 }), {});

describe('checkout, per shopper', () => {
  it('50 rapid checkouts from one shopper: 10 accepted, 40 refused with 429 and Retry-After; other shoppers unaffected; only the accepted ones exist', async ({
    clients,
    apis,
  }) => {
    const { stores, redis, temporal } = clients;
    const { api } = apis;
    const { sku } = await putOnSale(stores, redis, { stock: 100, perUserLimit: 100 });
    const hammer = `hammer-${randomUUID().slice(0, 8)}`;
    const others = [1, 2, 3].map((i) => `calm-${i}-${randomUUID().slice(0, 8)}`);
    const checkout = async (userId: string) =>
      send(api.url, 'POST', '/api/checkout', {
        json: { sku, quantity: 1 },
        headers: { authorization: `Bearer ${await auth.issue(userId)}` },
      });

    const [hammered, calm] = await Promise.all([
      Promise.all(Array.from({ length: 50 }, () => checkout(hammer))),
      Promise.all(others.map(checkout)),
    ]);
    expect(tally(hammered)).toEqual({ 202: 10, 429: 40 });
    for (const reply of hammered.filter((r) => r.status === 429)) expectRateLimited(reply, 60);
    expect(calm.map((r) => r.status)).toEqual([202, 202, 202]);

    // Once refused, the shopper is refused from this process's memory: Redis's count stays put.
    const counterKey = `${RATE_LIMIT_KEY_PREFIX}:checkout:${hammer}`;
    const counted = Number(await redis.get(counterKey));
    expect(counted).toBeGreaterThanOrEqual(11);
    expect(await redis.pttl(counterKey)).toBeGreaterThan(0);
    for (let i = 0; i < 10; i++) expectRateLimited(await checkout(hammer), 60);
    expect(Number(await redis.get(counterKey))).toBe(counted);

    // State: 13 units reserved, 10 of them by the hammering shopper, 13 orders in MySQL and Temporal.
    const accepted = [...hammered, ...calm].filter((r) => r.status === 202).map((r) => r.body.orderNo as string);
    expect(accepted).toHaveLength(13);
    await waitFor(async () => (await stores.reports.countOrders(sku, 'AWAITING_PAYMENT')) === 13, {
      what: '13 orders awaiting payment',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    expect([...(await stores.reports.orderNumbersOfSale(sku))].sort()).toEqual([...accepted].sort());
    const rows = await stores.orders.getOrders(accepted);
    expect([...rows.values()].filter((row) => row.userId === hammer)).toHaveLength(10);
    expect(await redis.hget(saleKeys(sku).users, hammer)).toBe('10');
    // One workflow per accepted checkout, none for a refused one.
    await waitFor(async () => (await temporal.workflow.count(`OrderSku = '${sku}'`)).count === 13, {
      what: '13 order workflows',
      timeoutMs: 15_000,
    });
    const report = await saleReport(stores, redis, sku, { perUserLimit: 100, acceptedOrderNos: accepted });
    expect(report.figures.redis).toMatchObject({ available: 87, reserved: 13, sold: 0 });
    expectInvariants(report);
  });

  it('does not count requests answered from the sold-out flag, nor refuse them with 429', async ({ clients, apis }) => {
    const { stores, redis } = clients;
    const { api } = apis;
    const { sku } = await putOnSale(stores, redis, { stock: 1, perUserLimit: 1 });
    const token = await auth.issue(`first-${randomUUID().slice(0, 8)}`);
    expect(
      (
        await send(api.url, 'POST', '/api/checkout', {
          json: { sku, quantity: 1 },
          headers: { authorization: `Bearer ${token}` },
        })
      ).status,
    ).toBe(202);
    const late = `late-${randomUUID().slice(0, 8)}`;
    const lateAuth = { authorization: `Bearer ${await auth.issue(late)}` };
    // The first SOLD_OUT comes from Redis (and sets the flag); the next 30 from memory.
    const replies = [];
    for (let i = 0; i < 31; i++)
      replies.push(await send(api.url, 'POST', '/api/checkout', { json: { sku, quantity: 1 }, headers: lateAuth }));
    expect(tally(replies)).toEqual({ 409: 31 });
    expect(new Set(replies.map((r) => r.body.error.code))).toEqual(new Set(['SOLD_OUT']));
    expect(Number(await redis.get(`${RATE_LIMIT_KEY_PREFIX}:checkout:${late}`))).toBeLessThan(10);
  });
});

describe('dev login and webhook, per client IP', () => {
  it('the 4th login from one address within the window is refused; another address is not', async ({ apis }) => {
    const { api } = apis;
    const from = ownLoopback();
    const login = (source: string, headers: Record<string, string> = {}) =>
      send(api.url, 'POST', '/api/auth/dev-login', { json: { userId: 'ip-user' }, from: source, headers });
    const first = [await login(from), await login(from), await login(from)];
    expect(first.map((r) => r.status)).toEqual([200, 200, 200]);
    expectRateLimited(await login(from), 60);
    expect((await login(ownLoopback())).status).toBe(200);
  });

  it('TRUST_PROXY off: a client cannot dodge its limit with X-Forwarded-For', async ({ apis }) => {
    const { api } = apis;
    const from = ownLoopback();
    const login = () =>
      send(api.url, 'POST', '/api/auth/dev-login', {
        json: { userId: 'xff-user' },
        from,
        headers: { 'x-forwarded-for': forwardedAddress() },
      });
    const replies = [await login(), await login(), await login(), await login(), await login()];
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 429, 429]);
  });

  it('TRUST_PROXY on: the address is the last X-Forwarded-For hop; forged entries before it change nothing', async ({
    clients,
    apis,
  }) => {
    const { redis } = clients;
    const { proxied } = apis;
    const client = forwardedAddress();
    const from = ownLoopback();
    const login = (xff: string) =>
      send(proxied.url, 'POST', '/api/auth/dev-login', {
        json: { userId: 'proxied-user' },
        from,
        headers: { 'x-forwarded-for': xff },
      });
    const replies = [
      await login(client),
      await login(`10.9.8.7, ${client}`),
      await login(`${randomUUID().slice(0, 8)}, ${client}`),
    ];
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
    expectRateLimited(await login(`192.0.2.${randomInt(1, 255)}, ${client}`), 60);
    // Same connection address, another client behind the proxy: its own budget.
    let other = forwardedAddress();
    while (other === client) other = forwardedAddress();
    expect((await login(other)).status).toBe(200);
    // The proxy's own address is not what counts: its budget was never touched.
    expect(await redis.exists(`${RATE_LIMIT_KEY_PREFIX}:login:${from}`)).toBe(0);
  });

  it('webhook: forged calls count per address (the 6th is 429); a verified provider from that address is not throttled', async ({
    clients,
    apis,
  }) => {
    const { stores } = clients;
    const { api } = apis;
    const from = ownLoopback();
    const eventId = `evt-limit-${randomUUID()}`;
    const raw = JSON.stringify({ eventId, type: 'payment.succeeded', orderNo: newOrderNo(), amountCents: 100 });
    const unsigned = () => send(api.url, 'POST', '/api/payments/webhook', { raw, from });
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await unsigned());
    expect(replies.map((r) => r.body?.error?.code)).toEqual(Array(5).fill('INVALID_SIGNATURE'));
    expectRateLimited(await unsigned(), 60);
    expect(await stores.payments.getPayment(eventId)).toBeNull();
    // Stripe and its peers deliver from a few addresses and retry a 429 late: a signed call is recorded.
    const signed = await send(api.url, 'POST', '/api/payments/webhook', {
      raw,
      from,
      headers: { 'payment-signature': signWebhook(config.webhookSecret, raw) },
    });
    expect(signed.status).toBe(202);
    expect(await stores.payments.getPayment(eventId)).toMatchObject({ eventId, outcome: 'RECEIVED' });
  });
});
