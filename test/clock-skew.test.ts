/**
 * A worker whose clock runs 20 minutes ahead of the others (Debian's faketime shifts what its
 * process's clock answers, nothing else), as the production worker process against the real test
 * stack: nothing it decides may rest on its own clock. Reservations are judged by Redis's clock, and
 * its /readyz shows how far it is from Redis's and MySQL's.
 */
import { RECONCILE_WORKFLOW_TYPE } from '../src/model/workflow-types.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { describe, expect, inject } from 'vitest';
import { newOrderNo } from '../src/order/order-numbers.js';
import type { ReconcileReport } from '../src/model/reconcile-workflow.js';
import type { ReconcileWorkflow } from '../src/workflows/reconcile.js';
import { appCommandLine, clockAheadBy, type AppRole } from '../stack/app-processes.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { clientsTest } from './helpers/stack-test.js';
import { oneUnitOrder, putOnSale } from './helpers/fixtures.js';
import { PromiseQueue } from '../src/redis/promise-queue.js';
import { httpAt } from './helpers/http.js';

const root = resolve(import.meta.dirname, '..');
const AHEAD_MS = 20 * 60_000;
const taskQueue = `skewed-worker-${randomUUID()}`;
const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue, LOG_LEVEL: 'warn' });

/**
 * A process of the app started as npm starts it, its wall clock `aheadMs` ahead; its output kept for a failure's
 * message.
 */
function spawnAhead(
  role: AppRole,
  aheadMs: number,
  env: Record<string, string>,
): { child: ChildProcess; output: () => string } {
  let output = '';
  // The launcher's command line (faketime keeps timers on the true monotonic clock), spawned here with its output
  // piped: there is no log file to point a failure at.
  const command = appCommandLine({
    role,
    root,
    wrapper: clockAheadBy(aheadMs),
    env: { ...process.env, ...inject('stackEnv'), ...env },
  });
  const child = spawn(command.command, command.args, {
    cwd: root,
    env: command.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: tsx's child must not outlive the test
  });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return { child, output: () => output };
}

async function untilAnswers(url: string, what: string, output: () => string): Promise<void> {
  await waitFor(async () => (await httpAt('GET', url).catch(() => null)) !== null, {
    what,
    timeoutMs: 90_000,
    intervalMs: 100,
  }).catch((err: unknown) => {
    throw new Error(`${String(err)}\noutput:\n${output()}`);
  });
}

/** The production worker process of `taskQueue`, 20 minutes ahead, once its /readyz answers 200. */
const it = clientsTest(config).extend('worker', { scope: 'file' }, async ({}, { onCleanup }) => {
  const healthPort = await freePort();
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  const started = spawnAhead('worker', AHEAD_MS, {
    TEMPORAL_TASK_QUEUE: taskQueue,
    WORKER_METRICS_PORT: String(await freePort()),
    WORKER_HEALTH_PORT: String(healthPort),
    WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
    LOG_LEVEL: 'warn',
  });
  const worker = started.child;
  const kill = () => {
    if (worker.pid && worker.exitCode === null) process.kill(-worker.pid, 'SIGKILL');
  };
  await waitFor(async () => (await httpAt('GET', `${healthUrl}/readyz`).catch(() => null))?.status === 200, {
    what: "the skewed worker's /readyz to answer 200",
    timeoutMs: 90_000,
    intervalMs: 100,
  }).catch((err: unknown) => {
    kill();
    throw new Error(`${String(err)}\nworker output:\n${started.output()}`);
  });
  onCleanup(kill);
  return { healthUrl };
});

