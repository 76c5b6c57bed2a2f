/**
 * OrderWorkflow on Temporal's time-skipping test server, with the real activities against the real
 * MariaDB and Redis of the test stack. Faults are injected around the real activities, never
 * instead of them. The tests share the server's clock, so they run one after another.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { RowDataPacket } from 'mysql2/promise';
import { beforeEach, describe, expect } from 'vitest';
import type { Activities } from '../src/activities/order.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { storedPayment } from '../src/payments/receiver.js';
import { waitFor } from '../stack/wait-for.js';
import { ensureSearchAttributes } from '../src/workers/worker-connection.js';
import {
  cancelUpdate,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentAppliedSignal,
  statusQuery,
  type OrderState,
  type StoredPaymentOutcome,
} from '../src/model/order-workflow.js';
import type { OrderWorkflow } from '../src/workflows/order.js';
import { testConfig } from './helpers/env.js';
import type { StoreClients } from './helpers/stack-clients.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { expectInvariants, expectSaleSettled, oneUnitOrder, putOnSale, saleReport } from './helpers/fixtures.js';
import { startTimeSkippingEnvironment } from './helpers/time-skipping.js';
import { startTestWorker } from './helpers/worker.js';

/** Hooks a test sets to wrap the real activities; reset before each test. */
interface Faults {
  persistOrder?: (
    real: Activities['persistOrder'],
    input: Parameters<Activities['persistOrder']>[0],
  ) => ReturnType<Activities['persistOrder']>;
  /** The one close when it is asked to cancel (a deadline's, a shopper's, an operator's). */
  cancelClose?: (
    real: Activities['closeOrder'],
    input: Parameters<Activities['closeOrder']>[0],
  ) => ReturnType<Activities['closeOrder']>;
}
let faults: Faults = {};
/** Every close asked, as `<orderNo>:<request kind>:<outcome>`. */
const closes: string[] = [];

const taskQueue = `order-ts-${randomUUID()}`;
// The time-skipping server has no Worker Deployment APIs: its workers run unversioned.
const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue, WORKER_VERSIONING: 'false' });

/** The clients, and the time-skipping server with a worker of this file's queue on it. */
interface Bench extends Omit<StoreClients, 'close'> {
  env: TestWorkflowEnvironment;
}

const it = storeClientsTest(config).extend(
  'bench',
  { scope: 'file' },
  async ({ clients }, { onCleanup }): Promise<Bench> => {
    // Its client and the worker encrypt with the same keys (the config's).
    const env = await startTimeSkippingEnvironment(config);
    try {
      await ensureSearchAttributes(env.connection, 'default');
      const worker = await startTestWorker({
        config,
        connection: env.nativeConnection,
        stores: clients.stores,
        redis: clients.redis,
        wrapActivities: (real) => ({
          persistOrder: (input) =>
            faults.persistOrder ? faults.persistOrder(real.persistOrder, input) : real.persistOrder(input),
          closeOrder: async (input) => {
            const verdict =
              input.request.kind === 'CANCEL' && faults.cancelClose
                ? await faults.cancelClose(real.closeOrder, input)
                : await real.closeOrder(input);
            closes.push(`${input.order.orderNo}:${input.request.kind}:${verdict.outcome}`);
            return verdict;
          },
        }),
      });
      onCleanup(async () => {
        await worker.close();
        await env.teardown();
      });
    } catch (err) {
      await env.teardown();
      throw err;
    }
    return { ...clients, env };
  },
);

beforeEach(() => {
  faults = {};
});

/**
 * A payment window that ends by MySQL's clock within seconds: the order is created now by the real
 * clock (MySQL's on this box), whatever time the server skipped. A payment timeout is judged by
 * MySQL's clock alone, so a test that reaches one uses this; the 30-minute default runs ahead of it.
 */
const SHORT_WINDOW = { paymentWindow: '3s', realClock: true } as const;

interface WindowChoice {
  paymentWindow: string;
  realClock?: boolean;
}

