/**
 * A deploy in the middle of a sale, as an operator runs it (docs/operations.md, "Deploying during a sale"): worker
 * processes of build A (this checkout's bundle) sell, build B (the same code with OrderWorkflow changed so that A's
 * histories do not replay on it) starts beside them, `npm run rollout` smoke-tests B, makes it current and watches A
 * drain while A's open orders are paid and cancelled through the API; then stops A's worker. Then a rollback to A
 * with B's orders open. Every order's workflow tasks ran on the version it started on, none failed, and the sale's
 * invariants hold.
 */
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import type { Pool } from 'mysql2/promise';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { startApi, type RunningApi } from '../src/api/server.js';
import type { AppConfig } from '../src/config/index.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores, type Stores } from '../src/db/stores.js';
import { createRedis, type RedisClient } from '../src/infra/redis.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { SalesService } from '../src/sales/sales-service.js';
import { SMOKE_SALE } from '../src/order/smoke-order.js';
import type { RolloutReport } from '../src/workers/rollout.js';
import { spawnLogged, type ManagedProcess } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { buy, retrying, sendPayment, type TrafficPlan, type TrafficResult } from '../chaos/shoppers.js';
import { buildVariant, type VariantBuild } from './helpers/builds.js';
import { testConfig } from './helpers/env.js';
import { runScript } from './helpers/run-script.js';
import { API_TEST_ENV, startTestApp } from './helpers/app.js';
import { ShopperAuth } from '../src/api/auth.js';

const root = resolve(import.meta.dirname, '..');
const taskQueue = `rollout-${randomUUID()}`;
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  ...inject('stackEnv'),
  ...API_TEST_ENV,
  TEMPORAL_TASK_QUEUE: taskQueue,
  WORKER_METRICS_PORT: '0',
  WORKER_HEALTH_PORT: '0',
};

let config: AppConfig;
let pool: Pool;
let stores: Stores;
let redis: RedisClient;
let connection: Connection;
let client: Client;
let deployments: WorkerDeployments;
let api: RunningApi;
let plan: TrafficPlan;
const result: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
const workers: ManagedProcess[] = [];
let buildA: VariantBuild;
let buildB: VariantBuild;

beforeAll(async () => {
  config = testConfig(env);
  pool = createMysqlPool(config);
  stores = openStores(pool);
  redis = createRedis(config);
  connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
  deployments = new WorkerDeployments(connection, config.temporal.namespace, 'rollout-test');
  const bundleA = inject('workflowBundlePath');
  buildA = { bundlePath: bundleA, buildId: readFileSync(`${bundleA}.hash`, 'utf8').trim() };
  // Build B decides each order one durable timer later: a change A's histories do not replay on.
  buildB = await buildVariant(inject('stackDataDir'), 'b', 'workflows/order.ts', (source) =>
    replaceOnce(
      replaceOnce(source, '  proxyActivities,\n', '  proxyActivities,\n  sleep,\n'),
      '    const { outcome, operatorCancellation } = await this.decide();',
      '    await sleep(1);\n    const { outcome, operatorCancellation } = await this.decide();',
    ),
  );
  api = await startApi(config, 0);
  const auth = new ShopperAuth(config);
  const sale = { sku: `ROLL-${randomUUID().slice(0, 8)}`.toUpperCase(), priceCents: 1_500 };
  await SalesService.onClients(stores, redis, taskQueue).create({
    ...sale,
    name: 'Rollout sale',
    stock: 60,
    perUserLimit: 1,
  });
  plan = {
    ...sale,
    shoppers: 0,
    concurrency: 10,
    arrivalsPerSecond: 100,
    apiUrls: [api.url],
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: config.webhookSecret,
    paymentWindowMs: config.paymentWindowMs,
    retryForMs: 20_000,
  };
}, 180_000);

afterAll(async () => {
  await Promise.allSettled(workers.map((worker) => worker.stop(15_000)));
  await api?.close();
  await Promise.allSettled([pool?.end(), redis?.quit(), connection?.close()]);
});

