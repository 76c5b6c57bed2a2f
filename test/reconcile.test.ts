/**
 * The reconciler (ReconcileWorkflow and its activities) on the Temporal dev server with the
 * production worker, against the real Redis and MariaDB: each thing a crash can leave behind is
 * created for real (a reservation without a workflow, a terminated workflow, a write Redis lost, a
 * payment whose Signal died), then one reconcile run carries out what the order's row decided (the one
 * close) and the invariants hold again.
 */
import { RECONCILE_WORKFLOW_TYPE } from '../src/model/workflow-types.js';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { describe, expect } from 'vitest';
import type { OrderStore } from '../src/db/orders.js';
import type { RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import type { OrderWorkflowClient } from '../src/order/workflow-client.js';
import type { OrderLookup } from '../src/order/lookup.js';
import { storedPayment } from '../src/payments/receiver.js';
import { SalesService } from '../src/sales/sales-service.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { waitFor } from '../stack/wait-for.js';
import { createReconcileActivities } from '../src/activities/reconcile.js';
import { ensureReconcileSchedule } from '../src/workers/schedules.js';
import { orderWorkflowId, type OrderInput } from '../src/model/order-workflow.js';
import { reconcileScheduleId, type ReconcileReport } from '../src/model/reconcile-workflow.js';
import type { ReconcileWorkflow } from '../src/workflows/reconcile.js';
import { testConfig } from './helpers/env.js';
import type { StoreClients } from './helpers/stack-clients.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { withMethods } from './helpers/faults.js';
import { expectInvariants, expectSaleSettled, oneUnitOrder, putOnSale, saleReport } from './helpers/fixtures.js';
import { startTestWorker, type TestWorker } from './helpers/worker.js';
import { RedisSales } from '../src/redis/sales.js';
import { PromiseQueue } from '../src/redis/promise-queue.js';
import { awaitClosed, orderAccess, ordersWithoutBreakers } from './helpers/orders.js';
import { OrderChangeNotifier } from '../src/order/status-reads.js';

const GRACE_MS = 2_000;
const config = testConfig({ TEMPORAL_TASK_QUEUE: `reconcile-${randomUUID()}`, LOG_LEVEL: 'warn' });

/** The clients, a Temporal client that rejects queries of closed workflows, and the worker of this file's queue. */
interface Bench extends Omit<StoreClients, 'close'> {
  redisSales: RedisSales;
  temporal: Client;
  orders: OrderWorkflowClient;
  lookup: OrderLookup;
  /** Its worker away: nothing of this queue runs until it is started again. */
  stopWorker(): Promise<void>;
  startWorker(): Promise<void>;
}

const it = storeClientsTest(config).extend(
  'bench',
  { scope: 'file' },
  async ({ clients }, { onCleanup }): Promise<Bench> => {
    const { stores, redis } = clients;
    const connection = await Connection.connect({ address: config.temporal.address });
    const temporal = new Client({
      connection,
      namespace: config.temporal.namespace,
      workflow: { queryRejectCondition: 'NOT_OPEN' },
      dataConverter: temporalDataConverter(config),
    });
    let worker: TestWorker | undefined;
    const close = async () => {
      await worker?.close();
      await connection.close().catch(() => undefined);
    };
    try {
      worker = await startTestWorker({ config, stores, redis, temporal });
    } catch (err) {
      await close();
      throw err;
    }
    onCleanup(close);
    return {
      ...clients,
      redisSales: new RedisSales(redis, config.temporal.taskQueue),
      temporal,
      ...orderAccess(temporal, stores, config.temporal.taskQueue),
      async stopWorker() {
        await worker?.close();
        worker = undefined;
      },
      async startWorker() {
        worker ??= await startTestWorker({ config, stores, redis, temporal });
      },
    };
  },
);

/** One reconcile run over the given sales, as the schedule would start it. */
function reconcile(
  { temporal }: Bench,
  skus: string[],
  reservationGraceMs = GRACE_MS,
  promiseMaxAgeMs?: number,
  taskQueue = config.temporal.taskQueue,
): Promise<ReconcileReport> {
  return temporal.workflow.execute<typeof ReconcileWorkflow>(RECONCILE_WORKFLOW_TYPE, {
    taskQueue,
    workflowId: `reconcile-test-${randomUUID()}`,
    args: [{ reservationGraceMs, skus, pageSize: 100, ...(promiseMaxAgeMs ? { promiseMaxAgeMs } : {}) }],
  });
}

/**
 * Reserves as the checkout does, with the order's promise (its input and a pending start), dated
 * `ageMs` ago; its handoff is far ahead, so the API processes' starters (of other test files, on
 * the same Redis) leave it to the reconciler, as when no starter runs.
 */
async function promise(
  { inventory }: Bench,
  sale: { sku: string; priceCents: number },
  userId: string,
  ageMs: number,
): Promise<OrderInput> {
  const orderNo = newOrderNo();
  const nowMs = Date.now() - ageMs;
  const { unitPriceCents: _price, ...input } = oneUnitOrder(sale, {
    orderNo,
    userId,
    createdAtMs: nowMs,
    paymentWindow: '30m',
  });
  const reserved = await inventory.reserve({
    orderNo,
    sku: sale.sku,
    userId,
    quantity: 1,
    nowMs,
    promise: { input, handoffMs: 600_000 },
  });
  expect(reserved.outcome).toBe('RESERVED');
  return { ...input, unitPriceCents: sale.priceCents };
}

/** Reserves as the API does (with the checkout's key, if any), dated `ageMs` ago; returns the workflow input for it. */
async function reserve(
  { inventory }: Bench,
  sale: { sku: string; priceCents: number },
  userId: string,
  ageMs = 0,
  idempotencyKey?: string,
): Promise<OrderInput> {
  const orderNo = newOrderNo();
  const nowMs = Date.now() - ageMs;
  const keyed = idempotencyKey ? { idempotencyKey } : {};
  expect((await inventory.reserve({ orderNo, sku: sale.sku, userId, quantity: 1, nowMs, ...keyed })).outcome).toBe(
    'RESERVED',
  );
  return {
    orderNo,
    sku: sale.sku,
    userId,
    quantity: 1,
    unitPriceCents: sale.priceCents,
    createdAt: new Date(nowMs).toISOString(),
    paymentWindow: '30m',
    ...keyed,
  };
}

/** Reserves as the API does (dated `ageMs` ago), starts the order's workflow and waits until MySQL holds the order. */
async function orderAwaitingPayment(
  bench: Bench,
  sale: { sku: string; priceCents: number },
  userId: string,
  ageMs = 0,
  idempotencyKey?: string,
): Promise<OrderInput> {
  const input = await reserve(bench, sale, userId, ageMs, idempotencyKey);
  await bench.orders.start(input);
  await waitFor(async () => (await bench.stores.orders.getOrder(input.orderNo))?.status === 'AWAITING_PAYMENT', {
    what: `${input.orderNo} to await payment`,
    timeoutMs: 10_000,
  });
  return input;
}

/** The reconciler's activities over an order client that counts the payment Signals it sends (and sends them). */
function countingSignals({ orders, redis, stores, inventory }: Bench) {
  const signalled: string[] = [];
  const counting = withMethods(orders, (name) =>
    name === 'signalPaymentApplied'
      ? async (...args: Parameters<OrderWorkflowClient['signalPaymentApplied']>) => {
          signalled.push(args[0]);
          return orders.signalPaymentApplied(...args);
        }
      : undefined,
  );
  const deps = { changes: new OrderChangeNotifier(redis), stores, inventory, orders: counting };
  return { activities: createReconcileActivities(deps), signalled };
}

/** Every reservation page of a SKU, no grace left to any. */
async function reconcilePages(activities: ReturnType<typeof createReconcileActivities>, sku: string): Promise<void> {
  let cursor = '0';
  do cursor = (await activities.reconcileReservations({ sku, cursor, reservationGraceMs: 0, count: 100 })).cursor;
  while (cursor !== '0');
}

describe('ReconcileWorkflow', () => {
  it('leaves a promised order within its maximum age to its one owner (the starter), and gives one up past it', async ({
    bench,
  }) => {
    const { stores, redis, inventory, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 3, perUserLimit: 1 });
    // 50 s either side of the maximum age: a loaded machine may take seconds to reach the reconcile's reading.
    const kept = await promise(bench, sale, 'kept-promise', 10_000);
    const expired = await promise(bench, sale, 'expired-promise', 120_000);
    const report = await reconcile(bench, [sale.sku], GRACE_MS, 60_000);
    expect(report.sales[0]).toMatchObject({ releasedOrphans: 1, pendingUnits: 1 });
    // Not started by the reconciler: promises have one owner, which starts it (here, as its owner would).
    expect(await orders.workflowState(kept.orderNo)).toBe('NOT_FOUND');
    expect((await inventory.getReservation(sale.sku, kept.orderNo))?.state).toBe('RESERVED');
    expect(await orders.start(kept)).toBe('STARTED');
    await waitFor(async () => (await stores.orders.getOrder(kept.orderNo))?.status === 'AWAITING_PAYMENT', {
      what: `${kept.orderNo} started and persisted`,
      timeoutMs: 15_000,
    });
    expect(await stores.orders.getOrder(expired.orderNo)).toMatchObject({
      status: 'FAILED',
      failureReason: expect.stringMatching(/^PromiseExpired/),
    });
    expect((await inventory.getReservation(sale.sku, expired.orderNo))?.state).toBe('RELEASED');
    await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 1 });
  });

  it('releases an orphan reservation (its workflow never started) after the grace period, records it FAILED, and its shopper can buy again', async ({
    bench,
  }) => {
    const { stores, redis, inventory } = bench;
    const sale = await putOnSale(stores, redis, { stock: 3, perUserLimit: 1 });
    const orphan = await reserve(bench, sale, 'orphaned', 10_000);
    const young = await reserve(bench, sale, 'young');
    expect(
      (await inventory.reserve({ orderNo: newOrderNo(), sku: sale.sku, userId: 'orphaned', quantity: 1 })).outcome,
    ).toBe('LIMIT_EXCEEDED');

    const report = await reconcile(bench, [sale.sku]);
    expect(report.sales).toEqual([
      expect.objectContaining({ sku: sale.sku, releasedOrphans: 1, live: 2, pendingUnits: 1 }),
    ]);
    expect((await inventory.getReservation(sale.sku, orphan.orderNo))?.state).toBe('RELEASED');
    expect((await inventory.getReservation(sale.sku, young.orderNo))?.state).toBe('RESERVED');
    expect(await stores.orders.getOrder(orphan.orderNo)).toMatchObject({
      status: 'FAILED',
      failureReason: expect.stringMatching(/^ReservationOrphaned/),
    });
    expect(
      (await inventory.reserve({ orderNo: newOrderNo(), sku: sale.sku, userId: 'orphaned', quantity: 1 })).outcome,
    ).toBe('RESERVED');
  });

  // it.for, not it.each: its callback is given the test's context, and with it the fixture.
  it.for([
    { fault: 'MySQL fails the FAILED row', client: 'store', calls: ['close'] },
    { fault: 'Redis fails the release', client: 'redis', calls: ['inventoryRelease'] },
  ] as const)(
    'gives an orphan up completely (FAILED row, units back) when $fault once: the retried page finishes the repair',
    async ({ client, calls }, { bench }) => {
      const { stores, redis, inventory, temporal } = bench;
      const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
      const orphan = await reserve(bench, sale, `between-writes-${client}`, 10_000);
      // A worker of its own whose MySQL or Redis times out on the first such call; the reconciler's
      // activity is then retried by Temporal, as after a real timeout, wherever the first one stopped.
      const injected: string[] = [];
      const failingOnce = <T extends object>(target: T): T =>
        withMethods(target, (name) =>
          (calls as readonly (string | symbol)[]).includes(name) && injected.length === 0
            ? async () => {
                injected.push(String(name));
                throw new Error(`${client}: the call timed out (injected)`);
              }
            : undefined,
        );
      const taskQueue = `reconcile-flaky-${randomUUID()}`;
      const flakyWorker = await startTestWorker({
        config: { ...config, temporal: { ...config.temporal, taskQueue } },
        stores: client === 'store' ? { ...stores, orders: failingOnce(stores.orders) } : stores,
        redis: client === 'redis' ? failingOnce(redis) : redis,
        temporal,
        starter: false,
      });
      try {
        await reconcile(bench, [sale.sku], GRACE_MS, undefined, taskQueue);
      } finally {
        await flakyWorker.close();
      }
      expect(injected).toHaveLength(1);
      expect(await stores.orders.getOrder(orphan.orderNo)).toMatchObject({
        status: 'FAILED',
        failureReason: expect.stringMatching(/^ReservationOrphaned/),
      });
      // Released (by the first attempt, or by the retry carrying the FAILED row out: its record then dropped).
      expect((await inventory.getReservation(sale.sku, orphan.orderNo))?.state ?? 'RELEASED').toBe('RELEASED');
      await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 0 });
    },
  );

  it('a start that comes after the reconciler wrote FAILED (its release not done yet) fails too, and gives back the units it claimed', async ({
    bench,
  }) => {
    const { stores, redis, temporal, orders, lookup } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await reserve(bench, sale, 'late-start', 10_000);
    // The reconciler's first write, its release not yet made (it died, or Redis failed it).
    const createdAt = new Date(input.createdAt);
    expect(
      await stores.orders.close(
        { ...input, paymentDeadline: createdAt, createdAt },
        { kind: 'FAIL', reason: 'PromiseExpired: given up (test)' },
      ),
    ).toMatchObject({ outcome: 'FAILED' });
    await orders.start(input);
    await awaitClosed(temporal, input.orderNo);
    expect(await stores.orders.getOrder(input.orderNo)).toMatchObject({
      status: 'FAILED',
      failureReason: expect.stringMatching(/^PromiseExpired/),
    });
    expect(await lookup.find(input.orderNo)).toMatchObject({ view: { status: 'FAILED' } });
    await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 0 });
  });

  it('leaves a reservation whose workflow is running alone, and releases it once that workflow was terminated without persisting', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await reserve(bench, sale, 'stuck', 10_000);
    // A task queue no worker polls: the workflow runs but never gets to claim and persist.
    const idle = ordersWithoutBreakers(temporal, `nobody-${randomUUID()}`);
    await idle.start(input);
    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({
      releasedOrphans: 0,
      releasedAbandoned: 0,
      pendingUnits: 1,
    });
    expect((await inventory.getReservation(sale.sku, input.orderNo))?.state).toBe('RESERVED');

    await temporal.workflow.getHandle(orderWorkflowId(input.orderNo)).terminate('test: an operator terminated it');
    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({ releasedAbandoned: 1, pendingUnits: 0 });
    expect(await stores.orders.getOrder(input.orderNo)).toMatchObject({
      status: 'FAILED',
      failureReason: expect.stringMatching(/^ReservationAbandoned/),
    });
    await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 0 });
  });

  it('asks Temporal nothing of a promise whose start was never confirmed (its owner starts it), and releases it at once when its owner found its workflow closed', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await promise(bench, sale, 'queued', 10_000);
    // Started (on a queue no worker polls) and terminated before it claimed, its owner gone before dropping its entry.
    await ordersWithoutBreakers(temporal, `nobody-${randomUUID()}`).start(input);
    await temporal.workflow.getHandle(orderWorkflowId(input.orderNo)).terminate('test: terminated before it claimed');
    // Still queued: the reconciler leaves it to its owner, not asking Temporal (it would have found it closed).
    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({ releasedAbandoned: 0, pendingUnits: 1 });
    expect((await inventory.getReservation(sale.sku, input.orderNo))?.state).toBe('RESERVED');
    // Its owner's next start finds the workflow closed and drops the entry (starter.ts): now it is given up at once.
    await new PromiseQueue(redis).dropStartEntry(sale.sku, input.orderNo);
    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({ releasedAbandoned: 1, pendingUnits: 0 });
    expect(await stores.orders.getOrder(input.orderNo)).toMatchObject({
      status: 'FAILED',
      failureReason: expect.stringMatching(/^ReservationAbandoned/),
    });
    await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 0 });
  });

  it('adopts back an order MySQL holds whose reservation Redis lost, and the order is then paid', async ({ bench }) => {
    const { stores, redis, inventory, temporal, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'adoptee');
    // What a Redis restart from an AOF without the last writes looks like: no record, counters back.
    const keys = saleKeys(sale.sku);
    await redis
      .multi()
      .hdel(keys.reservations, input.orderNo)
      .hincrby(keys.sale, 'available', 1)
      .hincrby(keys.sale, 'reserved', -1)
      .hdel(keys.users, 'adoptee')
      .exec();
    expect((await saleReport(stores, redis, sale.sku)).checks.storesAgree).toBe(false);

    const report = await reconcile(bench, [sale.sku]);
    expect(report.sales[0]).toMatchObject({
      adopted: 1,
      notAdopted: 0,
      drift: expect.objectContaining({ agrees: true }),
    });
    expect(report.drifting).toEqual([]);
    expect(await inventory.getReservation(sale.sku, input.orderNo)).toMatchObject({
      state: 'CLAIMED',
      userId: 'adoptee',
    });
    expectInvariants(await saleReport(stores, redis, sale.sku, { perUserLimit: 1 }));

    const { row } = await stores.payments.recordPayment(
      { eventId: `evt-${input.orderNo}`, orderNo: input.orderNo, amountCents: sale.priceCents },
      'webhook',
    );
    expect(row.outcome).toBe('APPLIED');
    expect(await orders.signalPaymentApplied(input.orderNo, storedPayment(row))).toBe('SIGNALLED');
    await awaitClosed(temporal, input.orderNo);
    const paid = await saleReport(stores, redis, sale.sku);
    expect(paid.figures.redis).toMatchObject({ sold: 1, reserved: 0 });
    expectInvariants(paid);
  });

  it("carries out a paid order's unit its workflow has not (its Signal lost): confirmed and signalled once the payment is a grace old, then the workflow closes it PAID", async ({
    bench,
  }) => {
    const { stores, redis, pool, inventory, temporal } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'unsignalled', 10_000);
    // Recorded and applied by the row, then the webhook's process died before its Signal.
    const { row, judged } = await stores.payments.recordPayment(
      { eventId: `evt-unsignalled-${input.orderNo}`, orderNo: input.orderNo, amountCents: sale.priceCents },
      'webhook',
    );
    expect({ judged, outcome: row.outcome }).toEqual({ judged: true, outcome: 'APPLIED' });
    // Paid a moment ago: its workflow's own close may be on its way; left to it.
    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({ alignedConfirmed: 0 });
    expect((await inventory.getReservation(sale.sku, input.orderNo))?.state).toBe('CLAIMED');
    // A grace later, the row's verdict is carried out in Redis, and the workflow signalled again.
    await pool.query('UPDATE orders SET paid_at = paid_at - INTERVAL ? MICROSECOND WHERE order_no = ?', [
      (GRACE_MS + 1_000) * 1_000,
      input.orderNo,
    ]);
    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({ alignedConfirmed: 1 });
    expect((await inventory.getReservation(sale.sku, input.orderNo))?.state).toBe('SOLD');
    await awaitClosed(temporal, input.orderNo);
    expect(await temporal.workflow.getHandle(orderWorkflowId(input.orderNo)).result()).toMatchObject({
      status: 'PAID',
    });
    await expectSaleSettled(stores, redis, sale.sku, { available: 1, sold: 1, reserved: 0 });
  });

  // At a sale's rate closes may lag past the grace: a second Signal to each (1.09-1.12 per payment in the benchmark)
  // only lengthened the backlog they waited in.
  it('sends no Signal again to a workflow that holds one and is only behind (its worker away): the unit confirmed, then PAID', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'behind', 10_000);
    // Its worker away: the Signal waits in the history, a workflow task pending.
    await bench.stopWorker();
    try {
      const { row } = await stores.payments.recordPayment(
        { eventId: `evt-behind-${input.orderNo}`, orderNo: input.orderNo, amountCents: sale.priceCents },
        'webhook',
      );
      expect(await orders.signalPaymentApplied(input.orderNo, storedPayment(row))).toBe('SIGNALLED');
      expect(await orders.hasWorkflowTaskPending(input.orderNo)).toBe(true);
      const { activities, signalled } = countingSignals(bench);
      // Past any grace: the row's verdict is carried out in Redis, and no Signal is sent again.
      await reconcilePages(activities, sale.sku);
      expect(signalled).toEqual([]);
      expect((await inventory.getReservation(sale.sku, input.orderNo))?.state).toBe('SOLD');
    } finally {
      await bench.startWorker();
    }
    // Back, its worker reads the Signal it held: PAID.
    await awaitClosed(temporal, input.orderNo);
    expect(await temporal.workflow.getHandle(orderWorkflowId(input.orderNo)).result()).toMatchObject({
      status: 'PAID',
    });
    await expectSaleSettled(stores, redis, sale.sku, { available: 1, sold: 1, reserved: 0 });
  });

  // Defect 7 of "One close" (on 7b2150e the row stayed marked for a Signal after its workflow had followed it, or after
  // its order failed and its payment turned owed back, and the reconciler's page, which did not look at the outcome,
  // signalled it again: 2 Signals sent for nothing here).
  it('sends no Signal for nothing: not for an order its workflow closed, nor for a payment owed back', async ({
    bench,
  }) => {
    const { stores, redis, pool, inventory, temporal, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const paid = await orderAwaitingPayment(bench, sale, 'closed-paid', 10_000);
    const failed = await orderAwaitingPayment(bench, sale, 'failed-after-payment', 10_000);
    const record = async (orderNo: string) =>
      (
        await stores.payments.recordPayment(
          { eventId: `evt-${orderNo}`, orderNo, amountCents: sale.priceCents },
          'webhook',
        )
      ).row;
    // One paid and closed by its workflow; one whose units Redis lost, failed by its close, its payment owed back.
    const paidRow = await record(paid.orderNo);
    const failedRow = await record(failed.orderNo);
    await inventory.release(sale.sku, failed.orderNo, { as: 'owner' });
    for (const row of [paidRow, failedRow]) {
      expect(await orders.signalPaymentApplied(row.orderNo, storedPayment(row))).toBe('SIGNALLED');
      await awaitClosed(temporal, row.orderNo);
    }
    expect(await stores.payments.getPayment(failedRow.eventId)).toMatchObject({ outcome: 'REFUND_REQUIRED' });
    // Long past any grace, as far as the reconciler can tell.
    await pool.query('UPDATE payments SET received_at = received_at - INTERVAL 1 HOUR WHERE order_no IN (?)', [
      [paid.orderNo, failed.orderNo],
    ]);
    // Every page of a run, its order client counting what it sends.
    const { activities, signalled } = countingSignals(bench);
    await activities.decideWaitingPayments({ olderThanMs: 0, notFoundAfterMs: 3_600_000, limit: 100 });
    await activities.startOwedRefunds({ afterEventId: '', limit: 100 });
    await reconcilePages(activities, sale.sku);
    expect(signalled).toEqual([]);
    await expectSaleSettled(stores, redis, sale.sku, { available: 1, reserved: 0, sold: 1 });
  });

  it('decides payments left waiting: by the order row where it exists (an earlier build left it), ORDER_NOT_FOUND where no order of ours has the number', async ({
    bench,
  }) => {
    const { stores, redis, pool, temporal } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'left-waiting', 10_000);
    // A payment an earlier build recorded RECEIVED for its workflow to judge, 20 s ago.
    const waiting = `evt-waiting-${input.orderNo}`;
    await pool.query(
      `INSERT INTO payments (event_id, order_no, amount_cents, outcome, received_at)
       VALUES (?, ?, ?, 'RECEIVED', NOW(3) - INTERVAL 20 SECOND)`,
      [waiting, input.orderNo, sale.priceCents],
    );
    // Money for an order number no checkout ever issued, recorded (202 RECEIVED) past the grace and a minute.
    const unknown = newOrderNo();
    const { row: stray } = await stores.payments.recordPayment(
      { eventId: `evt-stray-${unknown}`, orderNo: unknown, amountCents: 999 },
      'webhook',
    );
    expect(stray.outcome).toBe('RECEIVED');
    await pool.query('UPDATE payments SET received_at = received_at - INTERVAL ? MICROSECOND WHERE event_id = ?', [
      (GRACE_MS + 61_000) * 1_000,
      stray.eventId,
    ]);

    const report = await reconcile(bench, [sale.sku]);
    expect(report.paymentsDecided).toBeGreaterThanOrEqual(2);
    expect(await stores.payments.getPayment(stray.eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ORDER_NOT_FOUND',
    });
    // Applied by the row: a grace later the next run carries it out and signals the workflow, which closes it PAID.
    expect(await stores.payments.getPayment(waiting)).toMatchObject({ outcome: 'APPLIED' });
    await pool.query('UPDATE orders SET paid_at = paid_at - INTERVAL ? MICROSECOND WHERE order_no = ?', [
      (GRACE_MS + 1_000) * 1_000,
      input.orderNo,
    ]);
    await reconcile(bench, [sale.sku]);
    await awaitClosed(temporal, input.orderNo);
    expect(await temporal.workflow.getHandle(orderWorkflowId(input.orderNo)).result()).toMatchObject({
      status: 'PAID',
    });
    await expectSaleSettled(stores, redis, sale.sku, { sold: 1, reserved: 0 });
  });

  it('aligns Redis to a final MySQL order whose last Redis write was lost', async ({ bench }) => {
    const { stores, redis, temporal, orders, lookup } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'canceller', 10_000);
    const found = await lookup.find(input.orderNo);
    if (!found) throw new Error('order not found');
    expect(await orders.cancel(found.view.orderNo)).toMatchObject({ outcome: 'TAKEN' });
    await awaitClosed(temporal, input.orderNo);
    // The release reached MySQL's side (CANCELLED, units back) but Redis lost it: claimed again.
    const keys = saleKeys(sale.sku);
    const record = `C|canceller|1|${Date.parse(input.createdAt)}`;
    await redis
      .multi()
      .hset(keys.reservations, input.orderNo, record)
      .hincrby(keys.sale, 'available', -1)
      .hincrby(keys.sale, 'reserved', 1)
      .hincrby(keys.users, 'canceller', 1)
      .exec();

    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({ alignedReleased: 1 });
    await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 0 });
  });

  it("sets again a closed order's checkout key that Redis lost with its writes: a retry with the key answers that order", async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal, orders } = bench;
    // Red on caf8b7e: nothing set it again; a retry reserved a new order (redis-aof-tail-lost's sameKeySameOrder).
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const userId = 'lost-key';
    const idempotencyKey = `key-${randomUUID()}`;
    const { orderNo } = await orderAwaitingPayment(bench, sale, userId, 0, idempotencyKey);
    expect(await orders.cancel(orderNo)).toMatchObject({ outcome: 'TAKEN' });
    await awaitClosed(temporal, orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'CANCELLED', idempotencyKey });
    // Its reserve, claim and release all in the second of writes Redis lost: nothing of it is left there, its key
    // included (the counters came back to where they were).
    await redis.hdel(saleKeys(sale.sku).idempotency, `${userId.length}:${userId}\n${idempotencyKey}`);

    expect((await reconcile(bench, [sale.sku])).sales[0]).toMatchObject({ keysRestored: 1 });
    const retried = await inventory.reserve({
      orderNo: newOrderNo(),
      sku: sale.sku,
      userId,
      quantity: 1,
      idempotencyKey,
    });
    expect(retried).toMatchObject({ outcome: 'DUPLICATE', orderNo });
    // Set once: the next run finds nothing missing.
    expect((await reconcile(bench, [sale.sku])).sales.find((s) => s.sku === sale.sku)?.keysRestored ?? 0).toBe(0);
  });

  it('names a sale defined in Redis with no MySQL row (its create lost its commit) until the create is retried', async ({
    bench,
  }) => {
    const { stores, redis, redisSales } = bench;
    const definition = {
      sku: `LOST-${randomUUID().slice(0, 8)}`.toUpperCase(),
      name: 'lost commit',
      priceCents: 900,
      stock: 2,
      perUserLimit: 1,
    };
    expect(await redisSales.defineSale(definition)).toBe(true); // what the create left: Redis only
    expect((await reconcile(bench, [definition.sku])).salesOnlyInRedis).toEqual([definition.sku]);
    await SalesService.onClients(stores, redis, config.temporal.taskQueue).create(definition); // the admin's retry
    const report = await reconcile(bench, [definition.sku]);
    expect(report.salesOnlyInRedis).toEqual([]);
    expectInvariants(await saleReport(stores, redis, definition.sku));
  });

  it('reports a sale whose stores disagree in a way it cannot repair', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const keys = saleKeys(sale.sku);
    await redis.multi().hincrby(keys.sale, 'available', -1).hincrby(keys.sale, 'sold', 1).exec();
    const report = await reconcile(bench, [sale.sku]);
    expect(report.drifting).toEqual([sale.sku]);
    expect(report.sales[0]?.drift).toMatchObject({ sold: 1, available: -1, agrees: false });
    await redis.multi().hincrby(keys.sale, 'available', 1).hincrby(keys.sale, 'sold', -1).exec();
    expect((await reconcile(bench, [sale.sku])).drifting).toEqual([]);
  });
});

