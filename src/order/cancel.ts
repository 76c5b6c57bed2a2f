/** The shopper's cancel: the row decides, via the `cancel` Update or here (workflow gone); MAX_CANCELS_PER_SHOPPER. */
import { Deadline } from '../infra/dependency-guard.js';
import type { OrderStore } from '../db/orders.js';
import type { RedisInventory } from '../redis/inventory.js';
import { isCancellable, type OrderStatus } from '../model/order-workflow.js';
import { Refusal } from '../infra/refusal.js';
import { newOrderOf, type OrderCloser } from './close.js';
import { findOwnOrder, type OrderStatusReader } from './status-reads.js';
import type { OrderWorkflowClient } from './workflow-client.js';
import type { FoundOrder } from './lookup.js';

const notCancellable = (orderNo: string, status: OrderStatus) =>
  new Refusal('NOT_CANCELLABLE', `order ${orderNo} is ${status} and can no longer be cancelled`);

export class CancelOrder {
  constructor(
    private readonly deps: {
      orders: OrderWorkflowClient;
      /** The one close, for an order whose workflow is gone. */
      closer: Pick<OrderCloser, 'close'>;
      /** Its row, read again when the workflow is gone (through the MySQL guard). */
      rows: Pick<OrderStore, 'getOrder'>;
      /** Every read of the order goes through it; told of each cancel taken here. */
      statusReader: OrderStatusReader;
      /** Seen through the Redis guard: counts the shopper's cancels. */
      inventory: Pick<RedisInventory, 'countCancel'>;
      /** WRITE_DEADLINE. */
      writeDeadlineMs: number;
    },
  ) {}

  /** The status once taken: CANCELLED (a provider order AWAITING_PAYMENT until its provider confirms); else refused. */
  async cancel(orderNo: string, userId: string): Promise<{ orderNo: string; status: OrderStatus }> {
    const { orders, statusReader, inventory } = this.deps;
    const deadline = Deadline.in(this.deps.writeDeadlineMs);
    const order = await findOwnOrder(statusReader, orderNo, userId);
    if (!isCancellable(order.view.status)) throw notCancellable(orderNo, order.view.status);
    // An order pending its start is started (a no-op if running) so its workflow takes the cancel; Temporal away: 503.
    if (order.promised) await orders.start(order.promised, deadline);
    let status: OrderStatus;
    try {
      const taken = await orders.cancel(orderNo, deadline);
      if (taken.outcome === 'REFUSED') throw notCancellable(orderNo, await this.statusNow(order));
      status = taken.outcome === 'TAKEN' ? taken.state.status : await this.closeWithoutWorkflow(order);
    } finally {
      statusReader.changed(orderNo);
    }
    // The cancel is done whatever Redis says: a count Redis could not take is one the bound misses.
    await inventory.countCancel(order.view.sku, userId).catch(() => undefined);
    return { orderNo, status };
  }

  /** Its workflow is gone: the one close here. A provider order is refused (a worker closes it at its provider). */
  private async closeWithoutWorkflow(order: FoundOrder): Promise<OrderStatus> {
    const row = await this.deps.rows.getOrder(order.view.orderNo);
    if (!row || row.paymentProvider) throw notCancellable(order.view.orderNo, order.view.status);
    const closed = await this.deps.closer.close(newOrderOf(row), { kind: 'CANCEL', reason: 'USER_CANCELLED' });
    if (closed.outcome !== 'CANCELLED')
      throw notCancellable(order.view.orderNo, closed.outcome === 'PAID' ? closed.status : 'FAILED');
    return 'CANCELLED';
  }

  private async statusNow(order: FoundOrder): Promise<OrderStatus> {
    this.deps.statusReader.changed(order.view.orderNo);
    return (await this.deps.statusReader.read(order.view.orderNo).catch(() => null))?.view.status ?? order.view.status;
  }
}
