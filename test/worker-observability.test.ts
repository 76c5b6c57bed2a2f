/**
 * The worker process's observability, started as `npm run worker` starts it (src/workers/main.ts
 * as a child process, so Runtime.install runs there only) against the real test stack: one
 * Prometheus port serving the SDK's `temporal_…` metrics and the app's activity outcomes, /livez
 * and /readyz following the Worker's state through a SIGTERM drain, stdout made of pino JSON
 * lines only (worker state changes and workflow `log.*` included), and its workflow cache's
 * figures published through Redis for the API to relay to the dashboard, gone once it stops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { startApi, type RunningApi } from '../src/api/server.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { putOnSale } from './helpers/fixtures.js';
import { parseExposition, total } from './helpers/prometheus.js';
import type { WorkerCacheFigures } from '../src/redis/worker-figures.js';
import { parseCacheCounters, STICKY_CACHE_METRICS } from '../src/workers/cache-figures.js';
import { httpAt } from './helpers/http.js';

const root = resolve(import.meta.dirname, '..');
const taskQueue = `obs-worker-${randomUUID()}`;
const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue, LOG_LEVEL: 'silent' });
const auth = new ShopperAuth(config);
const it = storeClientsTest(config);
let worker: ChildProcess;
let exited: Promise<number | null>;
let stdout = '';
let stderr = '';
let metricsUrl: string;
let healthUrl: string;
const healthBeforeReady: { status: number; state: string }[] = [];
let api: RunningApi;

async function probe(path: string): Promise<{ status: number; state?: string } | 'REFUSED'> {
  try {
    const response = await httpAt('GET', `${healthUrl}${path}`);
    const body = response.body as { state?: string };
    return { status: response.status, state: body.state };
  } catch {
    return 'REFUSED';
  }
}

// The worker process and the API: a hook rather than a fixture, as every test reads that one process and its output.
beforeAll(async () => {
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  healthUrl = `http://127.0.0.1:${healthPort}`;
  // One node process with tsx as its loader, as `npm run worker` (node dist/workers/main.js) is one
  // process: the SIGTERM below reaches the worker itself. The tsx CLI would run it in a child and
  // relay the signal, SIGKILLing that child when it has not reported the signal within 30 ms (a
  // worker whose event loop is busy on a loaded machine): no drain, no state lines, exit code 143.
  worker = spawn(process.execPath, ['--import', 'tsx', join(root, 'src', 'workers', 'main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      ...inject('stackEnv'),
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKER_METRICS_PORT: String(metricsPort),
      WORKER_HEALTH_PORT: String(healthPort),
      WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
      LOG_LEVEL: 'debug',
      // A cache of two: the cache test below opens four orders at once, so that some are evicted and replayed.
      WORKER_MAX_CACHED_WORKFLOWS: '2',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: nothing it starts may outlive the test (afterAll kills the group).
    detached: true,
  });
  worker.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  worker.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  // 'close', not 'exit': 'exit' may come before the last of its stdout is read (Node's docs say the
  // stdio streams may still be open then), and the drain's last lines are what the test reads.
  exited = new Promise((done) => worker.once('close', (code) => done(code)));
  await waitFor(
    async () => {
      const answer = await probe('/readyz');
      if (answer !== 'REFUSED' && answer.status !== 200)
        healthBeforeReady.push({ status: answer.status, state: answer.state ?? '' });
      return answer !== 'REFUSED' && answer.status === 200;
    },
    { what: "the worker's /readyz to answer 200", timeoutMs: 90_000, intervalMs: 50 },
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\nworker stdout:\n${stdout}\nstderr:\n${stderr}`);
  });
  api = await startApi(config, 0);
}, 120_000);

afterAll(async () => {
  await api?.close();
  if (worker?.pid && worker.exitCode === null) process.kill(-worker.pid, 'SIGKILL');
});

/**
 * A shopper's checkout of one unit; the order's number. A 503 (Redis slow to answer on a loaded machine) is retried
 * with the same Idempotency-Key, as a client does.
 */
