/**
 * Tracing end to end, as `OTEL_TRACES_EXPORTER=zipkin npm start` runs it: the API and the worker as
 * real processes (src/api/main.ts, src/workers/main.ts) exporting to a real Zipkin server, a
 * checkout and its payment sent in one client trace (a `traceparent` header, as a shop's frontend
 * would send), and the trace read back from Zipkin's API: one trace id, spans from the API, the
 * workflow and each activity, joined parent to child and in order.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { createTemporalClient } from '../src/infra/temporal-connection.js';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { workflowSpanSinks } from '../src/infra/tracing.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { spawnAppProcess, startAppProcess } from '../stack/app-processes.js';
import { freePort, type ManagedProcess } from '../stack/process.js';
import { loadToolPaths } from '../stack/services.js';
import { waitFor } from '../stack/wait-for.js';
import { startZipkin, type RunningZipkin } from '../stack/zipkin.js';
import { testConfig } from './helpers/env.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { putOnSale } from './helpers/fixtures.js';
import { httpAt } from './helpers/http.js';

/** A span as Zipkin's v2 API answers it. */
interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  timestamp: number;
  duration?: number;
  localEndpoint?: { serviceName?: string };
  tags?: Record<string, string>;
}

const workDir = mkdtempSync(join(tmpdir(), 'tracing-test-'));
// Its own task queue: only this file's worker runs these orders, so every span of them is its own.
const taskQueue = `tracing-${randomUUID()}`;
const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue });
const it = storeClientsTest(config);
let zipkin: RunningZipkin;
let api: ManagedProcess;
let worker: ManagedProcess;
let apiUrl: string;

// Zipkin and the app's processes: a hook rather than a fixture, so that their start keeps its own 150 s.
beforeAll(async () => {
  zipkin = await startZipkin({ tools: loadToolPaths(), dataDir: join(workDir, 'zipkin'), port: await freePort() });
  const port = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    ...inject('stackEnv'),
    TEMPORAL_TASK_QUEUE: taskQueue,
    PORT: String(port),
    WORKER_METRICS_PORT: '0',
    WORKER_HEALTH_PORT: '0',
    WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
    LOG_LEVEL: 'warn',
    OTEL_TRACES_EXPORTER: 'zipkin',
    ...zipkin.env,
    // The batch processor's standard setting: export within 200 ms instead of 5 s.
    OTEL_BSP_SCHEDULE_DELAY: '200',
  };
  // The worker has no health port here (WORKER_HEALTH_PORT=0): the API's readiness is what the test waits for.
  worker = spawnAppProcess({ role: 'worker', logFile: join(workDir, 'worker.log'), env });
  api = await startAppProcess({ role: 'api', logFile: join(workDir, 'api.log'), env, readyTimeoutMs: 90_000 });
}, 150_000);

afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await zipkin?.process.stop().catch(() => undefined);
  rmSync(workDir, { recursive: true, force: true });
});

/** Zipkin lowercases span names; the API's are `<method> <route>`. */
const first = (spans: ZipkinSpan[], name: string, service?: string): ZipkinSpan => {
  const span = spans.find((s) => s.name === name && (!service || s.localEndpoint?.serviceName === service));
  if (!span)
    throw new Error(
      `no span "${name}"${service ? ` from ${service}` : ''} among: ${spans.map((s) => `${s.localEndpoint?.serviceName}:${s.name}`).join(', ')}`,
    );
  return span;
};

/** Whether `span` descends from `ancestor` through the parent ids Zipkin stored. */
function descendsFrom(spans: ZipkinSpan[], span: ZipkinSpan, ancestor: ZipkinSpan): boolean {
  const byId = new Map(spans.map((s) => [s.id, s]));
  for (let at: ZipkinSpan | undefined = span; at; at = at.parentId ? byId.get(at.parentId) : undefined) {
    if (at.id === ancestor.id) return true;
  }
  return false;
}

