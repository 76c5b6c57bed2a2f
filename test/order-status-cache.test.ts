/**
 * The status reader's rules, without a stack: the reader over a lookup whose `find` answers what the
 * test says the workflow (or, when it does not answer, the stores) shows, on fake timers. A payment or cancel
 * announced (here or by another process) keeps open answers out of the cache until the final
 * status shows, however long the workflow takes to apply it; a long-poll's re-reads stay few however
 * many shoppers wait (the sale's payment phase, docs/performance.md).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FoundOrder, OrderLookup } from '../src/order/lookup.js';
import type { OrderStatus } from '../src/model/order-workflow.js';
import { findOwnOrder, OrderStatusReader } from '../src/order/status-reads.js';

const ORDER_NO = '01M87W0000000000000000TEST';

function workflowShowing(
  status: () => OrderStatus,
  source: () => FoundOrder['source'] = () => 'workflow',
  /** What MySQL's row says (findChanging reads it first); by default what the workflow shows. */
  rowStatus: () => OrderStatus = status,
): {
  orders: Pick<OrderLookup, 'find' | 'findChanging'>;
  /** Every read the reader asked of the lookup. */
  asks: () => number;
  /** The workflow queries among them. */
  queries: () => number;
  rowReads: () => number;
} {
  let asks = 0;
  let queries = 0;
  let rowReads = 0;
  const paymentDeadline = new Date(Date.now() + 30 * 60_000).toISOString();
  const view = (orderNo: string, shown: OrderStatus) => ({
    orderNo,
    sku: 'SKU-1',
    quantity: 1,
    totalCents: 100,
    status: shown,
    paymentDeadline,
    createdAt: new Date().toISOString(),
  });
  const query = (orderNo: string): FoundOrder => {
    queries++;
    return { view: view(orderNo, status()), userId: 'shopper', source: source() };
  };
  const find = async (orderNo: string): Promise<FoundOrder> => {
    asks++;
    return query(orderNo);
  };
  const findChanging = async (orderNo: string): Promise<FoundOrder> => {
    asks++;
    rowReads++;
    const row = rowStatus();
    if (row !== 'PENDING' && row !== 'AWAITING_PAYMENT')
      return { view: view(orderNo, row), userId: 'shopper', source: 'database' };
    return query(orderNo);
  };
  return { orders: { find, findChanging }, asks: () => asks, queries: () => queries, rowReads: () => rowReads };
}

/**
 * A reader as the API configures it (STATUS_CACHE_MS 1 s, STATUS_CACHE_NOTIFIED_MS 5 min), notifications live;
 * `reads` counts every read, from memory or not.
 */
function notifiedReader(orders: Pick<OrderLookup, 'find' | 'findChanging'>, reads = { count: 0 }): OrderStatusReader {
  const reader = new OrderStatusReader(orders, {
    cacheMs: 1_000,
    notifiedCacheMs: 5 * 60_000,
    maxEntries: 100,
    maxWaiters: 10,
    observer: { statusRead: () => reads.count++, statusWaiters: () => {} },
  });
  reader.listener().listening(true);
  return reader;
}

describe('OrderStatusReader: an order that is changing', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'performance', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is never served from the cache while open, even when the workflow applies the change minutes later', async () => {
    let status: OrderStatus = 'AWAITING_PAYMENT';
    const { orders, asks } = workflowShowing(() => status);
    const reader = new OrderStatusReader(orders, { cacheMs: 5 * 60_000, maxEntries: 100, maxWaiters: 10 });
    expect((await reader.read(ORDER_NO))?.view.status).toBe('AWAITING_PAYMENT');
    expect((await reader.read(ORDER_NO))?.view.status).toBe('AWAITING_PAYMENT');
    expect(asks()).toBe(1); // the second from the cache

    reader.changedElsewhere(ORDER_NO); // a payment delivered; the worker is slow to apply it
    vi.advanceTimersByTime(60_000);
    expect((await reader.read(ORDER_NO))?.view.status).toBe('AWAITING_PAYMENT'); // still true now
    status = 'PAID'; // applied at last
    expect((await reader.read(ORDER_NO))?.view.status).toBe('PAID');
    expect(asks()).toBe(3);
    // Final: cached for good.
    expect((await reader.read(ORDER_NO))?.view.status).toBe('PAID');
    expect(asks()).toBe(3);
  });
});

