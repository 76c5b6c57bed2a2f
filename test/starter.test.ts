/**
 * The owner of promised orders' starts (src/order/starter.ts), against the real stack: it starts a
 * promise once reserve.lua wakes it and then drops the promise's pending start (a started order is
 * never started again every 30 s, as it was while an API owned the starts); it takes over the sale
 * of an owner that died holding the lease once that lease lapses, the promises that owner had taken
 * included. No Worker polls these task queues: the owner's part ends when the workflow exists.
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { NativeConnection } from '@temporalio/worker';
import { describe, expect } from 'vitest';
import { type Stores } from '../src/db/stores.js';
import { createLogger } from '../src/infra/logger.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { orderWorkflowId, type OrderInput } from '../src/model/order-workflow.js';
import { startPromiseStarter, type RunningPromiseStarter } from '../src/workers/worker.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import type { StoreClients } from './helpers/stack-clients.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { withMethods } from './helpers/faults.js';
import { putOnSale } from './helpers/fixtures.js';
import { startHoldingProxy } from './helpers/tcp-proxy.js';
import { PromiseQueue } from '../src/redis/promise-queue.js';
import { startTestWorker } from './helpers/worker.js';
import { CurrentVersionWatch, type WorkerDeployments } from '../src/infra/worker-deployments.js';

const config = testConfig();

/** The clients, a connection to Temporal and its client, and the owners of starts the tests started. */
interface Bench extends Omit<StoreClients, 'close'> {
  connection: NativeConnection;
  temporal: Client;
  running: RunningPromiseStarter[];
}

const it = storeClientsTest(config).extend(
  'bench',
  { scope: 'file' },
  async ({ clients }, { onCleanup }): Promise<Bench> => {
    const connection = await NativeConnection.connect({ address: config.temporal.address });
    const running: RunningPromiseStarter[] = [];
    onCleanup(async () => {
      for (const starter of running) await starter.stop();
      await connection.close();
    });
    return {
      ...clients,
      connection,
      temporal: new Client({
        connection,
        namespace: config.temporal.namespace,
        dataConverter: temporalDataConverter(config),
      }),
      running,
    };
  },
);

/** A pipeline of its own: its task queue names its active sales and its wake channel. */
function pipeline({ redis, stores, connection, running }: Bench, taskQueue = `starter-${randomUUID()}`) {
  const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue });
  const inventory = new RedisInventory(redis, taskQueue);
  const promises = new PromiseQueue(redis);
  const startOwner = (ownStore: Stores = stores, ownConnection: NativeConnection = connection) => {
    const owner = startPromiseStarter({
      config,
      connection: ownConnection,
      stores: ownStore,
      redis,
      logger: createLogger({ logLevel: 'silent' }, 'starter-test'),
    });
    running.push(owner);
    return owner;
  };
  /** A checkout's reservation with its promise, as reserve.lua records it for the polling checkout. */
  const promise = async (sku: string, userId: string, ageMs = 0): Promise<string> => {
    const orderNo = newOrderNo();
    const createdAt = new Date(Date.now() - ageMs).toISOString();
    const input: Omit<OrderInput, 'unitPriceCents'> = {
      orderNo,
      sku,
      userId,
      quantity: 1,
      createdAt,
      paymentWindow: '30m',
    };
    await inventory.markSaleActive(sku);
    expect(
      (await inventory.reserve({ orderNo, sku, userId, quantity: 1, promise: { input, handoffMs: 0 } })).outcome,
    ).toBe('RESERVED');
    return orderNo;
  };
  return { inventory, promises, startOwner, promise };
}

const workflowExists = async ({ temporal }: Bench, orderNo: string) =>
  temporal.workflow
    .getHandle(orderWorkflowId(orderNo))
    .describe()
    .then(
      () => true,
      () => false,
    );
const isPending = async ({ redis }: Bench, sku: string, orderNo: string) =>
  (await redis.zscore(saleKeys(sku).pending, orderNo)) !== null;

