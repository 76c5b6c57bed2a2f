/**
 * The Redis inventory scripts against the test stack's real Redis: outcomes, concurrency and the
 * invariants of docs/fault-tolerance.md (no oversell, conservation, per-user limit, idempotency).
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../src/infra/redis.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../src/infra/redis.js';
import { checkRedisCounters } from '../src/invariants/check.js';
import { RedisInventory, type SaleDefinition, type SaleStock } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import { testConfig } from './helpers/env.js';
import { RedisSales } from '../src/redis/sales.js';
import { PromiseQueue } from '../src/redis/promise-queue.js';
import { newOrderNo } from '../src/order/order-numbers.js';

let redis: RedisClient;
let inventory: RedisInventory;
let promises: PromiseQueue;
let redisSales: RedisSales;

beforeAll(() => {
  const config = testConfig();
  redis = createRedis(config);
  inventory = new RedisInventory(redis, config.temporal.taskQueue);
  promises = new PromiseQueue(redis);
  redisSales = new RedisSales(redis, config.temporal.taskQueue);
});

afterAll(async () => {
  await redis?.quit();
});

/** A SKU no other test (or test file sharing this Redis) uses. */
function uniqueSku(label: string): string {
  return `INV-${label}-${randomUUID().slice(0, 8)}`;
}

const orderNo = (): string => `ORD-${randomUUID()}`;

async function newSale(label: string, overrides: Partial<SaleDefinition> = {}): Promise<string> {
  const sku = uniqueSku(label);
  const created = await redisSales.defineSale({ sku, stock: 10, perUserLimit: 5, priceCents: 1999, ...overrides });
  expect(created).toBe(true);
  return sku;
}

async function sale(sku: string): Promise<SaleStock> {
  const s = await inventory.getSale(sku);
  if (!s) throw new Error(`sale ${sku} missing`);
  return s;
}

/** Redis's own invariants, from the shared checker: no negative counter, stock = available + reserved + sold. */
function expectConserved(s: SaleStock): void {
  expect(checkRedisCounters(s), JSON.stringify(s)).toEqual({ noOversell: true, conservation: true });
}

/** Redis's clock (TIME), in ms: what the scripts judge windows and cutoffs by. */
async function redisNow(): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

