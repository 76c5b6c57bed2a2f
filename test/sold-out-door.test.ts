/**
 * The sold-out door (src/api/sold-out-door.ts) against the real Redis and MySQL: a plain checkout
 * for a SKU this process has flagged sold out is answered before the Koa app runs, with exactly the
 * app's answer (status, headers, body) and the same metrics; every other request reaches the app,
 * in the app's order of checks, with its body read once. A probe put first in the app's middleware
 * says which requests reached it. Temporal is never dialled (a lazy connection to nowhere).
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import type { Context, Next } from 'koa';
import { describe, expect } from 'vitest';
import { composeApi, createApp } from '../src/api/app.js';
import { ShopperAuth } from '../src/api/auth.js';
import { ApiMetrics } from '../src/api/metrics.js';
import { SoldOutCache } from '../src/order/sold-out-cache.js';
import { createLogger } from '../src/infra/logger.js';
import { subscribeChannels, type RedisSubscription } from '../src/infra/redis-subscription.js';
import { STOCK_RETURNED_CHANNEL } from '../src/redis/inventory.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { putOnSale, uniqueSku } from './helpers/fixtures.js';
import { httpRequest, listen, type HttpOptions, type HttpReply } from './helpers/http.js';
import { parseExposition, total, type Sample } from './helpers/prometheus.js';

const config = testConfig({ TEMPORAL_TASK_QUEUE: `sold-out-door-${randomUUID()}`, LOG_LEVEL: 'silent' });
const auth = new ShopperAuth(config);

/** The app behind its door, served on `url`, with its sold-out flags and its metrics. */
interface Door {
  url: string;
  soldOut: SoldOutCache;
  metrics: ApiMetrics;
  /** The paths of the requests that reached the app. */
  reachedApp: string[];
}

const it = storeClientsTest(config).extend(
  'door',
  { scope: 'file' },
  async ({ clients }, { onCleanup }): Promise<Door> => {
    const { stores, redis } = clients;
    const logger = createLogger(config, 'api');
    const servers: Server[] = [];
    const reachedApp: string[] = [];
    const temporal = new Client({
      connection: Connection.lazy({ address: '127.0.0.1:1' }),
      namespace: config.temporal.namespace,
      dataConverter: temporalDataConverter(config),
    });
    const soldOut = new SoldOutCache(60_000);
    let subscriber: RedisSubscription | undefined;
    const close = async () => {
      for (const server of servers) server.closeAllConnections();
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
      await Promise.allSettled([subscriber?.quit(), temporal.connection.close()]);
    };
    try {
      subscriber = subscribeChannels(redis, { [STOCK_RETURNED_CHANNEL]: soldOut.listener() }, logger);
      const metrics = new ApiMetrics({ defaultMetrics: false });
      const app = createApp(composeApi({ config, redis, stores, temporal, logger }, { soldOut, metrics }));
      app.middleware.unshift(async (ctx: Context, next: Next) => {
        reachedApp.push(ctx.path);
        await next();
      });
      const url = await listen(app, servers);
      await waitFor(() => (soldOut.markSoldOut('probe', 0), soldOut.isSoldOut('probe')), {
        what: 'the sold-out subscription',
        timeoutMs: 5_000,
        intervalMs: 5,
      });
      onCleanup(close);
      return { url, soldOut, metrics, reachedApp };
    } catch (err) {
      await close();
      throw err;
    }
  },
);

/** A checkout, and whether it reached the app. */
async function checkout(
  { url, reachedApp }: Door,
  options: HttpOptions,
): Promise<{ reply: HttpReply; reachedApp: boolean }> {
  const before = reachedApp.length;
  const reply = await httpRequest(url, 'POST', '/api/checkout', options);
  return { reply, reachedApp: reachedApp.length > before };
}

async function metricsNow({ metrics }: Door): Promise<Sample[]> {
  return parseExposition(await metrics.registry.metrics());
}

/** What the answers must agree on: everything but the request id and the date. */
function comparable(reply: HttpReply) {
  const headers = [...reply.headers.entries()].filter(([name]) => name !== 'x-request-id' && name !== 'date');
  return { status: reply.status, headers: Object.fromEntries(headers), body: reply.body as unknown };
}

