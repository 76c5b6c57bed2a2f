/**
 * The worker process's observability, started as `npm run worker` starts it (src/workers/main.ts
 * as a child process, so Runtime.install runs there only) against the real test stack: one
 * Prometheus port serving the SDK's `temporal_…` metrics and the app's activity outcomes, /livez
 * and /readyz following the Worker's state through a SIGTERM drain, and stdout made of pino JSON
 * lines only (worker state changes and workflow `log.*` included).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { RedisClient } from '../src/infra/redis.js';
import type { Pool } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { startApi, type RunningApi } from '../src/api/server.js';
import type { AppConfig } from '../src/config/index.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores, type Stores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { putOnSale } from './helpers/fixtures.js';
import { parseExposition, total } from './helpers/prometheus.js';

const root = resolve(import.meta.dirname, '..');
let config: AppConfig;
let worker: ChildProcess;
let exited: Promise<number | null>;
let stdout = '';
let stderr = '';
let metricsUrl: string;
let healthUrl: string;
const healthBeforeReady: { status: number; state: string }[] = [];
let api: RunningApi;
let pool: Pool;
let stores: Stores;
let redis: RedisClient;
let auth: ShopperAuth;

async function probe(path: string): Promise<{ status: number; state?: string } | 'REFUSED'> {
  try {
    const response = await fetch(`${healthUrl}${path}`);
    const body = (await response.json()) as { state?: string };
    return { status: response.status, state: body.state };
  } catch {
    return 'REFUSED';
  }
}

beforeAll(async () => {
  const taskQueue = `obs-worker-${randomUUID()}`;
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  healthUrl = `http://127.0.0.1:${healthPort}`;
  config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue, LOG_LEVEL: 'silent' });
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
  pool = createMysqlPool(config);
  stores = openStores(pool);
  redis = createRedis(config);
  auth = new ShopperAuth(config);
  api = await startApi(config, 0);
}, 120_000);

afterAll(async () => {
  await api?.close();
  if (worker?.pid && worker.exitCode === null) process.kill(-worker.pid, 'SIGKILL');
  await Promise.allSettled([pool?.end(), redis?.quit()]);
});

describe('worker process', () => {
  it('is live and ready while RUNNING; before that it answered 503 with its starting state', async () => {
    expect(await probe('/livez')).toEqual({ status: 200, state: 'RUNNING' });
    expect(await probe('/readyz')).toEqual({ status: 200, state: 'RUNNING' });
    for (const answer of healthBeforeReady)
      expect(answer).toEqual({ status: 503, state: expect.stringMatching(/^(STARTING|INITIALIZED)$/) });
    expect((await fetch(`${healthUrl}/nope`)).status).toBe(404);
  });

  it("serves temporal_ metrics and the app's activity outcomes on one Prometheus port once an order ran", async () => {
    const { sku } = await putOnSale(stores, redis, { stock: 3, perUserLimit: 1 });
    const token = await auth.issue(`w-${randomUUID().slice(0, 8)}`);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const accepted = await fetch(`${api.url}/api/checkout`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ sku, quantity: 1 }),
    });
    expect(accepted.status).toBe(202);
    const { orderNo } = (await accepted.json()) as { orderNo: string };
    const statusOf = async () =>
      ((await (await fetch(`${api.url}/api/orders/${orderNo}`, { headers })).json()) as { status: string }).status;
    await waitFor(async () => (await statusOf()) === 'AWAITING_PAYMENT', {
      what: `${orderNo} persisted by the spawned worker`,
      timeoutMs: 30_000,
    });
    // Cancelling closes the workflow: cancelUnpaidOrder and releaseReservation run, and it logs "order closed".
    expect((await fetch(`${api.url}/api/orders/${orderNo}/cancel`, { method: 'POST', headers })).status).toBe(202);
    await waitFor(async () => (await statusOf()) === 'CANCELLED', { what: `${orderNo} cancelled`, timeoutMs: 30_000 });

    const samples = await waitFor(
      async () => {
        const response = await fetch(metricsUrl);
        const parsed = parseExposition(await response.text());
        return (
          total(parsed, 'flash_activity_outcomes', { activity_type: 'releaseReservation', outcome: 'completed' }) >=
            1 && parsed
        );
      },
      { what: 'activity outcomes on the worker metrics port', timeoutMs: 15_000 },
    );
    expect(samples.some((s) => s.name.startsWith('temporal_'))).toBe(true);
    expect(total(samples, 'temporal_worker_start', { task_queue: config.temporal.taskQueue })).toBeGreaterThanOrEqual(
      1,
    );
    expect(
      total(samples, 'temporal_activity_execution_latency_count', { task_queue: config.temporal.taskQueue }),
    ).toBeGreaterThanOrEqual(1);
    for (const activity of ['persistOrder', 'cancelUnpaidOrder', 'releaseReservation']) {
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
});
