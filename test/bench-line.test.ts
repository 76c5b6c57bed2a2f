/**
 * Keeps `npm run bench -- --line` working: a tiny line-mode run against the test stack (its servers are given in the
 * environment, so the benchmark starts only the API and the worker), checking the plumbing and that the figures are
 * sane (counts add up, the checks held), never their timing; and the figures' arithmetic (Spearman's correlation,
 * the admission rate, the fair order, the poll scheduler's heap) on known inputs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fairRank, newSeed } from '../src/line/line-rules.js';
import { parseLineArgs } from '../bench/line-args.js';
import { DueHeap } from '../bench/line-client.js';
import { admissionRate, batchOf, fairOrderMismatches, parseBatch, spearman } from '../bench/line-report.js';
import { runBench, tempOutDir } from './helpers/run-script.js';

const outDir = tempOutDir('bench-line-');

describe('the line benchmark’s arithmetic', () => {
  it('Spearman: 1 for the same order, -1 reversed, near 0 for a shuffle, null below 3', () => {
    const x = Array.from({ length: 1_000 }, (_, i) => i);
    expect(
      spearman(
        x,
        x.map((v) => v * 3 + 1),
      ),
    ).toBeCloseTo(1, 10);
    expect(
      spearman(
        x,
        x.map((v) => -v),
      ),
    ).toBeCloseTo(-1, 10);
    // A fixed pseudo-random permutation (mulberry32, seeded), so the test never flakes.
    let state = 12_345;
    const random = () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const shuffled = [...x];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    expect(Math.abs(spearman(x, shuffled)!)).toBeLessThan(0.1);
    expect(spearman([1, 2], [2, 1])).toBeNull();
  });

  it('the admission rate: batches after the first over the time to the last full one; the batch of a position', () => {
    const starts = 1_000_000;
    // 50 every 250 ms from the start, the last one cut short by the units left.
    const batches = Array.from({ length: 8 }, (_, i) => ({
      from: i * 50,
      to: (i + 1) * 50,
      atMs: starts + 250 * (i + 1),
    }));
    batches.push({ from: 400, to: 410, atMs: starts + 2_250 });
    const members = batches.map((b) => `${b.from}:${b.to}:${b.atMs}`);
    const parsed = members.map(parseBatch).filter((b) => b !== null);
    expect(parsed).toEqual(batches);
    expect(parseBatch('junk')).toBeNull();
    const rate = admissionRate(parsed.reverse(), starts);
    expect(rate).toMatchObject({ batches: 9, admitted: 410, perSecond: 200 });
    expect(rate.perSecondSeries).toEqual([150, 200, 60]);
    // A slot given back and admitted again two minutes later is not part of the first pass's rate.
    const again = [...parsed, { from: 410, to: 411, atMs: starts + 122_000 }];
    expect(admissionRate(again, starts, 410)).toMatchObject({ admitted: 411, perSecond: 200 });
    const ordered = [...batches].sort((a, b) => a.to - b.to);
    expect(batchOf(ordered, 1)).toEqual(batches[0]);
    expect(batchOf(ordered, 50)).toEqual(batches[0]);
    expect(batchOf(ordered, 51)).toEqual(batches[1]);
    expect(batchOf(ordered, 410)?.to).toBe(410);
    expect(batchOf(ordered, 411)).toBeUndefined();
  });

  it('the fair order: positions by the seed’s HMAC rank, ties by user id; a swap is two mismatches', () => {
    const { seed } = newSeed(Buffer.alloc(32, 7));
    const users = Array.from({ length: 50 }, (_, i) => `u${i}`);
    const ranked = [...users].sort((a, b) => fairRank(seed, a) - fairRank(seed, b));
    const placed = ranked.map((userId, i) => ({ userId, position: i + 1 }));
    expect(fairOrderMismatches(seed, placed)).toBe(0);
    const swapped = placed.map((p) => ({ ...p }));
    [swapped[0]!.position, swapped[1]!.position] = [swapped[1]!.position, swapped[0]!.position];
    expect(fairOrderMismatches(seed, swapped)).toBe(2);
  });

  it('the poll scheduler’s heap gives items back earliest first', () => {
    const heap = new DueHeap(100);
    const due = Array.from({ length: 100 }, (_, i) => (i * 37) % 101);
    due.forEach((at, item) => heap.push(at, item));
    const out: number[] = [];
    while (heap.length > 0) out.push(heap.pop().at);
    expect(out).toEqual([...due].sort((a, b) => a - b));
  });

  it('sizes follow --shoppers, and a pre-start not before the joins end is refused', () => {
    const quick = parseLineArgs(['--line', '--shoppers', '2000'], '/repo');
    expect(quick).toMatchObject({ shoppers: 2_000, stock: 400, rate: 200, joinSeconds: 2, preStartSeconds: 1 });
    const full = parseLineArgs(['--line'], '/repo');
    expect(full).toMatchObject({
      shoppers: 100_000,
      stock: 2_000,
      joinSeconds: 10,
      preStartSeconds: 3,
      connections: 256,
    });
    expect(() => parseLineArgs(['--line', '--join-seconds', '2', '--pre-start-seconds', '2'], '/repo')).toThrow(
      /less than --join-seconds/,
    );
  });
});

it(
  'runs a tiny line-mode burst: every shopper joined and ended, nobody admitted twice, none oversold',
  { timeout: 240_000 },
  async () => {
    const shoppers = 400;
    // 50 admissions a second: the 80 units take over a second, so some shoppers are told a wait before their turn.
    const { code, output } = await runBench([
      '--line',
      '--shoppers',
      String(shoppers),
      '--rate',
      '50',
      '--pay-within',
      '5',
      '--out',
      outDir,
    ]);
    expect(code, output).toBe(0);
    const report = JSON.parse(readFileSync(join(outDir, 'line.json'), 'utf8'));
    const { line, plain, checkoutCpu, settings } = report;
    expect(report.ok).toBe(true);
    expect(settings).toMatchObject({ shoppers, rate: 50, stock: 80, connections: 256 });

    // The plain burst: every checkout answered, its units sold, none above them.
    expect(plain.requests).toBe(shoppers);
    expect(plain.won).toBe(settings.plainStock);
    expect(plain.rps).toBeGreaterThan(0);
    expect(plain.apiCpuUsPerAnswer).toBeGreaterThan(0);
    for (const wins of [checkoutCpu.plainWins, checkoutCpu.lineWins]) {
      expect(wins.won).toBe(settings.checkoutWins);
      expect(wins.statuses).toEqual({ 202: settings.checkoutWins });
    }
    // A tiny shot's API CPU can fall under /proc's 10 ms tick (0 µs per answer): then there is no ratio to give.
    if (checkoutCpu.plainWins.apiCpuUsPerAnswer > 0) expect(checkoutCpu.lineOverPlain).toBeGreaterThan(0);
    else expect(checkoutCpu.lineOverPlain).toBeNull();

    // The payment phase: every winner of the line pays within 5 s and its shopper reads PAID.
    expect(report.payments).toMatchObject({ payments: settings.stock, notPaid: 0, withinSeconds: 5 });
    expect(report.payments.toPaid.count).toBe(settings.stock);

    // Joins: each shopper once, some before the start.
    expect(line.complete).toBe(true);
    expect(line.joins.count).toBe(shoppers);
    expect(line.joins.preQueue).toBeGreaterThan(0);
    expect(line.joins.preQueue).toBeLessThan(shoppers);
    expect(line.joins.perSecond).toBeGreaterThan(0);
    expect(line.joins.latencyMs.p50).toBeLessThanOrEqual(line.joins.latencyMs.p99);

    // Admissions: exactly the stock, each spent by one accepted checkout, nothing given back.
    expect(line.admission.admitted).toBe(settings.stock);
    expect(line.admission.counters).toEqual({ admitted: settings.stock, consumed: settings.stock, givenBack: 0 });
    // A checkout answered 503 is asked again with its Idempotency-Key: each admitted shopper ends with one order.
    expect(line.checkouts.accepted).toBe(settings.stock);
    expect(line.checkouts.count).toBeGreaterThanOrEqual(settings.stock);
    expect(Object.keys(line.checkouts.refusals).filter((kind) => !/^checkout (503|0) /.test(kind))).toEqual([]);
    expect(line.admittedOnce).toMatchObject({
      shoppersAdmittedTwice: 0,
      positionsAdmittedTwice: 0,
      positionChanges: 0,
      distinctPositions: shoppers,
      ok: true,
    });

    // The pre-queue: ranked by the published seed, and (loosely: a few hundred shoppers) not by arrival.
    expect(line.preQueue.shoppers).toBe(line.joins.preQueue);
    expect(line.preQueue).toMatchObject({ seedHashMatches: true, orderMismatches: 0 });
    expect(Math.abs(line.preQueue.spearman)).toBeLessThan(0.5);

    // The wait told never rose; the ETA's error is over the admitted shoppers who were told one (how many is timing).
    expect(line.eta.rises).toBe(0);
    expect(line.eta.shoppers).toBeLessThanOrEqual(settings.stock);
    expect(line.eta.withinBand).toBeLessThanOrEqual(line.eta.shoppers);

    // Sold out: everyone still waiting saw it, no read after it answered a wait.
    expect(line.soldOut.afterStartSeconds).toBeGreaterThan(0);
    expect(line.soldOut.waitingShoppers).toBeGreaterThan(0);
    expect(line.soldOut).toMatchObject({ ok: true, waitingAnswersAfter: 0 });
    expect(line.soldOut.sawIt).toBe(line.soldOut.waitingShoppers);
    expect(line.otherStates).toEqual({});

    // The API's CPU was read in each phase.
    expect(line.apiCpu.usPerJoin).toBeGreaterThan(0);
    expect(line.apiCpu.waitingShopperMinutes).toBeGreaterThan(0);

    for (const [sku, checks] of Object.entries<Record<string, boolean>>(report.invariants))
      expect(checks, sku).toMatchObject({
        noOversell: true,
        conservation: true,
        storesAgree: true,
        noLostOrder: true,
        perUserLimit: true,
        ok: true,
      });
    expect(readFileSync(join(outDir, 'line.md'), 'utf8')).toMatch(/\| joins\/s \(plain burst req\/s\) \| \d+/);
  },
);
