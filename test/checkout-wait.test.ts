/**
 * The waiting checkout (`Prefer: wait=N`, Update-with-Start + the `awaitPersisted` Update) on the
 * Temporal dev server, with the real API, worker, Redis and MariaDB: persisted within the wait
 * (201), not within it (202, the order goes on once a worker runs), failed persistence (409
 * ORDER_FAILED), an idempotent retry while the first request waits, and a burst of waiting and
 * polling checkouts. Faults are injected by wrapping the real persistOrder.
 */
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/client';
import { describe, expect } from 'vitest';
import type { Activities } from '../src/activities/order.js';
import { ShopperAuth } from '../src/api/auth.js';
import { preferredWaitSeconds } from '../src/api/prefer.js';
import { waitFor } from '../stack/wait-for.js';
import { orderWorkflowId, type OrderInput } from '../src/model/order-workflow.js';
import { guardsWithoutBreakers, OrderWorkflowClient, type AwaitedStart } from '../src/order/workflow-client.js';
import { expectInvariants, putOnSale, saleReport } from './helpers/fixtures.js';
import type { PerQueueTestbed } from './helpers/per-queue.js';
import { testbedTest } from './helpers/stack-test.js';
import { pacingOf } from './helpers/orders.js';
import { httpAt } from './helpers/http.js';

const it = testbedTest({ LOG_LEVEL: 'silent', CHECKOUT_MAX_WAIT: '10s' });

const startWorker = (
  testbed: PerQueueTestbed,
  taskQueue: string,
  wrapActivities?: (activities: Activities) => Partial<Activities>,
): Promise<void> => testbed.startWorker(taskQueue, wrapActivities ? { wrapActivities } : {});

/** The real Update-with-Start, then an error as if its answer had been lost on the way back. */
class UpdateWithStartReportsFailure extends OrderWorkflowClient {
  override async startAndAwaitPersisted(input: OrderInput, waitMs: number): Promise<AwaitedStart> {
    await super.startAndAwaitPersisted(input, waitMs);
    throw Object.assign(new Error('14 UNAVAILABLE: connection reset (injected after the server accepted it)'), {
      code: 14,
    });
  }
}

const serve = (testbed: PerQueueTestbed, taskQueue: string, orders?: OrderWorkflowClient): Promise<string> =>
  testbed.serve(taskQueue, orders ? { orders } : {});

interface CheckoutReply {
  status: number;
  elapsedMs: number;
  preferenceApplied: string | null;
  location: string | null;
  body: {
    orderNo?: string;
    status?: string;
    statusUrl?: string;
    paymentDeadline?: string;
    quantity?: number;
    error?: { code: string; message: string; details?: { orderNo?: string; status?: string; failureReason?: string } };
  };
}