/** Reserves in Redis as the API does, then starts the order's workflow. */
async function startOrder(
  bench: Bench,
  sale: { sku: string; priceCents: number },
  userId = `user-${randomUUID()}`,
  orderNo = newOrderNo(),
  window: WindowChoice = { paymentWindow: '30m' },
): Promise<WorkflowHandle<typeof OrderWorkflow>> {
  const reserved = await bench.inventory.reserve({ orderNo, sku: sale.sku, userId, quantity: 1 });
  expect(reserved.outcome).toBe('RESERVED');
  return startWorkflowOf(bench, sale, userId, orderNo, window);
}

/** Starts the order's workflow as the API does, whatever became of its reservation. */
async function startWorkflowOf(
  { env }: Bench,
  sale: { sku: string; priceCents: number },
  userId: string,
  orderNo: string,
  window: WindowChoice = { paymentWindow: '30m' },
): Promise<WorkflowHandle<typeof OrderWorkflow>> {
  const createdAtMs = window.realClock ? Date.now() : await env.currentTimeMs();
  const input = oneUnitOrder(sale, { orderNo, userId, createdAtMs, paymentWindow: window.paymentWindow });
  return env.client.workflow.start<typeof OrderWorkflow>(ORDER_WORKFLOW_TYPE, {
    workflowId: orderWorkflowId(orderNo),
    taskQueue,
    args: [input],
  });
}

/**
 * A payment as the webhook takes it: recorded (MySQL stamps its arrival) and decided by the order's row, then the
 * paymentApplied Signal of one the row applied as it was recorded. Answers the row's outcome.
 */
async function pay(
  { stores }: Bench,
  handle: WorkflowHandle<typeof OrderWorkflow>,
  orderNo: string,
  eventId: string,
  amountCents: number,
): Promise<StoredPaymentOutcome> {
  const { row, judged } = await stores.payments.recordPayment({ eventId, orderNo, amountCents }, 'webhook');
  if (judged && row.outcome === 'APPLIED') await handle.signal(paymentAppliedSignal, storedPayment(row));
  return row.outcome;
}

async function waitForStatus(
  handle: WorkflowHandle<typeof OrderWorkflow>,
  status: OrderState['status'],
): Promise<OrderState> {
  return waitFor(
    async () => {
      const state = await handle.query(statusQuery);
      return state.status === status && state;
    },
    { what: `${handle.workflowId} to be ${status}`, timeoutMs: 10_000 },
  );
}

async function orderRow({ pool }: Bench, orderNo: string) {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT * FROM orders WHERE order_no = ?', [orderNo]);
  return rows[0];
}

async function paymentRows({ pool }: Bench, orderNo: string) {
  const [rows] = await pool.query<RowDataPacket[]>(
    'SELECT event_id, outcome, refund_reason FROM payments WHERE order_no = ? ORDER BY event_id',
    [orderNo],
  );
  return rows.map((r) => ({ eventId: r.event_id, outcome: r.outcome, refundReason: r.refund_reason }));
}

/** A gate a test opens when it wants a held activity to go on. */
function gate() {
  let open!: () => void;
  let reached!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const arrived = new Promise<void>((resolve) => (reached = resolve));
  return { open, opened, reached, arrived };
}

/** Resolves when `activity` is first called; every call runs the real activity at once. */
function watchCallsOf<K extends keyof Faults>(activity: K): Promise<void> {
  const hold = holdAt(activity);
  hold.open();
  return hold.arrived;
}

/**
 * Holds the next call of `activity` at a gate: `arrived` once it is held; the real activity runs once `open()` is
 * called.
 */
function holdAt<K extends keyof Faults>(activity: K): ReturnType<typeof gate> {
  const hold = gate();
  const held = async (real: (input: never) => Promise<unknown>, input: never): Promise<unknown> => {
    hold.reached();
    await hold.opened;
    return real(input);
  };
  faults[activity] = held as unknown as Faults[K];
  return hold;
}