describe('a worker 20 minutes ahead of Redis and MySQL', () => {
  it('is ahead indeed, and its /readyz shows how far from Redis and from MySQL', async ({ worker }) => {
    const body = (await httpAt('GET', `${worker.healthUrl}/readyz`)).body as {
      clocks?: Record<string, { offsetMs: number; uncertaintyMs: number }>;
    };
    // Offsets are the other clock minus this process's: both about 20 minutes behind it.
    for (const source of ['redis', 'mysql']) {
      const offset = body.clocks?.[source]?.offsetMs;
      expect(offset, `${source}: ${JSON.stringify(body.clocks)}`).toBeLessThan(-AHEAD_MS + 5_000);
      expect(offset).toBeGreaterThan(-AHEAD_MS - 5_000);
    }
  });

  it("judges a reservation's age by Redis's clock: the reconciler keeps a promise made a moment ago", async ({
    clients,
    worker: _worker,
  }) => {
    const { stores, redis, inventory, temporal } = clients;
    const promises = new PromiseQueue(redis);
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const orderNo = newOrderNo();
    const { unitPriceCents: _price, ...input } = oneUnitOrder(sale, {
      orderNo,
      userId: 'fresh-promise',
      createdAtMs: Date.now(),
      paymentWindow: '30m',
    });
    // Its start is handed off far ahead (by Redis's clock), so only the reconciler looks at it.
    const reserved = await inventory.reserve({
      orderNo,
      sku: sale.sku,
      userId: 'fresh-promise',
      quantity: 1,
      promise: { input, handoffMs: 120_000 },
    });
    expect(reserved.outcome).toBe('RESERVED');
    const report: ReconcileReport = await temporal.workflow.execute<typeof ReconcileWorkflow>(RECONCILE_WORKFLOW_TYPE, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `reconcile-skew-${randomUUID()}`,
      args: [{ reservationGraceMs: 60_000, skus: [sale.sku], pageSize: 100 }],
    });
    // By this worker's clock the promise is 20 minutes old, past the 15 a promise may wait.
    expect(report.sales[0]).toMatchObject({ releasedOrphans: 0, live: 1 });
    expect(await stores.orders.getOrder(orderNo)).toBeNull();
    expect((await inventory.getReservation(sale.sku, orderNo))?.state).toBe('RESERVED');
    await promises.dropStartEntry(sale.sku, orderNo);
  });

  it("bounds Temporal's clock from below by the activities it ran (Temporal cannot be asked): 20 minutes behind it", async ({
    worker,
  }) => {
    const body = (await httpAt('GET', `${worker.healthUrl}/readyz`)).body as {
      clocks?: Record<string, { atLeastMs?: number }>;
    };
    // Scheduled by Temporal's clock, started by this worker's: at most their offset, by the task's wait.
    const bound = body.clocks?.temporal?.atLeastMs;
    expect(bound, JSON.stringify(body.clocks)).toBeLessThanOrEqual(-AHEAD_MS + 1_000);
    expect(bound).toBeGreaterThan(-AHEAD_MS - 10_000);
  });
});

describe('an API 2 s ahead of Redis', () => {
  it("is unready, says why, and shows how far its clock is from Redis's and MySQL's", async () => {
    const port = await freePort();
    const api = spawnAhead('api', 2_000, {
      PORT: String(port),
      TEMPORAL_TASK_QUEUE: config.temporal.taskQueue,
      LOG_LEVEL: 'warn',
    });
    try {
      const url = `http://127.0.0.1:${port}/readyz`;
      await untilAnswers(url, 'the skewed API to answer', api.output);
      // The first measurement may land just after the listener opens.
      const body = await waitFor(
        async () => {
          const answer = await httpAt('GET', url);
          const json = answer.body as {
            error?: { message: string };
            clocks?: Record<string, { offsetMs: number; uncertaintyMs: number }>;
          };
          return answer.status === 503 && json.clocks?.redis && json.clocks.mysql ? json : false;
        },
        { what: 'the skewed API to be unready with both clocks measured', timeoutMs: 10_000 },
      );
      // reserve.lua judges the cutoffs it writes by Redis's clock: it must take no checkout.
      expect(body.error?.message).toMatch(
        /^clock: this process and Redis differ by \d+ ms, more than half of CLOCK_SKEW_MARGIN \(250 ms\)$/,
      );
      // Exact within the measurement's own uncertainty (half its round trip), whatever the load.
      for (const source of ['redis', 'mysql']) {
        const clock = body.clocks?.[source];
        expect(Math.abs((clock?.offsetMs ?? 0) + 2_000), `${source}: ${JSON.stringify(clock)}`).toBeLessThanOrEqual(
          (clock?.uncertaintyMs ?? 0) + 50,
        );
      }
    } finally {
      if (api.child.pid && api.child.exitCode === null) process.kill(-api.child.pid, 'SIGKILL');
    }
  });
});
