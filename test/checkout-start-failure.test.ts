/**
 * A workflow start that reports an error after the server accepted it (a timeout on the way back):
 * the workflow may be running. The reservation is a promise, so the answer is 202 either way and
 * nothing is released: claimed by the workflow already or not yet, the order goes on.
 * Real API, real Temporal dev server, real worker; the fault is injected around the real start.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { describe, expect } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { guardsWithoutBreakers, OrderWorkflowClient } from '../src/order/workflow-client.js';
import { waitFor } from '../stack/wait-for.js';
import type { OrderInput } from '../src/model/order-workflow.js';
import { expectInvariants, putOnSale, saleReport } from './helpers/fixtures.js';
import type { PerQueueTestbed } from './helpers/per-queue.js';
import { testbedTest } from './helpers/stack-test.js';
import { pacingOf } from './helpers/orders.js';
import { httpAt } from './helpers/http.js';

/** The real start, then an error as if the answer had been lost after the server accepted it. */
class StartReportsFailureAfterAccepting extends OrderWorkflowClient {
  constructor(
    temporal: Client,
    taskQueue: string,
    private readonly beforeFailing: (orderNo: string) => Promise<void>,
  ) {
    super(temporal, taskQueue, guardsWithoutBreakers(), pacingOf());
  }

  override async start(input: OrderInput): Promise<'STARTED' | 'ALREADY_CLOSED'> {
    await super.start(input);
    await this.beforeFailing(input.orderNo);
    throw Object.assign(new Error('4 DEADLINE_EXCEEDED: start timed out (injected after the server accepted it)'), {
      code: 4,
    });
  }
}

const it = testbedTest({ TEMPORAL_TASK_QUEUE: `start-failure-${randomUUID()}`, LOG_LEVEL: 'silent' });

const serve = (
  testbed: PerQueueTestbed,
  taskQueue: string,
  beforeFailing: (orderNo: string) => Promise<void>,
): Promise<string> =>
  testbed.serve(taskQueue, {
    orders: new StartReportsFailureAfterAccepting(testbed.temporal, taskQueue, beforeFailing),
  });

async function checkout(testbed: PerQueueTestbed, base: string, sku: string, userId: string) {
  const response = await httpAt('POST', `${base}/api/checkout`, {
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${await new ShopperAuth(testbed.config).issue(userId)}`,
    },
    raw: JSON.stringify({ sku, quantity: 1 }),
  });
  return { status: response.status, body: response.body as { orderNo?: string; error?: { code: string } } };
}

describe('a workflow start that reports an error after the server accepted it', () => {
  it('answers 202 when the workflow has already claimed its reservation, and the order goes on', async ({
    testbed,
  }) => {
    const { stores, redis, inventory } = testbed;
    const taskQueue = `start-claimed-${randomUUID()}`;
    await testbed.startWorker(taskQueue);
    const sale = await putOnSale(stores, redis, { stock: 3 });
    const base = await serve(testbed, taskQueue, async (orderNo) => {
      await waitFor(async () => (await inventory.getReservation(sale.sku, orderNo))?.state === 'CLAIMED', {
        what: `${orderNo} to be claimed`,
        timeoutMs: 10_000,
      });
    });
    const reply = await checkout(testbed, base, sale.sku, 'claimed-before-error');
    expect(reply.status).toBe(202);
    const orderNo = reply.body.orderNo ?? '';
    await waitFor(async () => (await stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT', {
      what: `${orderNo} to be persisted`,
      timeoutMs: 10_000,
    });
    const report = await saleReport(stores, redis, sale.sku);
    expect(report.figures.redis).toMatchObject({ available: 2, reserved: 1 });
    expect(report.figures.mysql).toMatchObject({ available: 2, awaitingPayment: 1 });
    expectInvariants(report);
  });

  // Finding 1 of issue 25: this answered 503 "nothing was reserved" (the API released the unclaimed
  // reservation), while the workflow it had started went on: the shopper had no order number, and
  // the order failed. A reserved unit is a promise now: 202, and the order is persisted.
  it('answers 202 before the workflow has claimed its reservation, releases nothing, and the order is persisted once a worker runs', async ({
    testbed,
  }) => {
    const { stores, redis, inventory } = testbed;
    // No worker yet: the workflow exists but cannot claim while the checkout answers.
    const taskQueue = `start-unclaimed-${randomUUID()}`;
    const sale = await putOnSale(stores, redis, { stock: 3, perUserLimit: 1 });
    const base = await serve(testbed, taskQueue, async () => {});
    const reply = await checkout(testbed, base, sale.sku, 'unclaimed-at-answer');
    expect(reply.status).toBe(202);
    const orderNo = reply.body.orderNo ?? '';
    expect(await inventory.getSale(sale.sku)).toMatchObject({ available: 2, reserved: 1 });
    expect((await inventory.getReservation(sale.sku, orderNo))?.state).toBe('RESERVED');

    await testbed.startWorker(taskQueue);
    await waitFor(async () => (await stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT', {
      what: `${orderNo} to be persisted`,
      timeoutMs: 15_000,
    });
    const report = await saleReport(stores, redis, sale.sku);
    expect(report.figures.redis).toMatchObject({ available: 2, reserved: 1 });
    expect(report.figures.mysql).toMatchObject({ available: 2, awaitingPayment: 1 });
    expectInvariants(report);
  });
});
