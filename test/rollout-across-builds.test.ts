/**
 * A deploy across real builds in the middle of a sale, as an operator runs it (docs/operations.md, "Deploying during a
 * sale"): build A is commit 478a254 (its OrderWorkflow has the `paymentApplied` Signal and the `pay` Update; its API
 * delivers each payment its door cannot judge as a `pay` Update), build B is this checkout (the Signal only: the
 * order's MySQL row decides every payment). test/rollout.test.ts deploys two bundles of the same code; here each build
 * runs its own API, worker, activities and Lua scripts against one stack and one schema (this checkout's migrations:
 * the schema a deploy of B leaves behind, which a rollback to A must live with).
 *
 * How the builds run:
 *  - A: checked out and installed by bench/before.ts (cached by commit hash), its workflow bundle built once by its own
 *    `npm run build:workflows` (the release's artifact; its stamp is A's build id, as A's `rollout build-id` says),
 *    its worker and API started as the benchmark starts the `before` variant (bench/processes.ts), on its own Node.js.
 *    A's first worker makes itself current (WORKER_PROMOTE=on-start: the deployment's first build); A's release
 *    deployed again for a rollback runs its worker with WORKER_PROMOTE=by-rollout.
 *  - B: worker processes of this checkout on the test stack's bundle (DeployDriver, as rollout.test.ts runs them),
 *    WORKER_PROMOTE=by-rollout; its API in this process (startApi, as the stack tests run it).
 *  - This checkout's `npm run rollout -- promote` (the tool of the release being deployed) for the deploy and for the
 *    rollback (`promote` with the previous build id while its workers still run, as the docs say).
 *  - Shoppers and the payment provider through toolkit/shoppers.ts, at one address the "load balancer" (the plan's API
 *    list) points at A's API or B's: the new API started first, traffic switched, the old API stopped.
 *
 * Each test sells on a task queue (so a Worker Deployment) and a sale of its own.
 *
 * The deploy and the rollback:
 *  1. A sells 12 orders through A's API; 3 are paid through A's webhook and close PAID on A; 9 stay awaiting payment.
 *  2. The deploy: B's worker beside A's, `rollout promote B` (a smoke order on B, B current, A watched until it drains;
 *     A's worker is kept: the operator keeps the previous release until the new one has proved itself), the API
 *     switched to B's. A's 9 open orders are paid (5) through B's webhook and cancelled (4) through B's API: each
 *     closes PAID / CANCELLED with every workflow task on A's build (pinned to A), none failed; B's webhook answers
 *     APPLIED. New orders (10) run on B; 2 of them are paid on B. A drains.
 *  3. The rollback, in full (workers and API: what an operator does with a release that misbehaves): A's release
 *     deployed again (a worker by-rollout, and its API; A's first worker still runs), `rollout promote A` with B's 8
 *     orders open and `--stop-pids` B's worker, the API switched back to A's. B's open orders are paid (4) through A's
 *     webhook and cancelled (4) through A's API: each closes on B's build (pinned to B), none failed, A's webhook
 *     answers APPLIED. New orders (4) run on A again (2 paid, 2 cancelled). B drains; the rollout stops its worker.
 *  4. At rest: the sale's invariants hold (and the smoke sale's), every checkout answered 202 has its order row, and
 *     the sale sold exactly the 16 units paid for.
 *
 * The second test is the rollback again with the payments a sale's shoppers also send that A's door does not decide
 * (the wrong amount, then the full one): A's API leaves them to the order's workflow, by the `pay` Update. B keeps a
 * `pay` handler for one release (the row decides, the handler answers its verdict); red before it (3 of 3 runs: "No
 * registered handler for update: pay", both payments RECEIVED until the order's deadline, B unable to drain).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Client, Connection } from '@temporalio/client';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { prepareBefore, type BeforeCheckout } from '../bench/before.js';
import { startBeforeVariant, type VariantServers } from '../bench/processes.js';
import { sendPayment, type TrafficPlan } from '../toolkit/shoppers.js';
import { ShopperAuth } from '../src/api/auth.js';
import { startApi, type RunningApi } from '../src/api/server.js';
import type { AppConfig } from '../src/config/index.js';
import type { Stores } from '../src/db/stores.js';
import type { RedisClient } from '../src/infra/redis.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { SMOKE_SALE } from '../src/order/smoke-order.js';
import { WaitTimeoutError, waitFor } from '../stack/wait-for.js';
import { API_TEST_ENV } from './helpers/app.js';
import type { VariantBuild } from './helpers/builds.js';
import { buildOf, DeployDriver, deployTrafficPlan } from './helpers/deploys.js';
import { testConfig } from './helpers/env.js';
import { openStackClients, type StackClients } from './helpers/stack-clients.js';

/** The previous build: its OrderWorkflow has the `pay` Update; this checkout's has not. */
const BUILD_A_COMMIT = '478a254';
const root = resolve(import.meta.dirname, '..');
const run = promisify(execFile);
const dataDir = join(inject('stackDataDir'), `rollout-across-builds-${randomUUID().slice(0, 8)}`);
/**
 * A has no payload codec: B is deployed as the release that comes before encryption (PAYLOAD_CODEC_MODE=decrypt-only,
 * src/config/index.ts), so that what B's API, workers and this file's client send A's orders stays readable by A.
 */
