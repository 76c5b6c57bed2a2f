/**
 * How the dashboard reads the checkout's figures out of GET /metrics (web/
 * checkout-metrics.ts): against what the API's own registry renders, so renaming a metric or a
 * label breaks this test rather than silently emptying a chart; and the sums over several API
 * processes behind a load balancer, each differenced with its own previous scrape. The same for the
 * Worker panel (web/worker-metrics.ts): the payment Signal's latency over a window, and the
 * workers' cache figures as the API relays them. And the Order events panel (web/delivery-metrics.ts): the endpoints'
 * deliveries as GET /api/admin/webhook-endpoints answers them (its response schema), summed.
 */
import { describe, expect, it } from 'vitest';
import { ApiMetrics } from '../src/api/metrics.js';
import { CheckoutRates, parseScrape, quantile } from '../web/checkout-metrics.js';
import {
  PAYMENT_SIGNAL_OUTCOMES,
  PaymentSignalLatency,
  parsePaymentSignals,
  workerCacheTotals,
  type PaymentSignalOutcome,
} from '../web/worker-metrics.js';
import type { WorkerCacheFigures } from '../src/redis/worker-figures.js';
import { deliveryTotals, formatAge } from '../web/delivery-metrics.js';
import { webhookEndpointListSchema } from '../src/order-events/endpoint-views.js';

/** An API process's exposition: `accepted` checkouts answered 202 in `acceptedSeconds`, `soldOut` 409s in 1 ms. */
async function exposition(
  process: string,
  checkouts: { accepted: number; acceptedSeconds: number; soldOut: number; unavailable?: number },
): Promise<string> {
  const metrics = new ApiMetrics({ defaultMetrics: false });
  for (let i = 0; i < checkouts.accepted; i++) {
    metrics.checkoutOutcome('ACCEPTED');
    metrics.observeRequest('POST', '/api/checkout', 202, checkouts.acceptedSeconds);
  }
  for (let i = 0; i < checkouts.soldOut; i++) {
    metrics.checkoutOutcome('SOLD_OUT');
    metrics.observeRequest('POST', '/api/checkout', 409, 0.001);
  }
  for (let i = 0; i < (checkouts.unavailable ?? 0); i++) {
    metrics.checkoutOutcome('OUTCOME_UNKNOWN');
    metrics.observeRequest('POST', '/api/checkout', 503, 0.3);
  }
  // Another route's latency must not count.
  metrics.observeRequest('GET', '/api/orders/:orderNo', 200, 9);
  metrics.checkoutOutcome('PURCHASE_LIMIT_EXCEEDED');
  metrics.checkoutOutcome('SALE_NOT_ACTIVE');
  // What the default metrics add, which a registry without them lacks: the process's start.
  return `${(await metrics.render()).body}\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ${process}\n`;
}

describe('the dashboard reading /metrics', () => {
  it("reads the checkout's outcomes and latency buckets out of the API's exposition", async () => {
    const scrape = parseScrape(
      await exposition('1700000000', { accepted: 3, acceptedSeconds: 0.03, soldOut: 5, unavailable: 1 }),
      1_000,
    );
    expect(scrape.process).toBe('1700000000');
    expect(scrape.outcomes).toEqual({ accepted: 3, soldOut: 5, limit: 1, refused: 1, unavailable: 1 });
    expect(scrape.latency.all.get(Infinity)).toBe(9);
    expect(scrape.latency.accepted.get(Infinity)).toBe(3);
    expect(scrape.latency.accepted.get(0.025)).toBe(0);
    expect(scrape.latency.accepted.get(0.05)).toBe(3);
  });

  it('answers rates and the p99 of the requests between two scrapes of one process', async () => {
    const rates = new CheckoutRates();
    expect(
      rates.add(parseScrape(await exposition('1', { accepted: 0, acceptedSeconds: 0, soldOut: 0 }), 10_000)),
    ).toBeNull();
    // 2 s later: 99 accepted in 4 ms and one in 800 ms, 100 sold out.
    const later = parseScrape(await exposition('1', { accepted: 99, acceptedSeconds: 0.004, soldOut: 100 }), 12_000);
    later.outcomes.accepted += 1;
    later.latency.accepted.forEach((count, le) => later.latency.accepted.set(le, count + (le >= 1 ? 1 : 0)));
    const figures = rates.add(later);
    expect(figures?.perSecond).toEqual({ accepted: 50, soldOut: 50, limit: 0, refused: 0, unavailable: 0 });
    expect(figures?.processes).toBe(1);
    // Rank 99 of 100 falls at the top of the 2.5–5 ms bucket.
    expect(figures?.p99Ms.accepted).toBeCloseTo(5, 6);
  });

  it('sums processes behind a load balancer, each against its own previous scrape, and drops one that restarted or went quiet', async () => {
    const rates = new CheckoutRates(10_000);
    rates.add(parseScrape(await exposition('100', { accepted: 10, acceptedSeconds: 0.01, soldOut: 0 }), 0));
    rates.add(parseScrape(await exposition('200', { accepted: 500, acceptedSeconds: 0.01, soldOut: 0 }), 1_000));
    // Each process scraped again 2 s after its previous scrape.
    expect(
      rates.add(parseScrape(await exposition('100', { accepted: 30, acceptedSeconds: 0.01, soldOut: 0 }), 2_000))
        ?.perSecond.accepted,
    ).toBe(10);
    const both = rates.add(
      parseScrape(await exposition('200', { accepted: 540, acceptedSeconds: 0.01, soldOut: 0 }), 3_000),
    );
    expect({ accepted: both?.perSecond.accepted, processes: both?.processes }).toEqual({ accepted: 30, processes: 2 });
    // Process 200's counters went down (it restarted within the same second): no interval for it until its next scrape.
    const reset = rates.add(
      parseScrape(await exposition('200', { accepted: 1, acceptedSeconds: 0.01, soldOut: 0 }), 4_000),
    );
    expect({ accepted: reset?.perSecond.accepted, processes: reset?.processes }).toEqual({
      accepted: 10,
      processes: 1,
    });
    // Process 100 not scraped for more than 10 s: left out.
    const alone = rates.add(
      parseScrape(await exposition('200', { accepted: 5, acceptedSeconds: 0.01, soldOut: 0 }), 13_000),
    );
    expect({ accepted: alone?.perSecond.accepted, processes: alone?.processes }).toEqual({
      accepted: 4 / 9,
      processes: 1,
    });
  });

  it("interpolates a quantile within its bucket, and answers the largest finite bound in the +Inf bucket, as Prometheus' histogram_quantile", () => {
    expect(
      quantile(
        0.5,
        new Map([
          [0.1, 0],
          [0.2, 10],
          [Infinity, 10],
        ]),
      ),
    ).toBeCloseTo(0.15, 9);
    expect(
      quantile(
        0.99,
        new Map([
          [0.1, 50],
          [1, 90],
          [Infinity, 100],
        ]),
      ),
    ).toBe(1);
    expect(
      quantile(
        0.99,
        new Map([
          [0.1, 0],
          [Infinity, 0],
        ]),
      ),
    ).toBeNull();
  });
});