describe('the sold-out door', () => {
  it("answers a flagged SKU's plain checkout before the app, exactly as the app answers it, and counts it alike", async ({
    clients,
    door,
  }) => {
    const { stores, redis } = clients;
    const { soldOut } = door;
    const { sku } = await putOnSale(stores, redis, { stock: 1, perUserLimit: 1 });
    const token = await auth.issue(`door-${randomUUID().slice(0, 8)}`);
    expect((await checkout(door, { json: { sku, quantity: 1 }, token })).reply.status).toBe(202);
    // The first loser reaches reserve.lua, whose SOLD_OUT flags the SKU.
    const first = await checkout(door, { json: { sku, quantity: 1 }, token: await auth.issue('loser-0') });
    expect(first).toMatchObject({ reply: { status: 409, body: { error: { code: 'SOLD_OUT' } } }, reachedApp: true });
    expect(soldOut.isSoldOut(sku)).toBe(true);

    const loser = await auth.issue('loser-1');
    const before = await metricsNow(door);
    const atTheDoor = await checkout(door, {
      json: { sku, quantity: 1 },
      token: loser,
      headers: { 'x-request-id': 'door-1' },
    });
    const middle = await metricsNow(door);
    // `Prefer: wait=0` is the same checkout, which the door leaves to the app.
    const inTheApp = await checkout(door, {
      json: { sku, quantity: 1 },
      token: loser,
      headers: { 'x-request-id': 'app-1', prefer: 'wait=0' },
    });
    const after = await metricsNow(door);

    expect(atTheDoor.reachedApp).toBe(false);
    expect(inTheApp.reachedApp).toBe(true);
    expect(comparable(atTheDoor.reply)).toEqual(comparable(inTheApp.reply));
    expect(atTheDoor.reply).toMatchObject({
      status: 409,
      body: { error: { code: 'SOLD_OUT', message: `${sku} is sold out` } },
    });
    expect(atTheDoor.reply.headers.get('x-request-id')).toBe('door-1');
    expect(inTheApp.reply.headers.get('x-request-id')).toBe('app-1');
    // Each answer moved the same counters by one: outcome, flag hit, HTTP request by route and status.
    const moved = (from: Sample[], to: Sample[]) =>
      [
        'flash_checkout_outcomes_total',
        'flash_sold_out_flag_hits_total',
        'http_requests_total',
        'http_request_duration_seconds_count',
      ].map((name) => total(to, name) - total(from, name));
    expect(moved(before, middle)).toEqual([1, 1, 1, 1]);
    expect(moved(middle, after)).toEqual([1, 1, 1, 1]);
    expect(
      total(after, 'http_requests_total', { route: '/api/checkout', status: '409' }) -
        total(before, 'http_requests_total', { route: '/api/checkout', status: '409' }),
    ).toBe(2);
    expect(
      total(after, 'flash_checkout_outcomes_total', { code: 'SOLD_OUT' }) -
        total(before, 'flash_checkout_outcomes_total', { code: 'SOLD_OUT' }),
    ).toBe(2);
  });

  it('leaves every other request to the app, in its order of checks, the body read once', async ({ clients, door }) => {
    const { stores, redis } = clients;
    const { soldOut } = door;
    const { sku } = await putOnSale(stores, redis, { stock: 1, perUserLimit: 1 });
    const token = await auth.issue(`other-${randomUUID().slice(0, 8)}`);
    // Malformed JSON while nothing is flagged: the app alone reads it.
    const malformedBefore = await checkout(door, { raw: '{"sku": ', token });
    expect(await checkout(door, { json: { sku, quantity: 1 }, token })).toMatchObject({ reply: { status: 202 } });
    await checkout(door, { json: { sku, quantity: 1 }, token: await auth.issue('flagger') });
    expect(soldOut.isSoldOut(sku)).toBe(true);

    const expectApp = async (options: HttpOptions, status: number, code: string) => {
      const { reply, reachedApp: reached } = await checkout(door, options);
      expect({
        status: reply.status,
        code: (reply.body as { error?: { code?: string } } | undefined)?.error?.code,
        reached,
      }).toEqual({
        status,
        code,
        reached: true,
      });
      return reply;
    };
    const loser = await auth.issue('loser-2');
    // No token, a bad token: 401 before the body, as the app orders its checks.
    await expectApp({ json: { sku, quantity: 1 } }, 401, 'UNAUTHORIZED');
    await expectApp({ json: { sku, quantity: 1 }, token: 'not-a-token' }, 401, 'UNAUTHORIZED');
    // A body the schema refuses, for a flagged SKU: the app's 400.
    await expectApp({ json: { sku, quantity: 0 }, token: loser }, 400, 'INVALID_REQUEST');
    await expectApp({ json: { sku, quantity: 1, extra: true }, token: loser }, 400, 'INVALID_REQUEST');
    // Read by the door, then failed: the app answers the same failure with the same message.
    const malformedAfter = await expectApp({ raw: '{"sku": ', token }, 400, 'INVALID_REQUEST');
    expect(malformedAfter.body).toEqual(malformedBefore.reply.body);
    const tooLarge = await expectApp(
      { raw: JSON.stringify({ sku, quantity: 1, pad: 'x'.repeat(20_000) }), token: loser },
      400,
      'INVALID_REQUEST',
    );
    expect(tooLarge.body).toMatchObject({ error: { message: 'request body is larger than 16 KB' } });
    // Read by the door, not flagged: the app reads the same body and answers it.
    await expectApp({ json: { sku: uniqueSku('NOPE'), quantity: 1 }, token: loser }, 404, 'SKU_NOT_FOUND');
    // A retry with an Idempotency-Key may own an order: it must reach Redis through the app.
    await expectApp(
      { json: { sku, quantity: 1 }, token: loser, headers: { 'idempotency-key': 'k-1' } },
      409,
      'SOLD_OUT',
    );
    // Another content type: the app's 400.
    await expectApp(
      { raw: 'sku=x', token: loser, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      400,
      'INVALID_REQUEST',
    );
    // The flag is the door's only authority: once stock comes back, checkouts reach the app again.
    soldOut.stockReturned(sku, 1);
    expect((await checkout(door, { json: { sku, quantity: 1 }, token: loser })).reachedApp).toBe(true);
  });

  it('renews an expired flag with one reserve.lua while the flood in flight is answered from it; stock seen by the probe drops it', async ({
    clients,
    door,
  }) => {
    const { stores, redis } = clients;
    const { soldOut } = door;
    const { sku } = await putOnSale(stores, redis, { stock: 1, perUserLimit: 1 });
    expect(
      (await checkout(door, { json: { sku, quantity: 1 }, token: await auth.issue('herd-winner') })).reply.status,
    ).toBe(202);
    await checkout(door, { json: { sku, quantity: 1 }, token: await auth.issue('herd-flagger') });
    expect(soldOut.isSoldOut(sku)).toBe(true);
    // The flag's TTL (60 s in this file) ran out a moment ago.
    soldOut.markSoldOut(sku, 0, Date.now() - 61_000);
    expect(soldOut.isSoldOut(sku)).toBe(false);

    const reserves = async () =>
      total(await metricsNow(door), 'flash_redis_reserve_duration_seconds_count', { outcome: 'SOLD_OUT' });
    const before = await reserves();
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => auth.issue(`herd-${i}`)));
    const herd = await Promise.all(tokens.map((token) => checkout(door, { json: { sku, quantity: 1 }, token })));
    expect(herd.map((c) => (c.reply.body as { error: { code: string } }).error.code)).toEqual(
      tokens.map(() => 'SOLD_OUT'),
    );
    // One of the 40 asked Redis (before, every checkout in flight when the flag ran out did).
    expect((await reserves()) - before).toBe(1);
    expect(soldOut.isSoldOut(sku)).toBe(true);

    // Stock back without its notification reaching this process: the probe finds it and the flag goes.
    const open = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    soldOut.markSoldOut(open.sku, 0, Date.now() - 61_000);
    const probe = await checkout(door, { json: { sku: open.sku, quantity: 1 }, token: await auth.issue('herd-probe') });
    expect(probe).toMatchObject({ reply: { status: 202 }, reachedApp: true });
    expect(soldOut.isSoldOut(open.sku)).toBe(false);
    expect(soldOut.claimProbe(open.sku)).toBe(false);
  });
});