async function checkout(
  testbed: PerQueueTestbed,
  base: string,
  sku: string,
  userId: string,
  headers: Record<string, string> = {},
): Promise<CheckoutReply> {
  const started = Date.now();
  const response = await httpAt('POST', `${base}/api/checkout`, {
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${await new ShopperAuth(testbed.config).issue(userId)}`,
      ...headers,
    },
    raw: JSON.stringify({ sku, quantity: 1 }),
  });
  return {
    status: response.status,
    elapsedMs: Date.now() - started,
    preferenceApplied: response.headers.get('preference-applied'),
    location: response.headers.get('location'),
    body: response.body as CheckoutReply['body'],
  };
}

/** A gate the wrapped persistOrder waits on, so a test decides when persistence may go on. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('Prefer: wait=N parsing (RFC 7240)', () => {
  it('reads the first wait preference, case-insensitive, quoted or among others, capped; ignores garbage', () => {
    expect(preferredWaitSeconds(undefined, 10)).toBe(0);
    expect(preferredWaitSeconds('', 10)).toBe(0);
    expect(preferredWaitSeconds('wait=5', 10)).toBe(5);
    expect(preferredWaitSeconds('WAIT=5', 10)).toBe(5);
    expect(preferredWaitSeconds('respond-async, wait=3', 10)).toBe(3);
    expect(preferredWaitSeconds('handling=lenient; foo=bar, Wait = "4"', 10)).toBe(4);
    expect(preferredWaitSeconds('wait=7;param=1', 10)).toBe(7);
    expect(preferredWaitSeconds('wait=60', 10)).toBe(10);
    expect(preferredWaitSeconds('wait=99999999999999999999', 10)).toBe(10);
    expect(preferredWaitSeconds('wait=2, wait=9', 10)).toBe(2);
    expect(preferredWaitSeconds('wait=0', 10)).toBe(0);
    expect(preferredWaitSeconds('wait=5', 0)).toBe(0);
    for (const garbage of [
      'wait',
      'wait=',
      'wait=-1',
      'wait=1.5',
      'wait=abc',
      'wait=5s',
      'waiting=5',
      'respond-async',
    ]) {
      expect(preferredWaitSeconds(garbage, 10), garbage).toBe(0);
    }
    // The first wait decides even when it is malformed.
    expect(preferredWaitSeconds('wait=x, wait=5', 10)).toBe(0);
  });
});

describe('the waiting checkout (Prefer: wait=N) on the dev server', () => {
  it('answers 201 with the persisted order in one call when persistence finishes within the wait', async ({
    testbed,
  }) => {
    const { stores, redis, inventory } = testbed;
    const taskQueue = `wait-201-${randomUUID()}`;
    await startWorker(testbed, taskQueue);
    const base = await serve(testbed, taskQueue);
    const sale = await putOnSale(stores, redis, { stock: 5 });

    const reply = await checkout(testbed, base, sale.sku, 'waiter-201', { prefer: 'wait=5' });
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    expect(reply.preferenceApplied).toBe('wait=5');
    expect(reply.body).toMatchObject({ status: 'AWAITING_PAYMENT', quantity: 1, sku: sale.sku });
    const orderNo = reply.body.orderNo ?? '';
    expect(reply.location).toBe(`/api/orders/${orderNo}`);
    expect(reply.body.statusUrl).toBe(`/api/orders/${orderNo}`);
    // The answer is the persisted order: MySQL has it, with the same deadline.
    const row = await stores.orders.getOrder(orderNo);
    expect(row?.status).toBe('AWAITING_PAYMENT');
    expect(row?.paymentDeadline.toISOString()).toBe(reply.body.paymentDeadline);
    expect((await inventory.getReservation(sale.sku, orderNo))?.state).toBe('CLAIMED');
    expectInvariants(await saleReport(stores, redis, sale.sku));

    // Without the header, or with wait=0: today's 202 PENDING, no Preference-Applied.
    const withoutWait: Array<Record<string, string>> = [{}, { prefer: 'wait=0' }, { prefer: 'wait=soon' }];
    for (const [i, headers] of withoutWait.entries()) {
      const polling = await checkout(testbed, base, sale.sku, `poller-${i}`, headers);
      expect(polling.status).toBe(202);
      expect(polling.body.status).toBe('PENDING');
      expect(polling.preferenceApplied).toBeNull();
    }
  });

  it('answers 202 after about N seconds while no worker runs, and the order completes once one does', async ({
    testbed,
  }) => {
    const { stores, redis, inventory, temporal } = testbed;
    const taskQueue = `wait-stalled-${randomUUID()}`;
    const base = await serve(testbed, taskQueue);
    const sale = await putOnSale(stores, redis, { stock: 3 });

    const reply = await checkout(testbed, base, sale.sku, 'waiter-stalled', { prefer: 'wait=2' });
    expect(reply.status, JSON.stringify(reply.body)).toBe(202);
    expect(reply.body.status).toBe('PENDING');
    expect(reply.preferenceApplied).toBeNull();
    expect(reply.elapsedMs).toBeGreaterThanOrEqual(1_900);
    expect(reply.elapsedMs).toBeLessThan(10_000);
    const orderNo = reply.body.orderNo ?? '';
    // Nothing rolled back: the reservation stands and the workflow runs.
    expect((await inventory.getReservation(sale.sku, orderNo))?.state).toBe('RESERVED');
    expect((await temporal.workflow.getHandle(orderWorkflowId(orderNo)).describe()).status.name).toBe('RUNNING');
    // Polling it meanwhile: no worker answers the status query, so the stores answer (the reservation: PENDING).
    const polled = await httpAt('GET', `${base}${reply.body.statusUrl ?? ''}`, {
      headers: { authorization: `Bearer ${await new ShopperAuth(testbed.config).issue('waiter-stalled')}` },
    });
    expect(polled.status, JSON.stringify(polled.body)).toBe(200);
    expect(polled.body).toMatchObject({ orderNo, status: 'PENDING', source: 'stores' });

    await startWorker(testbed, taskQueue);
    await waitFor(async () => (await stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT', {
      what: `${orderNo} to be persisted`,
      timeoutMs: 20_000,
    });
    const report = await saleReport(stores, redis, sale.sku);
    expect(report.figures.redis).toMatchObject({ available: 2, reserved: 1 });
    expectInvariants(report);
  });

  it('answers 409 ORDER_FAILED with the reason when persistence fails within the wait, and gives the stock back', async ({
    testbed,
  }) => {
    const { stores, redis, inventory } = testbed;
    const taskQueue = `wait-failed-${randomUUID()}`;
    await startWorker(testbed, taskQueue, () => ({
      persistOrder: () =>
        Promise.reject(
          ApplicationFailure.nonRetryable('the sale vanished from the database (injected)', 'SaleNotFound'),
        ),
    }));
    const base = await serve(testbed, taskQueue);
    const sale = await putOnSale(stores, redis, { stock: 3 });

    const reply = await checkout(testbed, base, sale.sku, 'waiter-failed', {
      prefer: 'wait=8',
      'idempotency-key': 'fail-once',
    });
    expect(reply.status, JSON.stringify(reply.body)).toBe(409);
    expect(reply.preferenceApplied).toBe('wait=8');
    expect(reply.body.error?.code).toBe('ORDER_FAILED');
    expect(reply.body.error?.details).toMatchObject({
      status: 'FAILED',
      failureReason: expect.stringMatching(/^SaleNotFound/) as unknown,
    });
    const orderNo = reply.body.error?.details?.orderNo ?? '';
    // The FAILED answer comes from the workflow's state once its failure is recorded.
    expect((await stores.orders.getOrder(orderNo))?.status).toBe('FAILED');
    expect(await inventory.getSale(sale.sku)).toMatchObject({ available: 3, reserved: 0 });

    // The same key again answers the same failed order, not a second one.
    const retried = await checkout(testbed, base, sale.sku, 'waiter-failed', {
      prefer: 'wait=8',
      'idempotency-key': 'fail-once',
    });
    expect(retried.status).toBe(409);
    expect(retried.body.error?.details?.orderNo).toBe(orderNo);
    expect([...(await stores.reports.orderNumbersOfSale(sale.sku))]).toEqual([orderNo]);
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('attaches a retried waiting checkout (same Idempotency-Key) to the same order while the first still waits', async ({
    testbed,
  }) => {
    const { stores, redis, inventory, temporal } = testbed;
    const taskQueue = `wait-retry-${randomUUID()}`;
    const persistence = gate();
    const persistStarted = gate();
    await startWorker(testbed, taskQueue, (real) => ({
      persistOrder: async (order) => {
        persistStarted.open();
        await persistence.opened;
        return real.persistOrder(order);
      },
    }));
    const base = await serve(testbed, taskQueue);
    const sale = await putOnSale(stores, redis, { stock: 3, perUserLimit: 2 });
    const headers = { prefer: 'wait=10', 'idempotency-key': 'retry-while-waiting' };

    const first = checkout(testbed, base, sale.sku, 'waiter-retry', headers);
    await persistStarted.opened;
    const second = checkout(testbed, base, sale.sku, 'waiter-retry', headers);
    // Both are parked on the same workflow before persistence may go on.
    const [orderNo] = [...(await stores.reports.orderNumbersOfSale(sale.sku))];
    expect(orderNo).toBeUndefined();
    const reservedOrder = await waitFor(
      async () => {
        const sold = await inventory.getSale(sale.sku);
        return sold?.reserved === 1 && sold;
      },
      { what: 'one reservation', timeoutMs: 5_000 },
    );
    expect(reservedOrder.available).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 500));
    persistence.open();

    const [a, b] = await Promise.all([first, second]);
    expect(a.status, JSON.stringify(a.body)).toBe(201);
    expect(b.status, JSON.stringify(b.body)).toBe(201);
    expect(b.body.orderNo).toBe(a.body.orderNo);
    expect(a.body.status).toBe('AWAITING_PAYMENT');
    expect(b.body.status).toBe('AWAITING_PAYMENT');
    // One order, one reservation, one workflow that answered two awaitPersisted Updates.
    expect([...(await stores.reports.orderNumbersOfSale(sale.sku))]).toEqual([a.body.orderNo]);
    expect(await inventory.getSale(sale.sku)).toMatchObject({ available: 2, reserved: 1 });
    const history = await temporal.workflow.getHandle(orderWorkflowId(a.body.orderNo ?? '')).fetchHistory();
    const events = history.events ?? [];
    expect(events.filter((event) => event.workflowExecutionStartedEventAttributes).length).toBe(1);
    expect(events.filter((event) => event.workflowExecutionUpdateCompletedEventAttributes).length).toBe(2);
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });

  it('answers 202 when Update-with-Start reports an error, claimed or not yet: nothing is released, the order goes on', async ({
    testbed,
  }) => {
    const { stores, redis, inventory, temporal } = testbed;
    // With a worker: the order is persisted (claimed) before the error; it goes on, answered 202.
    const claimedQueue = `wait-error-claimed-${randomUUID()}`;
    await startWorker(testbed, claimedQueue);
    const claimedBase = await serve(
      testbed,
      claimedQueue,
      new UpdateWithStartReportsFailure(temporal, claimedQueue, guardsWithoutBreakers(), pacingOf()),
    );
    const claimedSale = await putOnSale(stores, redis, { stock: 3 });
    const claimed = await checkout(testbed, claimedBase, claimedSale.sku, 'waiter-error-claimed', { prefer: 'wait=5' });
    expect(claimed.status, JSON.stringify(claimed.body)).toBe(202);
    expect((await stores.orders.getOrder(claimed.body.orderNo ?? ''))?.status).toBe('AWAITING_PAYMENT');
    expectInvariants(await saleReport(stores, redis, claimedSale.sku));

    // Without a worker: nothing claimed it yet. It stays reserved (a promise), and once a worker
    // runs the order is persisted.
    const unclaimedQueue = `wait-error-unclaimed-${randomUUID()}`;
    const unclaimedBase = await serve(
      testbed,
      unclaimedQueue,
      new UpdateWithStartReportsFailure(temporal, unclaimedQueue, guardsWithoutBreakers(), pacingOf()),
    );
    const unclaimedSale = await putOnSale(stores, redis, { stock: 3 });
    const unclaimed = await checkout(testbed, unclaimedBase, unclaimedSale.sku, 'waiter-error-unclaimed', {
      prefer: 'wait=1',
    });
    expect(unclaimed.status, JSON.stringify(unclaimed.body)).toBe(202);
    const orderNo = unclaimed.body.orderNo ?? '';
    expect(await inventory.getSale(unclaimedSale.sku)).toMatchObject({ available: 2, reserved: 1 });
    await startWorker(testbed, unclaimedQueue);
    await waitFor(async () => (await stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT', {
      what: `${orderNo} to be persisted`,
      timeoutMs: 20_000,
    });
    expectInvariants(await saleReport(stores, redis, unclaimedSale.sku));
  });

  it('keeps every invariant in a burst where waiting and polling checkouts mix', async ({ testbed }) => {
    const { stores, redis } = testbed;
    const taskQueue = `wait-burst-${randomUUID()}`;
    await startWorker(testbed, taskQueue);
    const base = await serve(testbed, taskQueue);
    const stock = 25;
    const sale = await putOnSale(stores, redis, { stock });
    const shoppers = Array.from({ length: 120 }, (_, i) => `burst-${i % 80}`);

    const replies = await Promise.all(
      shoppers.map((userId, i) =>
        checkout(testbed, base, sale.sku, userId, i % 2 === 0 ? { prefer: 'wait=8' } : { prefer: 'respond-async' }),
      ),
    );
    const byStatus = new Map<number, CheckoutReply[]>();
    for (const reply of replies) byStatus.set(reply.status, [...(byStatus.get(reply.status) ?? []), reply]);
    const unexpected = replies.filter(
      (reply) =>
        ![201, 202, 409].includes(reply.status) ||
        (reply.status === 409 && !['SOLD_OUT', 'PURCHASE_LIMIT_EXCEEDED'].includes(reply.body.error?.code ?? '')),
    );
    expect(unexpected.map((reply) => reply.body)).toEqual([]);
    const won = [...(byStatus.get(201) ?? []), ...(byStatus.get(202) ?? [])];
    expect(won.length).toBe(stock);
    for (const reply of byStatus.get(201) ?? []) expect(reply.body.status).toBe('AWAITING_PAYMENT');
    // Polling checkouts never wait: 202 PENDING, whatever the waiting ones do.
    for (const reply of replies.filter((_, i) => i % 2 === 1)) expect([202, 409]).toContain(reply.status);

    await waitFor(async () => (await stores.reports.orderNumbersOfSale(sale.sku)).size === stock, {
      what: 'every won order in MySQL',
      timeoutMs: 60_000,
    });
    const report = await saleReport(stores, redis, sale.sku);
    expect(report.figures.redis).toMatchObject({ available: 0, reserved: stock });
    expectInvariants(report);
  });
});