/** An API process's exposition after these payment Signals (outcome, seconds), with its process start. */
async function signalExposition(process: string, signals: Array<[PaymentSignalOutcome, number]>): Promise<string> {
  const metrics = new ApiMetrics({ defaultMetrics: false });
  for (const [outcome, seconds] of signals) metrics.paymentSignalDone(outcome, seconds);
  const { body } = await metrics.render();
  return `${body}\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ${process}\n`;
}
const times = (n: number, signal: [PaymentSignalOutcome, number]) => Array.from({ length: n }, () => signal);

describe("the dashboard's Worker panel", () => {
  it("reads the payment Signal's buckets by outcome out of the API's exposition, every outcome there from the start", async () => {
    const empty = parsePaymentSignals(await signalExposition('7', []), 0);
    expect(empty.process).toBe('7');
    for (const outcome of PAYMENT_SIGNAL_OUTCOMES) expect(empty.buckets[outcome].get(Infinity), outcome).toBe(0);

    const scrape = parsePaymentSignals(
      await signalExposition('7', [
        ['signalled', 0.02],
        ['signalled', 0.2],
        ['timeout', 2.5],
        ['no_workflow', 0.004],
      ]),
      0,
    );
    expect(scrape.buckets.signalled.get(0.025)).toBe(1);
    expect(scrape.buckets.signalled.get(Infinity)).toBe(2);
    expect(scrape.buckets.timeout.get(Infinity)).toBe(1);
    expect(scrape.buckets.timeout.get(1)).toBe(0);
    expect(scrape.buckets.no_workflow.get(0.005)).toBe(1);
    expect(scrape.buckets.error.get(Infinity)).toBe(0);
  });

  it("answers the Signals' p50 and p99 and the counts by outcome over the window, summed over the API processes", async () => {
    const latency = new PaymentSignalLatency(60_000, 30_000);
    // The page's first scrape of each process starts its window: what came before is not counted.
    const first = latency.add(parsePaymentSignals(await signalExposition('1', times(5, ['signalled', 0.3])), 0));
    expect(first).toEqual({
      counts: { signalled: 0, no_workflow: 0, timeout: 0, error: 0 },
      p50Seconds: null,
      p99Seconds: null,
      spanSeconds: 0,
      processes: 1,
    });
    latency.add(parsePaymentSignals(await signalExposition('2', []), 1_000));
    // 10 s later: process 1 sent 98 more within 5 ms and one in 0.5–1 s, and timed one out; process 2 sent one.
    const one: Array<[PaymentSignalOutcome, number]> = [
      ...times(5, ['signalled', 0.3]),
      ...times(98, ['signalled', 0.004]),
      ['signalled', 0.8],
      ['timeout', 5],
    ];
    latency.add(parsePaymentSignals(await signalExposition('1', one), 10_000));
    const both = latency.add(parsePaymentSignals(await signalExposition('2', [['signalled', 0.004]]), 11_000));
    expect(both.counts).toEqual({ signalled: 100, no_workflow: 0, timeout: 1, error: 0 });
    expect(both.processes).toBe(2);
    expect(both.spanSeconds).toBe(10);
    // Ranks 50 and 99 of 100 fall in the first bucket (up to 5 ms), interpolated; the timeout is no Signal sent.
    expect(both.p50Seconds).toBeCloseTo(0.005 * (50 / 99), 9);
    expect(both.p99Seconds).toBeCloseTo(0.005, 9);

    // Past the window, its start moves on: process 1's early Signals drop out; process 2, quiet for 30 s, is left out.
    const later = latency.add(parsePaymentSignals(await signalExposition('1', [...one, ['error', 0.1]]), 70_000));
    expect(later.counts).toEqual({ signalled: 0, no_workflow: 0, timeout: 0, error: 1 });
    expect(later.processes).toBe(1);
    expect(later.spanSeconds).toBe(60);
    expect(later.p99Seconds).toBeNull();
  });

  it("sums the workers' cache: size and bound, hit rate over their last intervals, forced evictions per second", () => {
    const worker = (name: string, cached: number, interval: WorkerCacheFigures['interval']): WorkerCacheFigures => ({
      worker: name,
      at: new Date(0).toISOString(),
      cached,
      maxCached: 2000,
      interval,
    });
    expect(workerCacheTotals([])).toEqual({
      workers: 0,
      cached: 0,
      maxCached: 0,
      hitRate: null,
      evictionsPerSecond: null,
    });
    // Metrics port off (no counters) and a quiet interval: sizes only, no rate.
    expect(
      workerCacheTotals([worker('a', 5, null), worker('b', 7, { seconds: 5, hits: 0, misses: 0, forcedEvictions: 0 })]),
    ).toEqual({ workers: 2, cached: 12, maxCached: 4000, hitRate: null, evictionsPerSecond: 0 });
    const totals = workerCacheTotals([
      worker('a', 2000, { seconds: 5, hits: 30, misses: 10, forcedEvictions: 10 }),
      worker('b', 100, { seconds: 4, hits: 60, misses: 0, forcedEvictions: 0 }),
      worker('c', 0, null),
    ]);
    expect(totals).toEqual({ workers: 3, cached: 2100, maxCached: 6000, hitRate: 0.9, evictionsPerSecond: 2 });
  });
});

