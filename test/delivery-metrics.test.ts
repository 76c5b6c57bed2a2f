/**
 * The worker's order-event gauges (src/workers/worker.ts, DELIVERY_METRICS) as its Prometheus exporter serves them,
 * fed by the reconciler's keepOrderEventDeliveries from one read of MySQL (WebhookStore.orderEventFigures): the events
 * written, each endpoint's PENDING and GAVE_UP deliveries and its oldest PENDING's age, the disabled endpoints. And the
 * admin's figures (deliveryFigures) of the same rows, failing ones told apart. Real MariaDB and Core runtime; no
 * delivery workflow runs: this file's endpoints are disabled as soon as made, so no file's reconciler starts one, and
 * its deliveries are written as a delivery's activity writes them.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { RowDataPacket } from 'mysql2/promise';
import { describe, expect } from 'vitest';
import { createReconcileActivities } from '../src/activities/reconcile.js';
import { WebhookStore, type AttemptRecord, type OrderEventFigures } from '../src/db/webhooks.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { DELIVERY_METRICS, deliveryMetrics } from '../src/workers/worker.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import type { StoreClients } from './helpers/stack-clients.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { putOnSale } from './helpers/fixtures.js';
import { closeRow, ordersWithoutBreakers } from './helpers/orders.js';
import { parseExposition, total, type Sample } from './helpers/prometheus.js';
import { OrderChangeNotifier } from '../src/order/status-reads.js';
import { httpAt } from './helpers/http.js';

/** The store as the reconciler reads it, keeping what its last reading of the gauges' figures was. */
class RecordingWebhookStore extends WebhookStore {
  last: OrderEventFigures | null = null;
  override async orderEventFigures(): Promise<OrderEventFigures> {
    this.last = await super.orderEventFigures();
    return this.last;
  }
}

const config = testConfig({ LOG_LEVEL: 'silent' });

/** The clients, the worker's exporter, and what the reconciler reads and calls through. */
interface Bench extends Omit<StoreClients, 'close'> {
  metricsUrl: string;
  webhooks: RecordingWebhookStore;
  connection: Connection;
  /** The endpoints this file made. */
  endpoints: string[];
}

const it = storeClientsTest(config).extend(
  'bench',
  { scope: 'file' },
  async ({ clients }, { onCleanup }): Promise<Bench> => {
    // The Core runtime's Prometheus exporter, as the worker process installs it (WORKER_METRICS_PORT).
    const port = await freePort();
    Runtime.install({
      logger: new DefaultLogger('WARN'),
      telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } } },
    });
    // Never called here (no workflow is started): a lazy connection that never connects.
    const connection = Connection.lazy({ address: config.temporal.address });
    const endpoints: string[] = [];
    onCleanup(async () => {
      // Disabled already; again, so that no file's reconciler ever starts their deliveries.
      for (const endpointId of endpoints) await clients.stores.webhooks.updateEndpoint(endpointId, { enabled: false });
      await connection.close().catch(() => undefined);
    });
    return {
      ...clients,
      metricsUrl: `http://127.0.0.1:${port}/metrics`,
      webhooks: new RecordingWebhookStore(clients.pool),
      connection,
      endpoints,
    };
  },
);

/** The reconciler's page that keeps the deliveries, its gauges on the Runtime's meter, no retention, no Temporal. */
function reconciler({ redis, stores, webhooks, connection }: Bench) {
  return createReconcileActivities({
    changes: new OrderChangeNotifier(redis),
    stores: { ...stores, webhooks },
    inventory: new RedisInventory(redis, config.temporal.taskQueue),
    orders: ordersWithoutBreakers(
      new Client({ connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config) }),
      'unused',
    ),
    deliveryGauges: gaugesOfProcess,
  });
}
let gauges: ReturnType<typeof deliveryMetrics> | undefined;
const gaugesOfProcess = () => (gauges ??= deliveryMetrics(Runtime.instance().metricMeter));

/** An endpoint as the admin API makes it, disabled at once (as by an operator). */
async function disabledEndpoint({ stores, endpoints }: Bench): Promise<string> {
  const endpointId = `ep_metrics_${randomUUID().slice(0, 8)}`;
  await stores.webhooks.createEndpoint({
    endpointId,
    url: 'http://127.0.0.1:9/never-reached',
    eventTypes: [],
    description: 'test/delivery-metrics.test.ts',
    secretBox: Buffer.from('not a sealed secret'),
  });
  endpoints.push(endpointId);
  await stores.webhooks.updateEndpoint(endpointId, { enabled: false });
  return endpointId;
}

