/**
 * A sale's waiting line against the real stack (docs/api.md, "The waiting line"): one place per shopper, the pre-queue
 * ranked by the seed revealed at the start, admission at the set rate and never more out than units left, the
 * admission spent with the reservation and refused forged, foreign, expired or spent, a slot given back by an
 * admission that expired unspent, sold out told to every place, units coming back re-opening the line, and a sale
 * without a line as before. Each waits for the line's own events (its admission ticks), never a fixed sleep.
 */
import { createHmac } from 'node:crypto';
import { describe, expect } from 'vitest';
import { fairRank, seedHashOf } from '../src/line/line-rules.js';
import { AdmissionTokens } from '../src/line/admission-token.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import { RedisSales } from '../src/redis/sales.js';
import { SalesService } from '../src/sales/sales-service.js';
import { waitFor } from '../stack/wait-for.js';
import { API_TEST_ENV, TEST_ADMIN_TOKEN, type TestApp } from './helpers/app.js';
import { awaitClosed } from './helpers/orders.js';
import { expectInvariants, saleReport, uniqueSku } from './helpers/fixtures.js';
import { replyOf, httpRequest, type Reply } from './helpers/http.js';
import { appTest } from './helpers/stack-test.js';

const it = appTest('line', { ...API_TEST_ENV, RATE_LIMIT_CHECKOUT: 'off' });
const tokens = new Map<string, string>();

async function tokenOf(app: TestApp, userId: string): Promise<string> {
  let token = tokens.get(userId);
  if (!token) {
    token = await app.auth.issue(userId);
    tokens.set(userId, token);
  }
  return token;
}

/** A sale with a line, created as an operator would over the API. */
async function saleWithLine(
  app: TestApp,
  sale: { stock: number; startsInMs?: number; perUserLimit?: number },
  line: Record<string, unknown>,
): Promise<string> {
  const sku = uniqueSku('LINE');
  const startsAt = sale.startsInMs ? new Date(Date.now() + sale.startsInMs).toISOString() : undefined;
  const created = await replyOf(app.api.url, 'POST', '/api/sales', {
    token: TEST_ADMIN_TOKEN,
    json: {
      sku,
      name: `Line ${sku}`,
      priceCents: 500,
      stock: sale.stock,
      perUserLimit: sale.perUserLimit ?? 1,
      ...(startsAt ? { startsAt } : {}),
      line,
    },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return sku;
}

/** The same through the sales service, for settings the API refuses as too short for people (a 1 s admission). */
async function saleWithShortAdmissions(app: TestApp, stock: number, admissionsPerSecond: number, ttlSeconds: number) {
  const sku = uniqueSku('LINE');
  await new SalesService(
    app.stores,
    new RedisInventory(app.redis, app.config.temporal.taskQueue),
    new RedisSales(app.redis, app.config.temporal.taskQueue),
  ).create({
    sku,
    name: `Line ${sku}`,
    priceCents: 500,
    stock,
    perUserLimit: 1,
    line: { admissionsPerSecond, admissionTtlSeconds: ttlSeconds },
  });
  return sku;
}

const join = async (app: TestApp, sku: string, userId: string) =>
  replyOf(app.api.url, 'POST', `/api/sales/${sku}/line`, { token: await tokenOf(app, userId) });
const place = async (app: TestApp, sku: string, userId: string) =>
  replyOf(app.api.url, 'GET', `/api/sales/${sku}/line/me`, { token: await tokenOf(app, userId) });
const checkout = async (app: TestApp, sku: string, userId: string, admission?: string, idempotencyKey?: string) =>
  replyOf(app.api.url, 'POST', '/api/checkout', {
    token: await tokenOf(app, userId),
    json: { sku, quantity: 1 },
    headers: {
      ...(admission ? { 'Admission-Token': admission } : {}),
      ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}),
    },
  });

/** Polls the place until `until` holds (the line's ticks move it), returning the last answer. */
async function placeWhen(
  app: TestApp,
  sku: string,
  userId: string,
  until: (reply: Reply) => boolean,
  timeoutMs = 20_000,
) {
  let last: Reply | undefined;
  await waitFor(
    async () => {
      last = await place(app, sku, userId);
      return until(last);
    },
    { timeoutMs, intervalMs: 100, what: `${userId}'s place in ${sku}` },
  );
  return last as Reply;
}

const admitted = (reply: Reply) => reply.body?.state === 'ADMITTED';