const BEFORE_ENCRYPTION = { PAYLOAD_CODEC_MODE: 'decrypt-only' } as const;

let clients: StackClients;
let pool: Pool;
let stores: Stores;
let redis: RedisClient;
let connection: Connection;
let client: Client;
let deployments: WorkerDeployments;
let checkoutA: BeforeCheckout;
let buildA: VariantBuild;
let buildB: VariantBuild;
/** Every process this file started, stopped in afterAll whatever happened. */
const releasesOfA: VariantServers[] = [];
const drivers: DeployDriver[] = [];
const apisOfB = new Set<RunningApi>();

/** One test's sale: its task queue (its Worker Deployment), the app's environment on it, its shoppers. */
interface Sale {
  taskQueue: string;
  env: Record<string, string>;
  config: AppConfig;
  plan: TrafficPlan;
  driver: DeployDriver;
}

function newSale(name: string): Sale {
  const taskQueue = `${name}-${randomUUID()}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...inject('stackEnv'),
    ...API_TEST_ENV,
    TEMPORAL_TASK_QUEUE: taskQueue,
    // No load balancer to drain an API from: the test switches the shoppers' address itself, then stops the old one.
    SHUTDOWN_DRAIN: '0s',
    ...BEFORE_ENCRYPTION,
  };
  const config = testConfig(env);
  const auth = new ShopperAuth(config);
  const plan = deployTrafficPlan(config, auth, {
    sku: `XB-${randomUUID().slice(0, 8)}`.toUpperCase(),
    priceCents: 1_500,
  });
  const driver = new DeployDriver({ env, logDir: dataDir, plan, stores, temporal: client });
  drivers.push(driver);
  return { taskQueue, env, config, plan, driver };
}

/** A's processes (worker and API) from its own checkout, as the benchmark runs the `before` variant. */
async function deployReleaseA(
  sale: Sale,
  name: string,
  promote: 'on-start' | 'by-rollout',
): Promise<VariantServers & { worker: VariantServers['processes'][number] }> {
  const workDir = join(dataDir, name);
  mkdirSync(workDir, { recursive: true });
  const servers = await startBeforeVariant(checkoutA, {
    workDir,
    env: { ...sale.env, LOG_LEVEL: 'info', WORKFLOW_BUNDLE_PATH: buildA.bundlePath, WORKER_PROMOTE: promote },
  });
  releasesOfA.push(servers);
  const [worker] = servers.processes;
  if (!worker) throw new Error(`release A (${name}) started without its worker`);
  return { ...servers, worker };
}

/** Stops release A's API process (its worker runs on). */
async function stopApiOf(release: VariantServers): Promise<void> {
  await release.processes[1]?.stop(15_000);
}

/** Build A's first worker and API; A current; the sale put on sale through A's admin API. */
async function sellOnA(
  sale: Sale,
  name: string,
): Promise<VariantServers & { worker: VariantServers['processes'][number] }> {
  const release = await deployReleaseA(sale, name, 'on-start');
  await waitFor(async () => (await deployments.describeDeployment(sale.taskQueue))?.currentBuildId === buildA.buildId, {
    what: `build A (${buildA.buildId}) to be current`,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  routeTrafficTo(sale, release.url);
  const created = await fetch(`${release.url}/api/sales`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      sku: sale.plan.sku,
      name: 'Across builds',
      priceCents: sale.plan.priceCents,
      stock: 60,
      perUserLimit: 1,
    }),
  });
  expect(created.status, await created.clone().text()).toBe(201);
  return release;
}

/** B's API in this process, for `sale`. */
async function startApiOfB(sale: Sale): Promise<RunningApi> {
  const api = await startApi(sale.config, 0);
  apisOfB.add(api);
  return api;
}

async function closeApiOfB(api: RunningApi): Promise<void> {
  apisOfB.delete(api);
  await api.close();
}

/** The shoppers' and the provider's address from now on (what a load balancer's switch does). */
function routeTrafficTo(sale: Sale, apiUrl: string): void {
  sale.plan.apiUrls.splice(0, sale.plan.apiUrls.length, apiUrl);
}

/** The build the order's workflow is pinned to, as the server records it. */
async function pinnedBuildOf(orderNo: string): Promise<string | null> {
  const { raw } = await client.workflow.getHandle(orderWorkflowId(orderNo)).describe();
  return raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId ?? null;
}

/** The webhook's answers to the payments of `orderNos`, as the provider got them. */
function webhookAnswers(sale: Sale, orderNos: readonly string[]): unknown[] {
  return orderNos.map((orderNo) => sale.driver.result.events.find((event) => event.orderNo === orderNo)?.answer);
}

async function statusesOf(orderNos: readonly string[]): Promise<string[]> {
  return Promise.all(orderNos.map(async (orderNo) => (await stores.orders.getOrder(orderNo))?.status ?? 'NO_ROW'));
}

/** The sale's invariants at rest, every accepted checkout's order row included. */
async function expectInvariants(sale: Sale, sku: string, acceptedOrderNos?: string[]) {
  const inventory = new RedisInventory(redis, sale.taskQueue);
  const report = await checkSaleInvariants(
    { stores, inventory },
    { sku, ...(acceptedOrderNos ? { perUserLimit: 1, acceptedOrderNos } : {}) },
  );
  expect(report.checks, `${sku}: ${JSON.stringify(report.figures)}`).toEqual(
    Object.fromEntries(Object.keys(report.checks).map((name) => [name, true])),
  );
  return report.figures;
}

beforeAll(async () => {
  mkdirSync(dataDir, { recursive: true });
  const config = testConfig(BEFORE_ENCRYPTION);
  clients = await openStackClients(config);
  ({ pool, stores, redis, connection, client } = clients);
  deployments = new WorkerDeployments(connection, config.temporal.namespace, 'rollout-across-builds-test');
  // Build A: the commit checked out and installed once (cached outside the repository), its bundle built by its own
  // script; the bundle's stamp is A's build id.
  checkoutA = prepareBefore(root, BUILD_A_COMMIT, (line) => console.log(`[rollout-builds] ${line}`));
  const bundleA = join(dataDir, 'build-a', 'workflow-bundle.js');
  await run(
    join(checkoutA.root, 'node_modules', '.bin', 'tsx'),
    [join(checkoutA.root, 'scripts', 'build-workflow-bundle.ts'), bundleA],
    { cwd: checkoutA.root, env: { ...process.env, PATH: checkoutA.path }, timeout: 240_000 },
  );
  buildA = buildOf(bundleA);
  // Build B: this checkout, the bundle the test stack's workers run (its stamp is `npm run rollout -- build-id`).
  buildB = buildOf(inject('workflowBundlePath'));
  expect(buildA.buildId).not.toBe(buildB.buildId);
}, 300_000);

afterAll(async () => {
  await Promise.allSettled(drivers.map((driver) => driver.stopWorkers()));
  await Promise.allSettled([...apisOfB].map((api) => api.close()));
  await Promise.allSettled(releasesOfA.flatMap((servers) => servers.processes.map((proc) => proc.stop(15_000))));
  await clients?.close();
});

it('deploys this checkout over 478a254 mid-sale, then rolls back to 478a254: each order closes on the build it started on', async () => {
  const sale = newSale('rollout-builds');
  const { driver } = sale;
  // ── 1. Build A sells ──────────────────────────────────────────────────────────────────────────────────────────
  const releaseA = await sellOnA(sale, 'rollout-builds-a');
  const onA = await driver.sell('a', 12);
  await driver.pay(onA.slice(0, 3));
  await driver.untilStatus(onA.slice(0, 3), ['PAID'], 'A’s first three orders to be paid on A');
  await driver.untilClosed(onA.slice(0, 3), 'A’s first three orders to close');
  expect(webhookAnswers(sale, onA.slice(0, 3))).toEqual(
    onA.slice(0, 3).map(() => ({ status: 200, outcome: 'APPLIED' })),
  );
  const openOnA = onA.slice(3);

  // ── 2. The deploy: B beside A, promoted, the API switched to B's ─────────────────────────────────────────────────
  const workerB = driver.startWorker(buildB, 'by-rollout');
  const lines: string[] = [];
  const deploy = driver.rollout(buildB, ['--drain-timeout', '120s'], lines);
  await driver.untilCurrent(lines, 'the rollout to make B current');
  const apiB = await startApiOfB(sale);
  routeTrafficTo(sale, apiB.url);
  await stopApiOf(releaseA);
  // New orders start on B; A's open orders are paid and cancelled through B's API while A drains.
  const onB = await driver.sell('b', 10);
  const paidThroughB = [...openOnA.slice(0, 5), ...onB.slice(0, 2)];
  await driver.pay(paidThroughB);
  await driver.cancel(openOnA.slice(5));
  expect(webhookAnswers(sale, paidThroughB)).toEqual(paidThroughB.map(() => ({ status: 200, outcome: 'APPLIED' })));
  const deployed = await deploy;
  console.log(`[rollout-builds] A -> B: ${lines.filter((line) => line.startsWith('[rollout]')).join('\n')}`);
  expect(deployed.code, deployed.output).toBe(0);
  expect(deployed.report).toMatchObject({
    previousBuildId: buildA.buildId,
    targetBuildId: buildB.buildId,
    previousStopped: false,
  });
  // The 9 awaiting payment, and the 3 paid ones if visibility had not seen them close yet.
  expect(deployed.report?.openAtSwitch[buildA.buildId]).toBeGreaterThanOrEqual(9);
  expect(deployed.report?.drainedAfterMs).not.toBeNull();
  await driver.untilClosed(onB.slice(0, 2), 'B’s two paid orders to close');
  expect(await statusesOf(onA)).toEqual([...onA.slice(0, 8).map(() => 'PAID'), ...onA.slice(8).map(() => 'CANCELLED')]);
  for (const orderNo of onA) {
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });
    expect(await pinnedBuildOf(orderNo), orderNo).toBe(buildA.buildId);
  }
  for (const orderNo of onB) expect((await driver.ranOn(orderNo)).buildIds, orderNo).toEqual([buildB.buildId]);

  // ── 3. The rollback, in full: A's release again, promoted with B's orders open, the API switched back ────────────
  const redeployA = await deployReleaseA(sale, 'rollout-builds-a-again', 'by-rollout');
  const backLines: string[] = [];
  const rollback = driver.rollout(buildA, ['--drain-timeout', '120s', '--stop-pids', String(workerB.pid)], backLines);
  await driver.untilCurrent(backLines, 'the rollback to make A current');
  routeTrafficTo(sale, redeployA.url);
  await closeApiOfB(apiB);
  const openOnB = onB.slice(2);
  const backOnA = await driver.sell('r', 4);
  const paidThroughA = [...openOnB.slice(0, 4), ...backOnA.slice(0, 2)];
  await driver.pay(paidThroughA);
  await driver.cancel([...openOnB.slice(4), ...backOnA.slice(2)]);
  expect(webhookAnswers(sale, paidThroughA)).toEqual(paidThroughA.map(() => ({ status: 200, outcome: 'APPLIED' })));
  const rolledBack = await rollback;
  console.log(`[rollout-builds] B -> A: ${backLines.filter((line) => line.startsWith('[rollout]')).join('\n')}`);
  expect(rolledBack.code, rolledBack.output).toBe(0);
  expect(rolledBack.report).toMatchObject({
    previousBuildId: buildB.buildId,
    targetBuildId: buildA.buildId,
    previousStopped: true,
  });
  expect(rolledBack.report?.openAtSwitch[buildB.buildId]).toBe(8);
  expect(workerB.exitCodeNow).not.toBeUndefined();
  expect(releaseA.worker.exitCodeNow, 'A’s first worker ran throughout').toBeUndefined();
  await driver.untilClosed(backOnA, 'the orders after the rollback to close');
  expect(await statusesOf(onB)).toEqual([...onB.slice(0, 6).map(() => 'PAID'), ...onB.slice(6).map(() => 'CANCELLED')]);
  for (const orderNo of onB) {
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildB.buildId], failedTasks: 0, closed: true });
    expect(await pinnedBuildOf(orderNo), orderNo).toBe(buildB.buildId);
  }
  expect(await statusesOf(backOnA)).toEqual(['PAID', 'PAID', 'CANCELLED', 'CANCELLED']);
  for (const orderNo of backOnA)
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });

  // ── 4. At rest ───────────────────────────────────────────────────────────────────────────────────────────────────
  const accepted = driver.result.requests
    .filter((request) => request.kind === 'checkout' && request.outcome === 202)
    .map((request) => request.orderNo ?? '(no order number)');
  expect(new Set(accepted)).toEqual(new Set([...onA, ...onB, ...backOnA]));
  const figures = await expectInvariants(sale, sale.plan.sku, accepted);
  expect(figures).toMatchObject({
    mysql: { awaitingPayment: 0, paid: 3 + 5 + 2 + 4 + 2, cancelled: 4 + 4 + 2 },
    redis: { reserved: 0, sold: 3 + 5 + 2 + 4 + 2 },
    missingOrders: 0,
  });
  await expectInvariants(sale, SMOKE_SALE.sku);
}, 600_000);

it('rolled back to 478a254’s API, a payment its door leaves to the workflow (the wrong amount, then the full one) still pays an order of this build', async () => {
  const sale = newSale('rollout-builds-pay');
  const { driver, plan } = sale;
  const releaseA = await sellOnA(sale, 'rollout-builds-pay-a');
  // The deploy of B (workers, then the API), an order on B; then the full rollback to A with that order open.
  driver.startWorker(buildB, 'by-rollout');
  const deployed = await driver.rollout(buildB, ['--drain-timeout', '0'], []);
  expect(deployed.code, deployed.output).toBe(0);
  const apiB = await startApiOfB(sale);
  routeTrafficTo(sale, apiB.url);
  await stopApiOf(releaseA);
  const [orderNo] = await driver.sell('w', 1);
  if (!orderNo) throw new Error('no order sold on B');
  const redeployA = await deployReleaseA(sale, 'rollout-builds-pay-a-again', 'by-rollout');
  const rolledBack = await driver.rollout(buildA, ['--drain-timeout', '0'], []);
  expect(rolledBack.code, rolledBack.output).toBe(0);
  routeTrafficTo(sale, redeployA.url);
  await closeApiOfB(apiB);

  // The shopper's first payment is a cent short, the second the full amount, both through A's webhook.
  const short = { orderNo, eventId: `evt-${orderNo}-short`, amountCents: plan.priceCents - 1 };
  const full = { orderNo, eventId: `evt-${orderNo}-full`, amountCents: plan.priceCents };
  const answers = [
    await sendPayment(plan, { ...short, kind: 'wrong-amount-then-pay' }, driver.result),
    await sendPayment(plan, { ...full, kind: 'wrong-amount-then-pay' }, driver.result),
  ].map((event) => event.answer);
  const outcomes = async () => {
    const [rows] = await pool.query<RowDataPacket[]>(
      'SELECT event_id, outcome, refund_reason FROM payments WHERE order_no = ? ORDER BY event_id',
      [orderNo],
    );
    return Object.fromEntries(rows.map((row) => [String(row.event_id), `${row.outcome}/${row.refund_reason ?? '-'}`]));
  };
  // What should hold: the row (through the workflow A's API asks) decides both, as any build does, within a bound; not
  // at the order's deadline (30 min by default), with B unable to drain until then.
  const decided = async () => {
    const [status] = await statusesOf([orderNo]);
    const now = await outcomes();
    return (
      status === 'PAID' && now[short.eventId] === 'REFUND_REQUIRED/AMOUNT_MISMATCH' && now[full.eventId] === 'APPLIED/-'
    );
  };
  try {
    await waitFor(decided, {
      what: `order ${orderNo} of build B to be paid by the full payment through A's API`,
      timeoutMs: 45_000,
      intervalMs: 500,
    });
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    // The evidence: the webhook's answers, the rows, the order, and the call A's API keeps making (the `pay` Update,
    // as src/payments/delivery.ts of 478a254 sends it) with the answer B's workflow gives it.
    const [row] = await pool.query<RowDataPacket[]>('SELECT received_at FROM payments WHERE event_id = ?', [
      full.eventId,
    ]);
    const receivedAt = (row[0]?.received_at as Date | undefined)?.toISOString() ?? new Date().toISOString();
    const updated = await client.workflow
      .getHandle(orderWorkflowId(orderNo))
      .executeUpdate('pay', {
        args: [{ eventId: full.eventId, amountCents: full.amountCents, receivedAt }],
        updateId: `pay:${full.eventId}`,
      })
      .then(
        (verdict) => `answered ${JSON.stringify(verdict)}`,
        (failure: unknown) =>
          failure instanceof Error
            ? `${failure.name}: ${failure.message}: ${failure.cause instanceof Error ? failure.cause.message : ''}`
            : String(failure),
      );
    const metrics = await fetch(`${redeployA.url}/metrics`).then((response) => response.text());
    const updateErrors = /flash_payment_update_seconds_count\{outcome="error"\} (\d+)/.exec(metrics)?.[1];
    throw new Error(
      `${err.message}. A's webhook answered ${JSON.stringify(answers)}; the order is ` +
        `${(await statusesOf([orderNo]))[0]}, its payments ${JSON.stringify(await outcomes())}; A's API sent ` +
        `${updateErrors ?? '?'} pay Updates that failed; the same Update now: ${updated}`,
    );
  }
  // The row is PAID before the workflow follows (confirms in Redis, closes).
  const ranOn = await waitFor(
    async () => {
      const run = await driver.ranOn(orderNo);
      return run.closed && run;
    },
    {
      what: `order ${orderNo}'s workflow closed`,
      timeoutMs: 20_000,
    },
  );
  expect(ranOn).toEqual({ buildIds: [buildB.buildId], failedTasks: 0, closed: true });
  await expectInvariants(sale, plan.sku);
}, 300_000);
