/**
 * Payload encryption rolled out and its key rotated during a sale, as docs/operations.md ("Payload encryption") tells
 * an operator: worker builds differing only in PAYLOAD_CODEC_MODE and PAYLOAD_CODEC_KEYS (each its own build id), the
 * API switched with them, `npm run rollout` between each step while the previous build's orders are paid and cancelled:
 * plain -> encrypting with k1 -> k1 then k2 listed -> k2 encrypting -> back to k1 encrypting (a rollback with k2's
 * orders open). Every order runs on the build it started on, no workflow task fails to decode, its build's activity
 * inputs hold that build's key, and the sale's invariants hold.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ConnectionLike } from '@temporalio/client';
import { expect, inject } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { startApi, type RunningApi } from '../src/api/server.js';
import { eachPayload } from '../toolkit/history-payloads.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { SMOKE_SALE } from '../src/order/smoke-order.js';
import { SalesService } from '../src/sales/sales-service.js';
import { workerBuildId } from '../src/workers/versioning.js';
import { waitFor } from '../stack/wait-for.js';
import type { TrafficPlan } from '../toolkit/shoppers.js';
import { API_TEST_ENV } from './helpers/app.js';
import type { VariantBuild } from './helpers/builds.js';
import type { ManagedProcess } from '../stack/process.js';
import { DeployDriver, deployTrafficPlan } from './helpers/deploys.js';
import { testConfig } from './helpers/env.js';
import { clientsTest } from './helpers/stack-test.js';

const taskQueue = `codec-rollout-${randomUUID()}`;
const key = (id: string) => `${id}=${randomBytes(32).toString('base64')}`;
const k1 = key('k1');
const k2 = key('k2');
/** The codec settings of each step. */
const STEPS = {
  plain: { PAYLOAD_CODEC_MODE: 'decrypt-only', PAYLOAD_CODEC_KEYS: k1 },
  k1: { PAYLOAD_CODEC_MODE: 'encrypt', PAYLOAD_CODEC_KEYS: k1 },
  k1ThenK2: { PAYLOAD_CODEC_MODE: 'encrypt', PAYLOAD_CODEC_KEYS: `${k1},${k2}` },
  k2: { PAYLOAD_CODEC_MODE: 'encrypt', PAYLOAD_CODEC_KEYS: `${k2},${k1}` },
} as const;
type Step = keyof typeof STEPS;

/** What every process of this test reads; the step's codec settings are written into it as the deploy moves on. */
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  ...inject('stackEnv'),
  ...API_TEST_ENV,
  TEMPORAL_TASK_QUEUE: taskQueue,
  ...STEPS.plain,
};

const config = testConfig(env);
// Reads what every step wrote: both keys.
const it = clientsTest(config, { readsWith: testConfig({ ...env, ...STEPS.k2 }) });
let deployments: WorkerDeployments;
let plan: TrafficPlan;
let driver: DeployDriver;
const apis: RunningApi[] = [];
const builds = {} as Record<Step, VariantBuild>;

// The builds, the sale and the deploy's driver: per-file state beside the clients, kept in a hook with its 180 s.
it.beforeAll(async ({ clients }) => {
  const { stores, redis, connection, temporal: client } = clients;
  deployments = new WorkerDeployments(connection, config.temporal.namespace, 'codec-rollout-test');
  // One bundle; each step's codec makes it another build, as the worker names itself.
  const bundlePath = inject('workflowBundlePath');
  for (const step of Object.keys(STEPS) as Step[])
    builds[step] = { bundlePath, buildId: workerBuildId(testConfig({ ...env, ...STEPS[step] }), bundlePath) };
  const sale = { sku: `CODEC-${randomUUID().slice(0, 8)}`.toUpperCase(), priceCents: 1_200 };
  await SalesService.onClients(stores, redis, taskQueue).create({
    ...sale,
    name: 'Codec rollout',
    stock: 60,
    perUserLimit: 1,
  });
  const auth = new ShopperAuth(config);
  plan = deployTrafficPlan(config, auth, sale);
  driver = new DeployDriver({ env, logDir: inject('stackDataDir'), plan, stores, temporal: client });
}, 180_000);

it.afterAll(async () => {
  await driver?.stopWorkers();
  await Promise.allSettled(apis.map((api) => api.close()));
});

/** The API and the tools move to `step`'s codec settings: an API process of that step serves the shoppers. */
async function switchTo(step: Step): Promise<void> {
  Object.assign(env, STEPS[step]);
  const api = await startApi(testConfig(env), 0);
  apis.push(api);
  plan.apiUrls.splice(0, plan.apiUrls.length, api.url);
}

/** Runs the rollout to `step`'s build while `during` runs, then stops `previous`'s worker once drained. */
async function rollTo(step: Step, previous: ManagedProcess, during: () => Promise<void>): Promise<void> {
  const lines: string[] = [];
  const deploy = driver.rollout(builds[step], ['--drain-timeout', '120s'], lines);
  await driver.untilCurrent(lines, `the rollout to make ${step} current`);
  await during();
  const deployed = await deploy;
  expect(deployed.code, deployed.output).toBe(0);
  expect(deployed.report).toMatchObject({ targetBuildId: builds[step].buildId });
  expect(deployed.report?.drainedAfterMs).not.toBeNull();
  await previous.stop(15_000);
}

