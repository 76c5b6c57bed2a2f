/**
 * A deploy across real builds in the middle of a sale, as an operator runs it (docs/operations.md, "Deploying during a
 * sale"): build A is commit 7b2150e (its OrderWorkflow follows the `paymentApplied` Signal and closes by its own
 * steps: confirm, cancel, release), build B is this checkout (the one close: its workflow asks the order's row, which
 * decides).
 * test/rollout.test.ts deploys two bundles of the same code; here each build runs its own API, worker, activities and
 * Lua scripts against one stack and one schema (this checkout's migrations: the schema a deploy of B leaves behind,
 * which a rollback to A must live with).
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
 * The test sells on a task queue (so a Worker Deployment) and a sale of its own.
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
 *     orders open (its smoke order through B's API), the API switched back to A's. B's open orders are paid (4)
 *     through A's webhook and cancelled (4) through A's API: each closes on B's build (pinned to B), none failed, A's
 *     webhook answers APPLIED. New orders (4) run on A again (2 paid, 2 cancelled). B drains; then its worker is
 *     stopped (the platform's job: the rollout stops nothing).
 *  4. At rest: the sale's invariants hold (and the smoke sale's), every checkout answered 202 has its order row, and
 *     the sale sold exactly the 16 units paid for.
 *
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect, inject } from 'vitest';
import { prepareBefore, type BeforeCheckout } from '../bench/before.js';
import { startBeforeVariant, type VariantServers } from '../bench/processes.js';
import type { TrafficPlan } from '../toolkit/shoppers.js';
import { ShopperAuth } from '../src/api/auth.js';
import { startApi, type RunningApi } from '../src/api/server.js';
import type { AppConfig } from '../src/config/index.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { SMOKE_SALE } from '../src/order/smoke-order.js';
import { waitFor } from '../stack/wait-for.js';
import { API_TEST_ENV } from './helpers/app.js';
import type { VariantBuild } from './helpers/builds.js';
import { buildOf, DeployDriver, deployTrafficPlan } from './helpers/deploys.js';
import { testConfig } from './helpers/env.js';
import type { StackClients } from './helpers/stack-clients.js';
import { clientsTest } from './helpers/stack-test.js';
import { httpAt } from './helpers/http.js';

/** The previous build: its OrderWorkflow follows the payment Signal and closes by its own steps. */
const BUILD_A_COMMIT = '7b2150e';
const root = resolve(import.meta.dirname, '..');
const run = promisify(execFile);
const dataDir = join(inject('stackDataDir'), `rollout-across-builds-${randomUUID().slice(0, 8)}`);
/** Both builds encrypt with the same key, as one deployment's releases do (each checkout's own local key would not). */
const SHARED_KEY = { PAYLOAD_CODEC_KEYS: `across-builds=${randomBytes(32).toString('base64')}` } as const;

const config = testConfig(SHARED_KEY);
const it = clientsTest(config);
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

function newSale({ stores, temporal: client }: StackClients, name: string): Sale {
  const taskQueue = `${name}-${randomUUID()}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...inject('stackEnv'),
    ...API_TEST_ENV,
    TEMPORAL_TASK_QUEUE: taskQueue,
    // No load balancer to drain an API from: the test switches the shoppers' address itself, then stops the old one.
    SHUTDOWN_DRAIN: '0s',
    ...SHARED_KEY,
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
    // Named by its bundle's stamp, as B's workers are (7b2150e's own name adds its codec's mode and key ids).
    env: {
      ...sale.env,
      LOG_LEVEL: 'info',
      WORKFLOW_BUNDLE_PATH: buildA.bundlePath,
      WORKER_BUILD_ID: buildA.buildId,
      WORKER_PROMOTE: promote,
    },
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
  const created = await httpAt('POST', `${release.url}/api/sales`, {
    headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}`, 'content-type': 'application/json' },
    raw: JSON.stringify({
      sku: sale.plan.sku,
      name: 'Across builds',
      priceCents: sale.plan.priceCents,
      stock: 60,
      perUserLimit: 1,
    }),
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
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
async function pinnedBuildOf({ temporal: client }: StackClients, orderNo: string): Promise<string | null> {
  const { raw } = await client.workflow.getHandle(orderWorkflowId(orderNo)).describe();
  return raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId ?? null;
}

/** The webhook's answers to the payments of `orderNos`, as the provider got them. */
function webhookAnswers(sale: Sale, orderNos: readonly string[]): unknown[] {
  return orderNos.map((orderNo) => sale.driver.result.events.find((event) => event.orderNo === orderNo)?.answer);
}

async function statusesOf({ stores }: StackClients, orderNos: readonly string[]): Promise<string[]> {
  return Promise.all(orderNos.map(async (orderNo) => (await stores.orders.getOrder(orderNo))?.status ?? 'NO_ROW'));
}

