/**
 * The shopper's cancel (POST /api/orders/:orderNo/cancel), its route and its use case: the shopper's own order,
 * cancelled by its workflow's `cancel` Update within WRITE_DEADLINE (the order's row decides it), and counted
 * against the shopper so that a checkout-and-cancel loop is bounded (MAX_CANCELS_PER_SHOPPER).
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
      /** WRITE_DEADLINE: the cancel's Update must have its answer by then. */
      writeDeadlineMs: number;
    },
  ) {}

  /**
   * Accepts the cancel of the shopper's own order and answers its status when it was accepted (the
   * workflow closes it as CANCELLED next). NOT_CANCELLABLE once it is final or a payment was
   * accepted for it; ORDER_NOT_FOUND and FORBIDDEN as findOwnOrder says.
   */
  async cancel(orderNo: string, userId: string): Promise<{ orderNo: string; status: OrderStatus }> {
    const { orders, lookup, statusReader, inventory } = this.deps;
    const deadline = Deadline.in(this.deps.writeDeadlineMs);
    let order = await findOwnOrder(statusReader, orderNo, userId);
    // A promised order whose workflow has not started (or did not answer): started now with its
    // recorded input (a no-op if it runs), then cancelled like any other; if Temporal cannot take
    // it now, 503 and the shopper retries.
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