describe.sequential('OrderWorkflow (time-skipping server, real MariaDB and Redis)', () => {
  it('is PAID when the payment arrives in time', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 5 });
    const handle = await startOrder(bench, sale);
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    await pay(bench, handle, orderNo, `evt-${orderNo}`, totalCents);
    const result = await handle.result();
    expect(result.status).toBe('PAID');
    expect(result.paidAt).toBeDefined();
    expect((await orderRow(bench, orderNo))?.status).toBe('PAID');
    expect(await paymentRows(bench, orderNo)).toEqual([
      { eventId: `evt-${orderNo}`, outcome: 'APPLIED', refundReason: null },
    ]);
    await expectSaleSettled(stores, redis, sale.sku, { available: 4, reserved: 0, sold: 1 });
  });

  it('cancels at the deadline without payment, giving the stock back in MySQL and Redis', async ({ bench }) => {
    const { stores, redis, pool } = bench;
    const sale = await putOnSale(stores, redis, { stock: 3 });
    // Held at the deadline's close: a 3 s window can pass between two polls of the status on a loaded machine.
    const hold = holdAt('cancelClose');
    const orderNo = newOrderNo();
    const handle = await startOrder(bench, sale, undefined, orderNo, SHORT_WINDOW);
    const closed = handle.result();
    await hold.arrived;
    expect((await orderRow(bench, orderNo))?.status).toBe('AWAITING_PAYMENT');
    expect((await saleReport(stores, redis, sale.sku)).figures.mysql.available).toBe(2);
    hold.open();
    const result = await closed;
    expect(result).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
    const row = await orderRow(bench, orderNo);
    expect(row).toMatchObject({ status: 'CANCELLED', cancel_reason: 'PAYMENT_TIMEOUT' });
    // Judged by MySQL's clock: cancelled at or after the deadline MySQL wrote, never before.
    const [[clock]] = await pool.query<RowDataPacket[]>('SELECT NOW(3) >= ? AS due', [row?.payment_deadline]);
    expect(clock?.due).toBe(1);
    const report = await expectSaleSettled(stores, redis, sale.sku, { available: 3, reserved: 0, sold: 0 });
    expect(report.figures.mysql.available).toBe(3);
  });

  it("never cancels before MySQL's clock passes the deadline, however far Temporal's runs ahead: a payment MySQL records in time pays the order", async ({
    bench,
  }) => {
    const { stores, redis, env } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    await env.sleep('1h'); // Temporal's clock an hour ahead of MySQL's, as a server with a broken clock
    const orderNo = newOrderNo();
    // The window only bounds how long reaching the close may take on a loaded machine (once over 8 s).
    const closing = watchCallsOf('cancelClose');
    const handle = await startOrder(bench, sale, undefined, orderNo, { paymentWindow: '15s', realClock: true });
    const result = handle.result(); // lets the server run the timer, due at once by its own clock
    const persisted = await waitFor(async () => (await orderRow(bench, orderNo)) ?? false, {
      what: `${orderNo}'s row`,
      timeoutMs: 10_000,
    });
    const deadline = persisted.payment_deadline as Date;
    await closing; // the timer fired by Temporal's clock; the close waits for MySQL's to reach the deadline
    // Recorded by MySQL in time and applied by the order's row; its Signal was lost (never sent).
    const { row: payment } = await stores.payments.recordPayment(
      { eventId: `evt-skew-${orderNo}`, orderNo, amountCents: sale.priceCents },
      'webhook',
    );
    expect(payment.receivedAt.getTime()).toBeLessThan(deadline.getTime());
    const final = await result;
    const seen = {
      final,
      row: await orderRow(bench, orderNo),
      payments: await paymentRows(bench, orderNo),
      recorded: payment,
      deadline,
    };
    expect(final, JSON.stringify(seen)).toMatchObject({ status: 'PAID' });
    expect(await paymentRows(bench, orderNo)).toEqual([
      { eventId: payment.eventId, outcome: 'APPLIED', refundReason: null },
    ]);
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('fails and releases the reservation exactly once when persistence fails for good (sale gone from MySQL)', async ({
    bench,
  }) => {
    const { stores, redis, inventory } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    await stores.sales.deleteSale(sale.sku); // the "sale gone" non-retryable case
    let attempts = 0;
    faults.persistOrder = (real, input) => {
      attempts++;
      return real(input);
    };
    const handle = await startOrder(bench, sale);
    const result = await handle.result();
    expect(result.status).toBe('FAILED');
    expect(result.failureReason).toMatch(/SaleNotFound/);
    expect(attempts).toBe(1); // non-retryable: no second attempt
    const orderNo = result.orderNo;
    expect(closes.filter((close) => close.startsWith(`${orderNo}:`))).toEqual([`${orderNo}:FAIL:FAILED`]);
    expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'FAILED' });
    expect(await inventory.getSale(sale.sku)).toMatchObject({ available: 2, reserved: 0 });
    // Released once, and the record dropped with it: the order is final.
    expect(await inventory.getReservation(sale.sku, orderNo)).toBeNull();
  });

  it('persists a promised order through a four-minute MySQL outage (v4), then is PAID', async ({ bench }) => {
    const { stores, redis, env } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    let attempts = 0;
    // 30 failed attempts, 10 s apart once backed off: about four minutes of skipped time, where
    // v3 gave up after 10 attempts (about a minute).
    faults.persistOrder = async (real, input) => {
      attempts++;
      if (attempts <= 30)
        throw Object.assign(new Error('connect ECONNREFUSED (MySQL away, injected)'), { code: 'ECONNREFUSED' });
      return real(input);
    };
    const handle = await startOrder(bench, sale);
    // Queries do not skip time; sleeping on the test server does.
    await env.sleep('5 minutes');
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    expect(attempts).toBe(31);
    await pay(bench, handle, orderNo, `evt-${orderNo}`, totalCents);
    expect((await handle.result()).status).toBe('PAID');
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('retries a transient persistence failure, then is PAID', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    let attempts = 0;
    faults.persistOrder = async (real, input) => {
      attempts++;
      if (attempts <= 2) throw Object.assign(new Error('connect ECONNREFUSED (injected)'), { code: 'ECONNREFUSED' });
      return real(input);
    };
    const handle = await startOrder(bench, sale);
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    expect(attempts).toBe(3);
    await pay(bench, handle, orderNo, `evt-${orderNo}`, totalCents);
    expect((await handle.result()).status).toBe('PAID');
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('keeps a payment that arrives while the order is still being persisted: the row applies it as it is written', async ({
    bench,
  }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const hold = holdAt('persistOrder');
    const orderNo = newOrderNo();
    const handle = await startOrder(bench, sale, undefined, orderNo);
    await hold.arrived;
    // Recorded by MySQL before the order has a row, as the webhook records it: it waits RECEIVED (202).
    const eventId = `evt-early-${orderNo}`;
    const recorded = await stores.payments.recordPayment({ eventId, orderNo, amountCents: sale.priceCents }, 'webhook');
    expect(recorded).toMatchObject({ judged: false, row: { outcome: 'RECEIVED' } });
    expect(await orderRow(bench, orderNo)).toBeUndefined(); // really not persisted yet
    hold.open();
    const result = await handle.result();
    expect(result.status).toBe('PAID');
    expect(await paymentRows(bench, orderNo)).toEqual([{ eventId, outcome: 'APPLIED', refundReason: null }]);
    expect((await orderRow(bench, result.orderNo))?.status).toBe('PAID');
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('applies a duplicate payment once and records a second, different payment for refund', async ({ bench }) => {
    const { stores, redis, inventory } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const handle = await startOrder(bench, sale);
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    expect(await pay(bench, handle, orderNo, `evt-a-${orderNo}`, totalCents)).toBe('APPLIED');
    expect(await pay(bench, handle, orderNo, `evt-a-${orderNo}`, totalCents)).toBe('APPLIED');
    expect(await pay(bench, handle, orderNo, `evt-b-${orderNo}`, totalCents)).toBe('REFUND_REQUIRED');
    const result = await handle.result();
    expect(result.status).toBe('PAID');
    // The row applied one and refunded the other.
    expect(await paymentRows(bench, orderNo)).toEqual([
      { eventId: `evt-a-${orderNo}`, outcome: 'APPLIED', refundReason: null },
      { eventId: `evt-b-${orderNo}`, outcome: 'REFUND_REQUIRED', refundReason: 'ALREADY_PAID' },
    ]);
    expect(await inventory.getSale(sale.sku)).toMatchObject({ sold: 1, reserved: 0 });
  });

  it('records a payment that arrives after the timer fired for refund and never applies it', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const hold = holdAt('cancelClose');
    const handle = await startOrder(bench, sale, undefined, undefined, SHORT_WINDOW);
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    const result = handle.result(); // lets the server skip the 30 minutes
    const { paymentDeadline } = await handle.query(statusQuery);
    await hold.arrived; // the timer fired; the order is being cancelled
    // Recorded once MySQL's clock (this box's) is past the deadline: late by the arrival rule.
    await sleep(Math.max(0, Date.parse(paymentDeadline) - Date.now() + 50));
    expect(await pay(bench, handle, orderNo, `evt-late-${orderNo}`, totalCents)).toBe('REFUND_REQUIRED');
    hold.open();
    const final = await result;
    expect(final).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
    expect(await paymentRows(bench, orderNo)).toEqual([
      { eventId: `evt-late-${orderNo}`, outcome: 'REFUND_REQUIRED', refundReason: 'RECEIVED_AFTER_DEADLINE' },
    ]);
    expect((await orderRow(bench, orderNo))?.status).toBe('CANCELLED');
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('a payment recorded in time while the timed-out order is being cancelled: the row applied it, the close finds it; PAID', async ({
    bench,
  }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const hold = holdAt('cancelClose');
    // The window only bounds how long reaching the held close may take on a loaded machine (once over 8 s).
    const handle = await startOrder(bench, sale, undefined, undefined, { paymentWindow: '15s', realClock: true });
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    const result = handle.result(); // lets the server skip the 30 minutes
    await hold.arrived; // the timer fired; the close is about to ask the row
    // Recorded before the deadline by MySQL's clock (this box's): in time, applied by the row; its Signal finds the
    // order closing. The close's task lasts the hold and MySQL's clock (~15 s) and may be retried from its start on
    // this server: a re-run close finds the order PAID and answers PAID again.
    const eventId = `evt-in-time-${orderNo}`;
    expect(await pay(bench, handle, orderNo, eventId, totalCents)).toBe('APPLIED');
    hold.open();
    expect(await result).toMatchObject({ status: 'PAID' });
    expect((await orderRow(bench, orderNo))?.status).toBe('PAID');
    expect(await paymentRows(bench, orderNo)).toEqual([{ eventId, outcome: 'APPLIED', refundReason: null }]);
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('rejects a payment of the wrong amount and records it', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const handle = await startOrder(bench, sale);
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    expect(await pay(bench, handle, orderNo, `evt-short-${orderNo}`, totalCents - 1)).toBe('REFUND_REQUIRED');
    expect((await orderRow(bench, orderNo))?.status).toBe('AWAITING_PAYMENT');
    await pay(bench, handle, orderNo, `evt-right-${orderNo}`, totalCents);
    expect((await handle.result()).status).toBe('PAID');
    expect(await paymentRows(bench, orderNo)).toEqual([
      { eventId: `evt-right-${orderNo}`, outcome: 'APPLIED', refundReason: null },
      { eventId: `evt-short-${orderNo}`, outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' },
    ]);
  });

  it('is CANCELLED with USER_CANCELLED when the shopper cancels', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const handle = await startOrder(bench, sale);
    const { orderNo } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    await handle.executeUpdate(cancelUpdate);
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'USER_CANCELLED' });
    expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'CANCELLED', cancel_reason: 'USER_CANCELLED' });
    await expectSaleSettled(stores, redis, sale.sku, { available: 2 });
  });

  it('still gives the stock back when the workflow itself is cancelled', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const handle = await startOrder(bench, sale);
    const { orderNo } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'CANCELLED' });
    await expectSaleSettled(stores, redis, sale.sku, { available: 2 });
  });
});

