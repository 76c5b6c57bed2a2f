/** Money going back: refunds asked of a provider (forwards only), and refunds or disputes it reports (takebacks). */
import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import {
  REFUNDS_OWED,
  isSold,
  paymentOutcomesMovingTo,
  type RefundProgress,
  type StoredOrderStatus,
} from '../model/order-workflow.js';
import { applyTakebacks, disputeOwedMoney, recordOrderEvent } from './orders.js';
import { inTransaction, orNull, rowMapper, str, toTakeback, type PaymentRow, type Takeback, Store } from './rows.js';

/** A payment owed back, as the reconciler starts its refund. */
const toOwedPayment = rowMapper({ eventId: str, provider: str, providerRef: orNull<string> });
export type OwedPayment = ReturnType<typeof toOwedPayment>;

/** A takeback's fields as its furthest stage reported them: a later stage wins; an older or repeated one, none. */
const FURTHER_STAGE = ['amount_cents', 'status', 'provider_status', 'reason', 'due_by']
  .map((column) => `${column} = IF(VALUES(stage) > stage, VALUES(${column}), ${column})`)
  .join(', ');

export class RefundStore extends Store {
  // ---- refunds through a provider (RefundWorkflow: started as the row decides, and by the reconciler where none runs)

  /** A page of the payments owed back through these providers, by event id after `afterEventId`. */
  async owedRefundsPage(providers: readonly string[], afterEventId: string, limit: number): Promise<OwedPayment[]> {
    if (providers.length === 0) return [];
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT event_id, provider, provider_ref FROM payments
       WHERE outcome IN (?) AND provider IN (?) AND event_id > ? ORDER BY event_id LIMIT ?`,
      [REFUNDS_OWED, providers, afterEventId, limit],
    );
    return rows.map(toOwedPayment);
  }

  /** What a refund may still ask for: the amount less what the provider refunded without us (a Dashboard refund). */
  async refundableCents(payment: Pick<PaymentRow, 'amountCents' | 'provider' | 'providerRef'>): Promise<number> {
    if (!payment.providerRef) return payment.amountCents;
    const [[taken]] = await this.pool.query<RowDataPacket[]>(
      `SELECT COALESCE(SUM(amount_cents), 0) AS cents FROM payment_takebacks
       WHERE provider = ? AND intent_id = ? AND kind = 'REFUND' AND status IN ('PENDING','SUCCEEDED')`,
      [payment.provider, payment.providerRef],
    );
    return Math.max(0, payment.amountCents - Number(taken?.cents ?? 0));
  }

  /** Why the last ask was not answered, for an operator (Temporal retries it). */
  async noteRefundError(eventId: string, error: string): Promise<void> {
    await this.pool.query(`UPDATE payments SET refund_error = ? WHERE event_id = ? AND outcome IN (?)`, [
      error.slice(0, 500),
      eventId,
      REFUNDS_OWED,
    ]);
  }

  /** Moves a refund on (by event id or refund id), forwards only: repeated or late events never move it back. */
  async recordRefundProgress(match: { eventId?: string; refundId?: string }, progress: RefundProgress) {
    return inTransaction(this.pool, async (conn) => {
      const [result] = await conn.query<ResultSetHeader>(
        `UPDATE payments SET outcome = ?, refund_id = COALESCE(?, refund_id), refund_error = ?
         WHERE (event_id = ? OR refund_id = ?) AND outcome IN (?)`,
        [
          progress.state,
          progress.refundId,
          progress.error?.slice(0, 500) ?? null,
          match.eventId ?? null,
          match.refundId ?? null,
          paymentOutcomesMovingTo(progress.state),
        ],
      );
      if (result.affectedRows === 0) return false;
      // Money of the order went back: its event, once per payment.
      if (progress.state === 'REFUNDED') {
        const [refunded] = await conn.query<RowDataPacket[]>(
          `SELECT event_id, order_no FROM payments WHERE (event_id = ? OR refund_id = ?) AND outcome = 'REFUNDED'`,
          [match.eventId ?? null, match.refundId ?? null],
        );
        for (const payment of refunded)
          await recordOrderEvent(conn, {
            orderNo: String(payment.order_no),
            type: 'order.refunded',
            occurrence: String(payment.event_id),
          });
      }
      return true;
    });
  }

  /** The refund of a payment goes under the key after `from` from now on (the provider answered 5xx under it). */
  async nextRefundKey(eventId: string, from: number): Promise<void> {
    await this.pool.query(
      'UPDATE payments SET refund_key_attempt = GREATEST(refund_key_attempt, ?) WHERE event_id = ?',
      [from + 1, eventId],
    );
  }

  /** A refund refused for a dispute: the recorded dispute settles it (disputeOwedMoney); false until it is recorded. */
  async settleByDispute(payment: Pick<PaymentRow, 'provider' | 'providerRef'>): Promise<boolean> {
    if (!payment.providerRef) return false;
    return disputeOwedMoney(this.pool, payment.provider, payment.providerRef);
  }

  // ---- money taken back after payment -----------------------------------------------------------

  /** Records a reported refund or dispute, forwards only, and moves a paid order's status with it, under its lock. */
  async recordTakeback(takeback: Takeback): Promise<{ changed: boolean; status: StoredOrderStatus | null }> {
    return inTransaction(this.pool, async (conn) => {
      const [rows] = await conn.query<RowDataPacket[]>('SELECT status FROM orders WHERE order_no = ? FOR UPDATE', [
        takeback.orderNo,
      ]);
      const [result] = await conn.query<ResultSetHeader>(
        `INSERT INTO payment_takebacks
             (takeback_id, kind, provider, intent_id, order_no, amount_cents, status, provider_status, stage, reason, due_by, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE ${FURTHER_STAGE}, stage = GREATEST(stage, VALUES(stage))`,
        [
          takeback.id,
          takeback.kind,
          takeback.provider,
          takeback.intentId,
          takeback.orderNo,
          takeback.amountCents,
          takeback.status,
          takeback.providerStatus,
          takeback.stage,
          takeback.reason?.slice(0, 64) ?? null,
          takeback.dueBy,
          takeback.createdAt,
        ],
      );
      const status = rows[0] ? (rows[0].status as StoredOrderStatus) : null;
      // affectedRows: 1 inserted, 2 updated, 0 unchanged (an older or repeated event).
      const changed = result.affectedRows > 0;
      if (changed && takeback.kind === 'DISPUTE') await disputeOwedMoney(conn, takeback.provider, takeback.intentId);
      if (!changed || !status || !isSold(status)) return { changed, status };
      return { changed, status: await applyTakebacks(conn, takeback.orderNo) };
    });
  }

  async takebacksOf(orderNo: string): Promise<Takeback[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT * FROM payment_takebacks WHERE order_no = ? ORDER BY created_at, takeback_id',
      [orderNo],
    );
    return rows.map(toTakeback);
  }

  async getTakeback(id: string): Promise<Takeback | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT * FROM payment_takebacks WHERE takeback_id = ?', [
      id,
    ]);
    return rows[0] ? toTakeback(rows[0]) : null;
  }
}
