// The closing steps of the build before the one close (7b2150e), each the one close in its shapes: its pinned orders
// finish there on these activities (stack/older-builds.ts). Remove with the next build, once none of its is open.
import type { OrderStore } from '../db/orders.js';
import type { RedisInventory } from '../redis/inventory.js';
import type { CancelReason, PaymentReceived, PersistOrderInput } from '../model/order-workflow.js';
import { newOrderOf } from '../order/close.js';
import { received } from './order.js';

/** The previous build's cancelUnpaidOrder answer: cancelled (for the row's reason), or paid by a payment first. */
export type UnpaidOrderClosed =
  { outcome: 'CANCELLED'; reason: CancelReason } | { outcome: 'PAID_IN_TIME'; payment: PaymentReceived };

export function previousBuildActivities(deps: {
  orders: Pick<OrderStore, 'close' | 'getOrder' | 'appliedPayment'>;
  inventory: Pick<RedisInventory, 'confirm' | 'release'>;
}) {
  const { orders, inventory } = deps;
  return {
    /** Its close of an unpaid order: the row decides (cancelled, or paid first); Redis is left to its next step. */
    async cancelUnpaidOrder(cancel: { orderNo: string; reason: CancelReason }): Promise<UnpaidOrderClosed> {
      const row = await orders.getOrder(cancel.orderNo);
      if (!row) return { outcome: 'CANCELLED', reason: cancel.reason };
      const closed = await orders.close(newOrderOf(row), { kind: 'CANCEL', reason: cancel.reason });
      if (closed.outcome === 'NOT_DUE') throw new Error(`order ${cancel.orderNo}: the deadline is not reached yet`);
      if (closed.outcome === 'PAID') {
        const applied = await orders.appliedPayment(cancel.orderNo);
        if (applied) return { outcome: 'PAID_IN_TIME', payment: received(applied) };
      }
      return { outcome: 'CANCELLED', reason: closed.outcome === 'CANCELLED' ? closed.reason : cancel.reason };
    },

    /** Its failure of an order (never persisted, or its paid units lost): FAILED even if sold, as it then reports. */
    async recordOrderFailure(order: PersistOrderInput & { reason: string }): Promise<void> {
      await orders.close(newOrderOf(order), { kind: 'RESERVATION_LOST', reason: order.reason });
    },

    /** Its confirm of a paid order's units: C -> S. */
    async confirmReservation(reservation: { sku: string; orderNo: string }): Promise<string> {
      return inventory.confirm(reservation.sku, reservation.orderNo);
    },

    /** Its release of a final order's units, as their owner. */
    async releaseReservation(reservation: { sku: string; orderNo: string; orderFailed?: boolean }): Promise<string> {
      return inventory.release(reservation.sku, reservation.orderNo, {
        as: 'owner',
        forget: true,
        orderFailed: reservation.orderFailed === true,
      });
    },
  };
}
