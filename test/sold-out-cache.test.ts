/**
 * The API's local sold-out flag against the real Redis: it answers SOLD_OUT from memory once a
 * sale is gone, and drops the flag as soon as release.lua gives stock back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { newOrderNo } from '../src/order/order-numbers.js';
import { SoldOutCache } from '../src/order/sold-out-cache.js';
import { createLogger } from '../src/infra/logger.js';
import { createRedis } from '../src/infra/redis.js';
import { subscribeChannels } from '../src/infra/redis-subscription.js';
import { RedisInventory, STOCK_RETURNED_CHANNEL } from '../src/redis/inventory.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { uniqueSku } from './helpers/fixtures.js';
import { RedisSales } from '../src/redis/sales.js';

const config = testConfig();
const redis = createRedis(config);
const inventory = new RedisInventory(redis, config.temporal.taskQueue);
const redisSales = new RedisSales(redis, config.temporal.taskQueue);
afterAll(() => redis.quit());

const until = (condition: () => boolean, timeoutMs = 2_000) =>
  waitFor(condition, { what: 'the sold-out flag to change', timeoutMs, intervalMs: 5 });

describe('SoldOutCache', () => {
  it('caches SOLD_OUT and forgets it the moment a reservation is released', async () => {
    const cache = new SoldOutCache(60_000);
    const subscriber = subscribeChannels(
      redis,
      { [STOCK_RETURNED_CHANNEL]: cache.listener() },
      createLogger({ logLevel: 'silent' }, 'test'),
    );
    try {
      await until(() => (cache.markSoldOut('probe', 0), cache.isSoldOut('probe')));
      const sku = uniqueSku();
      await redisSales.defineSale({ sku, stock: 1, perUserLimit: 1, priceCents: 100 });
      const won = newOrderNo();
      expect((await inventory.reserve({ orderNo: won, sku, userId: 'a', quantity: 1 })).outcome).toBe('RESERVED');
      const late = await inventory.reserve({ orderNo: newOrderNo(), sku, userId: 'b', quantity: 1 });
      expect(late).toEqual({ outcome: 'SOLD_OUT', generation: 0 });
      if (late.outcome !== 'SOLD_OUT') throw new Error('unreachable');
      cache.markSoldOut(sku, late.generation);
      expect(cache.isSoldOut(sku)).toBe(true);

      expect(await inventory.release(sku, won)).toBe('RELEASED');
      await until(() => !cache.isSoldOut(sku));
      // A SOLD_OUT answered before the release (older generation) arriving late is not cached.
      cache.markSoldOut(sku, late.generation);
      expect(cache.isSoldOut(sku)).toBe(false);
      // The next sell-out carries the new generation and is cached again.
      expect((await inventory.reserve({ orderNo: newOrderNo(), sku, userId: 'b', quantity: 1 })).outcome).toBe(
        'RESERVED',
      );
      const again = await inventory.reserve({ orderNo: newOrderNo(), sku, userId: 'c', quantity: 1 });
      expect(again).toEqual({ outcome: 'SOLD_OUT', generation: 1 });
      cache.markSoldOut(sku, 1);
      expect(cache.isSoldOut(sku)).toBe(true);
    } finally {
      await subscriber.quit();
    }
  });

  it('caches nothing without a live subscription, and expires after its TTL', async () => {
    const offline = new SoldOutCache(60_000);
    offline.markSoldOut('X', 0);
    expect(offline.isSoldOut('X')).toBe(false);

    const cache = new SoldOutCache(50);
    cache.setListening(true);
    const now = Date.now();
    cache.markSoldOut('Y', 0, now);
    expect(cache.isSoldOut('Y', now + 10)).toBe(true);
    expect(cache.isSoldOut('Y', now + 50)).toBe(false);
  });

  it('past its TTL, renews through one probe at a time while the flag answers the others, within the probe bound', () => {
    const cache = new SoldOutCache(1_000, 2_000);
    cache.setListening(true);
    const t = 1_000_000;
    cache.markSoldOut('Z', 0, t);
    expect(cache.claimProbe('Z', t + 999)).toBe(false); // fresh: nobody probes
    expect(cache.isSoldOut('Z', t + 1_000)).toBe(false); // expired, no probe: the next checkout asks
    expect(cache.claimProbe('Z', t + 1_000)).toBe(true);
    expect(cache.isSoldOut('Z', t + 1_001)).toBe(true); // the others are answered from the flag
    expect(cache.claimProbe('Z', t + 1_001)).toBe(false);
    cache.markSoldOut('Z', 0, t + 1_010); // the probe's SOLD_OUT renews it
    expect(cache.isSoldOut('Z', t + 2_009)).toBe(true);
    expect(cache.claimProbe('Z', t + 2_010)).toBe(true);
    // A probe Redis gave no answer (down, the breaker open, the shopper's budget spent) hands the probe on.
    cache.probeEnded('Z', { saleAnswered: false }, t + 2_011);
    expect(cache.isSoldOut('Z', t + 2_012)).toBe(false);
    expect(cache.claimProbe('Z', t + 2_012)).toBe(true);
    // A probe that never ends stops answering for the others at its bound.
    expect(cache.isSoldOut('Z', t + 4_011)).toBe(true);
    expect(cache.isSoldOut('Z', t + 4_012)).toBe(false);
    expect(cache.claimProbe('Z', t + 4_012)).toBe(true);
    // Any other answer about the sale drops the flag.
    cache.probeEnded('Z', { saleAnswered: true }, t + 4_013);
    expect(cache.flagged).toBe(0);
    expect(cache.claimProbe('Z', t + 4_014)).toBe(false);
  });
});
