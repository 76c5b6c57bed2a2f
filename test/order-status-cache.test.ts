/**
 * The status cache's rule for an order that is changing, without a stack: the reader over an
 * OrderWorkflowClient whose `find` answers what the test says the workflow shows. A payment or cancel
 * announced (here or by another process) keeps open answers out of the cache until the final
 * status shows, however long the workflow takes to apply it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FoundOrder, OrderLookup } from '../src/order/lookup.js';
import type { OrderStatus } from '../src/model/order-workflow.js';
import { OrderStatusReader } from '../src/order/status-reads.js';

const ORDER_NO = '01M87W0000000000000000TEST';

function workflowShowing(status: () => OrderStatus): { orders: Pick<OrderLookup, 'find'>; queries: () => number } {
  let queries = 0;
  const find = async (orderNo: string): Promise<FoundOrder> => {
    queries++;
    const view = {
      orderNo,
      sku: 'SKU-1',
      quantity: 1,
      totalCents: 100,
      status: status(),
      paymentDeadline: new Date(Date.now() + 30 * 60_000).toISOString(),
      createdAt: new Date().toISOString(),
    };
    return { view, userId: 'shopper', source: 'workflow' };
  };
  return { orders: { find }, queries: () => queries };
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
    const { orders, queries } = workflowShowing(() => status);
    const reader = new OrderStatusReader(orders, { cacheMs: 5 * 60_000, maxEntries: 100, maxWaiters: 10 });
    expect((await reader.read(ORDER_NO))?.view.status).toBe('AWAITING_PAYMENT');
    expect((await reader.read(ORDER_NO))?.view.status).toBe('AWAITING_PAYMENT');
    expect(queries()).toBe(1); // the second from the cache

    reader.changedElsewhere(ORDER_NO); // a payment delivered; the worker is slow to apply it
    vi.advanceTimersByTime(60_000);
    expect((await reader.read(ORDER_NO))?.view.status).toBe('AWAITING_PAYMENT'); // still true now
    status = 'PAID'; // applied at last
    expect((await reader.read(ORDER_NO))?.view.status).toBe('PAID');
    expect(queries()).toBe(3);
    // Final: cached for good.
    expect((await reader.read(ORDER_NO))?.view.status).toBe('PAID');
    expect(queries()).toBe(3);
  });
});