function countBy<T extends string>(values: readonly T[]): Partial<Record<T, number>> {
  const counts: Partial<Record<T, number>> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

/** The hash tag Redis Cluster hashes a key by: the content of the first non-empty `{…}`. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

describe('RedisInventory', () => {
  it('sells exactly the stock to 1,000 concurrent shoppers (no oversell, conservation)', async () => {
    const sku = await newSale('burst', { stock: 100, perUserLimit: 1 });
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        inventory.reserve({ orderNo: orderNo(), sku, userId: `user-${i}`, quantity: 1 }),
      ),
    );
    expect(countBy(results.map((r) => r.outcome))).toEqual({ RESERVED: 100, SOLD_OUT: 900 });

    const s = await sale(sku);
    expect(s).toMatchObject({ stock: 100, available: 0, reserved: 100, sold: 0 });
    expectConserved(s);

    // Every winner has its reservation record and exactly one unit against its name.
    const winners = results.flatMap((r, i) =>
      r.outcome === 'RESERVED' ? [{ orderNo: r.orderNo, userId: `user-${i}` }] : [],
    );
    expect(new Set(winners.map((w) => w.orderNo)).size).toBe(100);
    expect(await redis.hlen(saleKeys(sku).reservations)).toBe(100);
    expect(await redis.hlen(saleKeys(sku).users)).toBe(100);
    const records = await Promise.all(winners.map((w) => inventory.getReservation(sku, w.orderNo)));
    records.forEach((record, i) =>
      expect(record).toMatchObject({ state: 'RESERVED', userId: winners[i]?.userId, quantity: 1 }),
    );
  });

  it('enforces the per-user limit under concurrency', async () => {
    const sku = await newSale('limit', { stock: 100, perUserLimit: 2 });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => inventory.reserve({ orderNo: orderNo(), sku, userId: 'greedy', quantity: 1 })),
    );
    expect(countBy(results.map((r) => r.outcome))).toEqual({ RESERVED: 2, LIMIT_EXCEEDED: 48 });
    expect(await inventory.userHolding(sku, 'greedy')).toBe(2);

    // More than the limit in one go is refused outright, even for a fresh user.
    expect(await inventory.reserve({ orderNo: orderNo(), sku, userId: 'fresh', quantity: 3 })).toEqual({
      outcome: 'LIMIT_EXCEEDED',
      heldBy: [],
    });
    expect(await inventory.userHolding(sku, 'fresh')).toBe(0);

    const s = await sale(sku);
    expect(s).toMatchObject({ available: 98, reserved: 2, sold: 0 });
    expectConserved(s);
  });

  it('returns the same order for the same idempotency key, however concurrently it is sent', async () => {
    const sku = await newSale('idem', { stock: 3, perUserLimit: 3 });
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1, idempotencyKey: 'key-1' }),
      ),
    );
    const reserved = results.filter((r) => r.outcome === 'RESERVED');
    expect(reserved).toHaveLength(1);
    const winner = reserved[0];
    if (winner?.outcome !== 'RESERVED') throw new Error('unreachable');
    expect(results.filter((r) => r.outcome === 'DUPLICATE')).toHaveLength(19);
    for (const r of results)
      expect(r).toMatchObject({ outcome: expect.stringMatching(/^(RESERVED|DUPLICATE)$/), orderNo: winner.orderNo });

    // Stock taken once.
    expect(await sale(sku)).toMatchObject({ available: 2, reserved: 1 });
    expect(await inventory.userHolding(sku, 'alice')).toBe(1);
    expect(await redis.hlen(saleKeys(sku).reservations)).toBe(1);

    // The key is scoped to the user: another user with the same key gets an order of their own.
    const bob = await inventory.reserve({
      orderNo: orderNo(),
      sku,
      userId: 'bob',
      quantity: 1,
      idempotencyKey: 'key-1',
    });
    expect(bob.outcome).toBe('RESERVED');
    expect(bob).not.toEqual(winner);
    // ... and to the SKU: alice's key on another sale is a new checkout there.
    const otherSku = await newSale('idem-other', { stock: 1, perUserLimit: 1 });
    expect(
      (
        await inventory.reserve({
          orderNo: orderNo(),
          sku: otherSku,
          userId: 'alice',
          quantity: 1,
          idempotencyKey: 'key-1',
        })
      ).outcome,
    ).toBe('RESERVED');

    // Sell out the rest, then retry alice's checkout: it still returns her order, not SOLD_OUT.
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'carol', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'dave', quantity: 1 })).outcome).toBe(
      'SOLD_OUT',
    );
    expect(
      await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1, idempotencyKey: 'key-1' }),
    ).toMatchObject({
      outcome: 'DUPLICATE',
      orderNo: winner.orderNo,
    });
    const s = await sale(sku);
    expect(s).toMatchObject({ available: 0, reserved: 3 });
    expectConserved(s);
  });

  it('refuses to reserve an order number twice', async () => {
    const sku = await newSale('orderno');
    const no = orderNo();
    expect(await inventory.reserve({ orderNo: no, sku, userId: 'u1', quantity: 1 })).toMatchObject({
      outcome: 'RESERVED',
      orderNo: no,
    });
    expect(await inventory.reserve({ orderNo: no, sku, userId: 'u1', quantity: 1 })).toMatchObject({
      outcome: 'DUPLICATE',
      orderNo: no,
    });
    expect(await sale(sku)).toMatchObject({ available: 9, reserved: 1 });
  });

  it('releases a reservation once, however often release is called', async () => {
    const sku = await newSale('release', { stock: 5, perUserLimit: 2 });
    const no = orderNo();
    expect((await inventory.reserve({ orderNo: no, sku, userId: 'alice', quantity: 2 })).outcome).toBe('RESERVED');
    expect(await sale(sku)).toMatchObject({ available: 3, reserved: 2 });
    expect(await inventory.userHolding(sku, 'alice')).toBe(2);
    // At her limit until the release.
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1 })).outcome).toBe(
      'LIMIT_EXCEEDED',
    );

    expect(await inventory.release(sku, no)).toBe('RELEASED');
    expect(await inventory.release(sku, no)).toBe('ALREADY_RELEASED');
    // Concurrent releases too: still only one gives stock back (the one above).
    expect(new Set(await Promise.all(Array.from({ length: 10 }, () => inventory.release(sku, no))))).toEqual(
      new Set(['ALREADY_RELEASED']),
    );

    const s = await sale(sku);
    expect(s).toMatchObject({ available: 5, reserved: 0, sold: 0 });
    expectConserved(s);
    expect(await inventory.userHolding(sku, 'alice')).toBe(0);
    expect(await redis.hexists(saleKeys(sku).users, 'alice')).toBe(0);
    expect(await inventory.getReservation(sku, no)).toMatchObject({ state: 'RELEASED', userId: 'alice', quantity: 2 });

    expect(await inventory.release(sku, 'ORD-unknown')).toBe('NOT_FOUND');
    expect(await inventory.release(uniqueSku('nosale'), 'ORD-unknown')).toBe('NOT_FOUND');

    // After the release she can buy again, up to her full limit.
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 2 })).outcome).toBe(
      'RESERVED',
    );
    expect(await inventory.userHolding(sku, 'alice')).toBe(2);
    expectConserved(await sale(sku));
  });

  it('only one of many concurrent releases of the same order gives the stock back', async () => {
    const sku = await newSale('release-race', { stock: 4, perUserLimit: 4 });
    const no = orderNo();
    expect((await inventory.reserve({ orderNo: no, sku, userId: 'alice', quantity: 3 })).outcome).toBe('RESERVED');
    const outcomes = await Promise.all(Array.from({ length: 25 }, () => inventory.release(sku, no)));
    expect(countBy(outcomes)).toEqual({ RELEASED: 1, ALREADY_RELEASED: 24 });
    expect(await sale(sku)).toMatchObject({ available: 4, reserved: 0, sold: 0 });
  });

  it('confirms a reservation into a sale, and never gives a sold unit back', async () => {
    const sku = await newSale('confirm', { stock: 5, perUserLimit: 3 });
    const no = orderNo();
    expect(
      (await inventory.reserve({ orderNo: no, sku, userId: 'alice', quantity: 2, nowMs: 1_700_000_000_123 })).outcome,
    ).toBe('RESERVED');

    expect(await inventory.confirm(sku, no)).toBe('CONFIRMED');
    expect(await inventory.confirm(sku, no)).toBe('ALREADY_CONFIRMED');
    expect(await sale(sku)).toMatchObject({ available: 3, reserved: 0, sold: 2 });
    expect(await inventory.getReservation(sku, no)).toEqual({
      state: 'SOLD',
      userId: 'alice',
      quantity: 2,
      reservedAtMs: 1_700_000_000_123,
    });

    // A late timer or cancel must not undo a payment.
    expect(await inventory.release(sku, no)).toBe('SOLD');
    const s = await sale(sku);
    expect(s).toMatchObject({ available: 3, reserved: 0, sold: 2 });
    expectConserved(s);
    // Sold units still count against the user's limit.
    expect(await inventory.userHolding(sku, 'alice')).toBe(2);
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 2 })).outcome).toBe(
      'LIMIT_EXCEEDED',
    );

    // Confirm after release: the reservation stays released, nothing changes.
    const late = orderNo();
    expect((await inventory.reserve({ orderNo: late, sku, userId: 'bob', quantity: 1 })).outcome).toBe('RESERVED');
    expect(await inventory.release(sku, late)).toBe('RELEASED');
    const before = await sale(sku);
    expect(await inventory.confirm(sku, late)).toBe('RELEASED');
    expect(await sale(sku)).toEqual(before);
    expect(await inventory.getReservation(sku, late)).toMatchObject({ state: 'RELEASED' });

    expect(await inventory.confirm(sku, 'ORD-unknown')).toBe('NOT_FOUND');
    expect(await inventory.getReservation(sku, 'ORD-unknown')).toBeNull();
  });

  it('a confirm racing a release ends in exactly one of them, with stock conserved', async () => {
    const sku = await newSale('confirm-race', { stock: 50, perUserLimit: 1 });
    const orders = Array.from({ length: 50 }, (_, i) => ({ no: orderNo(), user: `u${i}` }));
    await Promise.all(orders.map((o) => inventory.reserve({ orderNo: o.no, sku, userId: o.user, quantity: 1 })));
    const pairs = await Promise.all(
      orders.map((o) => Promise.all([inventory.confirm(sku, o.no), inventory.release(sku, o.no)])),
    );
    for (const [confirmed, released] of pairs) {
      expect([
        ['CONFIRMED', 'SOLD'],
        ['RELEASED', 'RELEASED'],
      ]).toContainEqual([confirmed, released]);
    }
    const sold = pairs.filter(([c]) => c === 'CONFIRMED').length;
    const s = await sale(sku);
    expect(s).toMatchObject({ sold, reserved: 0, available: 50 - sold });
    expectConserved(s);
  });

  it('claims a reservation for its workflow once; a claimed one is released only by its owner', async () => {
    const sku = await newSale('claim', { stock: 5, perUserLimit: 2 });
    const no = orderNo();
    expect((await inventory.reserve({ orderNo: no, sku, userId: 'alice', quantity: 2 })).outcome).toBe('RESERVED');
    const claimOf = (orderNo: string, userId = 'alice', quantity = 2) =>
      inventory.claim({ sku, orderNo, userId, quantity, reservedAtMs: 1_700_000_000_000 });
    const claims = await Promise.all(Array.from({ length: 10 }, () => claimOf(no)));
    expect(countBy(claims)).toEqual({ CLAIMED: 1, ALREADY_CLAIMED: 9 });
    expect(await inventory.getReservation(sku, no)).toMatchObject({ state: 'CLAIMED', userId: 'alice', quantity: 2 });
    const claimed = await sale(sku);
    expect(claimed).toMatchObject({ available: 3, reserved: 2, sold: 0 });

    // The API after a failed start and the reconciler release only unclaimed reservations.
    expect(await inventory.release(sku, no, { as: 'unclaimed' })).toBe('CLAIMED');
    expect(await sale(sku)).toEqual(claimed);
    // Its owner can: release, or confirm.
    expect(await inventory.release(sku, no, { as: 'owner' })).toBe('RELEASED');
    expect(await sale(sku)).toMatchObject({ available: 5, reserved: 0, sold: 0 });
    expect(await claimOf(no)).toBe('RELEASED');

    const paid = orderNo();
    await inventory.reserve({ orderNo: paid, sku, userId: 'bob', quantity: 1 });
    expect(await claimOf(paid, 'bob', 1)).toBe('CLAIMED');
    expect(await inventory.confirm(sku, paid)).toBe('CONFIRMED');
    expect(await claimOf(paid, 'bob', 1)).toBe('SOLD');
    expectConserved(await sale(sku));
  });

  it('releases an unclaimed reservation only when it is older than the cut-off, and never one claimed in between', async () => {
    const sku = await newSale('orphan', { stock: 5, perUserLimit: 1 });
    const now = Date.now();
    const old = orderNo();
    const young = orderNo();
    await inventory.reserve({ orderNo: old, sku, userId: 'old', quantity: 1, nowMs: now - 120_000 });
    await inventory.reserve({ orderNo: young, sku, userId: 'young', quantity: 1, nowMs: now });
    expect(await inventory.release(sku, young, { as: 'unclaimed', reservedBeforeMs: now - 60_000 })).toBe('TOO_RECENT');
    expect(await inventory.release(sku, old, { as: 'unclaimed', reservedBeforeMs: now - 60_000 })).toBe('RELEASED');
    // The orphan's shopper can buy again.
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'old', quantity: 1 })).outcome).toBe('RESERVED');

    // A release racing a claim ends in exactly one of them.
    const raced = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const no = orderNo();
        const s2 = await newSale(`race${i}`, { stock: 1, perUserLimit: 1 });
        await inventory.reserve({ orderNo: no, sku: s2, userId: 'u', quantity: 1, nowMs: now - 120_000 });
        const [claim, release] = await Promise.all([
          inventory.claim({ sku: s2, orderNo: no, userId: 'u', quantity: 1, reservedAtMs: now - 120_000 }),
          inventory.release(s2, no, { as: 'unclaimed', reservedBeforeMs: now }),
        ]);
        return `${claim}/${release}`;
      }),
    );
    for (const outcome of raced) expect(['CLAIMED/CLAIMED', 'RELEASED/RELEASED']).toContain(outcome);
  });

  it('takes a reservation Redis lost again when its workflow claims it, if its units are still there', async () => {
    const sku = await newSale('reclaim', { stock: 1, perUserLimit: 1 });
    const lost = orderNo();
    const claim = (no: string, userId: string) =>
      inventory.claim({ sku, orderNo: no, userId, quantity: 1, reservedAtMs: 1_700_000_000_000 });
    // No record and no counters: what a restart from an AOF without the last writes leaves.
    expect(await claim(lost, 'alice')).toBe('RECLAIMED');
    expect(await inventory.getReservation(sku, lost)).toEqual({
      state: 'CLAIMED',
      userId: 'alice',
      quantity: 1,
      reservedAtMs: 1_700_000_000_000,
    });
    expect(await sale(sku)).toMatchObject({ available: 0, reserved: 1 });
    expect(await inventory.userHolding(sku, 'alice')).toBe(1);
    expect(await claim(lost, 'alice')).toBe('ALREADY_CLAIMED');
    // The units went to someone else meanwhile: the order cannot have them.
    expect(await claim(orderNo(), 'bob')).toBe('NOT_FOUND');
    expect(await sale(sku)).toMatchObject({ available: 0, reserved: 1 });
    expectConserved(await sale(sku));
  });

  it('makes a lost reservation again whole when its workflow claims it: the key names it, the shopper holds it, within the limit', async () => {
    const sku = await newSale('reclaim-whole', { stock: 3, perUserLimit: 1 });
    const keys = saleKeys(sku);
    const claim = (no: string, userId: string, idempotencyKey?: string) =>
      inventory.claim({ sku, orderNo: no, userId, quantity: 1, reservedAtMs: 1_700_000_000_000, idempotencyKey });
    const reserveWithKey = (no: string, userId: string, key: string) =>
      inventory.reserve({ orderNo: no, sku, userId, quantity: 1, idempotencyKey: key });
    // Redis lost alice's reservation (record, counters, key, holding): what a failover to a replica that lacked it
    // leaves.
    const lost = orderNo();
    expect(await claim(lost, 'alice', 'alice-key')).toBe('RECLAIMED');
    // A retry with the same key answers that order, not a new one; the limit counts it; the holding names it.
    expect(await reserveWithKey(orderNo(), 'alice', 'alice-key')).toMatchObject({
      outcome: 'DUPLICATE',
      orderNo: lost,
    });
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1 })).outcome).toBe(
      'LIMIT_EXCEEDED',
    );
    expect(await redis.hget(keys.holds, 'alice')).toBe(lost);

    // Before bob's order was claimed, he bought again (his key was lost too, so it made a new order):
    // the lost one cannot be made again, the limit and the key are the newer order's.
    const bobsLost = orderNo();
    const bobsNew = orderNo();
    expect((await reserveWithKey(bobsNew, 'bob', 'bob-key')).outcome).toBe('RESERVED');
    expect(await claim(bobsLost, 'bob', 'bob-key')).toBe('NOT_FOUND');
    expect(await inventory.userHolding(sku, 'bob')).toBe(1);
    // Carol's key now names another order (she retried with it after the loss; her limit is 2 here):
    const roomy = await newSale('reclaim-key', { stock: 3, perUserLimit: 2 });
    const carolsNew = orderNo();
    expect(
      (
        await inventory.reserve({
          orderNo: carolsNew,
          sku: roomy,
          userId: 'carol',
          quantity: 1,
          idempotencyKey: 'carol-key',
        })
      ).outcome,
    ).toBe('RESERVED');
    expect(
      await inventory.claim({
        sku: roomy,
        orderNo: orderNo(),
        userId: 'carol',
        quantity: 1,
        reservedAtMs: 1,
        idempotencyKey: 'carol-key',
      }),
    ).toBe('NOT_FOUND');
    expect(await inventory.userHolding(roomy, 'carol')).toBe(1);
    // Dave's units went to others (the sale sold out meanwhile): his order fails, and his key still
    // names it, so his retry learns of that order instead of making a new one.
    const sold = await newSale('reclaim-gone', { stock: 1, perUserLimit: 1 });
    expect((await inventory.reserve({ orderNo: orderNo(), sku: sold, userId: 'erin', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    const davesLost = orderNo();
    expect(
      await inventory.claim({
        sku: sold,
        orderNo: davesLost,
        userId: 'dave',
        quantity: 1,
        reservedAtMs: 1,
        idempotencyKey: 'dave-key',
      }),
    ).toBe('NOT_FOUND');
    expect(
      await inventory.reserve({
        orderNo: orderNo(),
        sku: sold,
        userId: 'dave',
        quantity: 1,
        idempotencyKey: 'dave-key',
      }),
    ).toMatchObject({
      outcome: 'DUPLICATE',
      orderNo: davesLost,
    });
    expect(await inventory.userHolding(sold, 'dave')).toBe(0);
    expectConserved(await sale(sku));
    expectConserved(await sale(roomy));
    expectConserved(await sale(sold));
  });

  it('adopts a reservation Redis lost back from MySQL, never below zero available', async () => {
    const sku = await newSale('adopt', { stock: 2, perUserLimit: 2 });
    const kept = orderNo();
    const claimed = {
      orderNo: kept,
      userId: 'alice',
      quantity: 1,
      state: 'CLAIMED',
      reservedAtMs: 1_700_000_000_000,
    } as const;
    expect(await inventory.adopt(sku, claimed)).toBe('ADOPTED');
    expect(await inventory.adopt(sku, claimed)).toBe('EXISTS');
    expect(await inventory.getReservation(sku, kept)).toEqual({
      state: 'CLAIMED',
      userId: 'alice',
      quantity: 1,
      reservedAtMs: 1_700_000_000_000,
    });
    expect(
      await inventory.adopt(sku, { orderNo: orderNo(), userId: 'bob', quantity: 1, state: 'SOLD', reservedAtMs: 1 }),
    ).toBe('ADOPTED');
    expect(await sale(sku)).toMatchObject({ available: 0, reserved: 1, sold: 1 });
    expect(
      await inventory.adopt(sku, {
        orderNo: orderNo(),
        userId: 'carol',
        quantity: 1,
        state: 'CLAIMED',
        reservedAtMs: 1,
      }),
    ).toBe('NO_STOCK');
    expect(
      await inventory.adopt(uniqueSku('none'), {
        orderNo: orderNo(),
        userId: 'x',
        quantity: 1,
        state: 'CLAIMED',
        reservedAtMs: 1,
      }),
    ).toBe('NO_SALE');
    expect(await inventory.userHolding(sku, 'alice')).toBe(1);
    expectConserved(await sale(sku));
  });

  it('adopts a lost reservation back whole: the checkout key names its order again and the shopper holds it', async () => {
    const sku = await newSale('adopt-whole', { stock: 3, perUserLimit: 1 });
    const kept = orderNo();
    const adopted = {
      orderNo: kept,
      userId: 'frank',
      quantity: 1,
      state: 'CLAIMED' as const,
      reservedAtMs: 1,
      idempotencyKey: 'frank-key',
    };
    expect(await inventory.adopt(sku, adopted)).toBe('ADOPTED');
    expect(
      await inventory.reserve({ orderNo: orderNo(), sku, userId: 'frank', quantity: 1, idempotencyKey: 'frank-key' }),
    ).toMatchObject({
      outcome: 'DUPLICATE',
      orderNo: kept,
    });
    expect(await inventory.reserve({ orderNo: orderNo(), sku, userId: 'frank', quantity: 1 })).toMatchObject({
      outcome: 'LIMIT_EXCEEDED',
    });
    expect(await redis.hget(saleKeys(sku).holds, 'frank')).toBe(kept);
    expectConserved(await sale(sku));
  });

  it('scans reservation records page by page', async () => {
    // More records than a small hash keeps in one listpack (512 here), so HSCAN really pages.
    const sku = await newSale('scan', { stock: 700, perUserLimit: 1 });
    const placed = new Set(Array.from({ length: 700 }, () => orderNo()));
    await Promise.all(
      [...placed].map((no, i) => inventory.reserve({ orderNo: no, sku, userId: `u${i}`, quantity: 1 })),
    );
    const seen = new Set<string>();
    let pages = 0;
    let cursor = '0';
    do {
      const page = await inventory.scanReservations(sku, cursor, 50);
      for (const r of page.reservations) seen.add(r.orderNo);
      cursor = page.cursor;
      pages++;
    } while (cursor !== '0');
    expect(seen).toEqual(placed);
    expect(pages).toBeGreaterThan(1);
  });

  it('NO_SALE for an unknown SKU, creating nothing', async () => {
    const sku = uniqueSku('missing');
    expect(
      await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1, idempotencyKey: 'k' }),
    ).toEqual({
      outcome: 'NO_SALE',
    });
    expect(await inventory.getSale(sku)).toBeNull();
    expect(await redis.keys(`*${sku}*`)).toEqual([]);
  });

  it("NOT_ACTIVE before the sale starts and once it has ended, by Redis's clock whatever time the caller gives", async () => {
    const now = await redisNow();
    const future = await newSale('future', { startsAt: new Date(now + 60_000) });
    const past = await newSale('past', { startsAt: new Date(now - 120_000), endsAt: new Date(now - 60_000) });
    const open = await newSale('window', { startsAt: new Date(now - 60_000), endsAt: new Date(now + 60_000) });

    expect(await inventory.reserve({ orderNo: orderNo(), sku: future, userId: 'alice', quantity: 1 })).toEqual({
      outcome: 'NOT_ACTIVE',
    });
    expect(await inventory.reserve({ orderNo: orderNo(), sku: past, userId: 'alice', quantity: 1 })).toEqual({
      outcome: 'NOT_ACTIVE',
    });
    expect((await inventory.reserve({ orderNo: orderNo(), sku: open, userId: 'alice', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    // The caller's time is only the record's: a caller whose clock runs a minute ahead opens nothing.
    expect(
      (await inventory.reserve({ orderNo: orderNo(), sku: future, userId: 'alice', quantity: 1, nowMs: now + 60_000 }))
        .outcome,
    ).toBe('NOT_ACTIVE');
    expect(
      (await inventory.reserve({ orderNo: orderNo(), sku: past, userId: 'bob', quantity: 1, nowMs: now - 90_000 }))
        .outcome,
    ).toBe('NOT_ACTIVE');

    expect(await sale(past)).toMatchObject({ available: 10, reserved: 0 });
    expect(await sale(future)).toMatchObject({ available: 10, startsAt: new Date(now + 60_000), endsAt: null });
  });

  it("the window is [startsAt, endsAt) by Redis's clock: open from its start, closed from its end", async () => {
    const now = await redisNow();
    const opening = await newSale('opening', { startsAt: new Date(now + 300) });
    const closing = await newSale('closing', { startsAt: new Date(now - 60_000), endsAt: new Date(now + 300) });
    expect((await inventory.reserve({ orderNo: orderNo(), sku: opening, userId: 'alice', quantity: 1 })).outcome).toBe(
      'NOT_ACTIVE',
    );
    expect((await inventory.reserve({ orderNo: orderNo(), sku: closing, userId: 'alice', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    while ((await redisNow()) < now + 300) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await inventory.reserve({ orderNo: orderNo(), sku: opening, userId: 'alice', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    expect((await inventory.reserve({ orderNo: orderNo(), sku: closing, userId: 'bob', quantity: 1 })).outcome).toBe(
      'NOT_ACTIVE',
    );
  });

  it("reserves nothing past the request's cutoff (LATE), judged by Redis's clock", async () => {
    const sku = await newSale('late');
    const now = await redisNow();
    expect(
      await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1, cutoffMs: now - 1 }),
    ).toEqual({ outcome: 'LATE' });
    expect(await sale(sku)).toMatchObject({ available: 10, reserved: 0 });
    expect(await redis.hlen(saleKeys(sku).reservations)).toBe(0);
    expect(
      (await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1, cutoffMs: now + 60_000 }))
        .outcome,
    ).toBe('RESERVED');
  });

  describe('promises', () => {
    const input = (sku: string, no: string, userId = 'alice', extra: Record<string, string> = {}) => ({
      orderNo: no,
      sku,
      userId,
      quantity: 1,
      createdAt: new Date().toISOString(),
      paymentWindow: '30m',
      ...extra,
    });

    it("records the order's input (priced by the sale) and its pending start in the reserve's own step; a duplicate answers the first input", async () => {
      const sku = await newSale('promise', { priceCents: 4321 });
      const no = orderNo();
      const before = await redisNow();
      const first = await inventory.reserve({
        orderNo: no,
        sku,
        userId: 'alice',
        quantity: 1,
        idempotencyKey: 'k1',
        promise: { input: input(sku, no, 'alice', { idempotencyKey: 'k1' }), handoffMs: 5_000 },
      });
      expect(first).toMatchObject({ outcome: 'RESERVED', orderNo: no, priceCents: 4321 });
      expect(await inventory.orderInput(sku, no)).toEqual({
        ...input(sku, no, 'alice', { idempotencyKey: 'k1' }),
        createdAt: expect.any(String),
        unitPriceCents: 4321,
      });
      const score = Number(await redis.zscore(saleKeys(sku).pending, no));
      expect(score).toBeGreaterThanOrEqual(before + 5_000);
      expect(score).toBeLessThan(before + 6_000);

      const retried = await inventory.reserve({
        orderNo: orderNo(),
        sku,
        userId: 'alice',
        quantity: 1,
        idempotencyKey: 'k1',
        promise: { input: { ...input(sku, 'other'), paymentWindow: '5m' }, handoffMs: 0 },
      });
      expect(retried).toMatchObject({
        outcome: 'DUPLICATE',
        orderNo: no,
        startInput: { orderNo: no, paymentWindow: '30m', unitPriceCents: 4321 },
      });
      expect(await redis.zcard(saleKeys(sku).pending)).toBe(1);
    });

    it('the claim keeps the promise (drops the pending start, keeps the input); release and confirm drop both', async () => {
      const sku = await newSale('promise-life');
      const [claimed, released, sold] = [orderNo(), orderNo(), orderNo()];
      for (const no of [claimed, released, sold]) {
        expect(
          (
            await inventory.reserve({
              orderNo: no,
              sku,
              userId: no,
              quantity: 1,
              promise: { input: input(sku, no, no), handoffMs: 0 },
            })
          ).outcome,
        ).toBe('RESERVED');
      }
      const claimOf = (no: string) => ({ sku, orderNo: no, userId: no, quantity: 1, reservedAtMs: 0 });
      expect(await inventory.claim(claimOf(claimed))).toBe('CLAIMED');
      expect(await redis.zscore(saleKeys(sku).pending, claimed)).toBeNull();
      expect(await inventory.orderInput(sku, claimed)).toMatchObject({ orderNo: claimed });

      expect(await inventory.release(sku, released, { as: 'unclaimed' })).toBe('RELEASED');
      expect(await inventory.claim(claimOf(sold))).toBe('CLAIMED');
      expect(await inventory.confirm(sku, sold)).toBe('CONFIRMED');
      for (const no of [released, sold]) {
        expect(await redis.zscore(saleKeys(sku).pending, no)).toBeNull();
        expect(await inventory.orderInput(sku, no)).toBeNull();
      }
    });

    it('hands due promises to one starter per sale (a lease), oldest first, each once until it is due again', async () => {
      const sku = await newSale('starter');
      const nos = [orderNo(), orderNo(), orderNo()];
      for (const [i, no] of nos.entries()) {
        expect(
          (
            await inventory.reserve({
              orderNo: no,
              sku,
              userId: `u${i}`,
              quantity: 1,
              promise: { input: input(sku, no, `u${i}`), handoffMs: i * 10 },
            })
          ).outcome,
        ).toBe('RESERVED');
      }
      const later = orderNo();
      await inventory.reserve({
        orderNo: later,
        sku,
        userId: 'later',
        quantity: 1,
        promise: { input: input(sku, later, 'later'), handoffMs: 60_000 },
      });
      await new Promise((resolve) => setTimeout(resolve, 50));

      const options = { leaseMs: 2_000, limit: 10, recheckMs: 30_000 };
      const first = await promises.takeDueStarts(sku, 'starter-a', options);
      expect(first).toMatchObject({ leased: true, pending: 4 });
      expect(first.due.map((due) => due.input.orderNo)).toEqual(nos);
      // Another process: the lease is held.
      expect(await promises.takeDueStarts(sku, 'starter-b', options)).toEqual({ leased: false, pending: 4, due: [] });
      // Handed out once: pushed ahead until its recheck, unless a failed start brings it forward.
      expect((await promises.takeDueStarts(sku, 'starter-a', options)).due).toEqual([]);
      expect(await promises.retryStartLater(sku, nos[1] as string, 0)).toBe(true);
      expect((await promises.takeDueStarts(sku, 'starter-a', options)).due.map((due) => due.input.orderNo)).toEqual([
        nos[1],
      ]);
      await promises.dropStartEntry(sku, nos[1] as string);
      expect(await promises.retryStartLater(sku, nos[1] as string, 0)).toBe(false);
      expect(await inventory.orderInput(sku, nos[1] as string)).toMatchObject({ orderNo: nos[1] });
      // The lease expires: another process takes over.
      await redis.del(saleKeys(sku).starter);
      expect(await promises.takeDueStarts(sku, 'starter-b', { ...options, limit: 0 })).toMatchObject({
        leased: true,
        pending: 3,
        due: [],
      });
    });

    it("LIMIT_EXCEEDED names the orders holding the shopper's units; a released one leaves the list", async () => {
      const sku = await newSale('holders', { perUserLimit: 2 });
      const [first, second] = [orderNo(), orderNo()];
      for (const no of [first, second])
        expect((await inventory.reserve({ orderNo: no, sku, userId: 'holder', quantity: 1 })).outcome).toBe('RESERVED');
      expect(await inventory.reserve({ orderNo: orderNo(), sku, userId: 'holder', quantity: 1 })).toEqual({
        outcome: 'LIMIT_EXCEEDED',
        heldBy: [first, second],
      });
      expect(await inventory.release(sku, first, { as: 'owner' })).toBe('RELEASED');
      expect(await inventory.reserve({ orderNo: orderNo(), sku, userId: 'holder', quantity: 2 })).toEqual({
        outcome: 'LIMIT_EXCEEDED',
        heldBy: [second],
      });
      expect(await inventory.release(sku, second, { as: 'owner' })).toBe('RELEASED');
      expect(await redis.hexists(saleKeys(sku).holds, 'holder')).toBe(0);
    });

    it("a promise carries its checkout's trace to its start when the checkout was sampled, and only then", async () => {
      const sku = await newSale('traced');
      const [traced, untraced] = [orderNo(), orderNo()];
      const trace = { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` };
      await inventory.reserve({
        orderNo: traced,
        sku,
        userId: 't1',
        quantity: 1,
        promise: { input: input(sku, traced, 't1'), handoffMs: 0, trace },
      });
      await inventory.reserve({
        orderNo: untraced,
        sku,
        userId: 't2',
        quantity: 1,
        promise: { input: input(sku, untraced, 't2'), handoffMs: 0 },
      });
      const { due } = await promises.takeDueStarts(sku, 'starter-t', { leaseMs: 2_000, limit: 10, recheckMs: 30_000 });
      // Reserved in the same millisecond, the two are due together, in no set order.
      expect(due).toHaveLength(2);
      expect(due).toEqual(
        expect.arrayContaining([
          { input: expect.objectContaining({ orderNo: traced, sku, userId: 't1' }), trace },
          { input: expect.objectContaining({ orderNo: untraced, sku, userId: 't2' }) },
        ]),
      );
      // The workflow's input is the order's alone: the trace is not part of it.
      expect(await inventory.orderInput(sku, traced)).not.toHaveProperty('trace');
    });

    it('finds a promised order by its number among the active sales', async () => {
      const sku = await newSale('lookup');
      // A real order number: its time says which sales were active when it was made.
      const no = newOrderNo();
      await inventory.reserve({
        orderNo: no,
        sku,
        userId: 'alice',
        quantity: 1,
        promise: { input: input(sku, no), handoffMs: 0 },
      });
      const since = (await redisNow()) - 60_000;
      const active = await inventory.activeSales(since);
      expect(active.map((s) => s.sku)).toContain(sku);
      expect(await inventory.findOrderInput(no, active)).toMatchObject({ orderNo: no, sku });
      // The sales read here when none are given.
      expect(await inventory.findOrderInput(no)).toMatchObject({ orderNo: no, sku });
      expect(await inventory.findOrderInput(newOrderNo(), active)).toBeNull();
    });
  });

  it('defineSale is create-only: a second definition returns false and changes nothing', async () => {
    const sku = await newSale('define', { stock: 7, perUserLimit: 2, priceCents: 4999 });
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    const before = await sale(sku);
    expect(before).toEqual({
      sku,
      stock: 7,
      available: 6,
      reserved: 1,
      sold: 0,
      perUserLimit: 2,
      priceCents: 4999,
      startsAt: null,
      endsAt: null,
    });
    expect(
      await redisSales.defineSale({ sku, stock: 1000, perUserLimit: 50, priceCents: 1, startsAt: new Date() }),
    ).toBe(false);
    expect(await sale(sku)).toEqual(before);
  });

  it('defineSale accepts the very same definition again (a create retried after its MySQL commit was lost) and changes nothing', async () => {
    const definition = { stock: 3, perUserLimit: 1, priceCents: 250, startsAt: new Date('2026-01-01T00:00:00Z') };
    const sku = await newSale('redefine', definition);
    expect((await inventory.reserve({ orderNo: orderNo(), sku, userId: 'alice', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    const before = await sale(sku);
    expect(await redisSales.defineSale({ sku, ...definition })).toBe(true);
    expect(await redisSales.defineSale({ sku, ...definition, endsAt: new Date('2030-01-01T00:00:00Z') })).toBe(false);
    expect(await sale(sku)).toEqual(before);
  });

  it('keeps every key of a SKU under its {sku} hash tag (one cluster slot per script)', async () => {
    const sku = await newSale('tags', { stock: 3, perUserLimit: 2 });
    const a = orderNo();
    const b = orderNo();
    await inventory.reserve({ orderNo: a, sku, userId: 'alice', quantity: 1, idempotencyKey: 'k1' });
    await inventory.reserve({ orderNo: b, sku, userId: 'bob', quantity: 1, idempotencyKey: 'k2' });
    await inventory.confirm(sku, a);
    await inventory.release(sku, b);

    const keys = saleKeys(sku);
    expect(Object.values(keys).every((key) => hashTag(key) === sku)).toBe(true);
    // Any key mentioning the SKU at all is one of the layout's keys, all under the hash tag.
    const touched = (await redis.keys(`*${sku}*`)).sort();
    // (alice's sold order still holds her units, so she is listed among the holders.)
    expect(touched).toEqual([keys.sale, keys.users, keys.reservations, keys.idempotency, keys.holds].sort());
    for (const key of touched) {
      expect(key).toContain(`{${sku}}`);
      expect(hashTag(key)).toBe(sku);
    }
  });

  it('keeps user ids with separators apart (records and idempotency keys are unambiguous)', async () => {
    const sku = await newSale('separators', { stock: 10, perUserLimit: 5 });
    const weird = 'a|b\nc';
    const no = orderNo();
    expect(
      (await inventory.reserve({ orderNo: no, sku, userId: weird, quantity: 2, idempotencyKey: 'x' })).outcome,
    ).toBe('RESERVED');
    expect(await inventory.getReservation(sku, no)).toMatchObject({ state: 'RESERVED', userId: weird, quantity: 2 });
    // 'a|b' with key 'c\nx' must not collide with 'a|b\nc' with key 'x'.
    expect(
      (await inventory.reserve({ orderNo: orderNo(), sku, userId: 'a|b', quantity: 1, idempotencyKey: 'c\nx' }))
        .outcome,
    ).toBe('RESERVED');
    expect(await inventory.release(sku, no)).toBe('RELEASED');
    expect(await inventory.userHolding(sku, weird)).toBe(0);
    expect(await sale(sku)).toMatchObject({ available: 9, reserved: 1 });
  });
});