async function checkout(sku: string): Promise<{ orderNo: string; headers: Record<string, string> }> {
  const token = await auth.issue(`w-${randomUUID().slice(0, 8)}`);
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const key = randomUUID();
  const orderNo = await waitFor(
    async () => {
      const answer = await httpAt('POST', `${api.url}/api/checkout`, {
        headers: { ...headers, 'idempotency-key': key },
        raw: JSON.stringify({ sku, quantity: 1 }),
      });
      const body = answer.body as { orderNo: string };
      if (answer.status === 503) return false;
      expect(answer.status, JSON.stringify(body)).toBe(202);
      return body.orderNo;
    },
    { what: `a checkout of ${sku} answered 202`, timeoutMs: 15_000, intervalMs: 200 },
  );
  return { orderNo, headers };
}

async function statusOf(order: { orderNo: string; headers: Record<string, string> }): Promise<string> {
  const response = await httpAt('GET', `${api.url}/api/orders/${order.orderNo}`, { headers: order.headers });
  return (response.body as { status: string }).status;
}

/** The workers the API lists (GET /api/admin/workers): those of this file's task queue still publishing. */
async function workersListed(): Promise<WorkerCacheFigures[]> {
  const response = await httpAt('GET', `${api.url}/api/admin/workers`, {
    headers: { authorization: `Bearer ${config.adminToken}` },
  });
  expect(response.status).toBe(200);
  return (response.body as { workers: WorkerCacheFigures[] }).workers;
}

