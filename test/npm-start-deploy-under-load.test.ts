/**
 * `npm start` restarted on a new build in the middle of a sale (stack/local-apps.ts on the test stack): shoppers keep
 * buying, paying (on time, early, twice, late, with a wrong amount) and cancelling through the API while this
 * checkout's apps (build A) stop and a copy with OrderWorkflow changed (build B) starts on the same data directory.
 * Shoppers retry through the restart as a browser would. Every check of the fault suite holds once the sale is quiet,
 * and every order ran on the one build it started on.
 */
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHAOS_CHECKS, checkAfterFault, waitForQuiescence, waitForRepair } from '../chaos/checks.js';
import { ShopperAuth } from '../src/api/auth.js';
import type { AppConfig } from '../src/config/index.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { StartPacing } from '../src/order/start-pacing.js';
import { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { runTraffic, sameKeySameOrder, type TrafficPlan } from '../toolkit/shoppers.js';
import { changeFile, copyCheckout } from './helpers/builds.js';
import { persistOneTimerLater, ranOn } from './helpers/deploys.js';
import { putOnSale } from './helpers/fixtures.js';
import { NpmStarts } from './helpers/npm-starts.js';
import type { StackClients } from './helpers/stack-clients.js';

const root = resolve(import.meta.dirname, '..');
let starts: NpmStarts;
let config: AppConfig;
let queue: string;
let clients: StackClients;

beforeAll(async () => {
  // Late payments wait past the window: a short one keeps the test short.
  starts = await NpmStarts.open('npm-start-load', { PAYMENT_WINDOW: '8s' });
  ({ config, clients, queue } = starts);
}, 60_000);

afterAll(async () => {
  await starts?.close();
});

it('restarted on a new build mid-sale: every check of the fault suite holds, each order on its own build', async () => {
  const checkoutB = copyCheckout(join(starts.dataDir, 'checkout-b'));
  changeFile(checkoutB, 'src/workflows/order.ts', persistOneTimerLater);
  const a = await starts.start(root);
  const stock = 240;
  const { sku, priceCents } = await putOnSale(clients.stores, clients.redis, { stock });
  const auth = new ShopperAuth(config);
  const plan: TrafficPlan = {
    sku,
    priceCents,
    shoppers: stock,
    concurrency: 16,
    arrivalsPerSecond: 12,
    apiUrls: [starts.apiUrl],
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: config.webhookSecret,
    paymentWindowMs: config.paymentWindowMs,
    retryForMs: 60_000,
  };
  const since = new Date();
  const traffic = runTraffic(plan);
  await sleep(6_000);
  // The restart: A's apps stop (the API with them), B's start on the same data directory.
  const restartAt = Date.now();
  await a.stop();
  const b = await starts.start(checkoutB);
  expect(b.buildId).not.toBe(a.buildId);
  await traffic.checkoutsDone;

  const inventory = new RedisInventory(clients.redis, queue);
  const deps = { stores: clients.stores, redis: clients.redis, inventory, temporal: clients.temporal };
  const orders = OrderWorkflowClient.withoutBreakers(clients.temporal, queue, new StartPacing({ maxLimit: 32 }));
  await waitForRepair(deps, sku, restartAt, 150_000, orders);
  const result = await traffic.done;
  const accepted = result.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
  await waitForQuiescence(deps, sku, accepted, 150_000);
  const verdict = await checkAfterFault(deps, sku, 1, result, since, () => sameKeySameOrder(plan, result));
  expect(verdict.figures.acceptedWithoutRow).toBe(0);
  expect(verdict.checks, JSON.stringify(verdict.figures)).toEqual(
    Object.fromEntries(CHAOS_CHECKS.map((check) => [check, true])),
  );

  // Each order ran on the build it started on, with no failed task: some on A (drained by B's start), some on B.
  const perBuild = { A: 0, B: 0 };
  for (const orderNo of accepted) {
    const ran = await ranOn(clients.temporal, orderWorkflowId(orderNo));
    expect(ran.failedTasks, orderNo).toBe(0);
    expect([[a.buildId], [b.buildId]], orderNo).toContainEqual(ran.buildIds);
    perBuild[ran.buildIds[0] === a.buildId ? 'A' : 'B'] += 1;
  }
  console.log(`[npm-start-load] ${accepted.length} accepted: ${JSON.stringify(perBuild)}`);
  expect(perBuild.A).toBeGreaterThan(0);
  expect(perBuild.B).toBeGreaterThan(0);
}, 420_000);
