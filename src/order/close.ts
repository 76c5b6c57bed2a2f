/** The one close (docs/fault-tolerance.md): the row decides, Redis follows, readers told; every order ends here. */
import type { ClosedOrder, NewOrder, OrderStore, OwedRefund } from '../db/orders.js';
import type { OrderRow } from '../db/rows.js';
import type { RedisInventory, ReleaseMode } from '../redis/inventory.js';
import { RESERVATION_OF_STATUS, type CloseRequest, type PersistOrderInput } from '../model/order-workflow.js';

/** Starts the RefundWorkflow of each payment owed back through a provider with an API; never throws. */
export interface RefundStarts {
  start(owed: readonly OwedRefund[]): void;
}

/** Tells every API process's status reader that an order changed. */
export interface OrderChanges {
  publish(orderNo: string): Promise<void>;
}

/** What the one close needs of an order: from its workflow's input (persisted or not), or from its row. */
export function newOrderOf(order: PersistOrderInput | OrderRow): NewOrder {
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

/** How the units go back when the row says so: by their owner (default), or only while unclaimed (no workflow ran). */
export type ReleaseAs = { as: 'owner' } | { as: 'unclaimed'; reservedBeforeMs: number };

export class OrderCloser {
  constructor(
    private readonly deps: {
      orders: Pick<OrderStore, 'close' | 'getOrder'>;
      inventory: Pick<RedisInventory, 'confirm' | 'release' | 'adopt' | 'restoreKey'>;
      changes: OrderChanges;
      refunds?: RefundStarts;
    },
  ) {}

  /** The row closes the order, then Redis says the same (a lost sold unit made again, else FAILED). Idempotent. */
  async close(order: NewOrder, request: CloseRequest, release: ReleaseAs = { as: 'owner' }): Promise<ClosedOrder> {
    let closed = await this.deps.orders.close(order, request);
    if (reservationOf(closed) === 'SOLD' && !(await this.sold(order))) {
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
    if (isConfirmed(confirmed)) return true;
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
    if (adopted !== 'EXISTS') return adopted === 'ADOPTED';
    // Made again meanwhile (the reconciler's adoption): that one is confirmed.
    return isConfirmed(await inventory.confirm(order.sku, order.orderNo));
  }

  /** The row is CANCELLED or FAILED: the units go back (a failed order's even if sold), its record dropped. */
  private async released(order: NewOrder, orderFailed: boolean, release: ReleaseAs): Promise<void> {
    const { inventory } = this.deps;
    const mode: ReleaseMode =
      release.as === 'owner' ? { as: 'owner', forget: true, orderFailed } : { ...release, orderFailed };
    const outcome = await inventory.release(order.sku, order.orderNo, mode);
    if (outcome !== 'NOT_FOUND' || !order.idempotencyKey) return;
    // Redis lost it (failover, restore): nothing to return, but the key must still name it, or a retry makes a new one.
    await inventory.restoreKey(order.sku, { userId: order.userId, key: order.idempotencyKey, orderNo: order.orderNo });
  }
}

/** What Redis must hold once the row answered: its status's (RESERVATION_OF_STATUS); nothing while undecided. */
function reservationOf(closed: ClosedOrder): 'CLAIMED' | 'SOLD' | 'RELEASED' | null {
  if (closed.outcome === 'PAID') return RESERVATION_OF_STATUS[closed.status];
  return closed.outcome === 'CANCELLED' || closed.outcome === 'FAILED' ? RESERVATION_OF_STATUS[closed.outcome] : null;
}

const isConfirmed = (outcome: string) => outcome === 'CONFIRMED' || outcome === 'ALREADY_CONFIRMED';