describe('worker process', () => {
  it('is live and ready while RUNNING; before that it answered 503 with its starting state', async () => {
    expect(await probe('/livez')).toEqual({ status: 200, state: 'RUNNING' });
    expect(await probe('/readyz')).toEqual({ status: 200, state: 'RUNNING' });
    for (const answer of healthBeforeReady)
      expect(answer).toEqual({ status: 503, state: expect.stringMatching(/^(STARTING|INITIALIZED)$/) });
    expect((await httpAt('GET', `${healthUrl}/nope`)).status).toBe(404);
  });

  it("serves temporal_ metrics and the app's activity outcomes on one Prometheus port once an order ran", async ({
    clients,
  }) => {
    const { stores, redis } = clients;
    const { sku } = await putOnSale(stores, redis, { stock: 3, perUserLimit: 1 });
    const token = await auth.issue(`w-${randomUUID().slice(0, 8)}`);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const accepted = await httpAt('POST', `${api.url}/api/checkout`, {
      headers,
      raw: JSON.stringify({ sku, quantity: 1 }),
    });
    expect(accepted.status).toBe(202);
    const { orderNo } = accepted.body as { orderNo: string };
    const statusOf = async () =>
      ((await httpAt('GET', `${api.url}/api/orders/${orderNo}`, { headers })).body as { status: string }).status;
    await waitFor(async () => (await statusOf()) === 'AWAITING_PAYMENT', {
      what: `${orderNo} persisted by the spawned worker`,
      timeoutMs: 30_000,
    });
    // Cancelling closes the workflow: the one close runs (closeOrder), and it logs "order closed".
    expect((await httpAt('POST', `${api.url}/api/orders/${orderNo}/cancel`, { headers })).status).toBe(202);
    await waitFor(async () => (await statusOf()) === 'CANCELLED', { what: `${orderNo} cancelled`, timeoutMs: 30_000 });

    const samples = await waitFor(
      async () => {
        const response = await httpAt('GET', metricsUrl);
        const parsed = parseExposition(response.body);
        return (
          total(parsed, 'flash_activity_outcomes', { activity_type: 'closeOrder', outcome: 'completed' }) >= 1 && parsed
        );
      },
      { what: 'activity outcomes on the worker metrics port', timeoutMs: 15_000 },
    );
    expect(samples.some((s) => s.name.startsWith('temporal_'))).toBe(true);
    expect(total(samples, 'temporal_worker_start', { task_queue: config.temporal.taskQueue })).toBeGreaterThanOrEqual(
      1,
    );
    // This order's activities all run as local activities now (persistOrder, and the close in one task).
    expect(
      total(samples, 'temporal_activity_execution_latency_count', { task_queue: config.temporal.taskQueue }) +
        total(samples, 'temporal_local_activity_execution_latency_count', { task_queue: config.temporal.taskQueue }),
    ).toBeGreaterThanOrEqual(1);
    for (const activity of ['persistOrder', 'closeOrder']) {
      expect(
        total(samples, 'flash_activity_outcomes', {
          activity_type: activity,
          outcome: 'completed',
          task_queue: config.temporal.taskQueue,
        }),
        activity,
      ).toBeGreaterThanOrEqual(1);
    }
    expect(total(samples, 'flash_activity_outcomes', { outcome: 'failed' })).toBe(0);
    expect(total(samples, 'flash_activity_retries')).toBe(0);
  });

  it("publishes its workflow cache for the dashboard, the runtime's hits, misses and forced evictions, which the API relays", async ({
    clients,
  }) => {
    const { stores, redis } = clients;
    // Four orders open at once in a cache of two: later ones evict earlier ones (forced evictions), and the cancels
    // then reach evicted workflows, which are replayed (misses); each other task finds its workflow cached (hits).
    // It publishes every 5 s what its counters did since the last time; the API relays the latest. Collected from the
    // start: on a loaded machine the cancels took longer than that, and the publications of the misses and evictions
    // had been replaced before a collection begun after them looked (0 misses, 0 evictions, 298 hits, once in CI).
    const published = new Map<string, WorkerCacheFigures>();
    const sum = (key: 'hits' | 'misses' | 'forcedEvictions') =>
      [...published.values()].reduce((n, figures) => n + (figures.interval?.[key] ?? 0), 0);
    const collect = async () => {
      for (const figures of await workersListed()) published.set(figures.at, figures);
    };
    let collecting = true;
    const collector = (async () => {
      while (collecting) {
        await collect().catch(() => undefined); // the API busy: the next look sees the same publication
        await sleep(250);
      }
    })();
    try {
      const { sku } = await putOnSale(stores, redis, { stock: 4, perUserLimit: 1 });
      const orders = await Promise.all(Array.from({ length: 4 }, () => checkout(sku)));
      await waitFor(async () => (await Promise.all(orders.map(statusOf))).every((s) => s === 'AWAITING_PAYMENT'), {
        what: 'four orders persisted by the spawned worker',
        timeoutMs: 30_000,
      });
      // One at a time, each retried on 503 (no answer within WRITE_DEADLINE: a replay on a loaded machine); once
      // retried, 409 NOT_CANCELLABLE says the earlier attempt took.
      for (const order of orders) {
        let retried = false;
        await waitFor(
          async () => {
            const cancel = await httpAt('POST', `${api.url}/api/orders/${order.orderNo}/cancel`, {
              headers: order.headers,
            });
            if (cancel.status === 503) {
              retried = true;
              return false;
            }
            if (retried && cancel.status === 409) return true;
            expect(cancel.status, cancel.body).toBe(202);
            return true;
          },
          { what: `${order.orderNo}'s cancel accepted`, timeoutMs: 30_000, intervalMs: 200 },
        );
      }
      await waitFor(async () => (await Promise.all(orders.map(statusOf))).every((s) => s === 'CANCELLED'), {
        what: 'the four orders cancelled',
        timeoutMs: 30_000,
      });

      await waitFor(
        async () => {
          await collect();
          return sum('hits') > 0 && sum('misses') > 0 && sum('forcedEvictions') > 0;
        },
        {
          what: () =>
            `hits, misses and forced evictions relayed by the API (so far ${sum('hits')}, ${sum('misses')}, ${sum('forcedEvictions')} in ${published.size} publications)`,
          timeoutMs: 30_000,
          intervalMs: 250,
        },
      );
      for (const figures of published.values()) {
        expect(figures.worker).toBe(`${hostname()}:${worker.pid}`);
        expect(figures.maxCached).toBe(2);
        expect(figures.cached).toBeGreaterThanOrEqual(0);
        expect(figures.cached).toBeLessThanOrEqual(2);
      }

      // The Core runtime's own counters, under the names docs/operations.md lists, at least what was relayed.
      const text = (await httpAt('GET', metricsUrl)).body;
      const samples = parseExposition(text);
      const taskQueue = config.temporal.taskQueue;
      for (const name of Object.values(STICKY_CACHE_METRICS))
        expect(
          samples.some((s) => s.name === name && s.labels.task_queue === taskQueue),
          `${name} on the worker's metrics port`,
        ).toBe(true);
      const counters = parseCacheCounters(text, taskQueue);
      expect(counters).toEqual({
        hits: total(samples, STICKY_CACHE_METRICS.hits, { task_queue: taskQueue }),
        misses: total(samples, STICKY_CACHE_METRICS.misses, { task_queue: taskQueue }),
        forcedEvictions: total(samples, STICKY_CACHE_METRICS.forcedEvictions, { task_queue: taskQueue }),
      });
      expect(sum('hits')).toBeLessThanOrEqual(counters.hits);
      expect(sum('misses')).toBeLessThanOrEqual(counters.misses);
      expect(sum('forcedEvictions')).toBeLessThanOrEqual(counters.forcedEvictions);
    } finally {
      collecting = false;
      await collector;
    }
  });

  it('writes pino JSON lines only: its own, the SDK worker state changes and the workflow log calls', async () => {
    // Workflow log calls reach the Runtime logger through a sink, after the workflow task completes.
    await waitFor(() => stdout.includes('"msg":"order closed"'), {
      what: "the workflow's 'order closed' log line",
      timeoutMs: 10_000,
    });
    const lines = stdout.split('\n').filter(Boolean);
    const parsed = lines.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
    });
    expect(
      parsed.every(
        (line) => line.service === 'worker' && typeof line.level === 'number' && typeof line.time === 'number',
      ),
    ).toBe(true);
    expect(parsed).toContainEqual(
      expect.objectContaining({ msg: 'Worker state changed', state: 'RUNNING', sdkComponent: 'worker' }),
    );
    expect(parsed).toContainEqual(
      expect.objectContaining({
        msg: 'order closed',
        status: 'CANCELLED',
        sdkComponent: 'workflow',
        workflowType: 'OrderWorkflow',
      }),
    );
    expect(parsed).toContainEqual(
      expect.objectContaining({ level: 20, msg: 'Workflow completed', workflowType: 'OrderWorkflow' }),
    );
    expect(parsed).toContainEqual(expect.objectContaining({ msg: 'worker polling' }));
    expect(stdout).not.toMatch(/\[INFO\] Worker state changed/);
  });

  it('is not ready once SIGTERM starts the drain, and exits cleanly', async () => {
    const afterSignal: ({ status: number; state?: string } | 'REFUSED')[] = [];
    worker.kill('SIGTERM');
    let code: number | null | undefined;
    void exited.then((c) => (code = c));
    // Until its stdio has closed (everything it wrote is read), within a bound of the test's own.
    const giveUpAt = Date.now() + 45_000;
    while (code === undefined && Date.now() < giveUpAt) {
      afterSignal.push(await probe('/readyz'));
      await new Promise((done) => setTimeout(done, 20));
    }
    expect(code, `the worker had not exited 45 s after SIGTERM; stderr:\n${stderr}`).not.toBeUndefined();
    // The process has exited: one more probe sees that, whenever between two probes the exit came.
    afterSignal.push(await probe('/readyz'));
    // Readiness flips once the signal arrives: never 200 again after.
    const firstNot200 = afterSignal.findIndex((answer) => answer === 'REFUSED' || answer.status !== 200);
    expect(firstNot200).toBeGreaterThanOrEqual(0);
    expect(afterSignal.slice(firstNot200).filter((answer) => answer !== 'REFUSED' && answer.status === 200)).toEqual(
      [],
    );
    // With nothing in flight the drain lasts a few milliseconds, so the probe may only ever see the
    // port closed; whatever it did see after the flip is a 503 naming a stopping state.
    for (const answer of afterSignal.slice(firstNot200)) {
      if (answer !== 'REFUSED')
        expect(answer).toEqual({ status: 503, state: expect.stringMatching(/^(STOPPING|DRAINING|DRAINED|STOPPED)$/) });
    }
    // The worker went through the drain (the SDK's state changes, now pino lines), then exited cleanly.
    const stateChanges = stdout.split('\n').filter((line) => line.includes('"msg":"Worker state changed"'));
    expect(
      stateChanges.some((line) => /"state":"(STOPPING|DRAINING)"/.test(line)),
      `exit code ${code}; state changes:\n${stateChanges.join('\n')}\nstderr:\n${stderr}`,
    ).toBe(true);
    expect(code).toBe(0);
    expect(stdout).toMatch(/"msg":"worker stopped"/);
  }, 60_000);

  it("is absent from the API's list of workers once stopped, within its last publication's lifetime (15 s)", async () => {
    await waitFor(async () => (await workersListed()).length === 0, {
      what: 'the stopped worker to drop off GET /api/admin/workers',
      timeoutMs: 30_000,
      intervalMs: 500,
    });
  }, 40_000);
});
