/**
 * The waiting line's rules without a store (src/line/line-rules.ts, placeView, the admission token): the fair rank
 * independent of arrival, the wait band that never rises while the rate holds, when to ask again, the states a place
 * is told, and the admission's signature.
 */
import { describe, expect, it } from 'vitest';
import { AdmissionTokens } from '../src/line/admission-token.js';
import {
  etaBand,
  fairRank,
  MAX_REFRESH_SECONDS,
  newSeed,
  refreshAfterSeconds,
  refreshBeforeStart,
  seedHashOf,
  START_SPREAD_SECONDS,
  subnetOf,
} from '../src/line/line-rules.js';
import { placeView, type CachedPlace } from '../src/line/line-service.js';
import type { LineSnapshot } from '../src/redis/line.js';

/** Spearman's rank correlation of two orderings of the same items. */
function spearman(a: number[], b: number[]): number {
  const n = a.length;
  const rank = (values: number[]) => {
    const order = values.map((value, i) => [value, i] as const).sort((x, y) => x[0] - y[0]);
    const ranks = new Array<number>(n);
    order.forEach(([, i], r) => (ranks[i] = r));
    return ranks;
  };
  const ra = rank(a);
  const rb = rank(b);
  const d2 = ra.reduce((sum, r, i) => sum + (r - (rb[i] as number)) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}

describe('the fair rank', () => {
  it('does not follow the order of arrival, and changes with the seed', () => {
    const seed = newSeed(Buffer.alloc(32, 7)).seed;
    const arrivals = Array.from({ length: 10_000 }, (_, i) => `shopper-${i}`);
    const ranks = arrivals.map((userId) => fairRank(seed, userId));
    expect(
      Math.abs(
        spearman(
          arrivals.map((_, i) => i),
          ranks,
        ),
      ),
    ).toBeLessThan(0.05);
    const other = newSeed(Buffer.alloc(32, 8)).seed;
    expect(
      Math.abs(
        spearman(
          ranks,
          arrivals.map((userId) => fairRank(other, userId)),
        ),
      ),
    ).toBeLessThan(0.05);
    // Distinct enough that ties (broken by user id) are rare: 48 bits.
    expect(new Set(ranks).size).toBe(ranks.length);
    expect(ranks.every((rank) => Number.isSafeInteger(rank) && rank < 2 ** 48)).toBe(true);
  });

  it('publishes the hash of the seed, which the revealed seed must match', () => {
    const { seed, seedHash } = newSeed(Buffer.alloc(32, 1));
    expect(seedHashOf(seed)).toBe(seedHash);
    expect(seedHash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('the wait told', () => {
  it('is a band that only falls as places ahead are admitted', () => {
    let previous = etaBand(1_000, 40);
    expect(previous).toEqual({ minSeconds: 25, maxSeconds: 29 });
    for (let ahead = 999; ahead >= 0; ahead--) {
      const band = etaBand(ahead, 40);
      expect(band.minSeconds).toBeLessThanOrEqual(previous.minSeconds);
      expect(band.maxSeconds).toBeLessThanOrEqual(previous.maxSeconds);
      expect(band.minSeconds).toBeLessThanOrEqual(band.maxSeconds);
      previous = band;
    }
  });

  it('asks for the next read between 1 and 20 seconds, sooner near the front', () => {
    expect(refreshAfterSeconds(0)).toBe(1);
    expect(refreshAfterSeconds(12)).toBe(3);
    expect(refreshAfterSeconds(10_000)).toBe(MAX_REFRESH_SECONDS);
  });

  it("spreads the pre-queue's first reads over the seconds after the start", () => {
    expect(refreshBeforeStart(3_000, 0)).toBe(3);
    expect(refreshBeforeStart(3_000, 0.99)).toBe(3 + START_SPREAD_SECONDS - 1);
    expect(refreshBeforeStart(60_000, 0.5)).toBe(MAX_REFRESH_SECONDS);
    expect(refreshBeforeStart(-500, 0)).toBe(1);
  });

  it('counts IPv4 by /24 and IPv6 by /48', () => {
    expect(subnetOf('203.0.113.77')).toBe('203.0.113.0/24');
    expect(subnetOf('::ffff:203.0.113.77')).toBe('203.0.113.0/24');
    expect(subnetOf('2001:db8:abcd:12::1')).toBe('2001:db8:abcd::/48');
    expect(subnetOf('2001:db8::1')).toBe('2001:db8:0::/48');
  });
});

const snapshot = (change: Partial<LineSnapshot> = {}): LineSnapshot => ({
  state: 'OPEN',
  nowMs: 1_000_000,
  served: 10,
  length: 100,
  admissionsPerSecond: 5,
  paused: false,
  epoch: 0,
  epochReason: null,
  admitted: 10,
  consumed: 4,
  givenBack: 0,
  available: 50,
  reserved: 4,
  startsMs: 900_000,
  opensMs: 0,
  definedMs: 800_000,
  soldOutAtMs: 0,
  admissionTtlMs: 60_000,
  seedHash: 'h',
  seed: 's',
  ...change,
});
const placed = (position: number, change: Partial<Extract<CachedPlace, { kind: 'PLACED' }>> = {}): CachedPlace => ({
  kind: 'PLACED',
  position,
  admittedAtMs: 0,
  spent: false,
  ...change,
});
const view = (line: LineSnapshot, place: CachedPlace, nowMs = 1_000_000) =>
  placeView('SKU', 'ann', { snapshot: line }, place, nowMs, (admission) => JSON.stringify(admission));

describe('a place told', () => {
  it('waits with people ahead and a band, then is admitted with a token until its expiry', () => {
    expect(view(snapshot(), placed(31))).toMatchObject({
      state: 'WAITING',
      position: 31,
      ahead: 20,
      waitTimeKnown: true,
      eta: { minSeconds: 4, maxSeconds: 6 },
      refreshAfterSeconds: 1,
    });
    const admitted = view(snapshot(), placed(7, { admittedAtMs: 990_000 }));
    // 50 s left on the admission: asked again in 20 s at most, like every other read.
    expect(admitted).toMatchObject({ state: 'ADMITTED', refreshAfterSeconds: 20 });
    expect(JSON.parse(admitted.admission?.token ?? '')).toEqual({
      sku: 'SKU',
      userId: 'ann',
      position: 7,
      expiresAtMs: 1_050_000,
    });
    expect(view(snapshot(), placed(7, { admittedAtMs: 900_000 })).state).toBe('EXPIRED');
    expect(view(snapshot(), placed(7, { admittedAtMs: 990_000, spent: true })).state).toBe('CHECKED_OUT');
  });

  it('behind the units left is promised no band: its turn depends on units coming back', () => {
    // Red on 0623eb5: positions 42-43 of a line with 40 units were told 9-11 s and admitted only as admissions expired.
    // 50 available, 6 admissions out unspent: 44 more places can be admitted at the rate.
    expect(view(snapshot(), placed(54))).toMatchObject({
      ahead: 43,
      waitTimeKnown: true,
      eta: { minSeconds: 8, maxSeconds: 11 },
      unitsMayComeBack: false,
    });
    const behind = view(snapshot(), placed(55));
    expect(behind).toMatchObject({
      state: 'WAITING',
      ahead: 44,
      waitTimeKnown: false,
      eta: null,
      unitsMayComeBack: true,
    });
    // Asked again no sooner than its turn could come at the rate.
    expect(behind.refreshAfterSeconds).toBe(2);
    // A unit back (an order cancelled): the band holds again.
    expect(view(snapshot({ available: 51 }), placed(55))).toMatchObject({
      waitTimeKnown: true,
      eta: { minSeconds: 8 },
    });
  });

  it('is sold out, paused, closed or in the pre-queue as the line is', () => {
    expect(view(snapshot({ state: 'SOLD_OUT', available: 0 }), placed(31))).toMatchObject({
      state: 'SOLD_OUT',
      unitsMayComeBack: true,
    });
    expect(view(snapshot({ state: 'PAUSED', epoch: 1, epochReason: 'PAUSED' }), placed(31))).toMatchObject({
      state: 'PAUSED',
      waitTimeKnown: false,
      etaRaisedBy: 'PAUSED',
    });
    expect(view(snapshot({ state: 'CLOSED' }), placed(31))).toMatchObject({
      state: 'CLOSED',
      refreshAfterSeconds: null,
    });
    const preQueue = view(snapshot({ state: 'PRE_QUEUE', startsMs: 1_005_000 }), { kind: 'PRE_QUEUE' });
    expect(preQueue).toMatchObject({ state: 'WAITING', preQueue: true, position: null, waitTimeKnown: false });
    // Back at the start (5 s), plus this shopper's share of the spread after it.
    expect(preQueue.refreshAfterSeconds).toBeGreaterThanOrEqual(5);
    expect(preQueue.refreshAfterSeconds).toBeLessThanOrEqual(5 + START_SPREAD_SECONDS);
  });
});

describe('an admission', () => {
  const tokens = new AdmissionTokens('a secret of sixteen or more');
  const admission = { sku: 'SKU', userId: 'ann', position: 3, expiresAtMs: 2_000 };

  it("is this service's, this shopper's and this sale's, until its time", () => {
    const token = tokens.sign(admission);
    expect(tokens.verify(token, { sku: 'SKU', userId: 'ann' }, 1_000, 0)).toEqual({ ok: true, admission });
    expect(tokens.verify(token, { sku: 'SKU', userId: 'bob' }, 1_000, 0)).toEqual({
      ok: false,
      code: 'ADMISSION_NOT_YOURS',
    });
    expect(tokens.verify(token, { sku: 'OTHER', userId: 'ann' }, 1_000, 0).ok).toBe(false);
    expect(tokens.verify(token, { sku: 'SKU', userId: 'ann' }, 2_500, 0)).toEqual({
      ok: false,
      code: 'ADMISSION_EXPIRED',
    });
    expect(tokens.verify(token, { sku: 'SKU', userId: 'ann' }, 2_500, 1_000).ok).toBe(true);
    const forged = new AdmissionTokens('another secret, a forger').sign(admission);
    expect(tokens.verify(forged, { sku: 'SKU', userId: 'ann' }, 1_000, 0)).toEqual({
      ok: false,
      code: 'ADMISSION_INVALID',
    });
    const [version, , mac] = token.split('.');
    const altered = `${version}.${Buffer.from(JSON.stringify(['SKU', 'ann', 1, 2_000])).toString('base64url')}.${mac}`;
    expect(tokens.verify(altered, { sku: 'SKU', userId: 'ann' }, 1_000, 0).ok).toBe(false);
    expect(tokens.verify('garbage', { sku: 'SKU', userId: 'ann' }, 1_000, 0).ok).toBe(false);
  });
});