describe('joining', () => {
  it('gives one place per shopper, the same one from any device, and leaves nothing for a sale it refuses', async ({
    app,
  }) => {
    const url = app.api.url;
    const sku = await saleWithLine(app, { stock: 5 }, { admissionsPerSecond: 1 });
    const first = await join(app, sku, 'ann');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ sku, position: 1, preQueue: false });
    expect((await join(app, sku, 'bob')).body.position).toBe(2);
    // Again, and from another token of the same shopper (another device): the same place.
    expect((await join(app, sku, 'ann')).body.position).toBe(1);
    const otherDevice = await app.auth.issue('ann');
    expect((await replyOf(url, 'GET', `/api/sales/${sku}/line/me`, { token: otherDevice })).body.position).toBe(1);

    const unknown = uniqueSku('NOPE');
    expect((await join(app, unknown, 'ann')).body.error.code).toBe('SKU_NOT_FOUND');
    expect(await app.redis.keys(`sale:{${unknown}}*`)).toEqual([]);
    const noLine = uniqueSku('PLAIN');
    await new SalesService(
      app.stores,
      new RedisInventory(app.redis, app.config.temporal.taskQueue),
      new RedisSales(app.redis, app.config.temporal.taskQueue),
    ).create({ sku: noLine, name: 'plain', priceCents: 1, stock: 1, perUserLimit: 1 });
    // The owner of starts of any worker on the stack leases every sale (`:starter`) whenever it looks: not the join's.
    const keysOfSale = async () =>
      (await app.redis.keys(`sale:{${noLine}}*`)).filter((key) => !key.endsWith(':starter')).sort();
    const before = await keysOfSale();
    expect(await join(app, noLine, 'ann')).toMatchObject({ status: 404, body: { error: { code: 'NO_LINE' } } });
    expect(await keysOfSale()).toEqual(before);

    const notOpen = await saleWithLine(
      app,
      { stock: 1, startsInMs: 60 * 60_000 },
      { preQueueOpensAt: new Date(Date.now() + 30 * 60_000).toISOString() },
    );
    const refused = await httpRequest(url, 'POST', `/api/sales/${notOpen}/line`, { token: await tokenOf(app, 'ann') });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('LINE_NOT_OPEN');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(1_000);
    expect(await app.redis.hlen(saleKeys(notOpen).linePlaces)).toBe(0);
  });

  it('ranks the pre-queue by the seed revealed at the start, not by arrival, and serves later joins in order', async ({
    app,
  }) => {
    const url = app.api.url;
    const sku = await saleWithLine(app, { stock: 50, startsInMs: 2_500 }, { admissionsPerSecond: 1_000 });
    const line = (await replyOf(url, 'GET', `/api/sales/${sku}/line`)).body;
    expect(line).toMatchObject({ state: 'PRE_QUEUE', seed: null });
    const early = Array.from({ length: 12 }, (_, i) => `early-${i}`);
    for (const userId of early) {
      const joined = await join(app, sku, userId);
      expect(joined.body).toMatchObject({ state: 'WAITING', preQueue: true, position: null, waitTimeKnown: false });
    }
    await waitFor(async () => (await replyOf(url, 'GET', `/api/sales/${sku}/line`)).body.seed !== null, {
      timeoutMs: 10_000,
      what: 'the seed revealed at the start',
    });
    const late = (await join(app, sku, 'late-1')).body;
    const revealed = (await replyOf(url, 'GET', `/api/sales/${sku}/line`)).body;
    // Anyone can audit: the seed matches the hash published before, and the ranks follow from it.
    expect(seedHashOf(revealed.seed)).toBe(line.seedHash);
    const expected = [...early].sort(
      (a, b) =>
        fairRank(revealed.seed, a) - fairRank(revealed.seed, b) || Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
    const positions = await Promise.all(early.map(async (userId) => (await place(app, sku, userId)).body.position));
    expect(expected.map((userId) => positions[early.indexOf(userId)])).toEqual(early.map((_, i) => i + 1));
    expect(expected).not.toEqual(early);
    expect(late.position).toBe(early.length + 1);
    // The rank is the HMAC any tool computes: its first 6 bytes.
    expect(fairRank(revealed.seed, 'x')).toBe(
      createHmac('sha256', revealed.seed).update('x').digest().readUIntBE(0, 6),
    );
  });
});