/** `source` with `anchor` replaced once: a change whose anchor moved fails here, not as a broken build. */
function replaceOnce(source: string, anchor: string, replacement: string): string {
  if (source.split(anchor).length !== 2)
    throw new Error(`build B's change: ${JSON.stringify(anchor)} is not in the source once`);
  return source.replace(anchor, replacement);
}

/** A worker process of `build`, as the operator's deploy starts it; `promote`: whether it makes itself current. */
function startWorker(build: VariantBuild, promote: 'on-start' | 'by-rollout'): ManagedProcess {
  const worker = spawnLogged(
    `worker ${build.buildId}`,
    join(root, 'node_modules', '.bin', 'tsx'),
    ['src/workers/main.ts'],
    {
      logFile: join(inject('stackDataDir'), `rollout-worker-${build.buildId}-${workers.length}.log`),
      cwd: root,
      env: { ...env, WORKFLOW_BUNDLE_PATH: build.bundlePath, WORKER_BUILD_ID: build.buildId, WORKER_PROMOTE: promote },
    },
  );
  workers.push(worker);
  return worker;
}

async function checkout(users: string[]): Promise<string[]> {
  const outcomes = await Promise.all(users.map((userId) => buy(plan, userId, 20_000, false, result)));
  return outcomes.map((outcome) => {
    if (outcome.answer.kind !== 'accepted')
      throw new Error(`checkout of ${outcome.userId}: ${JSON.stringify(outcome.answer)}`);
    return outcome.answer.orderNo;
  });
}

async function statusOf(orderNo: string): Promise<string> {
  const row = await stores.orders.getOrder(orderNo);
  return row?.status ?? 'NO_ROW';
}