/** `count` orders cancelled unpaid: an order.cancelled event each; their event ids. */
async function cancelledOrders({ stores, redis }: Bench, count: number): Promise<string[]> {
  const sale = await putOnSale(stores, redis, { stock: count });
  const eventIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const orderNo = newOrderNo();
    const inserted = await stores.orders.insertAwaitingOrder({
      orderNo,
      sku: sale.sku,
      userId: `metrics-${i}-${orderNo.slice(-6)}`,
      quantity: 1,
      unitPriceCents: sale.priceCents,
      paymentDeadline: new Date(Date.now() + 30 * 60_000),
      createdAt: new Date(),
    });
    expect(inserted.outcome).toBe('INSERTED');
    await closeRow(stores, orderNo, { kind: 'CANCEL', reason: 'USER_CANCELLED' });
    const [event] = await stores.events.eventsOf(orderNo);
    expect(event?.type).toBe('order.cancelled');
    eventIds.push(event!.eventId);
  }
  return eventIds;
}

/** The event queued to the endpoint (as a resend queues it, enabled or not); its seq. */
async function owe({ stores }: Bench, endpointId: string, eventId: string): Promise<number> {
  expect(await stores.webhooks.resend(endpointId, eventId, 3_600_000)).toBe(true);
  const delivery = await stores.webhooks.deliveryOf(endpointId, eventId);
  return delivery!.seq;
}

const attempt = (next: AttemptRecord['next']): AttemptRecord => ({
  outcome: next.status === 'DELIVERED' ? 'delivered' : 'failed',
  httpStatus: next.status === 'DELIVERED' ? 204 : 500,
  error: next.status === 'DELIVERED' ? null : 'HTTP 500',
  durationMs: 12,
  next,
});

/** The worker exporter's samples once `ready` holds of them (the Core runtime exports what was set at its scrape). */
async function scrapeUntil(
  { metricsUrl }: Bench,
  what: string,
  ready: (samples: Sample[]) => boolean,
): Promise<Sample[]> {
  let seen: Sample[] = [];
  return waitFor(
    async () => {
      seen = parseExposition((await httpAt('GET', metricsUrl)).body);
      return ready(seen) && seen;
    },
    { what, timeoutMs: 10_000, intervalMs: 100 },
  ).catch((err: unknown) => {
    const ours = seen.filter((sample) => sample.name.startsWith('flash_order_event'));
    throw new Error(`${String(err)}; the exporter's order-event samples: ${JSON.stringify(ours)}`);
  });
}