describe('admission', () => {
  it('admits at the set rate, tells a wait that never rises, and spends the admission with the reservation', async ({
    app,
  }) => {
    const url = app.api.url;
    // A limit of 2, so that the second checkout is refused for its admission, not for the limit.
    const sku = await saleWithLine(app, { stock: 100, perUserLimit: 2 }, { admissionsPerSecond: 2 });
    const shoppers = Array.from({ length: 8 }, (_, i) => `rate-${i}`);
    for (const userId of shoppers) await join(app, sku, userId);
    const last = shoppers[shoppers.length - 1] as string;
    // The last place's wait, read until it is admitted: the band only ever falls.
    const bands: Array<{ minSeconds: number; maxSeconds: number }> = [];
    const final = await placeWhen(app, sku, last, (reply) => {
      if (reply.body.eta && reply.body.state === 'WAITING') bands.push(reply.body.eta);
      return admitted(reply);
    });
    for (let i = 1; i < bands.length; i++) {
      expect(bands[i]!.minSeconds).toBeLessThanOrEqual(bands[i - 1]!.minSeconds);
      expect(bands[i]!.maxSeconds).toBeLessThanOrEqual(bands[i - 1]!.maxSeconds);
    }
    // 8 places at 2 a second, never all at once, judged by the admission batches' own Redis times (not this
    // process's clock, which a loaded machine stretches): after the first batch (at most 2 s' worth), the rest came
    // no faster than the rate, less a carried fraction of one admission.
    const batches = (await app.redis.zrange(saleKeys(sku).lineBatches, 0, -1)).map((member) => {
      const [from, to, at] = member.split(':').map(Number) as [number, number, number];
      return { from, to, at };
    });
    const first = batches[0]!;
    const lastBatch = batches.find((batch) => batch.from < 8 && batch.to >= 8)!;
    expect(first.to - first.from).toBeLessThanOrEqual(4);
    expect(lastBatch.at - first.at).toBeGreaterThanOrEqual(((8 - first.to) / 2) * 1_000 - 500);
    const line = (await replyOf(url, 'GET', `/api/sales/${sku}/line`)).body;
    expect(line.admitted).toBeGreaterThanOrEqual(8);

    const token = final.body.admission.token as string;
    expect(await checkout(app, sku, last)).toMatchObject({ status: 403, body: { error: { code: 'NOT_ADMITTED' } } });
    const bought = await checkout(app, sku, last, token, 'key-1');
    expect(bought.status).toBe(202);
    // The same key again is its order, before the admission is asked (even without it).
    expect((await checkout(app, sku, last, undefined, 'key-1')).body.orderNo).toBe(bought.body.orderNo);
    // Spent: refused for a new checkout, and the place says so.
    expect(await checkout(app, sku, last, token)).toMatchObject({
      status: 403,
      body: { error: { code: 'ADMISSION_USED' } },
    });
    expect((await place(app, sku, last)).body.state).toBe('CHECKED_OUT');
    expect(await app.redis.hget(saleKeys(sku).lineUsed, last)).toBe('8');
  });

  it('gives an admission back when the order it bought fails for a reason of ours: its shopper checks out again with it', async ({
    app,
  }) => {
    // Red on 08c43a5: the order failed (OutOfStockInDatabase) and its shopper was refused ADMISSION_USED.
    // A limit of two, so a third checkout is refused for its spent admission, not for the limit.
    const sku = await saleWithLine(app, { stock: 2, perUserLimit: 2 }, { admissionsPerSecond: 5 });
    await join(app, sku, 'unlucky');
    const token = (await placeWhen(app, sku, 'unlucky', admitted)).body.admission.token as string;
    // MySQL holds no unit for it (a drift the reconciler reports): the persist fails for good and the order FAILS.
    await app.pool.query('UPDATE sales SET available = 0 WHERE sku = ?', [sku]);
    const failed = await checkout(app, sku, 'unlucky', token);
    expect(failed.status).toBe(202);
    const orderNo = failed.body.orderNo as string;
    // Started by the pipeline's owner of starts, then persisted (failing): the row says when.
    await waitFor(async () => (await app.stores.orders.getOrder(orderNo))?.status === 'FAILED', {
      what: `${orderNo} to fail`,
      timeoutMs: 20_000,
    });
    expect((await app.stores.orders.getOrder(orderNo))?.failureReason).toMatch(/^OutOfStockInDatabase/);
    await awaitClosed(app.temporal, orderNo);
    expect(await app.redis.hget(saleKeys(sku).lineUsed, 'unlucky')).toBeNull();
    await placeWhen(app, sku, 'unlucky', admitted);

    await app.pool.query('UPDATE sales SET available = 2 WHERE sku = ?', [sku]);
    const bought = await checkout(app, sku, 'unlucky', token);
    expect(bought.status, JSON.stringify(bought.body)).toBe(202);
    expect(await checkout(app, sku, 'unlucky', token)).toMatchObject({
      status: 403,
      body: { error: { code: 'ADMISSION_USED' } },
    });
    // Spent once, for the order it bought (the line's counters in Redis, not an API process's last tick).
    expect(await app.redis.hmget(saleKeys(sku).line, 'admitted', 'consumed')).toEqual(['1', '1']);
  });

  it('refuses a forged, altered, foreign or not-yet-admitted admission, changing nothing', async ({ app }) => {
    // One unit: while eve's admission is out unspent (for an hour), none is left for mallory, whatever the rate.
    const sku = await saleWithLine(app, { stock: 1 }, { admissionsPerSecond: 1, admissionTtlSeconds: 3_600 });
    await join(app, sku, 'eve');
    await join(app, sku, 'mallory');
    const eve = await placeWhen(app, sku, 'eve', admitted);
    const token = eve.body.admission.token as string;
    const before = await saleReport(app.stores, app.redis, sku);
    const refusedAs = async (userId: string, admission: string, code: string) =>
      expect(await checkout(app, sku, userId, admission)).toMatchObject({ status: 403, body: { error: { code } } });
    await refusedAs('mallory', token, 'ADMISSION_NOT_YOURS');
    await refusedAs('eve', `${token.slice(0, -2)}xx`, 'ADMISSION_INVALID');
    await refusedAs('eve', 'a1.e30.AAAA', 'ADMISSION_INVALID');
    // Signed with another key (a forger's): invalid. Signed with ours for a position mallory does not hold: invalid.
    const forged = new AdmissionTokens('a forger who guessed the format').sign({
      sku,
      userId: 'mallory',
      position: 2,
      expiresAtMs: Date.now() + 60_000,
    });
    await refusedAs('mallory', forged, 'ADMISSION_INVALID');
    const ours = new AdmissionTokens(app.config.jwtSecret);
    await refusedAs(
      'mallory',
      ours.sign({ sku, userId: 'mallory', position: 1, expiresAtMs: Date.now() + 60_000 }),
      'ADMISSION_INVALID',
    );
    // Mallory's own place, once the line has ticked a second (the rate's interval) past eve's admission: had the unit
    // eve holds not kept mallory out, she would have been admitted by then.
    const eveAdmittedAtMs = Number((await app.redis.zrange(saleKeys(sku).lineBatches, 0, 0))[0]?.split(':')[2]);
    expect(eveAdmittedAtMs).toBeGreaterThan(0);
    const servedThrough = await waitFor(
      async () => {
        const [tickAt = 0, served = 0] = (await app.redis.hmget(saleKeys(sku).line, 'tickAt', 'served')).map(Number);
        // A line that admitted its last place ticks no more: then its `served` says so at once.
        return (tickAt >= eveAdmittedAtMs + 1_000 || served > 1) && served;
      },
      { what: `a tick of ${sku}'s line a second after eve's admission`, timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(servedThrough).toBe(1);
    expect((await place(app, sku, 'mallory')).body.state).toBe('WAITING');
    await refusedAs(
      'mallory',
      ours.sign({ sku, userId: 'mallory', position: 2, expiresAtMs: Date.now() + 60_000 }),
      'NOT_ADMITTED',
    );
    await refusedAs(
      'eve',
      ours.sign({ sku, userId: 'eve', position: 1, expiresAtMs: Date.now() - 60_000 }),
      'ADMISSION_EXPIRED',
    );
    const after = await saleReport(app.stores, app.redis, sku);
    expect(after.figures.redis).toEqual(before.figures.redis);
    expect(await app.redis.hlen(saleKeys(sku).lineUsed)).toBe(0);
  });

  it('gives an admission that expired unspent its slot back, and its shopper a new place at the back', async ({
    app,
  }) => {
    const url = app.api.url;
    // One unit, two shoppers: the second is admitted only once the first's admission (1 s) expired unspent.
    const sku = await saleWithShortAdmissions(app, 1, 100, 1);
    await join(app, sku, 'slow');
    await join(app, sku, 'next');
    const slow = await placeWhen(app, sku, 'slow', admitted);
    expect((await place(app, sku, 'next')).body.state).toBe('WAITING');
    const next = await placeWhen(app, sku, 'next', admitted);
    expect(next.body.position).toBe(2);
    expect((await place(app, sku, 'slow')).body.state).toBe('EXPIRED');
    expect(await checkout(app, sku, 'slow', slow.body.admission.token)).toMatchObject({
      status: 403,
      body: { error: { code: 'ADMISSION_EXPIRED' } },
    });
    const line = (await replyOf(url, 'GET', `/api/sales/${sku}/line`)).body;
    expect(line.givenBack).toBeGreaterThanOrEqual(1);
    // Joining again: a new place after everyone in line.
    expect((await join(app, sku, 'slow')).body.position).toBe(3);
  });
});

describe('the line as a whole', () => {
  it('tells every place sold out at once, and re-opens in order when units come back', async ({ app }) => {
    const url = app.api.url;
    const sku = await saleWithLine(app, { stock: 1 }, { admissionsPerSecond: 50 });
    const shoppers = ['winner', 'w2', 'w3', 'w4'];
    for (const userId of shoppers) await join(app, sku, userId);
    const winner = await placeWhen(app, sku, 'winner', admitted);
    const bought = await checkout(app, sku, 'winner', winner.body.admission.token);
    expect(bought.status).toBe(202);
    for (const userId of shoppers.slice(1)) {
      const reply = await placeWhen(app, sku, userId, (r) => r.body.state === 'SOLD_OUT');
      expect(reply.body.unitsMayComeBack).toBe(true);
    }
    // The winner cancels: the unit comes back, and the next place in line is admitted (not the last).
    await waitFor(
      async () =>
        (
          await replyOf(url, 'POST', `/api/orders/${bought.body.orderNo}/cancel`, {
            token: await tokenOf(app, 'winner'),
          })
        ).status === 202,
      { timeoutMs: 30_000, what: 'the winner cancelled' },
    );
    const w2 = await placeWhen(app, sku, 'w2', admitted, 60_000);
    expect(w2.body.position).toBe(2);
    expect((await place(app, sku, 'w4')).body.state).toBe('WAITING');
    expect((await checkout(app, sku, 'w2', w2.body.admission.token)).status).toBe(202);
    await waitFor(async () => (await saleReport(app.stores, app.redis, sku)).checks.storesAgree, {
      timeoutMs: 60_000,
      what: 'the stores agree',
    });
    expectInvariants(await saleReport(app.stores, app.redis, sku));
  });

  it('says why a wait rose when the operator pauses or lowers the rate, and admits nobody while paused', async ({
    app,
  }) => {
    const url = app.api.url;
    const sku = await saleWithLine(app, { stock: 100 }, { admissionsPerSecond: 1 });
    for (const userId of ['p1', 'p2', 'p3', 'p4', 'p5']) await join(app, sku, userId);
    const control = (json: unknown) =>
      replyOf(url, 'POST', `/api/admin/sales/${sku}/line`, { token: TEST_ADMIN_TOKEN, json });
    expect((await control({ admissionsPerSecond: 0 })).status).toBe(400);
    expect((await control({})).body).toMatchObject({ paused: false, admissionsPerSecond: 1 });
    expect((await replyOf(url, 'POST', `/api/admin/sales/${sku}/line`, { json: { paused: true } })).status).toBe(401);
    const paused = await control({ paused: true });
    expect(paused.body).toMatchObject({ paused: true, state: 'PAUSED', epochReason: 'PAUSED' });
    const servedWhilePaused = paused.body.servedThrough as number;
    const p5 = await placeWhen(app, sku, 'p5', (r) => r.body.state === 'PAUSED');
    expect(p5.body).toMatchObject({ waitTimeKnown: false, etaRaisedBy: 'PAUSED' });
    // The ticks went on while p5 waited to be told (each API process's): none admitted.
    expect((await replyOf(url, 'GET', `/api/sales/${sku}/line`)).body.servedThrough).toBe(servedWhilePaused);
    const resumed = await control({ paused: false, admissionsPerSecond: 5 });
    expect(resumed.body).toMatchObject({ paused: false, admissionsPerSecond: 5 });
    const lowered = await control({ admissionsPerSecond: 2 });
    expect(lowered.body).toMatchObject({ epochReason: 'RATE_LOWERED' });
    const reply = await placeWhen(app, sku, 'p5', (r) => r.body.etaRaisedBy === 'RATE_LOWERED' || admitted(r));
    expect(reply.body.etaEpoch).toBeGreaterThan(p5.body.etaEpoch);
  });

  it('leaves a sale without a line exactly as it was: no admission asked, none used', async ({ app }) => {
    const url = app.api.url;
    const sku = uniqueSku('PLAIN');
    const created = await replyOf(url, 'POST', '/api/sales', {
      token: TEST_ADMIN_TOKEN,
      json: { sku, name: 'plain', priceCents: 100, stock: 2, perUserLimit: 1 },
    });
    expect(created.status).toBe(201);
    expect((await checkout(app, sku, 'plain-1')).status).toBe(202);
    // An admission sent anyway is ignored.
    expect((await checkout(app, sku, 'plain-2', 'a1.whatever.x')).status).toBe(202);
    expect(await app.redis.exists(saleKeys(sku).line)).toBe(0);
  });
});
