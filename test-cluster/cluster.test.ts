/**
 * The app on the cluster layout, through nginx: Temporal as four services on PostgreSQL (4 history
 * shards), a Redis Cluster of 3 masters + 3 replicas, one MariaDB, two workers and two APIs. The same
 * code as everywhere, configured by the stack's env alone (REDIS_URL lists the six nodes).
 *
 * First the API flow (checkout, poll, webhook payment, cancel, timeout), then a burst, then the
 * faults a cluster is for, each mid-burst: the Redis master holding the sale SIGKILLed (its replica
 * takes over), a worker and an API SIGKILLed, the history service SIGKILLed and started again.
 * After each, the fault suite's checks (chaos/checks.ts) against what the API answered.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHAOS_CHECKS, checkAfterFault, waitForQuiescence, waitForRepair } from '../chaos/checks.js';
import { runTraffic, sameKeySameOrder, type TrafficPlan } from '../toolkit/shoppers.js';
import { ShopperAuth } from '../src/api/auth.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { createMysqlPool } from '../src/db/pool.js';
import type { Pool } from 'mysql2/promise';
import { openStores, type Stores } from '../src/db/stores.js';
import { createRedis, type RedisClient } from '../src/infra/redis.js';
import { saleKeys } from '../src/redis/layout.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { RedisSales } from '../src/redis/sales.js';
import { PromiseQueue } from '../src/redis/promise-queue.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { startClusterApp, type RunningClusterApp } from '../stack/cluster-app.js';
import { waitFor } from '../stack/wait-for.js';
import { StartPacing } from '../src/order/start-pacing.js';
import { buildChangedOrderWorkflow, DeployDriver } from '../test/helpers/deploys.js';
import type { VariantBuild } from '../test/helpers/builds.js';
import { workerBuildId } from '../src/workers/versioning.js';
import { loadConfig } from '../src/config/index.js';
import { httpAt, httpRequest, type HttpOptions } from '../test/helpers/http.js';

const PAYMENT_WINDOW_MS = 8_000;
const workDir = mkdtempSync(join(tmpdir(), 'flash-cluster-'));
const say = (line: string) => console.log(`[cluster] ${line}`);
let app: RunningClusterApp;
let pool: Pool;
let stores: Stores;
let redis: RedisClient;
let connection: Connection;
let temporal: Client;
let orders: OrderWorkflowClient;
let auth: ShopperAuth;
const timings: Record<string, number> = {};

beforeAll(async () => {
  const t0 = Date.now();
  app = await startClusterApp({
    dataDir: join(workDir, 'stack'),
    ephemeral: true,
    ui: false,
    log: say,
    appLogs: workDir,
    env: {
      PAYMENT_WINDOW: `${PAYMENT_WINDOW_MS / 1000}s`,
      RECONCILE_INTERVAL: '3s',
      // The fault suite's shoppers send Prefer: wait=5; the grace covers that wait + CHECKOUT_DEADLINE (2 s), or
      // loadConfig refuses.
      CHECKOUT_MAX_WAIT: '5s',
      RESERVATION_GRACE: '7s',
      AUTH_DEV_LOGIN: 'true',
      LOG_LEVEL: 'warn',
      TEMPORAL_TASK_QUEUE: `cluster-${process.pid}`,
      // As in the fault suite: its payment provider is 127.0.0.1, and a killed API need not drain.
      RATE_LIMIT_WEBHOOK: 'off',
      SHUTDOWN_DRAIN: '0s',
    },
    supervise: { initialDelayMs: 500, maxDelayMs: 5_000, log: (line) => say(`supervisor: ${line}`) },
  });
  timings.startSeconds = (Date.now() - t0) / 1000;
  say(`cluster app up in ${timings.startSeconds.toFixed(1)} s; logs under ${workDir}`);
  pool = createMysqlPool(app.config);
  stores = openStores(pool);
  redis = createRedis(app.config, { maxRetriesPerRequest: 20 });
  redis.on('error', () => {});
  connection = await Connection.connect({ address: app.config.temporal.address });
  temporal = new Client({
    connection,
    namespace: app.config.temporal.namespace,
    dataConverter: temporalDataConverter(app.config),
  });
  orders = OrderWorkflowClient.withoutBreakers(
    temporal,
    app.config.temporal.taskQueue,
    new StartPacing({ maxLimit: 32 }),
  );
  auth = new ShopperAuth(app.config);
});

afterAll(async () => {
  await Promise.allSettled([pool?.end(), redis?.quit(), connection?.close()]);
  await app?.stop();
  say(`timings: ${JSON.stringify(timings)}`);
  if (!process.env.KEEP_TEST_DATA) rmSync(workDir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function http(method: string, path: string, options: HttpOptions = {}): Promise<Reply> {
  const reply = await httpRequest(app.url, method, path, { timeoutMs: 30_000, ...options });
  return { status: reply.status, body: (reply.body ?? {}) as Record<string, unknown> };
}

/** Shoppers of `sku` (a sale at createSale's price) through the cluster's front door, paying by the signed webhook. */
function shoppersOf(sku: string, load: Pick<TrafficPlan, 'shoppers' | 'concurrency' | 'retryForMs'>): TrafficPlan {
  return {
    sku,
    priceCents: 1_500,
    arrivalsPerSecond: 40,
    apiUrls: [app.url],
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: app.config.webhookSecret,
    paymentWindowMs: PAYMENT_WINDOW_MS,
    ...load,
  };
}

