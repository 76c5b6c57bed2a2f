/**
 * A payment is never refused, lost or wrongly refunded because something was slow: it is recorded
 * first, acknowledged once recorded, and judged by when it arrived (docs/fault-tolerance.md, "A
 * payment's path"). On the test stack's Temporal dev server with a production worker of this
 * file's own task queue, which the tests stop and start to make a worker that is late, and real
 * MySQL and Redis. Each test names what it told apart from luck.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeApi, createApp } from '../src/api/app.js';
import type { createDependencyGuards } from '../src/api/guards.js';
import { createMysqlPool } from '../src/db/pool.js';
import type { PaymentStore } from '../src/db/payments.js';
import { openStores, type Stores } from '../src/db/stores.js';
import type { PaymentRow } from '../src/db/rows.js';
import { Deadline, type DependencyGuard } from '../src/infra/dependency-guard.js';
import { createLogger } from '../src/infra/logger.js';
import { createRedis, type RedisClient } from '../src/infra/redis.js';
import { createTemporalClient } from '../src/infra/temporal-connection.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import type { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import {
  FUTURE_ORDER_MARGIN_MS,
  PaymentDelivery,
  signalAppliedPayment,
  storedPayment,
} from '../src/payments/delivery.js';
import { signWebhook } from '../src/payments/providers/generic/signature.js';
import { orderNoTime, orderWorkflowId, type OrderInput } from '../src/model/order-workflow.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { expectInvariants, oneUnitOrder, openDispute, putOnSale, saleReport } from './helpers/fixtures.js';
import { listen, replyOf } from './helpers/http.js';
import { startTestWorker, type TestWorker } from './helpers/worker.js';
import { lookupDeps, orderAccess, ordersWithoutBreakers } from './helpers/orders.js';
import { OrderLookup } from '../src/order/lookup.js';
import { ShopperAuth } from '../src/api/auth.js';

const config = testConfig({
  TEMPORAL_TASK_QUEUE: `arrival-${randomUUID()}`,
  LOG_LEVEL: 'silent',
  RATE_LIMIT_WEBHOOK: 'off',
  BREAKER_NO_SUCCESS_FOR: '0ms',
});
const pool = createMysqlPool(config);
const stores = openStores(pool);
const redis: RedisClient = createRedis(config);
const inventory = new RedisInventory(redis, config.temporal.taskQueue);
let temporal: Client;
let orders: OrderWorkflowClient;
let lookup: OrderLookup;
let delivery: PaymentDelivery;
let worker: TestWorker | undefined;
const servers: Server[] = [];

beforeAll(async () => {
  temporal = await createTemporalClient(config);
  ({ orders, lookup } = orderAccess(temporal, stores, config.temporal.taskQueue));
  delivery = PaymentDelivery.fromConfig(config, { stores, orders, lookup });
  worker = await startTestWorker({ config, stores, redis });
});

afterAll(async () => {
  for (const server of servers) server.close();
  await worker?.close();
  await Promise.allSettled([temporal?.connection.close(), pool.end(), redis.quit()]);
});

/** A worker that is late: nothing of this queue runs until it is started again. */
async function stopWorker(): Promise<void> {
  await worker?.close();
  worker = undefined;
}

async function startWorker(): Promise<void> {
  worker ??= await startTestWorker({ config, stores, redis });
}

