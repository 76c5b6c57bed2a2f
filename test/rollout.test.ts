/**
 * A deploy in the middle of a sale, as an operator runs it (docs/operations.md, "Deploying during a sale"): worker
 * processes of build A (this checkout's bundle) sell, build B (the same code with OrderWorkflow changed so that A's
 * histories do not replay on it) starts beside them, `npm run rollout` smoke-tests B, makes it current and watches A
 * drain while A's open orders (awaiting payment, and pending: started on A while A's worker was frozen) are paid and
 * cancelled through the API; then stops A's worker. Then a rollback to A with B's orders open. Every order's workflow
 * tasks ran on the version it started on, none failed, and the sale's invariants hold.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import { expect, inject } from 'vitest';
import { startApi, type RunningApi } from '../src/api/server.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { endpointDeliveryWorkflowId } from '../src/model/delivery-workflow.js';
import { reconcileScheduleId } from '../src/model/reconcile-workflow.js';
import { startEventReceiver } from '../stack/event-receiver.js';
import { freezeGroup, signalGroup } from '../stack/process.js';
import { SalesService } from '../src/sales/sales-service.js';
import { SMOKE_SALE } from '../src/order/smoke-order.js';
import { waitFor } from '../stack/wait-for.js';
import { buy, sendPayment, type TrafficPlan } from '../toolkit/shoppers.js';
import type { VariantBuild } from './helpers/builds.js';
import { PINNED_WORKFLOW_TYPES } from '../src/model/workflow-types.js';
import { buildChangedOrderWorkflow, buildOf, DeployDriver, deployTrafficPlan } from './helpers/deploys.js';
import { testConfig } from './helpers/env.js';
import { startStripeApi } from './helpers/stripe-api.js';
import { checkoutWithIntent } from './helpers/stripe-orders.js';
import { API_TEST_ENV, startTestApp } from './helpers/app.js';
import { ShopperAuth } from '../src/api/auth.js';
import { clientsTest } from './helpers/stack-test.js';
import { httpAt } from './helpers/http.js';

const taskQueue = `rollout-${randomUUID()}`;
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  ...inject('stackEnv'),
  ...API_TEST_ENV,
  TEMPORAL_TASK_QUEUE: taskQueue,
  // A merchant's endpoint on loopback, delivered across the deploy and the rollback.
  EVENTS_ALLOWED_RANGES: '127.0.0.0/8,::1/128',
  EVENTS_POLL_INTERVAL: '200ms',
};

const config = testConfig(env);
const it = clientsTest(config);
let deployments: WorkerDeployments;
let api: RunningApi;
let plan: TrafficPlan;
let driver: DeployDriver;
let buildA: VariantBuild;
let buildB: VariantBuild;

// A hook rather than a fixture: bundling build B takes its time, and this stand-up keeps its own 180 s.
it.beforeAll(async ({ clients }) => {
  const { stores, redis, connection, temporal: client } = clients;
  deployments = new WorkerDeployments(connection, config.temporal.namespace, 'rollout-test');
  buildA = buildOf(inject('workflowBundlePath'));
  buildB = await buildChangedOrderWorkflow(inject('stackDataDir'));
  api = await startApi(config, 0);
  const auth = new ShopperAuth(config);
  const sale = { sku: `ROLL-${randomUUID().slice(0, 8)}`.toUpperCase(), priceCents: 1_500 };
  await SalesService.onClients(stores, redis, taskQueue).create({
    ...sale,
    name: 'Rollout sale',
    stock: 120,
    perUserLimit: 1,
  });
  plan = deployTrafficPlan(config, auth, sale, [api.url]);
  driver = new DeployDriver({ env, logDir: inject('stackDataDir'), plan, stores, temporal: client });
}, 180_000);

/** The reconcile Schedule's interval, as the build that last wrote it set RECONCILE_INTERVAL. */
async function reconcileEveryMs(client: Client): Promise<number | undefined> {
  const { spec } = await client.schedule.getHandle(reconcileScheduleId(taskQueue)).describe();
  return spec.intervals?.[0]?.every;
}