/**
 * The paths where an order can lose a unit or a payment: a cancel or a payment racing persistence,
 * later attempts failing after one persisted, a reservation gone from Redis or released before its
 * claim. The workflow must account for every unit and payment in both stores.
 */
describe.sequential(
  'OrderWorkflow: nothing is lost when persistence races a cancel, a payment or a lost reservation',
  () => {
    it('an operator cancel of a PENDING order with a payment waiting for its row fails it, and the FAILED row refunds the payment', async ({
      bench,
    }) => {
      const { stores, redis } = bench;
      const sale = await putOnSale(stores, redis, { stock: 2 });
      // MySQL is down: persistOrder keeps failing, and from the 5th attempt on each retry waits on a
      // durable timer, so the payment and the operator's cancel reach the workflow while it is PENDING.
      let attempts = 0;
      faults.persistOrder = async () => {
        attempts++;
        throw Object.assign(new Error('connect ECONNREFUSED (injected: MySQL down)'), { code: 'ECONNREFUSED' });
      };
      const orderNo = newOrderNo();
      const handle = await startOrder(bench, sale, undefined, orderNo);
      await waitFor(() => attempts >= 5, { what: 'the fifth persist attempt', timeoutMs: 20_000 });
      // No row yet: the payment waits RECEIVED for the transaction that writes the order's first row.
      const recorded = await stores.payments.recordPayment(
        { eventId: `evt-pending-${orderNo}`, orderNo, amountCents: sale.priceCents },
        'webhook',
      );
      expect(recorded.row.outcome).toBe('RECEIVED');
      await handle.cancel();
      await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
      const state = await handle.query(statusQuery);
      expect(state).toMatchObject({
        status: 'FAILED',
        failureReason: expect.stringMatching(/cancelled by an operator/),
      });
      expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'FAILED' });
      expect(await paymentRows(bench, orderNo)).toEqual([
        { eventId: `evt-pending-${orderNo}`, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' },
      ]);
      await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 0, sold: 0 });
    });

    it('an operator cancel that lands with the payment Signal leaves the order PAID in both stores', async ({
      bench,
    }) => {
      const { stores, redis } = bench;
      const sale = await putOnSale(stores, redis, { stock: 2 });
      const handle = await startOrder(bench, sale);
      const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
      // Whichever the workflow sees first, the row applied the payment: the cancel's close finds it sold.
      await pay(bench, handle, orderNo, `evt-${orderNo}`, totalCents);
      await handle.cancel();
      expect(await handle.result()).toMatchObject({ status: 'PAID' });
      expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'PAID' });
      expect(await paymentRows(bench, orderNo)).toEqual([
        { eventId: `evt-${orderNo}`, outcome: 'APPLIED', refundReason: null },
      ]);
      await expectSaleSettled(stores, redis, sale.sku, { available: 1, reserved: 0, sold: 1 });
    });

    it('an order persisted whose later attempts all failed ends FAILED with its units back in MySQL, as in Redis', async ({
      bench,
    }) => {
      const { stores, redis } = bench;
      const sale = await putOnSale(stores, redis, { stock: 3 });
      let attempts = 0;
      faults.persistOrder = async (real, input) => {
        attempts++;
        // The first attempt commits and its answer is lost; the retry finds no way on.
        if (attempts === 1) {
          await real(input);
          throw Object.assign(new Error('read ECONNRESET (injected after the commit)'), { code: 'ECONNRESET' });
        }
        throw ApplicationFailure.nonRetryable('the sale vanished from the database (injected)', 'SaleNotFound');
      };
      const handle = await startOrder(bench, sale);
      const result = await handle.result();
      expect(result.status).toBe('FAILED');
      expect(attempts).toBe(2);
      expect(await orderRow(bench, result.orderNo)).toMatchObject({ status: 'FAILED' });
      const report = await expectSaleSettled(stores, redis, sale.sku, { available: 3, reserved: 0 });
      expect(report.figures.mysql.available).toBe(3);
    });

    it('a payment whose reservation is gone from Redis fails the order and is refunded, instead of selling a unit twice', async ({
      bench,
    }) => {
      const { stores, redis, inventory } = bench;
      const sale = await putOnSale(stores, redis, { stock: 2 });
      const handle = await startOrder(bench, sale);
      const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
      // The reservation is released behind the workflow's back (a hand edit, a restore of Redis):
      // the unit is on sale again and may be someone else's.
      expect(await inventory.release(sale.sku, orderNo, { as: 'owner' })).toBe('RELEASED');
      await pay(bench, handle, orderNo, `evt-${orderNo}`, totalCents);
      const result = await handle.result();
      expect(result).toMatchObject({ status: 'FAILED', failureReason: expect.stringMatching(/^ReservationLost/) });
      expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'FAILED' });
      expect(await paymentRows(bench, orderNo)).toEqual([
        { eventId: `evt-${orderNo}`, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' },
      ]);
      const report = await saleReport(stores, redis, sale.sku);
      expect(report.figures.mysql.available).toBe(2);
      expectInvariants(report);
    });

    it('an order whose reservation was released before it was claimed ends FAILED without persisting', async ({
      bench,
    }) => {
      const { stores, redis, inventory } = bench;
      const sale = await putOnSale(stores, redis, { stock: 2 });
      const orderNo = newOrderNo();
      const userId = `user-${randomUUID()}`;
      expect((await inventory.reserve({ orderNo, sku: sale.sku, userId, quantity: 1 })).outcome).toBe('RESERVED');
      // The API could not start the workflow (it thought) and gave the unclaimed reservation back.
      expect(await inventory.release(sale.sku, orderNo, { as: 'unclaimed' })).toBe('RELEASED');
      const handle = await startWorkflowOf(bench, sale, userId, orderNo);
      expect(await handle.result()).toMatchObject({
        status: 'FAILED',
        failureReason: expect.stringMatching(/^ReservationReleased/),
      });
      expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'FAILED' });
      const report = await expectSaleSettled(stores, redis, sale.sku, { available: 2, reserved: 0 });
      expect(report.figures.mysql.available).toBe(2);
    });
  },
);