describe('one trace from the request to the last activity', () => {
  it('joins the checkout, the workflow, its activities and the payment in one trace, read back from Zipkin', async ({
    clients,
  }) => {
    const { stores, redis } = clients;
    const sale = await putOnSale(stores, redis, { stock: 5, perUserLimit: 1 });
    const token = await new ShopperAuth(config).issue(`t-${randomUUID().slice(0, 8)}`);
    const traceId = randomBytes(16).toString('hex');
    // The client's own span: sampled (flags 01), so every process downstream records its part.
    const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
    const shopper = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

    const checkout = await httpAt('POST', `${apiUrl}/api/checkout`, {
      headers: { ...shopper, traceparent, 'idempotency-key': randomUUID() },
      raw: JSON.stringify({ sku: sale.sku, quantity: 1 }),
    });
    expect(checkout.status).toBe(202);
    // The client can quote the trace of its call.
    expect(checkout.headers.get('x-trace-id')).toBe(traceId);
    const { orderNo } = checkout.body as { orderNo: string };
    await waitFor(
      async () =>
        ((await httpAt('GET', `${apiUrl}/api/orders/${orderNo}`, { headers: shopper })).body as { status: string })
          .status === 'AWAITING_PAYMENT',
      { what: `${orderNo} persisted`, timeoutMs: 30_000 },
    );

    const body = JSON.stringify({
      eventId: `evt_${randomUUID()}`,
      type: 'payment.succeeded',
      orderNo,
      amountCents: sale.priceCents,
    });
    const paid = await httpAt('POST', `${apiUrl}/api/payments/webhook`, {
      headers: {
        'content-type': 'application/json',
        traceparent,
        'payment-signature': signWebhook(config.webhookSecret, body),
      },
      raw: body,
    });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ outcome: 'APPLIED' });

    const api = 'flash-checkout-api';
    const wrk = 'flash-checkout-worker';
    // Spans arrive from two processes in batches, each when its operation ends: the workflow's run
    // ends after its last activity (the close), so its span comes in a later batch than that one's.
    // Wait until every span read below is there, not only the last activity's: [service, name, under].
    const expected: ReadonlyArray<readonly [service: string, name: string, under?: string]> = [
      [api, 'post /api/checkout'],
      [api, 'evalsha', 'post /api/checkout'],
      [wrk, 'startworkflow:orderworkflow'],
      [wrk, 'runworkflow:orderworkflow'],
      [wrk, 'runactivity:persistorder'],
      [wrk, 'insert', 'runactivity:persistorder'],
      [api, 'post /api/payments/webhook'],
      [api, 'signalworkflow:paymentapplied'],
      [wrk, 'handlesignal:paymentapplied'],
      [wrk, 'runactivity:closeorder'],
    ];
    const spans = await waitFor(
      async () => {
        const answer = await httpAt('GET', `${zipkin.url}/api/v2/trace/${traceId}`);
        if (answer.status !== 200) throw new Error(`Zipkin answered ${answer.status}`);
        const found = answer.body as ZipkinSpan[];
        const there = ([service, name, under]: (typeof expected)[number]) =>
          found.some(
            (s) =>
              s.localEndpoint?.serviceName === service &&
              s.name === name &&
              (!under || found.some((parent) => parent.name === under && descendsFrom(found, s, parent))),
          );
        const missing = expected.filter((span) => !there(span));
        if (missing.length > 0) throw new Error(`not there yet: ${missing.map((span) => span.join(':')).join(', ')}`);
        return found;
      },
      {
        what: `trace ${traceId} with every span of the checkout and the payment in Zipkin`,
        timeoutMs: 30_000,
        intervalMs: 250,
        retryErrors: true,
      },
    );

    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([traceId]));
    const services = new Set(spans.map((s) => s.localEndpoint?.serviceName));
    expect(services).toEqual(new Set([api, wrk]));

    const checkoutSpan = first(spans, 'post /api/checkout', api);
    // Started by the owner of starts in the worker, in the trace the checkout's promise carried.
    const start = first(spans, 'startworkflow:orderworkflow', wrk);
    const run = first(spans, 'runworkflow:orderworkflow', wrk);
    const persist = first(spans, 'runactivity:persistorder', wrk);
    const webhook = first(spans, 'post /api/payments/webhook', api);
    // Applied by the order's row as it was recorded, then the paymentApplied Signal, sent in the webhook's trace.
    const signal = first(spans, 'signalworkflow:paymentapplied', api);
    const handle = first(spans, 'handlesignal:paymentapplied', wrk);
    const close = first(spans, 'runactivity:closeorder', wrk);

    // The route names the request span; the stores' calls are spans of their own.
    expect(checkoutSpan.tags?.['http.route']).toBe('/api/checkout');
    expect(
      spans.some(
        (s) => s.localEndpoint?.serviceName === api && s.name === 'evalsha' && descendsFrom(spans, s, checkoutSpan),
      ),
    ).toBe(true);
    expect(
      spans.some((s) => s.localEndpoint?.serviceName === wrk && s.name === 'insert' && descendsFrom(spans, s, persist)),
    ).toBe(true);

    // Joined parent to child across the processes, through the context Temporal carries in headers.
    for (const [child, parent] of [
      [start, checkoutSpan],
      [run, start],
      [persist, run],
      [signal, webhook],
      [handle, signal],
      // The Signal's handler only records the payment; the workflow's main path acts on it, so
      // the payment's activities are children of the workflow's run, after the Signal in time.
      [close, run],
    ] as const) {
      expect(descendsFrom(spans, child, parent), `${child.name} under ${parent.name}`).toBe(true);
    }
    // In order: the checkout, the order persisted, then the payment and its activities.
    const order = [checkoutSpan, start, persist, webhook, signal, handle, close].map((s) => s.timestamp);
    expect(order).toEqual([...order].sort((a, b) => a - b));

    // Turning tracing off again is safe: the history this traced worker wrote replays on the bundle
    // every worker runs, with its spans dropped (the workflow interceptors stay: src/workers/bundle.ts).
    const temporal = await createTemporalClient(config);
    try {
      const history = await temporal.workflow.getHandle(orderWorkflowId(orderNo)).fetchHistory();
      await Worker.runReplayHistory(
        {
          workflowBundle: { codePath: inject('workflowBundlePath') },
          sinks: workflowSpanSinks(),
          replayName: 'traced-order-untraced',
          dataConverter: temporalDataConverter(config),
        },
        history,
      );
    } finally {
      await temporal.connection.close();
    }
  });

  it('leaves health checks untraced and answers no trace id for a client trace that is not sampled', async () => {
    const traceId = randomBytes(16).toString('hex');
    const unsampled = await httpAt('GET', `${apiUrl}/api/sales?limit=1`, {
      headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-00` },
    });
    expect(unsampled.headers.get('x-trace-id')).toBeNull();
    const health = await httpAt('GET', `${apiUrl}/readyz`);
    expect(health.headers.get('x-trace-id')).toBeNull();
    const sampled = await httpAt('GET', `${apiUrl}/api/sales?limit=1`);
    expect(sampled.headers.get('x-trace-id')).toMatch(/^[0-9a-f]{32}$/);
  });
});