async function createSale(sku: string, stock: number, perUserLimit = 1, priceCents = 1_500): Promise<void> {
  const reply = await http('POST', '/api/sales', {
    json: { sku, name: sku, priceCents, stock, perUserLimit },
    headers: { authorization: `Bearer ${app.config.adminToken}` },
  });
  expect(reply.status).toBe(201);
}

async function pollUntil(
  orderNo: string,
  token: string,
  done: (status: string) => boolean,
  timeoutMs = 60_000,
): Promise<Reply['body']> {
  return waitFor(
    async () => {
      const reply = await http('GET', `/api/orders/${orderNo}`, { token });
      return reply.status === 200 && done(String(reply.body.status)) ? reply.body : undefined;
    },
    { what: `order ${orderNo} to reach the expected status`, timeoutMs, intervalMs: 250, retryErrors: true },
  );
}

function pay(orderNo: string, amountCents: number, eventId = `evt-${orderNo}`): Promise<Reply> {
  const raw = JSON.stringify({ eventId, type: 'payment.succeeded', orderNo, amountCents });
  return http('POST', '/api/payments/webhook', {
    raw,
    headers: { 'payment-signature': signWebhook(app.config.webhookSecret, raw) },
  });
}

/** The master node serving `sku`'s sale (its hash slot), by the cluster's own view. */
async function masterOfSale(sku: string) {
  const slot = Number(await redis.cluster('KEYSLOT', saleKeys(sku).sale));
  const owner = (await app.stack.redis.clusterNodes()).find(
    (node) =>
      node.role === 'master' &&
      node.slots.some((range) => {
        const [from, to] = range.split('-').map(Number);
        return slot >= (from ?? -1) && slot <= (to ?? from ?? -1);
      }),
  );
  return { slot, owner };
}

const uniqueSku = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