describe('OrderStatusReader: long-polls and reads stay few however many wait', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'performance', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a wait on an open order sleeps until a change notification wakes it, instead of re-reading every second', async () => {
    let status: OrderStatus = 'AWAITING_PAYMENT';
    const { orders, asks } = workflowShowing(() => status);
    const reads = { count: 0 };
    const reader = notifiedReader(orders, reads);
    let answered: OrderStatus | undefined;
    const waiting = reader.waitForChange(ORDER_NO, 'AWAITING_PAYMENT', 30_000).then((r) => {
      answered = r.order?.view.status;
    });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(answered).toBeUndefined();
    // The first read only, not 21 at STATUS_CACHE_MS's pace (from memory, but each a wake and a read per waiter).
    expect({ reads: reads.count, asks: asks() }).toEqual({ reads: 1, asks: 1 });

    status = 'PAID'; // the worker's markPaid announces it
    reader.changedElsewhere(ORDER_NO);
    await vi.advanceTimersByTimeAsync(0);
    await waiting;
    expect(answered).toBe('PAID');
    expect(asks()).toBe(2);
  });

  /** The lookup as workflowShowing's, its first read answering only after `ms` (a workflow query at its deadline). */
  function slowFirstRead(status: () => OrderStatus, ms: number): Pick<OrderLookup, 'find' | 'findChanging'> {
    const { orders } = workflowShowing(status);
    let first = true;
    return {
      ...orders,
      find: async (orderNo) => {
        const found = await orders.find(orderNo);
        if (first) {
          first = false;
          await new Promise((resolve) => setTimeout(resolve, ms));
        }
        return found;
      },
    };
  }

  it("a change announced while the wait's read is out does not wait for that read: another starts at once", async () => {
    let status: OrderStatus = 'AWAITING_PAYMENT';
    const reader = notifiedReader(slowFirstRead(() => status, 1_500));
    let answered: OrderStatus | undefined;
    const waiting = reader.waitForChange(ORDER_NO, 'AWAITING_PAYMENT', 30_000).then((r) => {
      answered = r.order?.view.status;
    });
    await vi.advanceTimersByTimeAsync(100);
    status = 'PAID'; // paid as the webhook recorded it: announced while the first read is still out
    reader.changed(ORDER_NO);
    await vi.advanceTimersByTimeAsync(10);
    expect(answered).toBe('PAID');
    await vi.advanceTimersByTimeAsync(30_000);
    await waiting;
  });

  it("a long-poll's first read (findOwnOrder for a wait) is watched the same way; a plain read is not", async () => {
    let status: OrderStatus = 'AWAITING_PAYMENT';
    const reader = notifiedReader(slowFirstRead(() => status, 1_500));
    let found: OrderStatus | undefined;
    void findOwnOrder(reader, ORDER_NO, 'shopper', { forWait: true }).then((order) => (found = order.view.status));
    await vi.advanceTimersByTimeAsync(100);
    status = 'PAID';
    reader.changed(ORDER_NO);
    await vi.advanceTimersByTimeAsync(10);
    expect(found).toBe('PAID');

    status = 'AWAITING_PAYMENT';
    const plain = notifiedReader(slowFirstRead(() => status, 1_500));
    let read: OrderStatus | undefined;
    void findOwnOrder(plain, ORDER_NO, 'shopper').then((order) => (read = order.view.status));
    await vi.advanceTimersByTimeAsync(100);
    status = 'PAID';
    plain.changed(ORDER_NO);
    await vi.advanceTimersByTimeAsync(10);
    expect(read).toBeUndefined();
    // It answers what it read, when its query ends: its caller asks again if it must.
    await vi.advanceTimersByTimeAsync(1_500);
    expect(read).toBe('AWAITING_PAYMENT');
  });

  it('when the notifications drop, a sleeping wait re-reads at once and then every STATUS_CACHE_MS', async () => {
    const { orders, queries } = workflowShowing(() => 'AWAITING_PAYMENT');
    const reader = notifiedReader(orders);
    const waiting = reader.waitForChange(ORDER_NO, 'AWAITING_PAYMENT', 30_000);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(queries()).toBe(1);
    reader.listener().listening(false); // a change could go unnoticed from now on
    await vi.advanceTimersByTimeAsync(0);
    // Woken, it re-read its answer from memory, kept 5 min while live and now cut back to STATUS_CACHE_MS; from then
    // on a read a second: at +1, +2 and +3 s.
    expect(queries()).toBe(1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(queries()).toBe(4);
    await vi.advanceTimersByTimeAsync(30_000);
    await waiting;
  });

  it('after a payment without notifications, a wait re-reads 100, 200, 400… ms apart (at most a second) until the status moves', async () => {
    let status: OrderStatus = 'AWAITING_PAYMENT';
    const { orders, queries } = workflowShowing(() => status);
    const reader = new OrderStatusReader(orders, { cacheMs: 1_000, maxEntries: 100, maxWaiters: 10 });
    const waiting = reader.waitForChange(ORDER_NO, 'AWAITING_PAYMENT', 30_000);
    await vi.advanceTimersByTimeAsync(500);
    const before = queries();
    reader.changed(ORDER_NO); // a payment delivered here; the worker is behind and applies it 10 s later
    await vi.advanceTimersByTimeAsync(10_000);
    // Woken at once, then at +0.1, 0.2, 0.4, 0.8, 1.6, 2.6 … 9.6 s: 14 reads, where a fixed 100 ms made 100.
    expect(queries() - before).toBeGreaterThanOrEqual(13);
    expect(queries() - before).toBeLessThanOrEqual(16);
    status = 'PAID';
    await vi.advanceTimersByTimeAsync(1_000);
    expect((await waiting).order?.view.status).toBe('PAID');
  });

  it("after a payment with notifications live, a wait is woken by the worker's announcement and reads PAID from MySQL, not the workflow", async () => {
    let status: OrderStatus = 'AWAITING_PAYMENT';
    const { orders, queries, rowReads } = workflowShowing(() => status);
    const reader = notifiedReader(orders);
    const waiting = reader.waitForChange(ORDER_NO, 'AWAITING_PAYMENT', 30_000);
    await vi.advanceTimersByTimeAsync(1_000);
    reader.changed(ORDER_NO); // the webhook's verdict APPLIED: the workflow closes the order as PAID next
    await vi.advanceTimersByTimeAsync(3_000); // the worker behind: a re-read a second at most
    expect(queries()).toBeLessThanOrEqual(5);
    const queriesBefore = queries();
    status = 'PAID'; // markPaid wrote MySQL's row, then announced it
    reader.changedElsewhere(ORDER_NO);
    await vi.advanceTimersByTimeAsync(0);
    expect((await waiting).order?.view).toMatchObject({ status: 'PAID' });
    expect(queries()).toBe(queriesBefore); // from the row
    expect(rowReads()).toBeGreaterThanOrEqual(2);
  });

  it('keeps what the stores said while the workflow did not answer: open for STATUS_CACHE_MS (not the notified 5 min), final for good', async () => {
    let status: OrderStatus = 'AWAITING_PAYMENT';
    const { orders, asks } = workflowShowing(
      () => status,
      () => 'stores',
    );
    const reader = notifiedReader(orders);
    await reader.read(ORDER_NO);
    await reader.read(ORDER_NO);
    expect(asks()).toBe(1); // the second from memory: not another read of MySQL behind an open breaker
    vi.advanceTimersByTime(1_001);
    await reader.read(ORDER_NO);
    expect(asks()).toBe(2); // the stores may lag the workflow: not kept as long as its own answer

    status = 'CANCELLED';
    reader.changedElsewhere(ORDER_NO);
    expect((await reader.read(ORDER_NO))?.view.status).toBe('CANCELLED');
    vi.advanceTimersByTime(60 * 60_000);
    expect((await reader.read(ORDER_NO))?.view.status).toBe('CANCELLED');
    expect(asks()).toBe(3);
  });
});
