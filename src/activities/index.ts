/**
 * OrderWorkflow's activities: thin, idempotent adapters to MySQL and Redis. Temporal runs each at
 * least once, so every one of them gives the same end state however often it runs.
 *
 * Errors: anything thrown as-is (connection refused, lock wait timeout, deadlock) is transient and
 * retried by the workflow's retry policy; a business rule that no retry can change is thrown with
 * ApplicationFailure.nonRetryable and a stable type.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import type { CancelReason, OrderInput, RefundReason } from '../workflows/definitions.js';

export interface ActivityDeps {
  pool: Pool;
  inventory: RedisInventory;
}

export type PersistOrderInput = OrderInput & { paymentDeadline: string };

/** Stable types of non-retryable failures, visible in the Web UI and in the order's failureReason. */
export const FailureTypes = {
  saleNotFound: 'SaleNotFound',
  outOfStockInDatabase: 'OutOfStockInDatabase',
  orderConflict: 'OrderConflict',
} as const;

export function createActivities({ pool, inventory }: ActivityDeps) {
  return {
    /**
     * Inserts the order as AWAITING_PAYMENT and takes its units from MySQL's available stock, in one
     * transaction. Idempotent on the order number: a retry after a lost commit finds the row and
     * succeeds without taking stock twice.
     */
    async persistOrder(order: PersistOrderInput): Promise<void> {
      // A plain read (no locking read: a gap lock here deadlocks concurrent inserts) finds the row
      // a previous attempt committed before its answer got lost.
      if (await orderMatches(pool, order)) return;
      try {
        await inTransaction(pool, async (conn) => {
          // Every persist of a SKU takes its sales row first, so they queue instead of deadlocking.
          // The guard in WHERE (and the table's CHECK) makes MySQL refuse to sell what it lacks.
          const [taken] = await conn.query<ResultSetHeader>(
            'UPDATE sales SET available = available - ? WHERE sku = ? AND available >= ?',
            [order.quantity, order.sku, order.quantity],
          );
          if (taken.affectedRows !== 1) {
            const [sale] = await conn.query<RowDataPacket[]>('SELECT available FROM sales WHERE sku = ?', [order.sku]);
            if (!sale[0]) throw ApplicationFailure.nonRetryable(`sale ${order.sku} does not exist in MySQL`, FailureTypes.saleNotFound);
            throw ApplicationFailure.nonRetryable(
              `sale ${order.sku} has ${sale[0].available} units available in MySQL, order needs ${order.quantity}`,
              FailureTypes.outOfStockInDatabase,
            );
          }
          await conn.query(
            `INSERT INTO orders (order_no, sku, user_id, quantity, unit_price_cents, total_cents, status,
                                 idempotency_key, payment_deadline, created_at)
             VALUES (?, ?, ?, ?, ?, ?, 'AWAITING_PAYMENT', ?, ?, ?)`,
            [
              order.orderNo,
              order.sku,
              order.userId,
              order.quantity,
              order.unitPriceCents,
              order.unitPriceCents * order.quantity,
              order.idempotencyKey ?? null,
              new Date(order.paymentDeadline),
              new Date(order.createdAt),
            ],
          );
        });
      } catch (err) {
        // A concurrent attempt of the same activity won the insert; the rollback gave our stock back.
        if ((err as { code?: string }).code === 'ER_DUP_ENTRY' && (await orderMatches(pool, order))) return;
        throw err;
      }
    },

    /** Writes the row of an order that could not be persisted, so no 202 goes without a trace. */
    async recordOrderFailure(order: PersistOrderInput & { reason: string }): Promise<void> {
      await pool.query(
        `INSERT IGNORE INTO orders (order_no, sku, user_id, quantity, unit_price_cents, total_cents, status,
                                    failure_reason, idempotency_key, payment_deadline, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'FAILED', ?, ?, ?, ?)`,
        [
          order.orderNo,
          order.sku,
          order.userId,
          order.quantity,
          order.unitPriceCents,
          order.unitPriceCents * order.quantity,
          order.reason.slice(0, 255),
          order.idempotencyKey ?? null,
          new Date(order.paymentDeadline),
          new Date(order.createdAt),
        ],
      );
    },

    /** AWAITING_PAYMENT → PAID, and the payment recorded as applied, in one transaction. */
    async markPaid(payment: { orderNo: string; eventId: string; amountCents: number; paidAt: string }): Promise<void> {
      await inTransaction(pool, async (conn) => {
        await conn.query(`UPDATE orders SET status = 'PAID', paid_at = ? WHERE order_no = ? AND status = 'AWAITING_PAYMENT'`, [
          new Date(payment.paidAt),
          payment.orderNo,
        ]);
        await conn.query(
          `INSERT INTO payments (event_id, order_no, amount_cents, outcome) VALUES (?, ?, ?, 'APPLIED')
           ON DUPLICATE KEY UPDATE outcome = 'APPLIED', refund_reason = NULL`,
          [payment.eventId, payment.orderNo, payment.amountCents],
        );
      });
    },

    /** AWAITING_PAYMENT → CANCELLED and the units back to MySQL's available stock, once. */
    async cancelOrder(cancel: { orderNo: string; reason: CancelReason; cancelledAt: string }): Promise<void> {
      await inTransaction(pool, async (conn) => {
        const [rows] = await conn.query<RowDataPacket[]>('SELECT sku, quantity, status FROM orders WHERE order_no = ? FOR UPDATE', [cancel.orderNo]);
        const order = rows[0];
        if (!order || order.status !== 'AWAITING_PAYMENT') return; // already cancelled (a retry), or never persisted
        await conn.query(`UPDATE orders SET status = 'CANCELLED', cancel_reason = ?, cancelled_at = ? WHERE order_no = ?`, [
          cancel.reason,
          new Date(cancel.cancelledAt),
          cancel.orderNo,
        ]);
        await conn.query('UPDATE sales SET available = available + ? WHERE sku = ?', [order.quantity, order.sku]);
      });
    },

    /** A payment that must be given back: late, a second one, or the wrong amount. */
    async recordRefundRequired(refund: { orderNo: string; eventId: string; amountCents: number; reason: RefundReason }): Promise<void> {
      await pool.query(
        `INSERT INTO payments (event_id, order_no, amount_cents, outcome, refund_reason) VALUES (?, ?, ?, 'REFUND_REQUIRED', ?)
         ON DUPLICATE KEY UPDATE outcome = 'REFUND_REQUIRED', refund_reason = VALUES(refund_reason)`,
        [refund.eventId, refund.orderNo, refund.amountCents, refund.reason],
      );
    },

    /** Gives the reserved units back in Redis; the script makes a second call a no-op. */
    async releaseReservation(reservation: { sku: string; orderNo: string }): Promise<string> {
      return inventory.release(reservation.sku, reservation.orderNo);
    },

    /** Turns the reservation into a sale in Redis; idempotent likewise. */
    async confirmReservation(reservation: { sku: string; orderNo: string }): Promise<string> {
      return inventory.confirm(reservation.sku, reservation.orderNo);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

/** True when the order row exists for this order; a row for another SKU or user is a conflict. */
async function orderMatches(pool: Pool, order: PersistOrderInput): Promise<boolean> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT sku, user_id FROM orders WHERE order_no = ?', [order.orderNo]);
  const row = rows[0];
  if (!row) return false;
  if (row.sku !== order.sku || row.user_id !== order.userId) {
    throw ApplicationFailure.nonRetryable(`order ${order.orderNo} exists for another sku or user`, FailureTypes.orderConflict);
  }
  return true;
}

async function inTransaction<T>(pool: Pool, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    const result = await work(conn);
    await conn.commit();
    return result;
  } catch (err) {
    await conn.rollback().catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}