describe("the dashboard's Order events panel", () => {
  /** An endpoint as the admin route answers it, read through the route's response schema. */
  const endpoint = (id: string, enabled: boolean, deliveries: Record<string, number | string | null>) => ({
    endpointId: id,
    url: `https://merchant.example/${id}`,
    eventTypes: [],
    description: null,
    includeShopperId: false,
    enabled,
    disabledReason: enabled ? null : 'disabled by an operator',
    oldSecretUntil: null,
    pausedUntil: null,
    createdAt: new Date(0).toISOString(),
    updatedAt: new Date(0).toISOString(),
    deliveries,
  });

  it('sums sent, failing of owed and given up over the endpoints, counts the disabled, and ages the oldest owed', () => {
    const nowMs = Date.parse('2030-01-01T00:10:00.000Z');
    const { items } = webhookEndpointListSchema.parse({
      items: [
        endpoint('ep_a', true, {
          pending: 3,
          failing: 1,
          delivered: 40,
          gaveUp: 0,
          oldestPendingQueuedAt: '2030-01-01T00:09:30.000Z',
        }),
        endpoint('ep_b', false, {
          pending: 2,
          failing: 2,
          delivered: 5,
          gaveUp: 4,
          oldestPendingQueuedAt: '2030-01-01T00:05:00.000Z',
        }),
        endpoint('ep_c', true, { pending: 0, failing: 0, delivered: 7, gaveUp: 1, oldestPendingQueuedAt: null }),
      ],
    });
    expect(deliveryTotals(items, nowMs)).toEqual({
      endpoints: 3,
      disabled: 1,
      sent: 52,
      pending: 5,
      failing: 3,
      gaveUp: 5,
      oldestPendingSeconds: 300,
    });
    expect(deliveryTotals(items.slice(2), nowMs).oldestPendingSeconds).toBeNull();
    // A browser clock behind MySQL's: the age is 0, never negative.
    expect(deliveryTotals(items.slice(0, 1), Date.parse('2030-01-01T00:09:00.000Z')).oldestPendingSeconds).toBe(0);
    expect(deliveryTotals([], nowMs)).toEqual({
      endpoints: 0,
      disabled: 0,
      sent: 0,
      pending: 0,
      failing: 0,
      gaveUp: 0,
      oldestPendingSeconds: null,
    });
    expect([null, 0, 59.9, 119, 300, 7_199, 9_000].map(formatAge)).toEqual([
      '—',
      '0 s',
      '59 s',
      '119 s',
      '5 min',
      '119 min',
      '2.5 h',
    ]);
  });
});
