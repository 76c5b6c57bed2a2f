/**
 * The shopper's cancel (POST /api/orders/:orderNo/cancel): the workflow's `cancel` Update within WRITE_DEADLINE (the
 * row decides it), counted so that a checkout-and-cancel loop is bounded (MAX_CANCELS_PER_SHOPPER).
 */
import { Deadline } from '../infra/dependency-guard.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import { OPEN_STATUSES, type OrderStatus } from '../model/order-workflow.js';
import { Refusal } from '../infra/refusal.js';
import { findOwnOrder, type OrderStatusReader } from './status-reads.js';
import type { OrderWorkflowClient } from './workflow-client.js';
import type { FoundOrder, OrderLookup } from './lookup.js';

/** The order exists but its state no longer allows a cancel. */
export class OrderNotCancellableError extends Refusal {
  constructor(readonly order: FoundOrder) {
    super('NOT_CANCELLABLE', `order ${order.view.orderNo} is ${order.view.status} and can no longer be cancelled`);
    this.name = 'OrderNotCancellableError';
  }
}

export class CancelOrder {
  constructor(
    private readonly deps: {
      orders: OrderWorkflowClient;
      lookup: OrderLookup;
      /** Every read of the order goes through it; told of each cancel taken here. */
      statusReader: OrderStatusReader;
      /** Seen through the Redis guard: counts the shopper's cancels. */
      inventory: Pick<RedisInventory, 'countCancel'>;
      /** WRITE_DEADLINE. */
      writeDeadlineMs: number;
    },
  ) {}

  /** Answers the status the cancel was accepted in (CANCELLED comes next); NOT_CANCELLABLE once final or paid. */
  async cancel(orderNo: string, userId: string): Promise<{ orderNo: string; status: OrderStatus }> {
    const { orders, lookup, statusReader, inventory } = this.deps;
    const deadline = Deadline.in(this.deps.writeDeadlineMs);
    let order = await findOwnOrder(statusReader, orderNo, userId);
    // A promise not started (or not answering): started with its input (a no-op if running); Temporal away: 503.
    if (order.promised) {
      await orders.start(order.promised, deadline);
      order = (await lookup.fromWorkflow(orderNo, deadline)) ?? order;
    }
    // Read from the stores (the workflow did not answer): only the workflow decides a cancel.
    if (!order.live && order.source === 'stores' && OPEN_STATUSES.includes(order.view.status)) {
      throw new Refusal(
        'UNAVAILABLE',
        `order ${order.view.orderNo} did not answer in time; retry the cancel shortly`,
        undefined,
        1,
      );
    }
    try {
      if (!order.live || !(await orders.cancel(order.view.orderNo, deadline)))
        throw new OrderNotCancellableError(order);
    } finally {
      statusReader.changed(order.view.orderNo);
    }
    // The cancel is done whatever Redis says: a count Redis could not take is one the bound misses.
    await inventory.countCancel(order.view.sku, userId).catch(() => undefined);
    return { orderNo: order.view.orderNo, status: order.view.status };
  }
}
