/**
 * A payment is never refused, lost or wrongly refunded because something was slow: it is recorded
 * first, decided by its order's row as it is recorded (by when it arrived), and its order's workflow follows the
 * paymentApplied Signal (docs/fault-tolerance.md, "A payment's path"). On the test stack's Temporal dev server with a
 * production worker of this file's own task queue, which the tests stop and start to make a worker that is late,
 * and real MySQL and Redis. Each test names what it told apart from luck.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import { composeApi, createApp } from '../src/api/app.js';
import type { createDependencyGuards } from '../src/api/app.js';
import type { PaymentRow } from '../src/db/rows.js';
import { Deadline, type DependencyGuard } from '../src/infra/dependency-guard.js';
import { createLogger } from '../src/infra/logger.js';
import type { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { storedPayment, type PaymentSignals } from '../src/payments/receiver.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { orderWorkflowId, statusQuery, type OrderInput } from '../src/model/order-workflow.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import type { StackClients } from './helpers/stack-clients.js';
import { clientsTest } from './helpers/stack-test.js';
import { expectInvariants, oneUnitOrder, openDispute, putOnSale, saleReport } from './helpers/fixtures.js';
import { listen, replyOf } from './helpers/http.js';
import { startTestWorker, type TestWorker } from './helpers/worker.js';
import { awaitClosed, lookupDeps, orderAccess } from './helpers/orders.js';
import { OrderLookup } from '../src/order/lookup.js';
import { ShopperAuth } from '../src/api/auth.js';

const config = testConfig({
  TEMPORAL_TASK_QUEUE: `arrival-${randomUUID()}`,
  LOG_LEVEL: 'silent',
  RATE_LIMIT_WEBHOOK: 'off',
  BREAKER_NO_SUCCESS_FOR: '0ms',
});

/** The clients, the order client and lookup of this file's queue, and its production worker. */
interface Bench extends Omit<StackClients, 'close'> {
  orders: OrderWorkflowClient;
  lookup: OrderLookup;
  /** A worker that is late: nothing of this queue runs until it is started again. */
  stopWorker(): Promise<void>;
  startWorker(): Promise<void>;
  /** The APIs tests served (serveApi), closed when the file ends. */
  servers: Server[];
}

const it = clientsTest(config).extend(
  'bench',
  { scope: 'file' },
  async ({ clients }, { onCleanup }): Promise<Bench> => {
    const { stores, redis, temporal } = clients;
    const servers: Server[] = [];
    let worker: TestWorker | undefined = await startTestWorker({ config, stores, redis });
    onCleanup(async () => {
      for (const server of servers) server.close();
      await worker?.close();
    });
    return {
      ...clients,
      ...orderAccess(temporal, stores, config.temporal.taskQueue),
      servers,
      async stopWorker() {
        await worker?.close();
        worker = undefined;
      },
      async startWorker() {
        worker ??= await startTestWorker({ config, stores, redis });
      },
    };
  },
);