describe('the owner of starts', () => {
  it('starts a promise as soon as its reservation wakes it, and drops its pending start: the workflow owns the order from then on', async ({
    bench,
  }) => {
    const { stores, redis } = bench;
    const { startOwner, promise, inventory } = pipeline(bench);
    const sale = await putOnSale(stores, redis, { stock: 5 });
    startOwner();
    const orderNo = await promise(sale.sku, 'woken');
    await waitFor(() => workflowExists(bench, orderNo), { what: `${orderNo} started`, timeoutMs: 15_000 });
    await waitFor(async () => !(await isPending(bench, sale.sku, orderNo)), {
      what: `${orderNo}'s pending start dropped`,
      timeoutMs: 5_000,
    });
    // Nothing claimed it (no Worker): the entry went because the start succeeded, and the input stays for reads.
    expect((await inventory.getReservation(sale.sku, orderNo))?.state).toBe('RESERVED');
    expect(await inventory.orderInput(sale.sku, orderNo)).toMatchObject({ orderNo });
  });

  it('with MySQL hung, a stale promise waits for its row lookup (bounded) and holds up no other start; it is started once MySQL answers', async ({
    bench,
  }) => {
    const { stores, redis } = bench;
    const { startOwner, promise } = pipeline(bench);
    const [one, two] = [await putOnSale(stores, redis, { stock: 5 }), await putOnSale(stores, redis, { stock: 5 })];
    // MySQL accepts the owner's queries and never answers them, until `recovered`.
    let recovered = false;
    const lookups: string[] = [];
    const hungOrders = withMethods(stores.orders, (name) =>
      name === 'getOrder'
        ? async (orderNo: string) => {
            lookups.push(orderNo);
            return recovered ? stores.orders.getOrder(orderNo) : new Promise(() => undefined);
          }
        : undefined,
    );
    // Older than 10 minutes: started only if MySQL has no row for it.
    const stale = await promise(one.sku, 'stale', 11 * 60_000);
    startOwner({ ...stores, orders: hungOrders });
    const startedAt = Date.now();
    const fresh = [await promise(one.sku, 'fresh-1'), await promise(two.sku, 'fresh-2')];
    for (const orderNo of fresh)
      await waitFor(() => workflowExists(bench, orderNo), {
        what: `${orderNo} started while MySQL hangs`,
        timeoutMs: 10_000,
      });
    // The hung lookup held up neither sale: each fresh start came well within one lookup deadline (2 s) and a lease (5
    // s).
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    await waitFor(() => lookups.includes(stale), { what: 'the stale promise looked up', timeoutMs: 10_000 });
    expect(await workflowExists(bench, stale)).toBe(false);
    recovered = true;
    await waitFor(() => workflowExists(bench, stale), {
      what: `${stale} started once MySQL answers`,
      timeoutMs: 30_000,
    });
  });

  it('takes over the sale of an owner that died holding its lease, once the lease lapses, the promises that owner had taken included', async ({
    bench,
  }) => {
    const { stores, redis, temporal } = bench;
    const { startOwner, promise, promises } = pipeline(bench);
    const sale = await putOnSale(stores, redis, { stock: 5 });
    const taken = await promise(sale.sku, 'taken-by-the-dead');
    // An owner takes the sale's lease and its due promise, then dies before starting it.
    const leaseMs = 2_000;
    const leasedAt = Date.now();
    const dead = await promises.takeDueStarts(sale.sku, 'dead-owner', { leaseMs, limit: 10, recheckMs: 3_000 });
    expect(dead).toMatchObject({ leased: true, due: [{ input: { orderNo: taken } }] });
    const later = await promise(sale.sku, 'after-the-death');
    const owner = startOwner();
    for (const orderNo of [later, taken])
      await waitFor(() => workflowExists(bench, orderNo), {
        what: `${orderNo} started by the new owner`,
        timeoutMs: 20_000,
      });
    expect(await redis.get(saleKeys(sale.sku).starter)).not.toBe('dead-owner');
    // Not before the dead owner's lease had lapsed: one owner per sale at a time (same machine's clock).
    for (const orderNo of [later, taken]) {
      const { startTime } = await temporal.workflow.getHandle(orderWorkflowId(orderNo)).describe();
      expect(startTime.getTime()).toBeGreaterThanOrEqual(leasedAt + leaseMs - 50);
    }
    await owner.stop();
  });

  it('two live owners: the leaseholder stalled mid-visit (its Temporal calls held) hands the sale over, the other starts every promise, and the stalled one coming back changes nothing', async ({
    bench,
  }) => {
    const { stores, redis, temporal } = bench;
    const { startOwner, promise } = pipeline(bench);
    const sale = await putOnSale(stores, redis, { stock: 10 });
    const [host, port] = testConfig().temporal.address.split(':');
    const proxy = await startHoldingProxy({ host: host ?? '127.0.0.1', port: Number(port) });
    const slow = await NativeConnection.connect({ address: `127.0.0.1:${proxy.port}` });
    try {
      const stalled = startOwner(stores, slow);
      // The first owner takes the sale's lease (a first promise, started), then its Temporal stalls.
      const first = await promise(sale.sku, 'before-the-stall');
      await waitFor(() => workflowExists(bench, first), {
        what: `${first} started by the first owner`,
        timeoutMs: 15_000,
      });
      const stalledId = await redis.get(saleKeys(sale.sku).starter);
      expect(stalledId).not.toBeNull();
      proxy.hold();
      const second = startOwner();
      const during: string[] = [];
      for (let i = 0; i < 5; i++) during.push(await promise(sale.sku, `during-the-stall-${i}`));
      // Its starts time out (5 s), the visit gives the lease up; the other owner takes the sale.
      for (const orderNo of during)
        await waitFor(() => workflowExists(bench, orderNo), {
          what: `${orderNo} started by the other owner`,
          timeoutMs: 30_000,
        });
      expect(await redis.get(saleKeys(sale.sku).starter)).not.toBe(stalledId);
      // The stalled owner's held calls reach Temporal now: starts of running workflows, no-ops.
      proxy.release();
      await waitFor(
        async () =>
          (await Promise.all(during.map((orderNo) => isPending(bench, sale.sku, orderNo)))).every(
            (pending) => !pending,
          ),
        {
          what: 'every pending start dropped',
          timeoutMs: 30_000,
        },
      );
      // Visibility lists a run a moment after it starts: counted once it lists any, then exactly one.
      const runsOf = async (orderNo: string) => {
        let count = 0;
        for await (const _ of temporal.workflow.list({ query: `WorkflowId = '${orderWorkflowId(orderNo)}'` })) count++;
        return count;
      };
      for (const orderNo of [first, ...during]) {
        await waitFor(async () => (await runsOf(orderNo)) > 0, { what: `${orderNo} listed`, timeoutMs: 15_000 });
        expect(await runsOf(orderNo), `${orderNo}'s runs`).toBe(1);
      }
      await Promise.all([stalled.stop(), second.stop()]);
    } finally {
      proxy.release();
      await slow.close();
      await proxy.close();
    }
  });
});

