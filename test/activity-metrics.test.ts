/**
 * The activity metrics interceptor on a real worker against the real stack: an activity that fails
 * once and is retried counts one `failed`, one `completed` and one retry (attempt > 1) for its type.
 * The meter records what it is given (the spawned-worker test covers the Prometheus exporter).
 */
import { randomUUID } from 'node:crypto';
import type { MetricCounter, MetricGauge, MetricHistogram, MetricMeter, MetricTags } from '@temporalio/common';
import { expect } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { waitFor } from '../stack/wait-for.js';
import { ACTIVITY_METRICS } from '../src/workers/telemetry.js';
import { putOnSale } from './helpers/fixtures.js';
import { httpAt } from './helpers/http.js';
import { appTest } from './helpers/stack-test.js';

/** A MetricMeter that keeps every counter increment with its tags. */
class RecordingMeter implements MetricMeter {
  readonly adds: { name: string; value: number; tags: MetricTags }[] = [];
  createCounter(name: string, unit = '', description = ''): MetricCounter {
    const counter: MetricCounter = {
      name,
      unit,
      description,
      kind: 'counter',
      valueType: 'int',
      add: (value: number, tags: MetricTags = {}) => void this.adds.push({ name, value, tags }),
      withTags: () => counter,
    };
    return counter;
  }
  createHistogram(): MetricHistogram {
    throw new Error('not used');
  }
  createGauge(): MetricGauge {
    throw new Error('not used');
  }
  withTags(): MetricMeter {
    return this;
  }
  count(name: string, where: MetricTags): number {
    return this.adds
      .filter((a) => a.name === name && Object.entries(where).every(([k, v]) => a.tags[k] === v))
      .reduce((sum, a) => sum + a.value, 0);
  }
}

const meter = new RecordingMeter();
let persistCalls = 0;

const it = appTest(
  'activity-metrics',
  { LOG_LEVEL: 'silent' },
  {
    worker: {
      metricMeter: meter,
      // persistOrder's first attempt fails (as a MySQL hiccup would); its retry runs the real one.
      wrapActivities: (real) => ({
        persistOrder: async (...args: Parameters<typeof real.persistOrder>) => {
          if (persistCalls++ === 0) throw new Error('injected: MySQL hiccup');
          return real.persistOrder(...args);
        },
      }),
    },
  },
);

it('counts failed, completed and retried executions by activity type', async ({ app }) => {
  const { config, stores, redis, api } = app;
  const { sku } = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
  const token = await new ShopperAuth(config).issue(`am-${randomUUID().slice(0, 8)}`);
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const reply = await httpAt('POST', `${api.url}/api/checkout`, {
    headers,
    raw: JSON.stringify({ sku, quantity: 1 }),
  });
  expect(reply.status).toBe(202);
  const { orderNo } = reply.body as { orderNo: string };
  await waitFor(async () => (await stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT', {
    what: `${orderNo} persisted after a retry`,
    timeoutMs: 30_000,
  });

  const persist = { activity_type: 'persistOrder', task_queue: config.temporal.taskQueue };
  expect(persistCalls).toBe(2);
  expect(meter.count(ACTIVITY_METRICS.outcomes, { ...persist, outcome: 'failed' })).toBe(1);
  expect(meter.count(ACTIVITY_METRICS.outcomes, { ...persist, outcome: 'completed' })).toBe(1);
  expect(meter.count(ACTIVITY_METRICS.retries, persist)).toBe(1);
  // Nothing is counted for activities that did not run, and no tag carries the order.
  expect(meter.count(ACTIVITY_METRICS.outcomes, { activity_type: 'markPaid' })).toBe(0);
  expect(JSON.stringify(meter.adds)).not.toContain(orderNo);
});