/** An order reserved and started as the API does, persisted (AWAITING_PAYMENT), with its payment window. */
async function placeOrder(
  bench: Bench,
  paymentWindow: string,
): Promise<{ input: OrderInput; deadline: number; total: number; sku: string }> {
  const { stores, redis, inventory, orders } = bench;
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

/** Recorded and decided by the order's row as the webhook does, its Signal not sent (lost). */
async function record({ stores }: Bench, orderNo: string, amountCents: number): Promise<PaymentRow> {
  return (await stores.payments.recordPayment({ eventId: `evt-${randomUUID()}`, orderNo, amountCents }, 'webhook')).row;
}

/** As the webhook takes it: recorded and decided, then the Signal of one the row applied. */
async function pay(bench: Bench, orderNo: string, amountCents: number): Promise<PaymentRow> {
  const row = await record(bench, orderNo, amountCents);
  if (row.outcome === 'APPLIED') await signal(bench, row);
  return row;
}

async function until(at: number): Promise<void> {
  await sleep(Math.max(0, at - Date.now()));
}

describe('a payment judged by when it arrived', () => {
  it('received before the deadline, its Signal lost: the timer fires and the close finds it applied; PAID', async ({
    bench,
  }) => {
    const { stores, redis, temporal } = bench;
    const order = await placeOrder(bench, '3s');
    const row = await record(bench, order.input.orderNo, order.total);
    expect(row.receivedAt.getTime()).toBeLessThanOrEqual(order.deadline);
    expect(row.outcome).toBe('APPLIED');
    await awaitClosed(temporal, order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({ outcome: 'APPLIED' });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('received before the deadline, its Signal and the timer in one workflow task of a late worker: PAID', async ({
    bench,
  }) => {
    const { stores, redis, temporal } = bench;
    const order = await placeOrder(bench, '3s');
    await bench.stopWorker();
    try {
      await pay(bench, order.input.orderNo, order.total);
      await until(order.deadline + 1_000);
    } finally {
      await bench.startWorker();
    }
    await awaitClosed(temporal, order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('received after the deadline while a late worker had not fired the timer: refunded by the row at once, CANCELLED', async ({
    bench,
  }) => {
    const { stores, redis, temporal } = bench;
    const order = await placeOrder(bench, '3s');
    await bench.stopWorker();
    let row: PaymentRow;
    try {
      await until(order.deadline + 1_000);
      row = await pay(bench, order.input.orderNo, order.total);
      expect(row.receivedAt.getTime()).toBeGreaterThan(order.deadline);
      // The row still awaits payment, but the arrival rule decides: late.
      expect(row).toMatchObject({ outcome: 'REFUND_REQUIRED', refundReason: 'RECEIVED_AFTER_DEADLINE' });
    } finally {
      await bench.startWorker();
    }
    await awaitClosed(temporal, order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({
      status: 'CANCELLED',
      cancelReason: 'PAYMENT_TIMEOUT',
    });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a late start keeps its payment time: the deadline counts from when the order became payable', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 3 });
    const orderNo = newOrderNo();
    expect((await inventory.reserve({ orderNo, sku: sale.sku, userId: 'late-start', quantity: 1 })).outcome).toBe(
      'RESERVED',
    );
    const createdAt = Date.now();
    await bench.stopWorker();
    try {
      expect(
        await orders.start(
          oneUnitOrder(sale, { orderNo, userId: 'late-start', createdAtMs: createdAt, paymentWindow: '2s' }),
        ),
      ).toBe('STARTED');
      await until(createdAt + 3_000); // the worker is away past the reservation's window
    } finally {
      await bench.startWorker();
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
    expect((await temporal.workflow.getHandle(orderWorkflowId(orderNo)).query(statusQuery)).paymentDeadline).toBe(
      row.paymentDeadline.toISOString(),
    );
    const payment = await pay(bench, orderNo, sale.priceCents);
    expect(payment.receivedAt.getTime()).toBeGreaterThan(createdAt + 2_000);
    expect(payment.outcome).toBe('APPLIED');
    await awaitClosed(temporal, orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
  });

  it('a payment after its order closed is decided as the order would have: by its amount, then its arrival', async ({
    bench,
  }) => {
    const { stores, temporal } = bench;
    const order = await placeOrder(bench, '2s');
    await awaitClosed(temporal, order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({
      status: 'CANCELLED',
      cancelReason: 'PAYMENT_TIMEOUT',
    });
    expect(await record(bench, order.input.orderNo, order.total)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'RECEIVED_AFTER_DEADLINE',
    });
    expect(await record(bench, order.input.orderNo, order.total - 1)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'AMOUNT_MISMATCH',
    });
  });

  it("a shopper's cancel after a payment the row applied is refused (its Signal lost): the order is PAID", async ({
    bench,
  }) => {
    const { stores, redis, temporal, orders, lookup } = bench;
    const order = await placeOrder(bench, '30m');
    await record(bench, order.input.orderNo, order.total);
    const found = await lookup.find(order.input.orderNo);
    if (!found) throw new Error('order not found');
    expect(await orders.cancel(found.view.orderNo)).toEqual({ outcome: 'REFUSED' });
    await awaitClosed(temporal, order.input.orderNo);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });
});

/** The API on this file's queue with breakers of its own, and its payment Signals. */
async function serveApi(bench: Bench): Promise<{
  url: string;
  guards: ReturnType<typeof createDependencyGuards>;
  payments: PaymentSignals;
}> {
  const { redis, stores, temporal, orders } = bench;
  const parts = composeApi({ config, redis, stores, temporal, logger: createLogger(config, 'test') }, { orders });
  return { url: await listen(createApp(parts), bench.servers), guards: parts.guards, payments: parts.payments };
}

/** The paymentApplied Signal of a payment its row applied, as the webhook (or the reconciler) sends it. */
function signal({ orders }: Bench, row: PaymentRow) {
  return orders.signalPaymentApplied(row.orderNo, storedPayment(row), Deadline.in(10_000));
}

/** The paymentApplied Signals in the order's history: the payments its workflow was told its row applied. */
async function paymentSignals({ temporal }: Bench, orderNo: string): Promise<string[]> {
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
  it('with the MySQL, Temporal and workflows breakers open, judges a payment its order row decides: 200 APPLIED at once, the order PAID; its workflow then gets the payment Signal', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal } = bench;
    const order = await placeOrder(bench, '30m');
    const api = await serveApi(bench);
    for (const name of ['mysql', 'temporal', 'workflows'] as const) await trip(api.guards[name]);
    const eventId = `evt-open-${order.input.orderNo}`;
    const event = { eventId, orderNo: order.input.orderNo, amountCents: order.total };
    expect(await sendWebhook(api.url, event)).toEqual({ status: 200, body: { received: true, outcome: 'APPLIED' } });
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    // Nobody retries the webhook: its Signal, sent after the answer, closes the order (this test's order client has
    // no breakers; with Temporal's open, the reconciler closes it: test/reconcile.test.ts).
    await api.payments.stop();
    await awaitClosed(temporal, order.input.orderNo);
    expect(await paymentSignals(bench, order.input.orderNo)).toEqual(['paymentApplied']);
    expect(await stores.orders.getOrder(order.input.orderNo)).toMatchObject({ status: 'PAID' });
    expect((await inventory.getReservation(order.sku, order.input.orderNo))?.state).toBe('SOLD');
    // The provider's retry of a judged event changes nothing.
    expect(await sendWebhook(api.url, event)).toEqual({ status: 200, body: { received: true, outcome: 'DUPLICATE' } });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a payment whose commit comes after the answer gave up (503) still sends its Signal: PAID and closed, the retry a DUPLICATE', async ({
    bench,
  }) => {
    const { stores, redis, temporal, pool } = bench;
    const order = await placeOrder(bench, '30m');
    const { orderNo } = order.input;
    const api = await serveApi(bench);
    // Another transaction holds the order's row: the recording waits on its lock past MYSQL_TIMEOUT.
    const holder = await pool.getConnection();
    try {
      await holder.beginTransaction();
      await holder.query('SELECT order_no FROM orders WHERE order_no = ? FOR UPDATE', [orderNo]);
      const event = { eventId: `evt-late-commit-${orderNo}`, orderNo, amountCents: order.total };
      const answered = await sendWebhook(api.url, event);
      expect(answered).toMatchObject({ status: 503, body: { error: { code: 'UNAVAILABLE' } } });
      expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'AWAITING_PAYMENT' });
      await holder.commit();
      // The recording goes on, decides APPLIED and tells the workflow: nobody else would before the reconciler.
      await awaitClosed(temporal, orderNo);
      expect(await paymentSignals(bench, orderNo)).toEqual(['paymentApplied']);
      expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
      expect(await sendWebhook(api.url, event)).toEqual({
        status: 200,
        body: { received: true, outcome: 'DUPLICATE' },
      });
    } finally {
      holder.release();
      await api.payments.stop();
    }
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a payment for an order whose row is not written yet is answered 202 RECEIVED; the row decides it as it is written', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal, orders } = bench;
    const sale = await putOnSale(stores, redis, { stock: 3 });
    const orderNo = newOrderNo();
    const userId = `arrival-${orderNo.slice(-6)}`;
    expect((await inventory.reserve({ orderNo, sku: sale.sku, userId, quantity: 1 })).outcome).toBe('RESERVED');
    const api = await serveApi(bench);
    await bench.stopWorker();
    const eventId = `evt-before-row-${orderNo}`;
    try {
      expect(
        await orders.start(oneUnitOrder(sale, { orderNo, userId, createdAtMs: Date.now(), paymentWindow: '30m' })),
      ).toBe('STARTED');
      const reply = await sendWebhook(api.url, { eventId, orderNo, amountCents: sale.priceCents });
      expect(reply).toEqual({ status: 202, body: { received: true, outcome: 'RECEIVED' } });
      expect(await sendWebhook(api.url, { eventId, orderNo, amountCents: sale.priceCents })).toEqual(reply);
      expect(await stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'RECEIVED' });
    } finally {
      await bench.startWorker();
    }
    // The persist writes the row and decides the payment in the same transaction; the workflow follows its answer.
    await awaitClosed(temporal, orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
    expect(await stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'APPLIED' });
    expect(await sendWebhook(api.url, { eventId, orderNo, amountCents: sale.priceCents })).toEqual({
      status: 200,
      body: { received: true, outcome: 'DUPLICATE' },
    });
    await api.payments.stop();
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });
});

describe('a payment its order row decides, judged as it is recorded', () => {
  it('answers APPLIED with the worker away: PAID in MySQL and to its shopper at once; the payment Signal waits in the history and the order closes PAID within 5 s of the worker’s return', async ({
    bench,
  }) => {
    const { stores, redis, inventory, temporal } = bench;
    const order = await placeOrder(bench, '30m');
    const { orderNo } = order.input;
    const api = await serveApi(bench);
    const eventId = `evt-door-${orderNo}`;
    await bench.stopWorker();
    try {
      const reply = await sendWebhook(api.url, { eventId, orderNo, amountCents: order.total });
      expect(reply).toEqual({ status: 200, body: { received: true, outcome: 'APPLIED' } });
      expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
      // Its shopper reads PAID although no worker runs: its row, which reads never leave for the workflow.
      const reads = new OrderLookup(lookupDeps(stores));
      expect(await reads.find(orderNo, Deadline.in(3_000))).toMatchObject({
        source: 'database',
        view: { status: 'PAID' },
      });
      // Its unit is sold in MySQL; Redis still holds it reserved until the workflow confirms it.
      expect((await inventory.getReservation(order.sku, orderNo))?.state).toBe('CLAIMED');
      // The Signal needs no worker: Temporal holds it in the order's history.
      await waitFor(async () => (await paymentSignals(bench, orderNo)).length === 1, {
        what: `${eventId}'s Signal in the history`,
        timeoutMs: 10_000,
      });
      // Its shopper's cancel now is refused: the row decided the payment, whatever the workflow has not heard yet.
      const token = await new ShopperAuth(config).issue(order.input.userId);
      expect(await replyOf(api.url, 'POST', `/api/orders/${orderNo}/cancel`, { token })).toMatchObject({
        status: 409,
        body: { error: { code: 'NOT_CANCELLABLE' } },
      });
    } finally {
      await bench.startWorker();
    }
    const back = Date.now();
    await awaitClosed(temporal, orderNo);
    const closedInMs = Date.now() - back;
    console.log(`[payment signal] the order closed ${closedInMs} ms after the worker came back`);
    expect(closedInMs).toBeLessThan(5_000);
    await api.payments.stop();
    const closed = await temporal.workflow.getHandle(orderWorkflowId(orderNo)).result();
    expect(closed).toMatchObject({ status: 'PAID' });
    expect((await inventory.getReservation(order.sku, orderNo))?.state).toBe('SOLD');
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a workflow that has not heard yet still answers AWAITING_PAYMENT; a read that heard nothing shows MySQL’s PAID', async ({
    bench,
  }) => {
    const { stores, redis, temporal, lookup } = bench;
    const order = await placeOrder(bench, '30m');
    const { orderNo } = order.input;
    // Not signalled (the webhook's own Signal lost; the reconciler's comes only after the grace).
    const { row, judged } = await stores.payments.recordPayment(
      { eventId: `evt-unheard-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
    );
    expect(judged).toBe(true);
    expect(row).toMatchObject({ outcome: 'APPLIED' });
    const handle = temporal.workflow.getHandle(orderWorkflowId(orderNo));
    expect((await handle.query(statusQuery)).status).toBe('AWAITING_PAYMENT');
    const found = await lookup.find(orderNo);
    expect(found).toMatchObject({ source: 'database', view: { status: 'PAID' } });
    // Signalled, it closes the order as its row says.
    expect(await signal(bench, row)).toBe('SIGNALLED');
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('a second payment to an order its row has sold is refunded at once (ALREADY_PAID), its workflow never told of it', async ({
    bench,
  }) => {
    const { stores, redis, temporal } = bench;
    const order = await placeOrder(bench, '30m');
    const { orderNo } = order.input;
    const api = await serveApi(bench);
    await bench.stopWorker();
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
      expect(await stores.payments.getPayment(second.eventId)).toMatchObject({ outcome: 'REFUND_REQUIRED' });
    } finally {
      await bench.startWorker();
    }
    await awaitClosed(temporal, orderNo);
    await api.payments.stop();
    expect(await paymentSignals(bench, orderNo)).toEqual(['paymentApplied']);
    const payments = await stores.payments.paymentsOfOrder(orderNo);
    expect(payments.map((p) => [p.eventId, p.outcome]).sort()).toEqual([
      [`evt-first-${orderNo}`, 'APPLIED'],
      [`evt-second-${orderNo}`, 'REFUND_REQUIRED'],
    ]);
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('the deadline passing before the workflow is told: the close finds the order sold and pays it', async ({
    bench,
  }) => {
    const { stores, redis, temporal } = bench;
    const order = await placeOrder(bench, '3s');
    const { orderNo } = order.input;
    await bench.stopWorker();
    const { row } = await stores.payments.recordPayment(
      { eventId: `evt-before-deadline-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
    );
    expect(row.outcome).toBe('APPLIED');
    await until(order.deadline + 500);
    // The timer fires as the worker comes back; the payment is not delivered: the close finds it applied.
    await bench.startWorker();
    await awaitClosed(temporal, orderNo);
    expect(await temporal.workflow.getHandle(orderWorkflowId(orderNo)).result()).toMatchObject({ status: 'PAID' });
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'PAID' });
    // Signalled afterwards, the closed order needs nothing more.
    expect(await signal(bench, row)).toBe('NOT_RUNNING');
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({ outcome: 'APPLIED' });
    expectInvariants(await saleReport(stores, redis, order.sku));
  });

  it('an order that fails after its payment was applied (its reservation gone from Redis) is FAILED and the payment refunded', async ({
    bench,
  }) => {
    const { stores, inventory, temporal } = bench;
    const order = await placeOrder(bench, '30m');
    const { orderNo } = order.input;
    const { row } = await stores.payments.recordPayment(
      { eventId: `evt-lost-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
    );
    expect(row.outcome).toBe('APPLIED');
    // Redis lost the reservation (the units released, maybe resold): the close cannot confirm it, so it fails the
    // order, whose payment is owed back.
    await inventory.release(order.sku, orderNo, { as: 'owner' });
    expect(await signal(bench, row)).toBe('SIGNALLED');
    await awaitClosed(temporal, orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'FAILED' });
    expect(await stores.payments.getPayment(row.eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ORDER_FAILED',
    });
  });

  it('a dispute the provider reported before the payment reached the order applies as the order becomes PAID', async ({
    bench,
  }) => {
    const { stores, temporal } = bench;
    const order = await placeOrder(bench, '30m');
    const { orderNo } = order.input;
    // Events out of order: the card holder's dispute of the payment before the payment itself.
    await stores.refunds.recordTakeback(
      openDispute({ id: `dp_${orderNo}`, intentId: `pi_${orderNo}`, orderNo, amountCents: order.total }),
    );
    const { row, judged } = await stores.payments.recordPayment(
      { eventId: `evt-disputed-${orderNo}`, orderNo, amountCents: order.total },
      'webhook',
    );
    expect({ judged, outcome: row.outcome }).toEqual({ judged: true, outcome: 'APPLIED' });
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({
      status: 'DISPUTED',
      dispute: { standing: 'OPEN', reason: 'fraudulent' },
    });
    expect(await signal(bench, row)).toBe('SIGNALLED');
    await awaitClosed(temporal, orderNo);
    expect(await stores.orders.getOrder(orderNo)).toMatchObject({ status: 'DISPUTED' });
  });
});