describe.sequential('OrderWorkflow Updates (time-skipping server)', () => {
  it("refuses a cancel after a payment the row applied, before its Signal came: NOT_CANCELLABLE, the row's verdict; PAID", async ({
    bench,
  }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const handle = await startOrder(bench, sale);
    const { orderNo, totalCents } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    // Applied by the row; its Signal not sent (the webhook's process died after the commit).
    await stores.payments.recordPayment({ eventId: `evt-${orderNo}`, orderNo, amountCents: totalCents }, 'webhook');
    const refused = await handle.executeUpdate(cancelUpdate, {}).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(/^NOT_CANCELLABLE/);
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(await paymentRows(bench, orderNo)).toEqual([
      { eventId: `evt-${orderNo}`, outcome: 'APPLIED', refundReason: null },
    ]);
    expect(await orderRow(bench, orderNo)).toMatchObject({ status: 'PAID', cancel_reason: null });
    await expectSaleSettled(stores, redis, sale.sku, { available: 1, reserved: 0, sold: 1 });
  });

  it('cancels through the cancel Update while awaiting payment', async ({ bench }) => {
    const { stores, redis } = bench;
    const sale = await putOnSale(stores, redis, { stock: 2 });
    const handle = await startOrder(bench, sale);
    const { orderNo } = await waitForStatus(handle, 'AWAITING_PAYMENT');
    expect((await handle.executeUpdate(cancelUpdate, {})).orderNo).toBe(orderNo);
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'USER_CANCELLED' });
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });
});
