/**
 * A sold-out answer never waits on Temporal: it comes from reserve.lua (Redis) or from the API
 * process's sold-out flag (memory), before any workflow call (src/order/checkout.ts, reserve()). So a
 * shopper who loses is answered at once however busy or unreachable the order pipeline is, which
 * is what the benchmark's `--layout split` relies on (docs/performance.md).
 *
 * A dedicated app instance, on the test stack's Redis and MySQL, whose Temporal address is a "black
 * hole": a TCP port that accepts connections and never answers, so any Temporal call made on the
 * path would hang (and be counted) instead of failing fast.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { describe, expect } from 'vitest';
import { composeApi, createApp } from '../src/api/app.js';
import { ShopperAuth } from '../src/api/auth.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { SoldOutCache } from '../src/order/sold-out-cache.js';
import type { AppConfig } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';
import { subscribeChannels, type RedisSubscription } from '../src/infra/redis-subscription.js';
import { RedisInventory, STOCK_RETURNED_CHANNEL } from '../src/redis/inventory.js';
import { testConfig } from './helpers/env.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { putOnSale } from './helpers/fixtures.js';
import { httpRequest } from './helpers/http.js';

const env = { TEMPORAL_TASK_QUEUE: `sold-out-${randomUUID()}`, LOG_LEVEL: 'silent' };

/** The app's config (its Temporal the black hole), its URL, and how many connections the black hole took. */
interface AppOverBlackHole {
  config: AppConfig;
  url: string;
  temporalConnections(): number;
}

// The clients reach MySQL and Redis only: the app's config differs from theirs by its Temporal address alone.
const it = storeClientsTest(testConfig(env)).extend(
  'app',
  { scope: 'file' },
  async ({ clients }, { onCleanup }): Promise<AppOverBlackHole> => {
    const { stores, redis } = clients;
    const heldSockets = new Set<Socket>();
    let temporalConnections = 0;
    const blackHole: TcpServer = createServer((socket) => {
      temporalConnections++;
      heldSockets.add(socket);
      socket.on('error', () => {});
    });
    let server: Server | undefined;
    let temporal: Client | undefined;
    let subscriber: RedisSubscription | undefined;
    const close = async () => {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      for (const socket of heldSockets) socket.destroy();
      await new Promise<void>((resolve) => blackHole.close(() => resolve()));
      await Promise.allSettled([subscriber?.quit(), temporal?.connection.close()]);
    };
    try {
      await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
      const temporalAddress = `127.0.0.1:${(blackHole.address() as AddressInfo).port}`;
      const config = testConfig({ ...env, TEMPORAL_ADDRESS: temporalAddress });
      const logger = createLogger(config, 'api');
      // Lazy: nothing is dialled until a call needs Temporal, so every connection counted is a call.
      temporal = new Client({
        connection: Connection.lazy({ address: temporalAddress }),
        namespace: config.temporal.namespace,
        dataConverter: temporalDataConverter(config),
      });
      const soldOut = new SoldOutCache();
      subscriber = subscribeChannels(redis, { [STOCK_RETURNED_CHANNEL]: soldOut.listener() }, logger);
      const listening = createApp(composeApi({ config, redis, stores, temporal, logger }, { soldOut })).listen(
        0,
        '127.0.0.1',
      );
      server = listening;
      await new Promise<void>((resolve) => listening.once('listening', resolve));
      onCleanup(close);
      return {
        config,
        url: `http://127.0.0.1:${(listening.address() as AddressInfo).port}`,
        temporalConnections: () => temporalConnections,
      };
    } catch (err) {
      await close();
      throw err;
    }
  },
);

describe('sold-out answers with Temporal unreachable', () => {
  it('answers 409 SOLD_OUT at once, from Redis and then from memory, polling and waiting checkouts alike, without calling Temporal', async ({
    clients,
    app,
  }) => {
    const { stores, redis } = clients;
    const { config, url } = app;
    const { sku } = await putOnSale(stores, redis, { stock: 1 });
    // The only unit is held by a reservation made straight in Redis: no workflow, no Temporal.
    const inventory = new RedisInventory(redis, config.temporal.taskQueue);
    const winner = newOrderNo();
    expect((await inventory.reserve({ orderNo: winner, sku, userId: 'winner', quantity: 1 })).outcome).toBe('RESERVED');
    const auth = new ShopperAuth(config);
    const checkout = async (shopper: string, wait: boolean) => {
      const started = performance.now();
      const reply = await httpRequest(url, 'POST', '/api/checkout', {
        json: { sku, quantity: 1 },
        token: await auth.issue(shopper),
        ...(wait ? { headers: { prefer: 'wait=5' } } : {}),
      });
      return { status: reply.status, code: reply.body?.error?.code as unknown, ms: performance.now() - started };
    };
    try {
      // The first loser reaches reserve.lua, which answers SOLD_OUT and sets the process's flag;
      // the next ones (polling and `Prefer: wait=5` alike) are answered from that flag.
      const first = await checkout('loser-0', false);
      const rest = await Promise.all(Array.from({ length: 20 }, (_, i) => checkout(`loser-${i + 1}`, i % 2 === 0)));
      for (const reply of [first, ...rest])
        expect({ status: reply.status, code: reply.code }).toEqual({ status: 409, code: 'SOLD_OUT' });
      // A call into the black hole would hang for good; 5 s leaves room for a loaded 2-core machine.
      expect(Math.max(first.ms, ...rest.map((r) => r.ms))).toBeLessThan(5_000);
      expect(app.temporalConnections()).toBe(0);

      // The control: a route that does ask Temporal dials the black hole and finds it down.
      const ready = await httpRequest(url, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks).toMatchObject({ redis: 'up', mysql: 'up', temporal: 'down' });
      expect(app.temporalConnections()).toBeGreaterThan(0);
    } finally {
      await inventory.release(sku, winner);
    }
  });
});