/** An order reserved and started as the API does, persisted (AWAITING_PAYMENT), with its payment window. */
async function placeOrder(
  paymentWindow: string,
): Promise<{ input: OrderInput; deadline: number; total: number; sku: string }> {
  const sale = await putOnSale(stores, redis, { stock: 3 });
  const orderNo = newOrderNo();
  const userId = `arrival-${orderNo.slice(-6)}`;
  expect((await inventory.reserve({ orderNo, sku: sale.sku, userId, quantity: 1 })).outcome).toBe('RESERVED');
  const input = oneUnitOrder(sale, { orderNo, userId, createdAtMs: Date.now(), paymentWindow });
  expect(await orders.start(input)).toBe('STARTED');
  const row = await waitFor(
    async () =>
      (await stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT' && stores.orders.getOrder(orderNo),
    {
      what: `${orderNo} persisted`,
      timeoutMs: 15_000,
    },
  );
  if (!row) throw new Error('not persisted');
  return { input, deadline: row.paymentDeadline.getTime(), total: sale.priceCents, sku: sale.sku };
}

async function record(orderNo: string, amountCents: number): Promise<PaymentRow> {
  return stores.payments.recordPayment({ eventId: `evt-${randomUUID()}`, orderNo, amountCents });
}

async function until(at: number): Promise<void> {
  await sleep(Math.max(0, at - Date.now()));
}

/** The activity types an order's workflow scheduled, from its history. */
async function activitiesRun(orderNo: string): Promise<string[]> {
  const history = await temporal.workflow.getHandle(orderWorkflowId(orderNo)).fetchHistory();
  return (history.events ?? []).flatMap((event) => {
    const name = event.activityTaskScheduledEventAttributes?.activityType?.name;
    return name ? [name] : [];
  });
}

describe('a payment judged by when it arrived', () => {
  it('received before the deadline and not delivered before the timer fired: the order is PAID, and the late delivery answers APPLIED', async () => {
    const order = await placeOrder('3s');
    const row = await record(order.input.orderNo, order.total);
    expect(row.receivedAt.getTime()).toBeLessThanOrEqual(order.deadline);
    // Nobody delivers it: the timer fires, and the order finds the payment recorded in time.
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expect(await delivery.deliver(row, Deadline.in(10_000))).toEqual({ outcome: 'APPLIED' });
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({ outcome: 'APPLIED' });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('received before the deadline, delivered with the timer in one workflow task of a late worker: PAID', async () => {
    const order = await placeOrder('3s');
    const row = await record(order.input.orderNo, order.total);
    await stopWorker();
    try {
      await until(order.deadline + 1_000);
      const verdict = delivery.deliver(row, Deadline.in(30_000));
      await sleep(500); // the Update waits in Temporal beside the timer's firing
      await startWorker();
      expect(await verdict).toEqual({ outcome: 'APPLIED' });
    } finally {
      await startWorker();
    }
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    // Accepted by its arrival time, past the deadline by the workflow's clock: not rescued later by
    // the timeout's look into MySQL (cancelUnpaidOrder never ran).
    expect(await activitiesRun(order.input.orderNo)).not.toContain('cancelUnpaidOrder');
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('received after the deadline, delivered with the timer in one workflow task of a late worker: REFUND_REQUIRED, CANCELLED', async () => {
    const order = await placeOrder('3s');
    await stopWorker();
    let row: PaymentRow;
    try {
      await until(order.deadline + 1_000);
      row = await record(order.input.orderNo, order.total);
      expect(row.receivedAt.getTime()).toBeGreaterThan(order.deadline);
      const verdict = delivery.deliver(row, Deadline.in(30_000));
      await sleep(500);
      await startWorker();
      // The SDK runs the Update before the timer's firing: judged by its arrival, it is late all the same.
      expect(await verdict).toEqual({ outcome: 'REFUND_REQUIRED', refundReason: 'RECEIVED_AFTER_DEADLINE' });
    } finally {
      await startWorker();
    }
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({
      status: 'CANCELLED',
      cancelReason: 'PAYMENT_TIMEOUT',
    });
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'RECEIVED_AFTER_DEADLINE',
    });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a late start keeps its payment time: the deadline counts from when the order became payable', async () => {
    const sale = await putOnSale(stores, redis, { stock: 3 });
    const orderNo = newOrderNo();
    expect((await inventory.reserve({ orderNo, sku: sale.sku, userId: 'late-start', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    const createdAt = Date.now();
    await stopWorker();
    try {
      expect(
        await orders.start(
          oneUnitOrder(sale, { orderNo, userId: 'late-start', createdAtMs: createdAt, paymentWindow: '2s' }),
        ),
      ).toBe('STARTED');
      await until(createdAt + 3_000); // the worker is away past the reservation's window
    } finally {
      await startWorker();
    }
    const row = await waitFor(
      async () =>
        (await stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT' && stores.orders.getOrder(orderNo),
      {
        what: `${orderNo} persisted`,
        timeoutMs: 15_000,
      },
    );
    if (!row) throw new Error('not persisted');
    expect(row.paymentDeadline.getTime()).toBeGreaterThanOrEqual(createdAt + 3_000 + 2_000);
    expect((await orders.queryLive(orderNo))?.paymentDeadline).toBe(row.paymentDeadline.toISOString());
    const payment = await record(orderNo, sale.priceCents);
    expect(payment.receivedAt.getTime()).toBeGreaterThan(createdAt + 2_000);
    expect(await delivery.deliver(payment, Deadline.in(10_000))).toEqual({ outcome: 'APPLIED' });
    await orders.awaitClosed(orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
  });

  it('a stale duplicate delivery to the order its first delivery paid and closed answers APPLIED, not a refund', async () => {
    const order = await placeOrder('30m');
    const row = await record(order.input.orderNo, order.total);
    // Delivery 1 reaches the order but its answer is lost (the row stays RECEIVED in its hands).
    expect(await orders.pay(order.input.orderNo, storedPayment(row))).toEqual({ outcome: 'APPLIED' });
    await orders.awaitClosed(order.input.orderNo);
    // Delivery 2 read the row while it was RECEIVED; the workflow is gone when it arrives.
    expect(await delivery.deliver(row, Deadline.in(10_000))).toEqual({ outcome: 'APPLIED' });
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({ outcome: 'APPLIED' });
    // A second payment of a closed, paid order is money with no order to pay: refunded.
    const second = await record(order.input.orderNo, order.total);
    expect(await delivery.deliver(second, Deadline.in(10_000))).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ALREADY_PAID',
    });
  });

  it('a payment delivered after its order closed is judged as the order would have: by its amount, then its arrival', async () => {
    const order = await placeOrder('2s');
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({
      status: 'CANCELLED',
      cancelReason: 'PAYMENT_TIMEOUT',
    });
    const late = await record(order.input.orderNo, order.total);
    expect(await delivery.deliver(late, Deadline.in(10_000))).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'RECEIVED_AFTER_DEADLINE',
    });
    const short = await record(order.input.orderNo, order.total - 1);
    expect(await delivery.deliver(short, Deadline.in(10_000))).toEqual({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'AMOUNT_MISMATCH',
    });
    expect(await stores.payments.getPayment(late.eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'RECEIVED_AFTER_DEADLINE',
    });
  });

  it("a shopper's cancel does not undo a payment recorded before it: the order is PAID", async () => {
    const order = await placeOrder('30m');
    const row = await record(order.input.orderNo, order.total);
    const found = await lookup.find(order.input.orderNo);
    if (!found) throw new Error('order not found');
    expect(found.live).toBeDefined();
    expect(await orders.cancel(found.view.orderNo)).toBe(true);
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expect(await delivery.deliver(row, Deadline.in(10_000))).toEqual({ outcome: 'APPLIED' });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });
});

describe('redelivery', () => {
  it('delivers in parallel: an order that does not answer holds up no other payment', async () => {
    // One order whose workflow no worker runs (its Update never answers), ahead of three that do.
    const stalledSale = await putOnSale(stores, redis, { stock: 1 });
    const stalledNo = newOrderNo();
    expect(
      (await inventory.reserve({ orderNo: stalledNo, sku: stalledSale.sku, userId: 'stalled', quantity: 1 })).outcome,
    ).toBe('RESERVED');
    const nobody = ordersWithoutBreakers(temporal, `nobody-${randomUUID()}`);
    await nobody.start(
      oneUnitOrder(stalledSale, {
        orderNo: stalledNo,
        userId: 'stalled',
        createdAtMs: Date.now(),
        paymentWindow: '30m',
      }),
    );
    const stalled = await record(stalledNo, stalledSale.priceCents);
    const others = await Promise.all([1, 2, 3].map(async () => placeOrder('30m')));
    const rows = [stalled, ...(await Promise.all(others.map((order) => record(order.input.orderNo, order.total))))];

    // Handed over as a webhook does when the order cannot answer at once: the owner's loop delivers them.
    const owner = PaymentDelivery.fromConfig(config, {
      stores,
      orders,
      lookup,
      // No sweep (nothing is RECEIVED for an hour): the backlog is these four rows alone.
      pacing: { concurrency: 4, attemptMs: 15_000, firstBackoffMs: 100, sweepOlderThanMs: 3_600_000 },
    });
    owner.start();
    try {
      for (const row of rows) expect(await owner.take(row, { waitMs: 0, deliverNow: false })).toBeNull();
      // Paid and their verdicts back with the owner: the order writes APPLIED in the task that answers the Update
      // (the close runs in one task), a moment before the owner reads the answer.
      await waitFor(
        async () =>
          owner.backlog === 1 &&
          (await Promise.all(rows.slice(1).map((row) => stores.payments.getPayment(row.eventId)))).every(
            (row) => row?.outcome === 'APPLIED',
          ),
        {
          what: 'the three answering orders paid and judged',
          timeoutMs: 10_000,
        },
      );
      // Still delivering to the stalled order: the others did not wait for it.
      expect(await stores.payments.getPayment(stalled.eventId)).toMatchObject({ outcome: 'RECEIVED' });
    } finally {
      await owner.stop();
    }
    await temporal.workflow.getHandle(orderWorkflowId(stalledNo)).terminate('test: done');
  });
});

/** One delivery an owner sent to an order (its `pay` call), and when it was sent. */
interface PayCall {
  eventId: string;
  orderNo: string;
  at: number;
}

/**
 * The real order client (this file's `orders`), with every `pay` call recorded before it is sent. `before` runs
 * first: it may hold the call (a gate) or throw (an order that never answers).
 */
function watchedOrders(before?: (orderNo: string) => Promise<void>): {
  orders: OrderWorkflowClient;
  calls: PayCall[];
  callsFor(eventId: string): PayCall[];
} {
  const calls: PayCall[] = [];
  const pay: OrderWorkflowClient['pay'] = async (orderNo, payment, deadline) => {
    calls.push({ eventId: payment.eventId, orderNo, at: Date.now() });
    await before?.(orderNo);
    return orders.pay(orderNo, payment, deadline);
  };
  return {
    orders: around(orders, { pay }),
    calls,
    callsFor: (eventId) => calls.filter((call) => call.eventId === eventId),
  };
}

/** This file's store, counting the sweeps (leaseDueDeliveries) an owner made through it once each has answered. */
function watchedStore(): { stores: Stores; sweeps(): number } {
  let sweeps = 0;
  const leaseDueDeliveries: PaymentStore['leaseDueDeliveries'] = async (...args) => {
    try {
      return await stores.payments.leaseDueDeliveries(...args);
    } finally {
      sweeps++;
    }
  };
  return { stores: { ...stores, payments: around(stores.payments, { leaseDueDeliveries }) }, sweeps: () => sweeps };
}

/** `target` with some of its methods replaced; every other member is the target's own, bound to it. */
function around<T extends object>(target: T, replaced: Partial<T>): T {
  return new Proxy(target, {
    get(object, key) {
      if (Object.hasOwn(replaced, key)) return replaced[key as keyof T];
      const value: unknown = Reflect.get(object, key, object);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}

/** The lease owner written on a payment's row (null: never leased). */
async function leaseOwnerOf(eventId: string): Promise<string | null | undefined> {
  return (await stores.payments.deliveryOf(eventId))?.owner;
}

/** Whether a lease name is one of `owner`'s (`<ownerId>/w` or `<ownerId>/<sweep>`). */
function leasedBy(lease: string | null | undefined, owner: PaymentDelivery): boolean {
  return lease?.startsWith(`${owner.ownerId}/`) ?? false;
}

async function outcomesOf(rows: PaymentRow[]): Promise<(string | undefined)[]> {
  return Promise.all(rows.map(async (row) => (await stores.payments.getPayment(row.eventId))?.outcome));
}

/** An owner that sweeps every 100 ms the rows RECEIVED for 1 s (the other files' owners wait 5 s), started. */
function startSweeper(watched: OrderWorkflowClient): PaymentDelivery {
  const owner = PaymentDelivery.fromConfig(config, {
    stores,
    orders: watched,
    lookup,
    pacing: { sweepEveryMs: 100, sweepOlderThanMs: 1_000 },
  });
  owner.start();
  return owner;
}

describe('the owner sweep', () => {
  it('delivers a payment a process that died left RECEIVED, and settles it', async () => {
    const order = await placeOrder('30m');
    // The webhook recorded the event, then its process died before the owner delivered it.
    const row = await record(order.input.orderNo, order.total);
    const watched = watchedOrders();
    const owner = startSweeper(watched.orders);
    try {
      await waitFor(async () => (await stores.payments.getPayment(row.eventId))?.outcome === 'APPLIED', {
        what: 'the swept payment applied',
        timeoutMs: 10_000,
      });
    } finally {
      await owner.stop();
    }
    // This owner leased it (the other processes' sweeps take only rows older than 5 s) and delivered it, once.
    expect(leasedBy(await leaseOwnerOf(row.eventId), owner)).toBe(true);
    expect(watched.callsFor(row.eventId)).toHaveLength(1);
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
  });

  it("settles a swept payment of an order closed before it: the closed order's verdict, written by the owner alone", async () => {
    const order = await placeOrder('30m');
    expect(await orders.cancel(order.input.orderNo)).toBe(true);
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'CANCELLED' });
    // Paid in full and in time, but to an order that no longer waits for it. No workflow runs to judge it: the
    // verdict is the owner's, from MySQL's row of the order (lookup.verdictOfClosedOrder), and only its settle
    // writes it on the payment's row.
    const row = await record(order.input.orderNo, order.total);
    const watched = watchedOrders();
    const owner = startSweeper(watched.orders);
    try {
      await waitFor(async () => (await stores.payments.getPayment(row.eventId))?.outcome !== 'RECEIVED', {
        what: 'the swept payment of a cancelled order settled',
        timeoutMs: 10_000,
      });
    } finally {
      await owner.stop();
    }
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ORDER_NOT_AWAITING_PAYMENT',
    });
    expect(leasedBy(await leaseOwnerOf(row.eventId), owner)).toBe(true);
    // Asked of the order once (no running workflow answered), then judged from its row.
    expect(watched.callsFor(row.eventId)).toHaveLength(1);
  });

  it('two owners sweeping at once: each payment is delivered by exactly one of them', async () => {
    const placed = await Promise.all([1, 2, 3, 4, 5, 6].map(async () => placeOrder('30m')));
    // Deliveries are held until both owners have swept twice after the last row was recorded, so every row is
    // still RECEIVED whenever the other owner looks: only the lease keeps that owner off it.
    let bothSwept = false;
    const held = () => waitFor(() => bothSwept, { what: 'both owners swept', timeoutMs: 20_000 }).then(() => undefined);
    const ownerOf = () => {
      const watched = watchedOrders(held);
      const sweeps = watchedStore();
      const owner = PaymentDelivery.fromConfig(config, {
        stores: sweeps.stores,
        orders: watched.orders,
        lookup,
        pacing: { sweepEveryMs: 100, sweepOlderThanMs: 0 },
      });
      return { owner, sweeps, watched };
    };
    const a = ownerOf();
    const b = ownerOf();
    const first = await Promise.all(placed.slice(0, 3).map((order) => record(order.input.orderNo, order.total)));
    a.owner.start();
    try {
      await waitFor(
        async () =>
          (await Promise.all(first.map((row) => leaseOwnerOf(row.eventId)))).every((lease) => leasedBy(lease, a.owner)),
        { what: 'the first three leased by owner a', timeoutMs: 10_000 },
      );
      // B starts while A holds the first three (their deliveries held); then the last three are recorded.
      b.owner.start();
      const second = await Promise.all(placed.slice(3).map((order) => record(order.input.orderNo, order.total)));
      const rows = [...first, ...second];
      const [aFrom, bFrom] = [a.sweeps.sweeps(), b.sweeps.sweeps()];
      await waitFor(() => a.sweeps.sweeps() >= aFrom + 2 && b.sweeps.sweeps() >= bFrom + 2, {
        what: 'owners a and b each swept twice more',
        timeoutMs: 10_000,
      });
      bothSwept = true;
      await waitFor(async () => (await outcomesOf(rows)).every((outcome) => outcome === 'APPLIED'), {
        what: 'the six payments applied',
        timeoutMs: 20_000,
      });
      for (const row of rows) {
        const [byA, byB] = [a.watched.callsFor(row.eventId).length, b.watched.callsFor(row.eventId).length];
        expect({ eventId: row.eventId, deliveries: byA + byB }).toEqual({ eventId: row.eventId, deliveries: 1 });
        expect(leasedBy(await leaseOwnerOf(row.eventId), byA === 1 ? a.owner : b.owner)).toBe(true);
      }
    } finally {
      bothSwept = true;
      await Promise.all([a.owner.stop(), b.owner.stop()]);
    }
  });

  it('leaves a row to the owner whose lease it is until the lease ends, then a live owner delivers it', async () => {
    const order = await placeOrder('30m');
    const eventId = `evt-dead-${randomUUID()}`;
    // Recorded by a webhook whose process died before it delivered: its lease runs 2 s.
    await stores.payments.recordPayment(
      { eventId, orderNo: order.input.orderNo, amountCents: order.total },
      'webhook',
      undefined,
      {
        owner: 'dead-process/w',
        leaseMs: 2_000,
      },
    );
    const leaseEnds = (await stores.payments.deliveryOf(eventId))?.dueAt?.getTime();
    if (leaseEnds === undefined) throw new Error(`no lease on ${eventId}`);
    const watched = watchedOrders();
    const sweeps = watchedStore();
    const live = PaymentDelivery.fromConfig(config, {
      stores: sweeps.stores,
      orders: watched.orders,
      lookup,
      pacing: { sweepEveryMs: 100, sweepOlderThanMs: 0 },
    });
    live.start();
    try {
      // Three sweeps (about 1 s), every one of them inside the dead owner's lease: the row is not taken.
      await waitFor(() => sweeps.sweeps() >= 3, { what: 'three sweeps of the live owner', timeoutMs: 10_000 });
      const payment = await stores.payments.getPayment(eventId);
      const lease = await leaseOwnerOf(eventId);
      expect(Date.now()).toBeLessThan(leaseEnds);
      expect(payment).toMatchObject({ outcome: 'RECEIVED' });
      expect(lease).toBe('dead-process/w');
      expect(watched.callsFor(eventId)).toEqual([]);
      // Once the lease is over the live owner's next sweep takes it.
      await waitFor(async () => (await stores.payments.getPayment(eventId))?.outcome === 'APPLIED', {
        what: `${eventId} applied by the live owner`,
        timeoutMs: 10_000,
      });
    } finally {
      await live.stop();
    }
    expect(leasedBy(await leaseOwnerOf(eventId), live)).toBe(true);
    const delivered = watched.callsFor(eventId);
    expect(delivered).toHaveLength(1);
    // MySQL's clock and this process's are the same host's; a few ms for DATETIME(3)'s rounding.
    expect(delivered[0]!.at).toBeGreaterThanOrEqual(leaseEnds - 5);
  });

  it('pages past rows that keep failing: newer payments are delivered while the stuck ones stay RECEIVED, its own', async () => {
    const stuckOrders = await Promise.all([1, 2, 3, 4].map(async () => placeOrder('30m')));
    const newerOrders = await Promise.all([1, 2, 3].map(async () => placeOrder('30m')));
    const stuckNos = new Set(stuckOrders.map((order) => order.input.orderNo));
    const watched = watchedOrders(async (orderNo) => {
      if (stuckNos.has(orderNo)) throw new Error(`test: ${orderNo} does not answer`);
    });
    // Two rows a sweep. Each failed row waits a minute for its retry while its lease (300 ms) runs out, so the
    // stuck rows are due again at nearly every sweep, as a dead owner's are: only the order of the sweep
    // (rows due earliest first, not the oldest) lets the newer rows through.
    const owner = PaymentDelivery.fromConfig(config, {
      stores,
      orders: watched.orders,
      lookup,
      pacing: {
        sweepBatch: 2,
        sweepEveryMs: 100,
        sweepOlderThanMs: 0,
        leaseMs: 300,
        firstBackoffMs: 60_000,
        maxBackoffMs: 60_000,
      },
    });
    const stuck = await Promise.all(stuckOrders.map((order) => record(order.input.orderNo, order.total)));
    // The newer ones recorded strictly later (MySQL's clock is this host's, in ms).
    const lastStuckAt = Math.max(...stuck.map((row) => row.receivedAt.getTime()));
    await waitFor(() => Date.now() > lastStuckAt, { what: 'a millisecond past the stuck rows', timeoutMs: 1_000 });
    const newer = await Promise.all(newerOrders.map((order) => record(order.input.orderNo, order.total)));
    owner.start();
    try {
      await waitFor(async () => (await outcomesOf(newer)).every((outcome) => outcome === 'APPLIED'), {
        what: 'the newer payments applied past the stuck ones',
        timeoutMs: 10_000,
      });
      for (const row of newer) {
        expect(leasedBy(await leaseOwnerOf(row.eventId), owner)).toBe(true);
        expect(watched.callsFor(row.eventId)).toHaveLength(1);
      }
      // The stuck ones were taken and tried first (older, due first), by this owner alone, and are still to be
      // delivered: the sweep went past them.
      expect(await outcomesOf(stuck)).toEqual(stuck.map(() => 'RECEIVED'));
      for (const row of stuck) {
        expect(leasedBy(await leaseOwnerOf(row.eventId), owner)).toBe(true);
        expect(watched.callsFor(row.eventId).length).toBeGreaterThanOrEqual(1);
      }
      const lastStuckTried = Math.max(...stuck.map((row) => watched.callsFor(row.eventId)[0]!.at));
      for (const row of newer) expect(watched.callsFor(row.eventId)[0]!.at).toBeGreaterThanOrEqual(lastStuckTried);
    } finally {
      await owner.stop();
    }
    // Their orders answer the real client: delivered now, they pay (nothing else kept them from it).
    for (const row of stuck) expect(await delivery.deliver(row, Deadline.in(10_000))).toEqual({ outcome: 'APPLIED' });
  });

  it("refunds a payment naming an order number dated beyond the clocks' margin at once, without asking any order", async () => {
    const watched = watchedOrders();
    const owner = PaymentDelivery.fromConfig(config, { stores, orders: watched.orders, lookup });
    // As the webhook records and hands over: leased to this owner, delivered at once.
    const recordHere = (orderNo: string) =>
      stores.payments.recordPayment(
        { eventId: `evt-future-${randomUUID()}`, orderNo, amountCents: 100 },
        'webhook',
        undefined,
        owner.webhookLease,
      );
    try {
      const future = await recordHere(newOrderNo(Date.now() + 3_600_000));
      expect(orderNoTime(future.orderNo)! - Date.now()).toBeGreaterThan(FUTURE_ORDER_MARGIN_MS);
      expect(await owner.take(future, { waitMs: 5_000, deliverNow: true })).toEqual({
        outcome: 'REFUND_REQUIRED',
        refundReason: 'ORDER_NOT_FOUND',
      });
      expect(await stores.payments.getPayment(future.eventId)).toMatchObject({
        outcome: 'REFUND_REQUIRED',
        refundReason: 'ORDER_NOT_FOUND',
      });
      expect(watched.callsFor(future.eventId)).toEqual([]);
      // Within the margin it may be an order of a process whose clock is ahead: asked, and kept RECEIVED.
      const soon = await recordHere(newOrderNo(Date.now() + 60_000));
      expect(await owner.take(soon, { waitMs: 5_000, deliverNow: true })).toBeNull();
      expect(watched.callsFor(soon.eventId)).toHaveLength(1);
      expect(await stores.payments.getPayment(soon.eventId)).toMatchObject({ outcome: 'RECEIVED' });
    } finally {
      await owner.stop();
    }
  });
});

/** The API on this file's queue with breakers of its own, and its delivery owner (not running until started). */
async function serveApi(): Promise<{
  url: string;
  guards: ReturnType<typeof createDependencyGuards>;
  payments: PaymentDelivery;
}> {
  const parts = composeApi({ config, redis, stores, temporal, logger: createLogger(config, 'test') }, { orders });
  return { url: await listen(createApp(parts), servers), guards: parts.guards, payments: parts.payments };
}

/** What the reconciler does for a row still marked: the paymentApplied Signal, then the row marked told. */
function signalAsReconciler(row: PaymentRow) {
  return signalAppliedPayment({ orders, payments: stores.payments }, row, Deadline.in(10_000));
}

/** The paymentApplied Signals in the order's history: the payments its workflow was told its row applied. */
async function paymentSignals(orderNo: string): Promise<string[]> {
  const history = await temporal.workflow.getHandle(orderWorkflowId(orderNo)).fetchHistory();
  return (history.events ?? []).flatMap((event) =>
    event.workflowExecutionSignaledEventAttributes?.signalName === 'paymentApplied'
      ? [event.workflowExecutionSignaledEventAttributes.signalName]
      : [],
  );
}

/** Opens a breaker as a hung dependency would: BREAKER_FAILURES calls that run out of time. */
async function trip(guard: DependencyGuard): Promise<void> {
  for (let i = 0; i < config.breaker.failureThreshold; i++) {
    await guard.call(Deadline.in(5), () => new Promise<never>(() => {})).catch(() => undefined);
  }
  expect(guard.state).toBe('open');
}

function sendWebhook(url: string, event: { eventId: string; orderNo: string; amountCents: number }) {
  const raw = JSON.stringify({ ...event, type: 'payment.succeeded' });
  return replyOf(url, 'POST', '/api/payments/webhook', {
    raw,
    headers: { 'payment-signature': signWebhook(config.webhookSecret, raw) },
  });
}

describe('the webhook records first', () => {
  it('with the MySQL, Temporal and workflows breakers open, judges a payment its order row decides: 200 APPLIED at once, the order PAID; its workflow then gets the payment Signal', async () => {
    const order = await placeOrder('30m');
    const api = await serveApi();
    for (const name of ['mysql', 'temporal', 'workflows'] as const) await trip(api.guards[name]);
    const eventId = `evt-open-${order.input.orderNo}`;
    const event = { eventId, orderNo: order.input.orderNo, amountCents: order.total };
    expect(await sendWebhook(api.url, event)).toEqual({ status: 200, body: { received: true, outcome: 'APPLIED' } });
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    // Nobody retries the webhook: its Signal, sent after the answer, closes the order (this test's order client has
    // no breakers; with Temporal's open, the reconciler sends it: test/reconcile.test.ts).
    await waitFor(async () => (await stores.payments.getPayment(eventId))?.tellWorkflow === false, {
      what: `${eventId}'s Signal sent`,
      timeoutMs: 10_000,
    });
    await api.payments.stop();
    await orders.awaitClosed(order.input.orderNo);
    expect(await paymentSignals(order.input.orderNo)).toEqual(['paymentApplied']);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expect((await inventory.getReservation(order.sku, order.input.orderNo))?.state).toBe('SOLD');
    // The provider's retry of a judged event changes nothing.
    expect(await sendWebhook(api.url, event)).toEqual({ status: 200, body: { received: true, outcome: 'DUPLICATE' } });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('with the breakers open, a payment its order row cannot decide (another one in play) is recorded and answered 202 RECEIVED; the owner then delivers both', async () => {
    const order = await placeOrder('30m');
    // A payment of the wrong amount, recorded and not judged yet: only the workflow judges while it is in play.
    const short = await record(order.input.orderNo, order.total - 1);
    const api = await serveApi();
    for (const name of ['mysql', 'temporal', 'workflows'] as const) await trip(api.guards[name]);
    const eventId = `evt-open-${order.input.orderNo}`;
    const reply = await sendWebhook(api.url, { eventId, orderNo: order.input.orderNo, amountCents: order.total });
    expect(reply).toEqual({ status: 202, body: { received: true, outcome: 'RECEIVED' } });
    expect(await stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'RECEIVED', tellWorkflow: false });
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'AWAITING_PAYMENT' });
    await api.payments.take(short, { waitMs: 0, deliverNow: false });
    api.payments.start();
    try {
      await waitFor(async () => (await stores.payments.getPayment(eventId))?.outcome === 'APPLIED', {
        what: `${eventId} applied by the owner`,
        timeoutMs: 20_000,
      });
    } finally {
      await api.payments.stop();
    }
    await orders.awaitClosed(order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expect(await stores.payments.getPayment(short.eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'AMOUNT_MISMATCH',
    });
  });

  it('keeps a payment for an order number no order has had for an hour for a refund, and one too recent to tell RECEIVED', async () => {
    const api = await serveApi();
    const old = newOrderNo(Date.now() - 3_600_000);
    expect(await sendWebhook(api.url, { eventId: `evt-old-${old}`, orderNo: old, amountCents: 100 })).toEqual({
      status: 200,
      body: { received: true, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_NOT_FOUND' },
    });
    expect(await stores.payments.getPayment(`evt-old-${old}`)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ORDER_NOT_FOUND',
    });
    const recent = newOrderNo();
    expect(await sendWebhook(api.url, { eventId: `evt-recent-${recent}`, orderNo: recent, amountCents: 100 })).toEqual({
      status: 202,
      body: { received: true, outcome: 'RECEIVED' },
    });
    expect(await stores.payments.getPayment(`evt-recent-${recent}`)).toMatchObject({ outcome: 'RECEIVED' });
  });
});

describe('a payment its order row decides, judged as it is recorded', () => {
  it('answers APPLIED with the worker away: PAID in MySQL and to its shopper at once; the payment Signal waits in the history and the order closes PAID within 5 s of the worker’s return', async () => {
    const order = await placeOrder('30m');
    const { orderNo } = order.input;
    const api = await serveApi();
    const eventId = `evt-door-${orderNo}`;
    await stopWorker();
    try {
      const reply = await sendWebhook(api.url, { eventId, orderNo, amountCents: order.total });
      expect(reply).toEqual({ status: 200, body: { received: true, outcome: 'APPLIED' } });
      expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
      // Its shopper reads PAID although no worker can answer: what the stores say, MySQL's final status.
      const reads = new OrderLookup({ ...lookupDeps(orders, stores), storesReadMs: 1_000 });
      expect(await reads.find(orderNo, Deadline.in(3_000))).toMatchObject({
        source: 'stores',
        view: { status: 'PAID' },
      });
      // Its unit is sold in MySQL; Redis still holds it reserved until the workflow confirms it.
      expect((await inventory.getReservation(order.sku, orderNo))?.state).toBe('CLAIMED');
      // The Signal needs no worker: Temporal holds it in the order's history, and the row is marked told.
      await waitFor(async () => (await stores.payments.getPayment(eventId))?.tellWorkflow === false, {
        what: `${eventId}'s Signal sent`,
        timeoutMs: 10_000,
      });
      expect(await paymentSignals(orderNo)).toEqual(['paymentApplied']);
      // Its shopper's cancel now is refused: the row decided the payment, whatever the workflow has not heard yet.
      const token = await new ShopperAuth(config).issue(order.input.userId);
      expect(await replyOf(api.url, 'POST', `/api/orders/${orderNo}/cancel`, { token })).toMatchObject({
        status: 409,
        body: { error: { code: 'NOT_CANCELLABLE' } },
      });
    } finally {
      await startWorker();
    }
    const back = Date.now();
    await orders.awaitClosed(orderNo);
    const closedInMs = Date.now() - back;
    console.log(`[payment signal] the order closed ${closedInMs} ms after the worker came back`);
    expect(closedInMs).toBeLessThan(5_000);
    await api.payments.stop();
    const closed = await temporal.workflow.getHandle(orderWorkflowId(orderNo)).result();
    expect(closed).toMatchObject({ status: 'PAID', payments: [{ eventId, outcome: 'APPLIED' }] });
    expect((await inventory.getReservation(order.sku, orderNo))?.state).toBe('SOLD');
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a workflow that has not heard yet still answers AWAITING_PAYMENT; a read that heard nothing shows MySQL’s PAID', async () => {
    const order = await placeOrder('30m');
    const { orderNo } = order.input;
    const { row, judged } = await stores.payments.recordAndJudge(
      { eventId: `evt-unheard-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
      // Leased to nobody alive for a minute: no owner tells the workflow during this test.
      { owner: `nobody-${randomUUID()}`, leaseMs: 60_000 },
    );
    expect(judged).toBe(true);
    expect(row).toMatchObject({ outcome: 'APPLIED', tellWorkflow: true });
    expect((await lookup.fromWorkflow(orderNo))?.view.status).toBe('AWAITING_PAYMENT');
    const found = await lookup.find(orderNo);
    expect(found).toMatchObject({ source: 'database', view: { status: 'PAID' } });
    // Signalled, it closes the order as its row says.
    expect(await signalAsReconciler(row)).toBe('SIGNALLED');
    await orders.awaitClosed(orderNo);
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({ outcome: 'APPLIED', tellWorkflow: false });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a second payment to an order its row has sold is refunded at once (ALREADY_PAID), its workflow never told of it', async () => {
    const order = await placeOrder('30m');
    const { orderNo } = order.input;
    const api = await serveApi();
    await stopWorker();
    try {
      const first = { eventId: `evt-first-${orderNo}`, orderNo, amountCents: order.total };
      const second = { eventId: `evt-second-${orderNo}`, orderNo, amountCents: order.total };
      expect((await sendWebhook(api.url, first)).body).toEqual({ received: true, outcome: 'APPLIED' });
      // Had its workflow heard of this one before the first, it would have applied it: the row decides instead.
      expect((await sendWebhook(api.url, second)).body).toEqual({
        received: true,
        outcome: 'REFUND_REQUIRED',
        refundReason: 'ALREADY_PAID',
      });
      expect(await stores.payments.getPayment(second.eventId)).toMatchObject({ tellWorkflow: false });
    } finally {
      await startWorker();
    }
    await orders.awaitClosed(orderNo);
    await api.payments.stop();
    expect(await paymentSignals(orderNo)).toEqual(['paymentApplied']);
    const payments = await stores.payments.paymentsOfOrder(orderNo);
    expect(payments.map((p) => [p.eventId, p.outcome]).sort()).toEqual([
      [`evt-first-${orderNo}`, 'APPLIED'],
      [`evt-second-${orderNo}`, 'REFUND_REQUIRED'],
    ]);
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('the deadline passing before the workflow is told: the close finds the order sold and pays it', async () => {
    const order = await placeOrder('3s');
    const { orderNo } = order.input;
    await stopWorker();
    const { row } = await stores.payments.recordAndJudge(
      { eventId: `evt-before-deadline-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
      { owner: `nobody-${randomUUID()}`, leaseMs: 60_000 },
    );
    expect(row.outcome).toBe('APPLIED');
    await until(order.deadline + 500);
    // The timer fires as the worker comes back; the payment is not delivered: cancelUnpaidOrder finds it applied.
    await startWorker();
    await orders.awaitClosed(orderNo);
    expect(await temporal.workflow.getHandle(orderWorkflowId(orderNo)).result()).toMatchObject({ status: 'PAID' });
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
    // Signalled afterwards, the closed order needs nothing more: its row is marked told.
    expect(await signalAsReconciler(row)).toBe('NOT_RUNNING');
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({ outcome: 'APPLIED', tellWorkflow: false });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('an order that fails after its payment was applied (its reservation gone from Redis) is FAILED and the payment refunded', async () => {
    const order = await placeOrder('30m');
    const { orderNo } = order.input;
    const { row } = await stores.payments.recordAndJudge(
      { eventId: `evt-lost-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
      { owner: `nobody-${randomUUID()}`, leaseMs: 60_000 },
    );
    expect(row.outcome).toBe('APPLIED');
    // Redis lost the reservation (the units released, maybe resold): the workflow cannot confirm it. It follows the
    // payment it is signalled, then fails the order in its close, which refunds it.
    await inventory.release(order.sku, orderNo, { as: 'owner' });
    expect(await signalAsReconciler(row)).toBe('SIGNALLED');
    await orders.awaitClosed(orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'FAILED' });
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ORDER_FAILED',
      tellWorkflow: false,
    });
  });

  it('a dispute the provider reported before the payment reached the order applies as the order becomes PAID', async () => {
    const order = await placeOrder('30m');
    const { orderNo } = order.input;
    // Events out of order: the card holder's dispute of the payment before the payment itself.
    await stores.refunds.recordTakeback(
      openDispute({ id: `dp_${orderNo}`, intentId: `pi_${orderNo}`, orderNo, amountCents: order.total }),
    );
    const { row, judged } = await stores.payments.recordAndJudge(
      { eventId: `evt-disputed-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
      { owner: `nobody-${randomUUID()}`, leaseMs: 60_000 },
    );
    expect({ judged, outcome: row.outcome }).toEqual({ judged: true, outcome: 'APPLIED' });
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({
      status: 'DISPUTED',
      dispute: { standing: 'OPEN', reason: 'fraudulent' },
    });
    expect(await signalAsReconciler(row)).toBe('SIGNALLED');
    await orders.awaitClosed(orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'DISPUTED' });
  });
});