describe("the worker's order-event gauges, read once per reconcile run", () => {
  it("report each endpoint's PENDING deliveries and the oldest one's age, its GAVE_UP count, the disabled endpoints and the events written", async ({
    bench,
  }) => {
    const { stores, pool, webhooks } = bench;
    const endpointId = await disabledEndpoint(bench);
    const [pendingEvent, gaveUpEvent, deliveredEvent] = await cancelledOrders(bench, 3);
    const pendingSeq = await owe(bench, endpointId, pendingEvent!);
    const gaveUpSeq = await owe(bench, endpointId, gaveUpEvent!);
    const deliveredSeq = await owe(bench, endpointId, deliveredEvent!);
    // One tried and failed (still owed), one given up after its failures, one delivered.
    await stores.webhooks.recordAttempt(endpointId, pendingSeq, attempt({ status: 'PENDING', inMs: 60_000 }));
    await stores.webhooks.recordAttempt(endpointId, gaveUpSeq, attempt({ status: 'GAVE_UP' }));
    await stores.webhooks.recordAttempt(endpointId, deliveredSeq, attempt({ status: 'DELIVERED' }));
    // Queued 90 s ago, by MySQL's clock.
    await pool.query(
      'UPDATE webhook_deliveries SET queued_at = NOW(3) - INTERVAL 90 SECOND WHERE endpoint_id = ? AND event_seq = ?',
      [endpointId, pendingSeq],
    );

    // The admin's figures of the same rows: the failing one of those owed told apart.
    const figures = (await stores.webhooks.deliveryFigures()).get(endpointId);
    expect(figures).toMatchObject({ pending: 1, failing: 1, delivered: 1, gaveUp: 1 });
    const queued = (await stores.webhooks.deliveryOf(endpointId, pendingEvent!))!.queuedAt;
    expect(figures?.oldestPendingQueuedAt).toEqual(queued);

    const kept = await reconciler(bench).keepOrderEventDeliveries({ prunePage: 1_000 });
    expect(kept).toEqual({ endpoints: 0, pruned: 0 });
    const read = webhooks.last!;
    const mine = read.endpoints.find((endpoint) => endpoint.endpointId === endpointId);
    expect(mine).toMatchObject({ enabled: false, pending: 1, gaveUp: 1 });
    const [[delivered]] = await pool.query<RowDataPacket[]>('SELECT position FROM order_events WHERE event_id = ?', [
      deliveredEvent,
    ]);
    expect(read.newestPosition).toBeGreaterThanOrEqual(Number(delivered?.position));

    const labels = { endpoint: endpointId };
    const samples = await scrapeUntil(bench, 'the gauges of the run', (seen) =>
      seen.some((sample) => sample.name === DELIVERY_METRICS.oldestPendingAge && sample.labels.endpoint === endpointId),
    );
    expect(total(samples, DELIVERY_METRICS.deliveries, { ...labels, status: 'PENDING' })).toBe(1);
    expect(total(samples, DELIVERY_METRICS.deliveries, { ...labels, status: 'GAVE_UP' })).toBe(1);
    const age = total(samples, DELIVERY_METRICS.oldestPendingAge, labels);
    expect(age).toBeGreaterThanOrEqual(90);
    expect(age).toBeLessThan(150);
    expect(age).toBeCloseTo(mine!.oldestPendingAgeSeconds!, 3);
    // The whole table as that one read saw it (other files write events and endpoints meanwhile).
    const disabled = read.endpoints.filter((endpoint) => !endpoint.enabled).length;
    expect(disabled).toBeGreaterThanOrEqual(1);
    expect(total(samples, DELIVERY_METRICS.disabledEndpoints)).toBe(disabled);
    expect(total(samples, DELIVERY_METRICS.written)).toBe(read.newestPosition);

    // Delivered at last: the next run reads nothing owed, and the gauges say so rather than keep their last value. The
    // counter of events written moves on by what the feed's position moved.
    await stores.webhooks.recordAttempt(endpointId, pendingSeq, attempt({ status: 'DELIVERED' }));
    await cancelledOrders(bench, 1);
    await reconciler(bench).keepOrderEventDeliveries({ prunePage: 1_000 });
    const next = webhooks.last!;
    expect(next.newestPosition).toBeGreaterThan(read.newestPosition);
    const after = await scrapeUntil(bench, 'the gauges of the next run', (seen) =>
      seen.some(
        (sample) =>
          sample.name === DELIVERY_METRICS.deliveries &&
          sample.labels.endpoint === endpointId &&
          sample.labels.status === 'PENDING' &&
          sample.value === 0,
      ),
    );
    expect(total(after, DELIVERY_METRICS.oldestPendingAge, labels)).toBe(0);
    expect(total(after, DELIVERY_METRICS.deliveries, { ...labels, status: 'GAVE_UP' })).toBe(1);
    expect(total(after, DELIVERY_METRICS.written)).toBe(next.newestPosition);
  });

  it('reads no gauge on a page that pruned a full page: the run has more to prune, its last page reads them', async ({
    bench,
  }) => {
    const { stores, pool, redis, connection } = bench;
    let reads = 0;
    const counting = new (class extends WebhookStore {
      override async orderEventFigures(): Promise<OrderEventFigures> {
        reads++;
        return super.orderEventFigures();
      }
      override async pruneEvents(): Promise<number> {
        return 5;
      }
    })(pool);
    const activities = createReconcileActivities({
      changes: new OrderChangeNotifier(redis),
      stores: { ...stores, webhooks: counting },
      inventory: new RedisInventory(redis, config.temporal.taskQueue),
      orders: ordersWithoutBreakers(
        new Client({ connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config) }),
        'unused',
      ),
      deliveryGauges: gaugesOfProcess,
      eventRetentionMs: 3_600_000,
    });
    expect(await activities.keepOrderEventDeliveries({ prunePage: 5 })).toEqual({ endpoints: 0, pruned: 5 });
    expect(reads).toBe(0);
    expect(await activities.keepOrderEventDeliveries({ prunePage: 6 })).toEqual({ endpoints: 0, pruned: 5 });
    expect(reads).toBe(1);
  });
});