/**
 * What a Redis restart from an AOF without the last writes leaves of an order awaiting payment: its
 * row in MySQL, no record in Redis, the counters and the shopper's holding as before its reserve.
 */
async function loseReservation(
  { redis }: Bench,
  sku: string,
  order: { orderNo: string; userId: string },
): Promise<void> {
  const keys = saleKeys(sku);
  await redis
    .multi()
    .hdel(keys.reservations, order.orderNo)
    .hincrby(keys.sale, 'available', 1)
    .hincrby(keys.sale, 'reserved', -1)
    .hdel(keys.users, order.userId)
    .hdel(keys.holds, order.userId)
    .exec();
}

describe('adoptMissingReservations, raced by a cancel', () => {
  /** The shopper cancels through the order's workflow: its row CANCELLED, then its release (of no record). */
  async function cancel({ orders, temporal, stores }: Bench, orderNo: string): Promise<void> {
    expect(await orders.cancel(orderNo)).toMatchObject({ outcome: 'TAKEN' });
    await awaitClosed(temporal, orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'CANCELLED' });
  }

  /** Redis as if the order had never been adopted: no record, the units on sale, the shopper's limit free. */
  async function expectNeverAdopted(
    { stores, redis, inventory }: Bench,
    sale: { sku: string },
    order: { orderNo: string; userId: string },
  ) {
    const report = await saleReport(stores, redis, sale.sku);
    expect({
      record: await inventory.getReservation(sale.sku, order.orderNo),
      holding: await inventory.userHolding(sale.sku, order.userId),
      counters: report.figures.redis,
    }).toEqual({ record: null, holding: 0, counters: { stock: 2, available: 2, reserved: 0, sold: 0 } });
    expectInvariants(report);
    expect(
      (await inventory.reserve({ orderNo: newOrderNo(), sku: sale.sku, userId: order.userId, quantity: 1 })).outcome,
    ).toBe('RESERVED');
  }

  it('does not adopt an order cancelled between the read of MySQL and the read of Redis', async ({ bench }) => {
    const { stores, redis, inventory, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'cancelled-between-reads');
    await loseReservation(bench, sale.sku, input);
    // The cancel lands right after MySQL listed the order as holding.
    const racedOrders = withMethods(stores.orders, (name) =>
      name === 'holdingOrdersPage'
        ? async (...args: Parameters<OrderStore['holdingOrdersPage']>) => {
            const rows = await stores.orders.holdingOrdersPage(...args);
            await cancel(bench, input.orderNo);
            return rows;
          }
        : undefined,
    );
    const activities = createReconcileActivities({
      changes: new OrderChangeNotifier(redis),
      stores: { ...stores, orders: racedOrders },
      inventory,
      orders,
    });
    const page = await activities.adoptMissingReservations({ sku: sale.sku, afterOrderNo: '', limit: 100 });
    await expectNeverAdopted(bench, sale, input);
    expect(page).toEqual({ next: null, adopted: 0, notAdopted: 0, undone: 0 });
  });

  it('gives back an adoption whose order was cancelled between the re-read of its row and the adopt', async ({
    bench,
  }) => {
    const { stores, redis, inventory, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'cancelled-before-adopt');
    await loseReservation(bench, sale.sku, input);
    // The cancel lands right before the adopt: after the rows were read again (still holding), and
    // its workflow's release finds no record.
    const steps: string[] = [];
    const tracedOrders = withMethods(stores.orders, (name) => {
      if (name === 'holdingOrdersPage')
        return async (...args: Parameters<OrderStore['holdingOrdersPage']>) => {
          steps.push(name);
          return stores.orders.holdingOrdersPage(...args);
        };
      if (name === 'getOrders')
        return async (...args: Parameters<OrderStore['getOrders']>) => {
          steps.push(name);
          return stores.orders.getOrders(...args);
        };
      return undefined;
    });
    const racedInventory = withMethods(inventory, (name) =>
      name === 'adopt'
        ? async (...args: Parameters<RedisInventory['adopt']>) => {
            if (!steps.includes('cancel')) {
              await cancel(bench, input.orderNo);
              steps.push('cancel');
            }
            steps.push('adopt');
            return inventory.adopt(...args);
          }
        : undefined,
    );
    const activities = createReconcileActivities({
      changes: new OrderChangeNotifier(redis),
      stores: { ...stores, orders: tracedOrders },
      inventory: racedInventory,
      orders,
    });
    const page = await activities.adoptMissingReservations({ sku: sale.sku, afterOrderNo: '', limit: 100 });
    await expectNeverAdopted(bench, sale, input);
    expect(page).toEqual({ next: null, adopted: 1, notAdopted: 0, undone: 1 });
    expect(steps).toEqual(['holdingOrdersPage', 'getOrders', 'cancel', 'adopt', 'getOrders']);
  });

  // Defect 4 of "One close" (red on 7b2150e: the undo released as owner, release.lua answered SOLD, and Redis kept the
  // unit sold while MySQL had given it back).
  it('gives back an adoption as sold whose paid order failed between the re-read of its row and the adopt', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const input = await orderAwaitingPayment(bench, sale, 'failed-before-adopt');
    await stores.payments.recordPayment(
      { eventId: `evt-${input.orderNo}`, orderNo: input.orderNo, amountCents: sale.priceCents },
      'webhook',
    );
    await temporal.workflow.getHandle(orderWorkflowId(input.orderNo)).terminate('test: its workflow is gone');
    await loseReservation(bench, sale.sku, input);
    const racedInventory = withMethods(inventory, (name) =>
      name === 'adopt'
        ? async (...args: Parameters<RedisInventory['adopt']>) => {
            // The paid order fails first (its units were lost: the one close's own step), its release finding nothing.
            const closed = await stores.orders.close(
              { ...input, paymentDeadline: new Date(), createdAt: new Date(input.createdAt) },
              { kind: 'RESERVATION_LOST', reason: 'ReservationLost: test' },
            );
            expect(closed).toMatchObject({ outcome: 'FAILED' });
            return inventory.adopt(...args);
          }
        : undefined,
    );
    const activities = createReconcileActivities({
      changes: new OrderChangeNotifier(redis),
      stores,
      inventory: racedInventory,
      orders,
    });
    const page = await activities.adoptMissingReservations({ sku: sale.sku, afterOrderNo: '', limit: 100 });
    expect(page).toEqual({ next: null, adopted: 1, notAdopted: 0, undone: 1 });
    expect(await inventory.getReservation(sale.sku, input.orderNo)).toBeNull();
    const report = await saleReport(stores, redis, sale.sku);
    expect(report.figures.redis).toMatchObject({ stock: 2, available: 2, reserved: 0, sold: 0 });
    expectInvariants(report);
  });
});

describe('the reconcile schedule', () => {
  it('is created once and then kept up to date, idempotently', async ({ bench }) => {
    const { temporal } = bench;
    const settings = { temporal: config.temporal, reservationGraceMs: 60_000 };
    const scheduleId = reconcileScheduleId(config.temporal.taskQueue);
    try {
      expect(await ensureReconcileSchedule(temporal, { ...settings, reconcileIntervalMs: 3_600_000 })).toBe('CREATED');
      expect(await ensureReconcileSchedule(temporal, { ...settings, reconcileIntervalMs: 7_200_000 })).toBe('UPDATED');
      const described = await temporal.schedule.getHandle(scheduleId).describe();
      expect(described.spec.intervals).toEqual([expect.objectContaining({ every: 7_200_000 })]);
      expect(described.action).toMatchObject({
        type: 'startWorkflow',
        workflowType: RECONCILE_WORKFLOW_TYPE,
        taskQueue: config.temporal.taskQueue,
      });
      expect(described.policies.overlap).toBe('SKIP');
    } finally {
      await temporal.schedule.getHandle(scheduleId).delete();
    }
  });
});