/** A sale of `app`'s own (its task queue) and one shopper's accepted checkout through its API. */
async function buyOnOwnSale(app: Awaited<ReturnType<typeof startTestApp>>, prefix: string, shopper: string) {
  const sale = { sku: `${prefix}-${randomUUID().slice(0, 8)}`.toUpperCase(), priceCents: 900 };
  await SalesService.onClients(app.stores, app.redis, app.config.temporal.taskQueue).create({
    ...sale,
    name: prefix,
    stock: 2,
    perUserLimit: 1,
  });
  const shoppers: TrafficPlan = { ...plan, ...sale, apiUrls: [app.api.url], tokenFor: (id) => app.auth.issue(id) };
  const bought = await buy(shoppers, shopper, 20_000, false, driver.result);
  if (bought.answer.kind !== 'accepted') throw new Error(JSON.stringify(bought.answer));
  return { shoppers, sale, orderNo: bought.answer.orderNo };
}

it.afterAll(async () => {
  await driver?.stopWorkers();
  await api?.close();
});

it('deploys build B in the middle of a sale: A’s orders close on A, new ones run on B, A drains and stops; then rolls back to A', async ({
  clients,
}) => {
  const { stores, redis, temporal: client } = clients;
  const workerA = driver.startWorker(buildA, 'on-start');
  await waitFor(async () => (await deployments.describeDeployment(taskQueue))?.currentBuildId === buildA.buildId, {
    what: `build A (${buildA.buildId}) to be current`,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  // A merchant's endpoint, made while A is current: its delivery starts on A, pinned, and must move to drain A.
  let endpointSecret = '';
  const receiver = await startEventReceiver({ secrets: () => [endpointSecret] });
  const created = await httpAt('POST', `${api.url}/api/admin/webhook-endpoints`, {
    headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}`, 'content-type': 'application/json' },
    raw: JSON.stringify({ url: receiver.url, eventTypes: ['order.paid'] }),
  });
  expect(created.status).toBe(201);
  const { endpoint, secret } = created.body as { endpoint: { endpointId: string }; secret: string };
  endpointSecret = secret;
  const paidReceived = (orderNos: string[]) =>
    waitFor(async () => orderNos.every((orderNo) => receiver.received.some((r) => r.orderNo === orderNo)), {
      what: "the merchant's endpoint to receive every order.paid",
      timeoutMs: 30_000,
    });
  // On A: 20 orders; 5 paid before the deploy, 15 still awaiting payment when B becomes current.
  const onA = await driver.sell('a', 20);
  await driver.pay(onA.slice(0, 5));
  await driver.untilStatus(onA.slice(0, 5), ['PAID'], 'A’s first five orders to be paid');
  // PAID is the row's at once; their workflows close a moment later. Frozen mid-task, A's worker would fail that task
  // on its 5 s isolate timeout once thawed (retried, but not what this test is about): A freezes idle.
  await driver.untilClosed(onA.slice(0, 5), 'A’s first five orders to close');
  await paidReceived(onA.slice(0, 5));
  // B's workers run another reconcile interval: the Schedule says which build wrote it.
  const workerB = driver.startWorker(buildB, 'by-rollout', { RECONCILE_INTERVAL: '29s' });
  // B polls beside A: its workers leave the Schedules as A wrote them until B is current.
  await waitFor(
    async () => (await deployments.describeDeployment(taskQueue))?.versions.some((v) => v.buildId === buildB.buildId),
    { what: 'build B polling', timeoutMs: 60_000, intervalMs: 250 },
  );
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  expect(await reconcileEveryMs(client), 'B not current yet').toBe(30_000);

  // Pending at the switch: started while A is current, its worker frozen, so no task of theirs has run yet. Temporal
  // pins a workflow to the build that completes its first task: these may run on A or on B, but each on one only.
  await freezeGroup(workerA.pid);
  const pendingAtSwitch = await driver.buy('p', 3);
  await waitFor(
    async () => {
      const running = await Promise.all(
        pendingAtSwitch.map((orderNo) =>
          client.workflow
            .getHandle(orderWorkflowId(orderNo))
            .describe()
            .then(
              () => true,
              () => false,
            ),
        ),
      );
      return running.every(Boolean);
    },
    { what: 'the three pending orders to be started', timeoutMs: 30_000, intervalMs: 200 },
  );

  const lines: string[] = [];
  const deploy = driver.rollout(buildB, ['--drain-timeout', '120s'], lines);
  // A burst of 60 shoppers across the switch: each order is started on whichever build is current then.
  const bursting = driver.buy('burst', 60);
  await driver.untilCurrent(lines, 'the rollout to make B current');
  signalGroup(workerA.pid, 'SIGCONT');
  const burst = await bursting;
  await waitFor(async () => (await reconcileEveryMs(client)) === 29_000, {
    what: "B's workers to write the reconcile Schedule once B is current",
    timeoutMs: 20_000,
    intervalMs: 250,
  });
  // Mid-sale on B: new orders; A's open orders paid and cancelled through the API while A drains.
  const onB = await driver.sell('b', 10);
  await driver.untilStatus(pendingAtSwitch, ['AWAITING_PAYMENT'], 'the pending orders to be persisted');
  await driver.untilStatus(burst, ['AWAITING_PAYMENT'], 'the burst’s orders to await payment');
  await driver.pay([...onA.slice(5, 13), ...onB.slice(0, 5), ...pendingAtSwitch.slice(0, 2), ...burst]);
  await driver.cancel([...onA.slice(13), pendingAtSwitch[2]!]);
  const deployed = await deploy;
  expect(deployed.code, deployed.output).toBe(0);
  const report = deployed.report!;
  console.log(`[rollout] A -> B: ${lines.filter((line) => line.startsWith('[rollout]')).join('\n')}`);
  expect(report).toMatchObject({
    previousBuildId: buildA.buildId,
    targetBuildId: buildB.buildId,
  });
  // 15 awaiting payment, and the 5 paid ones if their workflows had not closed yet (visibility, as operators see it).
  expect(report.openAtSwitch[buildA.buildId]).toBeGreaterThanOrEqual(15);
  expect(report.drainedAfterMs).not.toBeNull();
  // The smoke order is the operator's own: persisted and cancelled, and no merchant hears of it.
  expect(report.smoke).toMatchObject({ status: 'CANCELLED' });
  expect(await stores.orders.getOrder(report.smoke!.orderNo)).toMatchObject({ status: 'CANCELLED' });
  expect(await stores.events.eventsOf(report.smoke!.orderNo)).toEqual([]);
  // Drained: stopping its workers is the platform's, never the rollout's.
  expect(workerA.exitCodeNow).toBeUndefined();
  await workerA.stop(15_000);
  await driver.untilClosed(burst, 'the burst’s paid orders to close');
  // The smoke route refuses what no rollout would ask: a malformed build id, a build no worker polls (before any unit
  // is reserved).
  const smokeOrder = (buildId: string) =>
    httpAt('POST', `${api.url}/api/admin/deployment/smoke-orders`, {
      headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}`, 'content-type': 'application/json' },
      raw: JSON.stringify({ buildId }),
    });
  const malformed = await smokeOrder('__reserved');
  expect([malformed.status, (malformed.body as { error: { code: string } }).error.code]).toEqual([
    400,
    'INVALID_REQUEST',
  ]);
  const unpolled = await smokeOrder('no-worker-polls-this');
  expect(unpolled.status).toBe(502);
  expect(unpolled.body).toMatchObject({
    error: { code: 'SMOKE_ORDER_FAILED', message: expect.stringContaining('no worker of') },
  });
  // The operator's view: B current with its 5 unpaid orders, A drained.
  const view = await httpAt('GET', `${api.url}/api/admin/deployment`, {
    headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}` },
  });
  expect(view.status).toBe(200);
  expect(view.body).toMatchObject({
    deploymentName: taskQueue,
    currentBuildId: buildB.buildId,
    versions: expect.arrayContaining([
      expect.objectContaining({ buildId: buildA.buildId, status: 'DRAINED', openOrders: 0 }),
      expect.objectContaining({ buildId: buildB.buildId, status: 'CURRENT', openOrders: 5 }),
    ]),
    unversionedOpenOrders: 0,
  });

  for (const orderNo of onA)
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });
  for (const orderNo of onB) expect((await driver.ranOn(orderNo)).buildIds, orderNo).toEqual([buildB.buildId]);
  const burstRanOn = await Promise.all(burst.map((orderNo) => driver.ranOn(orderNo)));
  const onBuild = (build: VariantBuild) => burstRanOn.filter((ran) => ran.buildIds[0] === build.buildId).length;
  console.log(`[rollout] the burst across the switch: ${onBuild(buildA)} orders ran on A, ${onBuild(buildB)} on B`);
  for (const ran of burstRanOn) {
    expect(ran).toMatchObject({ failedTasks: 0, closed: true });
    expect([[buildA.buildId], [buildB.buildId]]).toContainEqual(ran.buildIds);
  }
  const pendingRanOn = await Promise.all(pendingAtSwitch.map((orderNo) => driver.ranOn(orderNo)));
  console.log(
    `[rollout] the orders pending at the switch ran on ${pendingRanOn.map((r) => r.buildIds.join('+')).join(', ')}`,
  );
  for (const ran of pendingRanOn) {
    expect(ran).toMatchObject({ failedTasks: 0, closed: true });
    expect([[buildA.buildId], [buildB.buildId]]).toContainEqual(ran.buildIds);
  }
  await driver.untilStatus([...onA, ...pendingAtSwitch], ['PAID', 'CANCELLED'], 'A’s orders to close');
  // The endpoint's delivery moved to B (A drained with it open), and delivered what was paid on both builds.
  await paidReceived([...onA.slice(5, 13), ...onB.slice(0, 5)]);
  const delivery = client.workflow.getHandle(endpointDeliveryWorkflowId(endpoint.endpointId));
  const versionOf = async () =>
    (await delivery.describe()).raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion;
  expect(await versionOf()).toMatchObject({ buildId: buildB.buildId });

  // A's history does not replay on B: without pinning, the deploy would have failed every open order of A.
  const historyOfA = await client.workflow.getHandle(orderWorkflowId(onA[5]!)).fetchHistory();
  await expect(
    Worker.runReplayHistory(
      { workflowBundle: { codePath: buildB.bundlePath }, dataConverter: temporalDataConverter(config) },
      historyOfA,
    ),
  ).rejects.toBeInstanceOf(DeterminismViolationError);

  // The rollback: A's workers again beside B, B's five open orders paid and cancelled while B drains.
  const workerA2 = driver.startWorker(buildA, 'by-rollout');
  // First a ramp: half the new orders to A, the rest to B; then the rollback proper.
  const rampLines: string[] = [];
  const ramped = await driver.rollout(buildA, ['--ramp', '50', '--no-smoke'], rampLines);
  expect(ramped.code, ramped.output).toBe(0);
  expect(ramped.report).toMatchObject({ ramped: 50 });
  // A's restarted worker polls and ramps: B is still current, and A's restart reverted nothing.
  expect(await reconcileEveryMs(client), 'A ramping, B current').toBe(29_000);
  expect(await deployments.describeDeployment(taskQueue)).toMatchObject({
    currentBuildId: buildB.buildId,
    rampingBuildId: buildA.buildId,
    rampingPercentage: 50,
  });
  const backLines: string[] = [];
  const rollback = driver.rollout(buildA, ['--drain-timeout', '120s'], backLines);
  await driver.untilCurrent(backLines, 'the rollback to make A current');
  await waitFor(async () => (await reconcileEveryMs(client)) === 30_000, {
    what: "A's workers to write the reconcile Schedule again once A is current",
    timeoutMs: 20_000,
    intervalMs: 250,
  });
  const backOnA = await driver.sell('c', 5);
  await driver.pay([...onB.slice(5, 8), ...backOnA.slice(0, 3)]);
  await driver.cancel([...onB.slice(8), ...backOnA.slice(3)]);
  const rolledBack = await rollback;
  expect(rolledBack.code, rolledBack.output).toBe(0);
  const backReport = rolledBack.report!;
  console.log(`[rollout] B -> A: ${backLines.filter((line) => line.startsWith('[rollout]')).join('\n')}`);
  expect(backReport).toMatchObject({
    previousBuildId: buildB.buildId,
    targetBuildId: buildA.buildId,
  });
  expect(backReport.openAtSwitch[buildB.buildId]).toBe(5);
  // Drained: stopping its workers is the platform's, never the rollout's.
  expect(workerB.exitCodeNow).toBeUndefined();
  await workerB.stop(15_000);
  for (const orderNo of onB)
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildB.buildId], failedTasks: 0, closed: true });
  for (const orderNo of backOnA)
    expect(await driver.ranOn(orderNo), orderNo).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });
  await driver.untilStatus([...onB, ...backOnA], ['PAID', 'CANCELLED'], 'every order to close');
  await paidReceived([...onB.slice(5, 8), ...backOnA.slice(0, 3)]);
  expect(await versionOf()).toMatchObject({ buildId: buildA.buildId });
  expect(receiver.summary().unverified).toBe(0);
  await receiver.close();

  const inventory = new RedisInventory(redis, taskQueue);
  for (const sku of [plan.sku, SMOKE_SALE.sku]) {
    const { checks, figures } = await checkSaleInvariants({ stores, inventory }, { sku });
    expect(checks, `${sku}: ${JSON.stringify(figures)}`).toEqual(
      Object.fromEntries(Object.keys(checks).map((n) => [n, true])),
    );
  }
  const sale = await inventory.getSale(plan.sku);
  expect(sale).toMatchObject({ reserved: 0, sold: 5 + 8 + 2 + 60 + 5 + 3 + 3 });
  await workerA2.stop();
}, 420_000);

it('an unversioned worker (WORKER_VERSIONING=false) runs orders on a server with versioning: nothing pins them', async () => {
  const app = await startTestApp('unversioned', { ...API_TEST_ENV, WORKER_VERSIONING: 'false' });
  try {
    const { shoppers, sale, orderNo } = await buyOnOwnSale(app, 'UNV', 'unversioned-shopper');
    await sendPayment(
      shoppers,
      { orderNo, eventId: `evt-${orderNo}`, amountCents: sale.priceCents, kind: 'pay' },
      driver.result,
    );
    await waitFor(async () => (await app.stores.orders.getOrder(orderNo))?.status === 'PAID', {
      what: `unversioned order ${orderNo} to be PAID`,
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    // The row decides PAID; the workflow hears it by a Signal and closes a moment later: wait for that close.
    const handle = app.temporal.workflow.getHandle(orderWorkflowId(orderNo));
    await waitFor(async () => (await handle.describe()).status.name === 'COMPLETED', {
      what: `unversioned order ${orderNo}'s workflow to complete`,
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const { raw } = await handle.describe();
    expect(raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId ?? null).toBeNull();
    const view = await httpAt('GET', `${app.api.url}/api/admin/deployment`, {
      headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}` },
    });
    expect(view.status).toBe(404);
    expect(view.body).toMatchObject({ error: { code: 'NOT_VERSIONED' } });
  } finally {
    await app.close();
  }
});

it("a worker under the Worker Controller's names (`<namespace>/<name>`, an image tag's build id) polls as that version and leaves promoting to the controller", async () => {
  // As the controller sets them on a version's pods; the worker never makes itself current under it.
  const deploymentName = `shop/flash-${randomUUID().slice(0, 8)}`;
  const buildId = 'v1.4.2-5f8d9c';
  const app = await startTestApp('controller', {
    ...API_TEST_ENV,
    TEMPORAL_DEPLOYMENT_NAME: deploymentName,
    TEMPORAL_WORKER_BUILD_ID: buildId,
  });
  try {
    expect(app.config.temporal.versioning).toMatchObject({ deploymentName, buildId, promote: 'by-rollout' });
    await waitFor(
      async () => (await deployments.describeDeployment(deploymentName))?.versions.some((v) => v.buildId === buildId),
      { what: `${deploymentName}:${buildId} polling`, timeoutMs: 30_000, intervalMs: 200 },
    );
    // A worker promoting itself does so within a moment of polling (promoteOnStart): give it more than that.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect((await deployments.describeDeployment(deploymentName))?.currentBuildId).toBeNull();

    // The controller makes it current; an order then runs on that version, the name's '/' and the id's '.' intact.
    await deployments.setCurrent({ deploymentName, buildId });
    const { orderNo } = await buyOnOwnSale(app, 'CTL', 'controller-shopper');
    const handle = app.temporal.workflow.getHandle(orderWorkflowId(orderNo));
    // Not found until the owner of starts has started it.
    const ranOn = async () =>
      (await handle.describe().catch(() => null))?.raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion;
    await waitFor(async () => (await ranOn())?.buildId === buildId, {
      what: `${orderNo}'s first task on ${buildId}`,
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    expect(await ranOn()).toMatchObject({ deploymentName, buildId });
    const view = await httpAt('GET', `${app.api.url}/api/admin/deployment`, {
      headers: { authorization: `Bearer ${API_TEST_ENV.ADMIN_TOKEN}` },
    });
    expect(view.body).toMatchObject({ deploymentName, currentBuildId: buildId });
  } finally {
    await app.close();
  }
});

it('an order started before versioning runs on the first version and holds back the next build until it closes', async ({
  clients,
}) => {
  const { stores, redis, temporal: client } = clients;
  const queue = `rollout-unversioned-${randomUUID()}`;
  const queueEnv = { ...env, TEMPORAL_TASK_QUEUE: queue };
  const queueConfig = testConfig(queueEnv);
  const queueApi = await startApi(queueConfig, 0);
  const sale = { sku: `PRE-${randomUUID().slice(0, 8)}`.toUpperCase(), priceCents: 700 };
  await SalesService.onClients(stores, redis, queue).create({
    ...sale,
    name: 'Before versioning',
    stock: 2,
    perUserLimit: 1,
  });
  const queueDriver = new DeployDriver({
    env: queueEnv,
    logDir: inject('stackDataDir'),
    plan: { ...plan, ...sale, apiUrls: [queueApi.url] },
    stores,
    temporal: client,
  });
  try {
    // The release before versioning: an unversioned worker takes the order, then is replaced.
    const unversioned = queueDriver.startWorker(buildA, 'on-start', { WORKER_VERSIONING: 'false' });
    const [before] = await queueDriver.sell('pre', 1);
    await unversioned.stop(15_000);
    // The first versioned build becomes current and takes the unversioned order's tasks.
    queueDriver.startWorker(buildA, 'on-start');
    await waitFor(async () => (await deployments.describeDeployment(queue))?.currentBuildId === buildA.buildId, {
      what: 'build A to be current',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    await waitFor(async () => (await deployments.status(queue, queue)).unversionedOpenOrders === 1, {
      what: 'visibility to count the unversioned order',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    // B's histories differ from A's: the rollout refuses to move the unversioned order onto B, and switches nothing.
    queueDriver.startWorker(buildB, 'by-rollout');
    const held = await queueDriver.rollout(buildB, ['--drain-timeout', '0'], []);
    expect(held.code, held.output).toBe(1);
    expect(held.output).toContain('1 open orders started before versioning run on the current build');
    expect((await deployments.describeDeployment(queue))?.currentBuildId).toBe(buildA.buildId);
    // Paid on A, it closes; then B goes through.
    await queueDriver.pay([before!]);
    await queueDriver.untilStatus([before!], ['PAID'], 'the unversioned order to be paid on A');
    await queueDriver.untilClosed([before!], 'the unversioned order to close');
    expect(await queueDriver.ranOn(before!)).toEqual({
      buildIds: ['(none)', buildA.buildId],
      failedTasks: 0,
      closed: true,
    });
    await waitFor(async () => (await deployments.status(queue, queue)).unversionedOpenOrders === 0, {
      what: 'visibility to count no unversioned order',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const deployed = await queueDriver.rollout(buildB, ['--drain-timeout', '60s'], []);
    expect(deployed.code, deployed.output).toBe(0);
    expect((await deployments.describeDeployment(queue))?.currentBuildId).toBe(buildB.buildId);
  } finally {
    await queueDriver.stopWorkers();
    await queueApi.close();
  }
}, 240_000);

it('a Stripe order settling at its bank keeps build A open across the deploy; Stripe’s verdict closes it on A, then A drains', async ({
  clients,
}) => {
  const { stores, redis, temporal: client } = clients;
  const stripeApi = await startStripeApi();
  const queue = `rollout-stripe-${randomUUID()}`;
  const stripeEnv = {
    ...env,
    TEMPORAL_TASK_QUEUE: queue,
    PAYMENT_PROVIDER: 'stripe',
    STRIPE_SECRET_KEY: 'sk_test_rollout',
    STRIPE_WEBHOOK_SECRET: 'whsec_rollouttest',
    STRIPE_API_URL: stripeApi.url,
    PAYMENT_WINDOW: '5s',
    RATE_LIMIT_WEBHOOK: 'off',
  };
  const stripeConfig = testConfig(stripeEnv);
  const stripeApiServer = await startApi(stripeConfig, 0);
  stripeApi.setWebhook(`${stripeApiServer.url}/api/payments/stripe`, 'whsec_rollouttest');
  const stripeDriver = new DeployDriver({
    env: stripeEnv,
    logDir: inject('stackDataDir'),
    plan: { ...plan, apiUrls: [stripeApiServer.url] },
    stores,
    temporal: client,
  });
  try {
    const workerA = stripeDriver.startWorker(buildA, 'on-start');
    await waitFor(async () => (await deployments.describeDeployment(queue))?.currentBuildId === buildA.buildId, {
      what: 'build A to be current',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    const { orderNo, sku, intent } = await checkoutWithIntent({
      api: stripeApiServer.url,
      auth: new ShopperAuth(stripeConfig),
      stores,
      redis,
    });
    // A bank debit: the intent stays processing past the deadline, so the close waits at Stripe (SETTLING_AT_PROVIDER).
    stripeApi.confirm(intent.id, 'processing');
    await waitFor(async () => stripeApi.callsTo('GET', `/v1/payment_intents/${intent.id}`).length > 0, {
      what: `the close's re-read of ${intent.id}`,
      timeoutMs: 30_000,
    });
    stripeDriver.startWorker(buildB, 'by-rollout');
    const lines: string[] = [];
    const deploy = stripeDriver.rollout(buildB, ['--drain-timeout', '120s'], lines);
    await stripeDriver.untilCurrent(lines, 'the rollout to make B current');
    // A stays: its one order is open at Stripe. The bank settles; Stripe's event pays the order, on A.
    // Every pinned type counted, per build (a scheduled reconcile may be running on A too): the order keeps A.
    const statusOfA = (await deployments.status(queue, queue)).versions.find(
      ({ buildId }) => buildId === buildA.buildId,
    );
    expect(statusOfA).toMatchObject({ status: 'DRAINING', openOrders: 1, openRuns: { OrderWorkflow: 1 } });
    expect(Object.keys(statusOfA!.openRuns).sort()).toEqual([...PINNED_WORKFLOW_TYPES].sort());
    stripeApi.settleProcessing(intent.id, 'succeeded');
    const deployed = await deploy;
    console.log(`[rollout] Stripe: ${lines.filter((line) => line.startsWith('[rollout]')).join('\n')}`);
    expect(deployed.code, deployed.output).toBe(0);
    // Drained: stopping its workers is the platform's, never the rollout's.
    expect(workerA.exitCodeNow).toBeUndefined();
    await workerA.stop(15_000);
    expect(await stripeDriver.ranOn(orderNo)).toEqual({ buildIds: [buildA.buildId], failedTasks: 0, closed: true });
    expect((await stores.orders.getOrder(orderNo))?.status).toBe('PAID');
    const { checks, figures } = await checkSaleInvariants(
      { stores, inventory: new RedisInventory(redis, queue) },
      { sku },
    );
    expect(checks, JSON.stringify(figures)).toEqual(Object.fromEntries(Object.keys(checks).map((n) => [n, true])));
    expect(figures.redis).toMatchObject({ reserved: 0, sold: 1 });
  } finally {
    await stripeDriver.stopWorkers();
    await stripeApiServer.close();
    await stripeApi.stop();
  }
}, 240_000);