describe.sequential('the app on the cluster layout', () => {
  it('runs on Redis Cluster and a multi-service Temporal, configured by its env alone', async () => {
    expect(redis).toBeInstanceOf(Cluster);
    expect(app.config.redisCluster).toBe(true);
    expect(app.config.redisUrl.split(',')).toHaveLength(6);
    expect(await app.stack.redis.masters()).toHaveLength(3);
    const health = await http('GET', '/healthz');
    const near = {
      offsetMs: expect.toSatisfy((ms: number) => Math.abs(ms) < 1_000),
      uncertaintyMs: expect.any(Number),
      measuredAt: expect.any(String),
    };
    expect(health).toEqual({
      status: 200,
      body: {
        status: 'ok',
        checks: { redis: 'up', mysql: 'up', temporal: 'up' },
        breakers: { redis: 'closed', mysql: 'closed', temporal: 'closed', workflows: 'closed' },
        // Redis's (a node of the cluster) and MySQL's clock against the API's: one box, so close.
        clocks: { redis: near, mysql: near },
      },
    });
    // Both APIs answer behind the load balancer.
    for (const url of app.apiUrls) expect((await httpAt('GET', `${url}/healthz`)).status).toBe(200);
  });

  it('the Lua scripts run at once for sales on every master (a script is routed by its keys, not their count)', async () => {
    // One sale per master, driven in the same tick so that ioredis auto-pipelines the calls: a script routed by
    // anything but its first key would share a pipeline with another master's sale, which the cluster refuses.
    const masters = new Map<number, string>();
    for (let i = 0; masters.size < 3 && i < 1_000; i++) {
      const sku = uniqueSku(`CL-LUA-${i}`);
      const { owner } = await masterOfSale(sku);
      if (owner && !masters.has(owner.port)) masters.set(owner.port, sku);
    }
    const skus = [...masters.values()];
    expect(skus).toHaveLength(3);
    const pipeline = `lua-routing-${process.pid}`;
    const sales = new RedisSales(redis, pipeline);
    const inventory = new RedisInventory(redis, pipeline);
    const promises = new PromiseQueue(redis);
    await Promise.all(skus.map((sku) => sales.defineSale({ sku, stock: 2, perUserLimit: 1, priceCents: 100 })));
    const orderNos = skus.map(() => newOrderNo());
    const reserved = await Promise.all(
      skus.map((sku, i) => inventory.reserve({ orderNo: orderNos[i]!, sku, userId: 'lua-router', quantity: 1 })),
    );
    expect(reserved.map((r) => r.outcome)).toEqual(['RESERVED', 'RESERVED', 'RESERVED']);
    const taken = await Promise.all(
      skus.map((sku) => promises.takeDueStarts(sku, 'lua-router', { leaseMs: 1_000, limit: 1, recheckMs: 1_000 })),
    );
    expect(taken.map((t) => t.leased)).toEqual([true, true, true]);
    expect(await Promise.all(skus.map((sku, i) => inventory.confirm(sku, orderNos[i]!)))).toEqual([
      'CONFIRMED',
      'CONFIRMED',
      'CONFIRMED',
    ]);
    expect(await Promise.all(skus.map((sku) => sales.closeSale(sku)))).toEqual([
      expect.any(Date),
      expect.any(Date),
      expect.any(Date),
    ]);
  });

  it('checkout → poll → signed webhook → PAID through the load balancer', async () => {
    const sku = uniqueSku('CL-PAY');
    await createSale(sku, 5, 2, 1_999);
    const { token } = (await http('POST', '/api/auth/dev-login', { json: { userId: 'cl-alice' } })).body as {
      token: string;
    };
    const checkout = await http('POST', '/api/checkout', {
      json: { sku, quantity: 2 },
      token,
      headers: { 'Idempotency-Key': 'cl-1' },
    });
    expect(checkout.status).toBe(202);
    const orderNo = String(checkout.body.orderNo);
    // The same key, answered by either API, returns the same order.
    for (let i = 0; i < 4; i++) {
      const again = await http('POST', '/api/checkout', {
        json: { sku, quantity: 2 },
        token,
        headers: { 'Idempotency-Key': 'cl-1' },
      });
      expect(again.body.orderNo).toBe(orderNo);
    }
    const awaiting = await pollUntil(orderNo, token, (s) => s === 'AWAITING_PAYMENT');
    expect(awaiting).toMatchObject({ orderNo, sku, quantity: 2, totalCents: 3_998 });
    expect(await pay(orderNo, 3_998)).toEqual({ status: 200, body: { received: true, outcome: 'APPLIED' } });
    expect((await pay(orderNo, 3_998)).body).toEqual({ received: true, outcome: 'DUPLICATE' });
    const paid = await pollUntil(orderNo, token, (s) => s === 'PAID');
    expect(paid.paidAt).toEqual(expect.any(String));
    await waitFor(async () => ((await http('GET', `/api/sales/${sku}`)).body.sold === 2 ? true : undefined), {
      what: 'the sale to count 2 sold',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    expect((await http('GET', `/api/sales/${sku}`)).body).toMatchObject({
      stock: 5,
      available: 3,
      reserved: 0,
      sold: 2,
    });
  });

  it('cancel gives the stock back, and both APIs see it although each cached SOLD_OUT', async () => {
    const sku = uniqueSku('CL-CANCEL');
    await createSale(sku, 1);
    const token = await auth.issue('cl-canceller');
    const checkout = await http('POST', '/api/checkout', { json: { sku, quantity: 1 }, token });
    expect(checkout.status).toBe(202);
    const orderNo = String(checkout.body.orderNo);
    await pollUntil(orderNo, token, (s) => s === 'AWAITING_PAYMENT');
    // Sold out on both APIs (the load balancer alternates): each sets its local sold-out flag.
    for (let i = 0; i < 4; i++) {
      const late = await http('POST', '/api/checkout', {
        json: { sku, quantity: 1 },
        token: await auth.issue(`cl-late-${i}`),
      });
      expect(late.body).toEqual({ error: { code: 'SOLD_OUT', message: expect.any(String) } });
    }
    expect((await http('POST', `/api/orders/${orderNo}/cancel`, { token })).status).toBe(202);
    expect((await pollUntil(orderNo, token, (s) => s === 'CANCELLED')).cancelReason).toBe('USER_CANCELLED');
    // release.lua's notification crossed the cluster to both APIs' subscriptions: the unit sells again
    // through either of them at once (well within the flags' 1 s TTL).
    const next = await waitFor(
      async () => {
        const reply = await http('POST', '/api/checkout', {
          json: { sku, quantity: 1 },
          token: await auth.issue('cl-second-chance'),
        });
        return reply.status === 202 ? reply : undefined;
      },
      { what: 'the returned unit to sell again', timeoutMs: 2_000, intervalMs: 20 },
    );
    expect(next.status).toBe(202);
    // And a payment for the cancelled order is kept for a refund, never applied.
    expect((await pay(orderNo, 1_500)).body).toMatchObject({ received: true, outcome: 'REFUND_REQUIRED' });
  });

  it('an unpaid order is cancelled by its timer after PAYMENT_WINDOW', async () => {
    const sku = uniqueSku('CL-TIMEOUT');
    await createSale(sku, 2);
    const token = await auth.issue('cl-slow-payer');
    const checkout = await http('POST', '/api/checkout', { json: { sku, quantity: 1 }, token });
    expect(checkout.status).toBe(202);
    const orderNo = String(checkout.body.orderNo);
    const awaiting = await pollUntil(orderNo, token, (s) => s === 'AWAITING_PAYMENT');
    // The window counts from when the order became payable, a moment after the checkout.
    expect(
      Date.parse(String(awaiting.paymentDeadline)) - Date.parse(String(awaiting.createdAt)),
    ).toBeGreaterThanOrEqual(PAYMENT_WINDOW_MS);
    const cancelled = await pollUntil(orderNo, token, (s) => s === 'CANCELLED', PAYMENT_WINDOW_MS + 60_000);
    expect(cancelled.cancelReason).toBe('PAYMENT_TIMEOUT');
    // MySQL shows CANCELLED one step before the workflow's release reaches Redis: the release is waited for.
    const sale = await waitFor(
      async () => {
        const { body } = await http('GET', `/api/sales/${sku}`);
        return body.reserved === 0 ? body : undefined;
      },
      { what: `the timed-out order's unit of ${sku} back in Redis`, timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(sale).toMatchObject({ stock: 2, available: 2, reserved: 0, sold: 0 });
  });

  /** A burst of shoppers (with payments, cancels, late and duplicate payments) through nginx, `fault` mid-burst. */
  async function burst(
    name: string,
    fault?: (sku: string) => Promise<void>,
    faultAfterMs = 1_500,
    { shoppers = 100, stock = 60, arrivalsPerSecond = 40 } = {},
  ): Promise<string[]> {
    const sku = uniqueSku(`CL-${name.toUpperCase()}`);
    await createSale(sku, stock);
    const t0 = Date.now();
    const plan = { ...shoppersOf(sku, { shoppers, concurrency: 16, retryForMs: 60_000 }), arrivalsPerSecond };
    const traffic = runTraffic(plan);
    let faultDone: Promise<void> = Promise.resolve();
    const faultAt = Date.now() + faultAfterMs;
    if (fault) {
      await sleep(faultAfterMs);
      faultDone = fault(sku);
    }
    await traffic.checkoutsDone;
    await faultDone;
    const deps = { stores, redis, inventory: new RedisInventory(redis, app.config.temporal.taskQueue), temporal };
    const repairSeconds = await waitForRepair(deps, sku, faultAt, 150_000, orders);
    const result = await traffic.done;
    const accepted = result.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
    const quietSeconds = await waitForQuiescence(deps, sku, accepted, 150_000);
    // After a failover or a kill, each accepted shopper's key still names its order, and no shopper holds more than the
    // limit.
    const verdict = await checkAfterFault(deps, sku, 1, result, new Date(t0), () => sameKeySameOrder(plan, result));
    timings[`${name}Seconds`] = Math.round((Date.now() - t0) / 100) / 10;
    // A promise the failover lost would be a 202 with no order ever (REDIS_WAIT_REPLICAS keeps it at 0).
    timings[`${name}AcceptedWithoutRow`] = Number(verdict.figures.acceptedWithoutRow);
    say(
      `${name}: ${accepted.length} accepted, repaired after ${repairSeconds.toFixed(1)} s, quiet after ${quietSeconds.toFixed(1)} s`,
    );
    say(`  ${JSON.stringify(verdict.figures)}`);
    // More than `stock` may be accepted: cancels and timeouts mid-burst put units back on sale.
    expect(accepted.length).toBeGreaterThan(0);
    expect(verdict.figures.acceptedWithoutRow).toBe(0);
    const { paid, awaitingPayment } = verdict.figures.orders as { paid: number; awaitingPayment: number };
    expect(paid + awaitingPayment).toBeLessThanOrEqual(stock);
    expect(verdict.checks, JSON.stringify(verdict.figures)).toEqual(
      Object.fromEntries(CHAOS_CHECKS.map((check) => [check, true])),
    );
    return accepted;
  }

  it('a burst keeps every invariant (no oversell, conservation, every 202 an order, every payment settled)', async () => {
    await burst('burst');
  });

  it('a Redis master SIGKILLed mid-burst: its replica takes over, every invariant holds', async () => {
    await burst('redisMasterKill', async (sku) => {
      // The master that serves this burst's sale, so that the failover is in every checkout's path.
      const { slot, owner } = await masterOfSale(sku);
      const victim = app.stack.redis.nodes.find((node) => node.port === owner?.port)?.role;
      if (!victim) throw new Error(`no master serves slot ${slot}`);
      const before = (await app.stack.redis.clusterNodes()).filter((n) => n.role === 'master').length;
      expect(before).toBe(3);
      say(`SIGKILL Redis master ${victim} (pid ${app.stack.processes[victim]?.pid})`);
      await app.stack.kill(victim);
      const failoverMs = await app.stack.redis.waitHealthy({ replicas: false, timeoutMs: 60_000 });
      timings.redisFailoverSeconds = failoverMs / 1000;
      expect(await app.stack.redis.masters()).not.toContain(victim);
      await app.stack.start(victim);
      await app.stack.redis.waitHealthy({ timeoutMs: 60_000 });
    });
  });

  it('a worker SIGKILLed mid-burst: the other takes its tasks, every invariant holds', async () => {
    await burst('workerKill', async () => {
      const worker = app.workers[0]!;
      say(`SIGKILL ${worker.name} (pid ${worker.process?.pid})`);
      worker.kill('SIGKILL');
      await sleep(500);
      await worker.running();
    });
  });

  it('an API SIGKILLed mid-burst: nginx sends shoppers to the other, every invariant holds', async () => {
    await burst(
      'apiKill',
      async () => {
        const api = app.apis[0]!;
        say(`SIGKILL ${api.name} (pid ${api.process?.pid})`);
        api.kill('SIGKILL');
        await sleep(500);
        await api.running();
      },
      800,
    );
  });

  it('the history service SIGKILLed mid-burst and started again: every invariant holds', async () => {
    await burst('historyKill', async () => {
      say(`SIGKILL temporal-history (pid ${app.stack.processes['temporal-history']?.pid})`);
      await app.stack.kill('temporal-history');
      await sleep(2_000);
      const t0 = Date.now();
      await app.stack.start('temporal-history');
      timings.historyRestartSeconds = (Date.now() - t0) / 1000;
    });
  });
  it('a deploy under load on server 1.29.1 (the versioning minimum): B beside A, ramped, promoted, A drained and stopped, then rolled back; every invariant holds', async () => {
    const env = Object.fromEntries(
      Object.entries(app.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
    );
    // A: the cluster's two supervised workers, as they name themselves; B: OrderWorkflow changed (A's do not replay).
    const bundlePath = join(workDir, 'stack', 'build', 'workflow-bundle.js');
    const buildA = { bundlePath, buildId: workerBuildId(loadConfig(env), bundlePath) };
    const buildB = await buildChangedOrderWorkflow(workDir);
    // The rollout's smoke orders go through nginx, as the shoppers do.
    const driver = new DeployDriver({
      env,
      logDir: workDir,
      plan: shoppersOf('CL-DEPLOY-SMOKE', { shoppers: 0, concurrency: 1, retryForMs: 0 }),
      stores,
      temporal,
    });
    const steps: string[] = [];
    const rollout = async (build: VariantBuild, args: string[]) => {
      const lines: string[] = [];
      const ran = await driver.rollout(build, args, lines);
      expect(ran.code, ran.output).toBe(0);
      steps.push(...lines.filter((line) => line.startsWith('[rollout]')));
      return ran.report!;
    };
    try {
      // Shoppers through nginx (two APIs): payments, cancels, late and duplicate payments throughout.
      const accepted = await burst(
        'deploy',
        async () => {
          const workersOfB = [driver.startWorker(buildB, 'by-rollout'), driver.startWorker(buildB, 'by-rollout')];
          const ramped = await rollout(buildB, ['--ramp', '50']);
          expect(ramped.ramped).toBe(50);
          await sleep(5_000);
          const promoted = await rollout(buildB, ['--drain-timeout', '180s']);
          expect(promoted.drainedAfterMs).not.toBeNull();
          timings.deployDrainSeconds = promoted.drainedAfterMs! / 1000;
          // A drained: the platform stops its workers.
          await Promise.all(app.workers.map((worker) => worker.stop(15_000)));
          // The rollback: A's release again (two workers), promoted while B's run; B drains, then stops.
          driver.startWorker(buildA, 'by-rollout');
          driver.startWorker(buildA, 'by-rollout');
          const back = await rollout(buildA, ['--drain-timeout', '180s']);
          expect(back.drainedAfterMs).not.toBeNull();
          timings.rollbackDrainSeconds = back.drainedAfterMs! / 1000;
          await Promise.all(workersOfB.map((worker) => worker.stop(15_000)));
        },
        2_000,
        // A unit for each shopper, 20 a second for 90 s: orders keep coming across the whole deploy and rollback.
        { shoppers: 1_800, stock: 1_800, arrivalsPerSecond: 20 },
      );
      say(`deploy: ${steps.join(' | ')}`);
      // Every order ran on one build only, none failed a task; counted per build.
      const perBuild: Record<string, number> = {};
      for (const orderNo of accepted) {
        const ran = await driver.ranOn(orderNo);
        expect(ran.buildIds, orderNo).toHaveLength(1);
        expect(ran.failedTasks, orderNo).toBe(0);
        const build = ran.buildIds[0] === buildA.buildId ? 'A' : ran.buildIds[0] === buildB.buildId ? 'B' : 'other';
        perBuild[build] = (perBuild[build] ?? 0) + 1;
      }
      say(`deploy: orders per build ${JSON.stringify(perBuild)}`);
      timings.deployOrdersOnA = perBuild.A ?? 0;
      timings.deployOrdersOnB = perBuild.B ?? 0;
      expect(perBuild.other ?? 0).toBe(0);
      expect(perBuild.A ?? 0).toBeGreaterThan(0);
      expect(perBuild.B ?? 0).toBeGreaterThan(0);
    } finally {
      await driver.stopWorkers();
    }
  });
});