async function untilStatus(orderNos: string[], wanted: string[], what: string): Promise<void> {
  await waitFor(async () => (await Promise.all(orderNos.map(statusOf))).every((status) => wanted.includes(status)), {
    what,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
}

async function pay(orderNos: string[]): Promise<void> {
  await Promise.all(
    orderNos.map((orderNo) =>
      sendPayment(plan, { orderNo, eventId: `evt-${orderNo}`, amountCents: plan.priceCents, kind: 'pay' }, result),
    ),
  );
}

async function cancel(orderNos: string[], userOf: Map<string, string>): Promise<void> {
  await Promise.all(
    orderNos.map(async (orderNo) => {
      const token = await plan.tokenFor(userOf.get(orderNo)!);
      const call = await retrying(plan, 'cancel', result, (apiUrl) =>
        fetch(`${apiUrl}/api/orders/${orderNo}/cancel`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        }),
      );
      expect([200, 202], `cancel of ${orderNo}`).toContain(call.status);
    }),
  );
}

/** The build ids that completed the order's workflow tasks, and how many of its tasks failed. */
async function ranOn(orderNo: string): Promise<{ buildIds: string[]; failedTasks: number; closed: boolean }> {
  const handle = client.workflow.getHandle(orderWorkflowId(orderNo));
  const history = await handle.fetchHistory();
  const buildIds = new Set<string>();
  let failedTasks = 0;
  for (const event of history.events ?? []) {
    const completed = event.workflowTaskCompletedEventAttributes;
    if (completed) buildIds.add(completed.deploymentVersion?.buildId || '(none)');
    if (event.workflowTaskFailedEventAttributes) failedTasks++;
  }
  const { status } = await handle.describe();
  return { buildIds: [...buildIds], failedTasks, closed: status.name !== 'RUNNING' };
}

function rolloutTo(
  build: VariantBuild,
  stopPid: number,
  lines: string[],
): Promise<{ code: number | null; output: string }> {
  return runScript(
    'scripts/rollout.ts',
    ['promote', build.buildId, '--drain-timeout', '120s', '--stop-pids', String(stopPid), '--json'],
    env,
    (line) => lines.push(line),
  );
}

const userOf = new Map<string, string>();

async function sell(prefix: string, count: number): Promise<string[]> {
  const users = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  const orderNos = await checkout(users);
  orderNos.forEach((orderNo, i) => userOf.set(orderNo, users[i]!));
  return orderNos;
}

it('deploys build B in the middle of a sale: A’s orders close on A, new ones run on B, A drains and stops; then rolls back to A', async () => {
  const workerA = startWorker(buildA, 'on-start');
  await waitFor(async () => (await deployments.describeDeployment(taskQueue))?.currentBuildId === buildA.buildId, {
    what: `build A (${buildA.buildId}) to be current`,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  // On A: 20 orders; 5 paid before the deploy, 15 still awaiting payment when B becomes current.
  const onA = await sell('a', 20);
  await untilStatus(onA, ['AWAITING_PAYMENT'], 'A’s orders to await payment');
  await pay(onA.slice(0, 5));
  await untilStatus(onA.slice(0, 5), ['PAID'], 'A’s first five orders to be paid');

  const workerB = startWorker(buildB, 'by-rollout');
  const lines: string[] = [];
  const deploy = rolloutTo(buildB, workerA.pid, lines);
  await waitFor(async () => lines.some((line) => line.includes('is current')), {
    what: 'the rollout to make B current',
    timeoutMs: 90_000,
    intervalMs: 200,
    abortIf: () => (lines.some((line) => line.includes('failed:')) ? lines.join('\n') : undefined),
  });
  // Mid-sale on B: new orders; A's open orders paid and cancelled through the API while A drains.
  const onB = await sell('b', 10);
  await untilStatus(onB, ['AWAITING_PAYMENT'], 'B’s orders to await payment');
  await pay([...onA.slice(5, 13), ...onB.slice(0, 5)]);
  await cancel(onA.slice(13), userOf);
  const deployed = await deploy;
  expect(deployed.code, deployed.output).toBe(0);
  const report = JSON.parse(deployed.output.trim().split('\n').at(-1)!) as RolloutReport;
  console.log(`[rollout] A -> B: ${lines.filter((line) => line.startsWith('[rollout]')).join('\n')}`);
  expect(report).toMatchObject({
    previousBuildId: buildA.buildId,
    targetBuildId: buildB.buildId,
    previousStopped: true,
  });
  expect(report.openAtSwitch[buildA.buildId]).toBe(15);
  expect(report.drainedAfterMs).not.toBeNull();
  expect(workerA.exitCodeNow).not.toBeUndefined();
  // The operator's view: B current with its 5 unpaid orders, A drained.
  const view = await fetch(`${api.url}/api/admin/deployment`, {
    headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}` },
  });
  expect(view.status).toBe(200);
  expect(await view.json()).toMatchObject({
    deploymentName: taskQueue,
    currentBuildId: buildB.buildId,
    versions: expect.arrayContaining([
      { buildId: buildA.buildId, status: 'DRAINED', openOrders: 0 },
      { buildId: buildB.buildId, status: 'CURRENT', openOrders: 5 },
    ]),
    unversionedOpenOrders: 0,
  });

  for (const orderNo of onA)
    expect(await ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });
  for (const orderNo of onB) expect((await ranOn(orderNo)).buildIds, orderNo).toEqual([buildB.buildId]);
  await untilStatus(onA, ['PAID', 'CANCELLED'], 'A’s orders to close');

  // A's history does not replay on B: without pinning, the deploy would have failed every open order of A.
  const historyOfA = await client.workflow.getHandle(orderWorkflowId(onA[5]!)).fetchHistory();
  await expect(
    Worker.runReplayHistory({ workflowBundle: { codePath: buildB.bundlePath } }, historyOfA),
  ).rejects.toBeInstanceOf(DeterminismViolationError);

  // The rollback: A's workers again beside B, B's five open orders paid and cancelled while B drains.
  const workerA2 = startWorker(buildA, 'by-rollout');
  const backLines: string[] = [];
  const rollback = rolloutTo(buildA, workerB.pid, backLines);
  await waitFor(async () => backLines.some((line) => line.includes('is current')), {
    what: 'the rollback to make A current',
    timeoutMs: 90_000,
    intervalMs: 200,
    abortIf: () => (backLines.some((line) => line.includes('failed:')) ? backLines.join('\n') : undefined),
  });
  const backOnA = await sell('c', 5);
  await untilStatus(backOnA, ['AWAITING_PAYMENT'], 'the orders after the rollback to await payment');
  await pay([...onB.slice(5, 8), ...backOnA.slice(0, 3)]);
  await cancel([...onB.slice(8), ...backOnA.slice(3)], userOf);
  const rolledBack = await rollback;
  expect(rolledBack.code, rolledBack.output).toBe(0);
  const backReport = JSON.parse(rolledBack.output.trim().split('\n').at(-1)!) as RolloutReport;
  console.log(`[rollout] B -> A: ${backLines.filter((line) => line.startsWith('[rollout]')).join('\n')}`);
  expect(backReport).toMatchObject({
    previousBuildId: buildB.buildId,
    targetBuildId: buildA.buildId,
    previousStopped: true,
  });
  expect(backReport.openAtSwitch[buildB.buildId]).toBe(5);
  expect(workerB.exitCodeNow).not.toBeUndefined();
  for (const orderNo of onB)
    expect(await ranOn(orderNo), orderNo).toEqual({ buildIds: [buildB.buildId], failedTasks: 0, closed: true });
  for (const orderNo of backOnA)
    expect(await ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });
  await untilStatus([...onB, ...backOnA], ['PAID', 'CANCELLED'], 'every order to close');

  const inventory = new RedisInventory(redis, taskQueue);
  for (const sku of [plan.sku, SMOKE_SALE.sku]) {
    const { checks, figures } = await checkSaleInvariants({ stores, inventory }, { sku });
    expect(checks, `${sku}: ${JSON.stringify(figures)}`).toEqual(
      Object.fromEntries(Object.keys(checks).map((n) => [n, true])),
    );
  }
  const sale = await inventory.getSale(plan.sku);
  expect(sale).toMatchObject({ reserved: 0, sold: 5 + 8 + 5 + 3 + 3 });
  await workerA2.stop();
}, 420_000);

it('an unversioned worker (WORKER_VERSIONING=false) runs orders on a server with versioning: nothing pins them', async () => {
  const app = await startTestApp('unversioned', { ...API_TEST_ENV, WORKER_VERSIONING: 'false' });
  try {
    const sale = { sku: `UNV-${randomUUID().slice(0, 8)}`.toUpperCase(), priceCents: 900 };
    await SalesService.onClients(app.stores, app.redis, app.config.temporal.taskQueue).create({
      ...sale,
      name: 'Unversioned',
      stock: 2,
      perUserLimit: 1,
    });
    const shoppers: TrafficPlan = {
      ...plan,
      ...sale,
      apiUrls: [app.api.url],
      tokenFor: (userId) => app.auth.issue(userId),
    };
    const bought = await buy(shoppers, 'unversioned-shopper', 20_000, false, result);
    if (bought.answer.kind !== 'accepted') throw new Error(JSON.stringify(bought.answer));
    const { orderNo } = bought.answer;
    await sendPayment(
      shoppers,
      { orderNo, eventId: `evt-${orderNo}`, amountCents: sale.priceCents, kind: 'pay' },
      result,
    );
    await waitFor(async () => (await app.stores.orders.getOrder(orderNo))?.status === 'PAID', {
      what: `unversioned order ${orderNo} to be PAID`,
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const handle = app.temporal.workflow.getHandle(orderWorkflowId(orderNo));
    const { status, raw } = await handle.describe();
    expect(status.name).toBe('COMPLETED');
    expect(raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId ?? null).toBeNull();
    const view = await fetch(`${app.api.url}/api/admin/deployment`, {
      headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}` },
    });
    expect(view.status).toBe(404);
    expect(await view.json()).toMatchObject({ error: { code: 'NOT_VERSIONED' } });
  } finally {
    await app.close();
  }
});