/**
 * The keys of what the order's own build wrote into its history (activity inputs, local activities' markers, the
 * result; `plain`: none), read as an attacker without the key would (its input and Signals are the senders').
 */
async function activityKeysOf(connection: ConnectionLike, orderNo: string): Promise<string[]> {
  const { history } = await connection.workflowService.getWorkflowExecutionHistory({
    namespace: config.temporal.namespace,
    execution: { workflowId: orderWorkflowId(orderNo) },
  });
  const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString() : '');
  const keys = new Set<string>();
  for (const event of history?.events ?? [])
    for (const payload of eachPayload([
      event.activityTaskScheduledEventAttributes?.input,
      // A local activity's result; its marker's `data` (sequence, attempt, type) is the SDK core's own, never encoded.
      event.markerRecordedEventAttributes?.details?.result,
      event.workflowExecutionCompletedEventAttributes?.result,
    ]))
      keys.add(
        text(payload.metadata?.encoding) === 'binary/encrypted'
          ? text(payload.metadata?.['encryption-key-id'])
          : 'plain',
      );
  return [...keys];
}

it('turns encryption on, rotates the key and rolls the rotation back, with orders open at every switch', async ({
  clients,
}) => {
  const { stores, redis, connection } = clients;
  expect(new Set(Object.values(builds).map((build) => build.buildId)).size).toBe(4);
  await switchTo('plain');
  const plainWorker = driver.startWorker(builds.plain, 'on-start', STEPS.plain);
  await waitFor(
    async () => (await deployments.describeDeployment(taskQueue))?.currentBuildId === builds.plain.buildId,
    { what: 'the plain build to be current', timeoutMs: 60_000, intervalMs: 250 },
  );
  const onPlain = await driver.sell('plain', 6);
  await driver.pay(onPlain.slice(0, 2));

  // Encryption on: the plain build's open orders get encrypted Signals and Updates, which it reads.
  await switchTo('k1');
  const k1Worker = driver.startWorker(builds.k1, 'by-rollout', STEPS.k1);
  let onK1: string[] = [];
  await rollTo('k1', plainWorker, async () => {
    onK1 = await driver.sell('k1', 4);
    await driver.pay(onPlain.slice(2, 4));
    await driver.cancel(onPlain.slice(4));
  });

  // Rotation, step 1: k2 listed after k1, so every worker reads it before anything is written with it.
  await switchTo('k1ThenK2');
  const k1ThenK2Worker = driver.startWorker(builds.k1ThenK2, 'by-rollout', STEPS.k1ThenK2);
  let onK1ThenK2: string[] = [];
  await rollTo('k1ThenK2', k1Worker, async () => {
    onK1ThenK2 = await driver.sell('k1k2', 4);
    await driver.pay(onK1.slice(0, 2));
    await driver.cancel(onK1.slice(2));
  });

  // Step 2: k2 encrypts; the open orders of step 1 read the API's k2 payloads.
  await switchTo('k2');
  const k2Worker = driver.startWorker(builds.k2, 'by-rollout', STEPS.k2);
  let onK2: string[] = [];
  await rollTo('k2', k1ThenK2Worker, async () => {
    onK2 = await driver.sell('k2', 4);
    await driver.pay(onK1ThenK2.slice(0, 2));
    await driver.cancel(onK1ThenK2.slice(2));
  });

  // A rollback to step 1 with k2's orders open: k2 is listed there, so its payloads are read.
  await switchTo('k1ThenK2');
  driver.startWorker(builds.k1ThenK2, 'by-rollout', STEPS.k1ThenK2);
  let back: string[] = [];
  await rollTo('k1ThenK2', k2Worker, async () => {
    back = await driver.sell('back', 2);
    await driver.pay(onK2.slice(0, 2));
    await driver.cancel(onK2.slice(2));
  });
  await driver.pay(back);

  const all = { plain: onPlain, k1: onK1, k1ThenK2: [...onK1ThenK2, ...back], k2: onK2 };
  await driver.untilStatus(Object.values(all).flat(), ['PAID', 'CANCELLED'], 'every order to close');
  await driver.untilClosed(Object.values(all).flat(), 'every workflow to close');
  for (const [step, orderNos] of Object.entries(all) as [Step, string[]][])
    for (const orderNo of orderNos) {
      expect(await driver.ranOn(orderNo), `${step} ${orderNo}`).toEqual({
        buildIds: [builds[step].buildId],
        failedTasks: 0,
        closed: true,
      });
      expect(await activityKeysOf(connection, orderNo), `${step} ${orderNo}`).toEqual([
        { plain: 'plain', k1: 'k1', k1ThenK2: 'k1', k2: 'k2' }[step],
      ]);
    }

  const inventory = new RedisInventory(redis, taskQueue);
  for (const sku of [plan.sku, SMOKE_SALE.sku]) {
    const { checks, figures } = await checkSaleInvariants({ stores, inventory }, { sku });
    expect(checks, `${sku}: ${JSON.stringify(figures)}`).toEqual(
      Object.fromEntries(Object.keys(checks).map((name) => [name, true])),
    );
  }
  expect(await inventory.getSale(plan.sku)).toMatchObject({ reserved: 0, sold: 2 + 2 + 2 + 2 + 2 + 2 });
  await k1ThenK2Worker.stop().catch(() => undefined);
}, 600_000);