/** The sale's invariants at rest, every accepted checkout's order row included. */
async function expectInvariants({ stores, redis }: StackClients, sale: Sale, sku: string, acceptedOrderNos?: string[]) {
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

// Build A, checked out and bundled: a hook rather than a fixture, so that it keeps its own 300 s.
it.beforeAll(async ({ clients }) => {
  mkdirSync(dataDir, { recursive: true });
  deployments = new WorkerDeployments(clients.connection, config.temporal.namespace, 'rollout-across-builds-test');
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

it.afterAll(async () => {
  await Promise.allSettled(drivers.map((driver) => driver.stopWorkers()));
  await Promise.allSettled([...apisOfB].map((api) => api.close()));
  await Promise.allSettled(releasesOfA.flatMap((servers) => servers.processes.map((proc) => proc.stop(15_000))));
});

it('deploys this checkout over 7b2150e mid-sale, then rolls back to 7b2150e: each order closes on the build it started on', async ({
  clients,
}) => {
  const sale = newSale(clients, 'rollout-builds');
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
  // B's release up beside A's (its worker and its API, which runs the rollout's smoke order), then promoted.
  const workerB = driver.startWorker(buildB, 'by-rollout');
  const apiB = await startApiOfB(sale);
  const lines: string[] = [];
  const deploy = driver.rollout(buildB, ['--drain-timeout', '120s', '--api', apiB.url], lines);
  await driver.untilCurrent(lines, 'the rollout to make B current');
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
  });
  // The 9 awaiting payment, and the 3 paid ones if visibility had not seen them close yet.
  expect(deployed.report?.openAtSwitch[buildA.buildId]).toBeGreaterThanOrEqual(9);
  expect(deployed.report?.drainedAfterMs).not.toBeNull();
  await driver.untilClosed(onB.slice(0, 2), 'B’s two paid orders to close');
  expect(await statusesOf(clients, onA)).toEqual([
    ...onA.slice(0, 8).map(() => 'PAID'),
    ...onA.slice(8).map(() => 'CANCELLED'),
  ]);
  for (const orderNo of onA) {
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });
    expect(await pinnedBuildOf(clients, orderNo), orderNo).toBe(buildA.buildId);
  }
  for (const orderNo of onB) expect((await driver.ranOn(orderNo)).buildIds, orderNo).toEqual([buildB.buildId]);

  // ── 3. The rollback, in full: A's release again, promoted with B's orders open, the API switched back ────────────
  const redeployA = await deployReleaseA(sale, 'rollout-builds-a-again', 'by-rollout');
  const backLines: string[] = [];
  // The rollout of this release (A's has no smoke route): its smoke order through B's API, pinned to A.
  const rollback = driver.rollout(buildA, ['--drain-timeout', '120s', '--api', apiB.url], backLines);
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
  });
  expect(rolledBack.report?.openAtSwitch[buildB.buildId]).toBe(8);
  // Drained: stopping its workers is the platform's, never the rollout's.
  expect(workerB.exitCodeNow).toBeUndefined();
  await workerB.stop(15_000);
  expect(releaseA.worker.exitCodeNow, 'A’s first worker ran throughout').toBeUndefined();
  await driver.untilClosed(backOnA, 'the orders after the rollback to close');
  expect(await statusesOf(clients, onB)).toEqual([
    ...onB.slice(0, 6).map(() => 'PAID'),
    ...onB.slice(6).map(() => 'CANCELLED'),
  ]);
  for (const orderNo of onB) {
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildB.buildId], failedTasks: 0, closed: true });
    expect(await pinnedBuildOf(clients, orderNo), orderNo).toBe(buildB.buildId);
  }
  expect(await statusesOf(clients, backOnA)).toEqual(['PAID', 'PAID', 'CANCELLED', 'CANCELLED']);
  for (const orderNo of backOnA)
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });

  // ── 4. At rest ───────────────────────────────────────────────────────────────────────────────────────────────────
  const accepted = driver.result.requests
    .filter((request) => request.kind === 'checkout' && request.outcome === 202)
    .map((request) => request.orderNo ?? '(no order number)');
  expect(new Set(accepted)).toEqual(new Set([...onA, ...onB, ...backOnA]));
  const figures = await expectInvariants(clients, sale, sale.plan.sku, accepted);
  expect(figures).toMatchObject({
    mysql: { awaitingPayment: 0, paid: 3 + 5 + 2 + 4 + 2, cancelled: 4 + 4 + 2 },
    redis: { reserved: 0, sold: 3 + 5 + 2 + 4 + 2 },
    missingOrders: 0,
  });
  await expectInvariants(clients, sale, SMOKE_SALE.sku);
}, 600_000);
