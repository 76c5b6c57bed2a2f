/**
 * The one close carried out (docs/fault-tolerance.md, "One close"): the order's row decides how the order ends
 * (OrderStore.close), then its reservation in Redis is made to say the same (RESERVATION_OF_STATUS), readers are told,
 * and refunds the close left owed are started. Every path that ends an order comes here: its workflow's closeOrder
 * activity, the reconciler for an order whose workflow is gone, the API's cancel of such an order.
 */
import type { ClosedOrder, NewOrder, OrderStore, OwedRefund } from '../db/orders.js';
import type { OrderRow } from '../db/rows.js';
import type { RedisInventory, ReleaseMode } from '../inventory/redis-inventory.js';
import { RESERVATION_OF_STATUS, type CloseRequest, type PersistOrderInput } from '../model/order-workflow.js';

/** Starts the RefundWorkflow of each payment owed back through a provider with an API; never throws. */
export interface RefundStarts {
  start(owed: readonly OwedRefund[]): void;
}

/** Tells every API process's status reader that an order changed. */
export interface OrderChanges {
  publish(orderNo: string): Promise<void>;
}

export interface OrderCloserDeps {
  orders: Pick<OrderStore, 'close' | 'getOrder'>;
  inventory: Pick<RedisInventory, 'confirm' | 'release' | 'adopt' | 'restoreKey'>;
  changes: OrderChanges;
  refunds?: RefundStarts;
}

/** The order as its row is written (or, never persisted, failed) from its workflow's input. */
export function newOrderOf(order: PersistOrderInput): NewOrder {
  return {
    orderNo: order.orderNo,
    sku: order.sku,
    userId: order.userId,
    quantity: order.quantity,
    unitPriceCents: order.unitPriceCents,
    ...(order.idempotencyKey ? { idempotencyKey: order.idempotencyKey } : {}),
    paymentDeadline: new Date(order.paymentDeadline),
    createdAt: new Date(order.createdAt),
  };
}

/** The order as its row was written: what the one close needs of it. */
export function orderOfRow(row: OrderRow): NewOrder {
  return {
    orderNo: row.orderNo,
    sku: row.sku,
    userId: row.userId,
    quantity: row.quantity,
    unitPriceCents: row.unitPriceCents,
    ...(row.idempotencyKey ? { idempotencyKey: row.idempotencyKey } : {}),
    paymentDeadline: row.paymentDeadline,
    createdAt: row.createdAt,
  };
}

/** How the units go back when the row says so: by their owner (default), or only while unclaimed (no workflow ran). */
export type ReleaseAs = { as: 'owner' } | { as: 'unclaimed'; reservedBeforeMs: number };

export class OrderCloser {
  constructor(private readonly deps: OrderCloserDeps) {}

  /**
   * Asks the row to close the order, then makes Redis say what the row says: sold units confirmed (a reservation Redis
   * lost made again; none to be had fails the order, its payment owed back), cancelled or failed units released.
   * NOT_DUE is answered as is (nothing changed: the caller asks again). Idempotent, as each step is.
   */
  async close(order: NewOrder, request: CloseRequest, release: ReleaseAs = { as: 'owner' }): Promise<ClosedOrder> {
    let closed = await this.deps.orders.close(order, request);
    const held = reservationOf(closed);
    if (held === 'SOLD' && !(await this.sold(order))) {
      const lost = await this.deps.orders.close(order, {
        kind: 'RESERVATION_LOST',
        reason: 'ReservationLost: Redis no longer holds the units of the paid order',
      });
      // The paid order fails (its money owed back): its row says FAILED from here on.
      if (lost.outcome !== 'NOT_DUE')
        closed = { ...lost, changed: true, refundsOwed: [...closed.refundsOwed, ...lost.refundsOwed] };
    }
    if (reservationOf(closed) === 'RELEASED') await this.released(order, closed.outcome === 'FAILED', release);
    // After the commit, before the workflow reports it: readers forget what they knew.
    if (closed.changed) await this.deps.changes.publish(order.orderNo);
    if (closed.refundsOwed.length > 0) this.deps.refunds?.start(closed.refundsOwed);
    return closed;
  }

  /** C -> S; a reservation Redis lost behind the paid row is made again as sold if units and limit allow. */
  private async sold(order: NewOrder): Promise<boolean> {
    const { inventory } = this.deps;
    const confirmed = await inventory.confirm(order.sku, order.orderNo);
    if (confirmed === 'CONFIRMED' || confirmed === 'ALREADY_CONFIRMED') return true;
    if (confirmed === 'RELEASED') return false;
    const row = await this.deps.orders.getOrder(order.orderNo);
    if (!row) return false;
    const adopted = await inventory.adopt(order.sku, {
      orderNo: row.orderNo,
      userId: row.userId,
      quantity: row.quantity,
      state: 'SOLD',
      reservedAtMs: row.createdAt.getTime(),
      idempotencyKey: row.idempotencyKey,
    });
    if (adopted === 'ADOPTED') return true;
    // Made again meanwhile (the reconciler's adoption): that one is confirmed.
    if (adopted === 'EXISTS') {
      const again = await inventory.confirm(order.sku, order.orderNo);
      return again === 'CONFIRMED' || again === 'ALREADY_CONFIRMED';
    }
    return false;
  }

  /** The row is CANCELLED or FAILED: the units go back (a failed order's even if sold), its record dropped. */
  private async released(order: NewOrder, orderFailed: boolean, release: ReleaseAs): Promise<void> {
    const { inventory } = this.deps;
    const mode: ReleaseMode =
      release.as === 'owner'
        ? { as: 'owner', forget: true, orderFailed }
        : { as: 'unclaimed', reservedBeforeMs: release.reservedBeforeMs, orderFailed };
    const outcome = await inventory.release(order.sku, order.orderNo, mode);
    if (outcome !== 'NOT_FOUND' || !order.idempotencyKey) return;
    // Redis lost it (a failover, a restore): no units to give back, but the checkout's key must still name this order,
    // or a retry with it would make a new one.
    await inventory.restoreKey(order.sku, { userId: order.userId, key: order.idempotencyKey, orderNo: order.orderNo });
  }
}

/** What Redis must hold once the row answered: its status's (RESERVATION_OF_STATUS); nothing while undecided. */
function reservationOf(closed: ClosedOrder): 'CLAIMED' | 'SOLD' | 'RELEASED' | null {
  switch (closed.outcome) {
    case 'PAID':
      return RESERVATION_OF_STATUS[closed.status];
    case 'CANCELLED':
    case 'FAILED':
      return RESERVATION_OF_STATUS[closed.outcome];
    default:
      return null;
  }
}