describe('eager starts under Worker Versioning', () => {
  it('are asked only on a read of the routing at most 3 s old that says this version is current with no ramp', async () => {
    const version = { deploymentName: 'flash', buildId: 'b1' };
    const answers: Array<() => Promise<{ currentBuildId: string | null; rampingBuildId: string | null }>> = [];
    const watch = new CurrentVersionWatch(
      { describeDeployment: () => answers.shift()!() as ReturnType<WorkerDeployments['describeDeployment']> },
      version,
    );
    const now = Date.now();
    expect(watch.isCurrent(now), 'before any read').toBe(false);
    answers.push(async () => ({ currentBuildId: 'b1', rampingBuildId: null }));
    await watch.read((call) => call());
    expect(watch.isCurrent()).toBe(true);
    expect(watch.isCurrent(Date.now() + 3_100), 'a read older than 3 s').toBe(false);
    answers.push(async () => ({ currentBuildId: 'b1', rampingBuildId: 'b2' }));
    await watch.read((call) => call());
    expect(watch.isCurrent(), 'while another version ramps').toBe(false);
    answers.push(async () => {
      throw new Error('deadline exceeded');
    });
    await watch.read((call) => call());
    expect(watch.isCurrent(), 'after a failed read').toBe(false);
    // An older read answering after a newer one does not overwrite it.
    let answerOld!: () => void;
    answers.push(
      () => new Promise((resolve) => (answerOld = () => resolve({ currentBuildId: 'b1', rampingBuildId: null }))),
    );
    const old = watch.read((call) => call());
    await new Promise((resolve) => setTimeout(resolve, 5));
    answers.push(async () => ({ currentBuildId: 'b2', rampingBuildId: null }));
    await watch.read((call) => call());
    answerOld();
    await old;
    expect(watch.isCurrent(), 'the newer read said another version is current').toBe(false);
  });

  it('tells once when the version becomes current, again after it was not: a failed read changes nothing of that', async () => {
    const answers: Array<() => Promise<{ currentBuildId: string | null; rampingBuildId: string | null }>> = [];
    let told = 0;
    const watch = new CurrentVersionWatch(
      { describeDeployment: () => answers.shift()!() as ReturnType<WorkerDeployments['describeDeployment']> },
      { deploymentName: 'flash', buildId: 'b1' },
      () => told++,
    );
    const read = async (answer: () => Promise<{ currentBuildId: string | null; rampingBuildId: string | null }>) => {
      answers.push(answer);
      await watch.read((call) => call());
    };
    await read(async () => ({ currentBuildId: 'b0', rampingBuildId: 'b1' }));
    expect([told, watch.isRouted()], 'ramping to it is not current').toEqual([0, false]);
    await read(async () => ({ currentBuildId: 'b1', rampingBuildId: null }));
    await read(async () => ({ currentBuildId: 'b1', rampingBuildId: null }));
    expect([told, watch.isRouted()], 'promoted: told once').toEqual([1, true]);
    await read(async () => {
      throw new Error('deadline exceeded');
    });
    expect([told, watch.isRouted(), watch.isCurrent()], 'a failed read').toEqual([1, true, false]);
    await read(async () => ({ currentBuildId: 'b1', rampingBuildId: null }));
    expect(told, 'still current after the failed read: not told again').toBe(1);
    await read(async () => ({ currentBuildId: 'b2', rampingBuildId: null }));
    await read(async () => ({ currentBuildId: 'b1', rampingBuildId: null }));
    expect([told, watch.isRouted()], 'a rollback to it: told again').toEqual([2, true]);
  });

  /** Whether Temporal handed the order's first workflow task back with its start, as its history records it. */
  const startedEagerly = async ({ temporal }: Bench, orderNo: string) => {
    const [started] = (await temporal.workflow.getHandle(orderWorkflowId(orderNo)).fetchHistory()).events ?? [];
    return started?.workflowExecutionStartedEventAttributes?.eagerExecutionAccepted === true;
  };

  it("the current version's owner takes each order's first task with its start; an owner whose version is not current starts through the task queue", async ({
    bench,
  }) => {
    const { stores, redis, running } = bench;
    const taskQueue = `starter-eager-${randomUUID()}`;
    const { promise } = pipeline(bench, taskQueue);
    const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue });
    const versioning = config.temporal.versioning;
    if (!versioning) throw new Error('the test stack runs versioned workers');
    const shared = await NativeConnection.connect({ address: config.temporal.address });
    // A production worker and its owner of starts, its version made current once it polls, as the worker process does.
    const worker = await startTestWorker({ config, stores, redis, connection: shared });
    try {
      const sale = await putOnSale(stores, redis, { stock: 50 });
      // The owner reads the routing with the backlog: its first starts may precede its first read.
      let shopper = 0;
      await waitFor(
        async () => {
          const orderNo = await promise(sale.sku, `eager-current-${shopper++}`);
          await waitFor(() => workflowExists(bench, orderNo), { what: `${orderNo} started`, timeoutMs: 20_000 });
          return startedEagerly(bench, orderNo);
        },
        { what: 'an order started eagerly by the current version', timeoutMs: 30_000 },
      );

      // The same worker's connection, an owner naming a version that is not current: its starts pin nothing here.
      await worker.starter?.stop();
      const stale = startPromiseStarter({
        config,
        connection: shared,
        stores,
        redis,
        logger: createLogger({ logLevel: 'silent' }, 'starter-test'),
        version: { deploymentName: versioning.deploymentName, buildId: 'not-current' },
      });
      running.push(stale);
      const routed = await promise(sale.sku, 'eager-not-current');
      await waitFor(() => workflowExists(bench, routed), { what: `${routed} started`, timeoutMs: 20_000 });
      expect(await startedEagerly(bench, routed)).toBe(false);
    } finally {
      await worker.close();
      await shared.close();
    }
  });
});
