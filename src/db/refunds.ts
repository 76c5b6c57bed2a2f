/** Money going back: refunds asked of a provider (forwards only), and refunds or disputes it reports (takebacks). */
import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import {
  SOLD_STATUSES,
  type RefundState,
  type StoredOrderStatus,
  type StoredPaymentOutcome,
} from '../model/order-workflow.js';
import { applyTakebacks, disputeOwedMoney, recordOrderEvent } from './orders.js';
import { PAYMENT_COLUMNS, inTransaction, toPaymentRow, toTakeback, type PaymentRow, type Takeback } from './rows.js';

/** A provider's refund as it moves on: asked, done, or refused (REFUND_STATES). */
export interface RefundProgress {
  state: RefundState;
  refundId: string | null;
  error?: string;
}

export class RefundStore {
  constructor(private readonly pool: Pool) {}

  // ---- refunds through a provider (RefundWorkflow, started by the reconciler) --------------------

  /** Refunds due by MySQL's clock, oldest first: REFUND_REQUIRED to ask, REFUND_REQUESTED to read again. */
  async refundsDue(limit: number, providers: readonly string[]): Promise<PaymentRow[]> {
    if (providers.length === 0) return [];
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${PAYMENT_COLUMNS} FROM payments
       WHERE outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED') AND provider IN (?)
         AND (next_refund_at IS NULL OR next_refund_at <= NOW(3))
       ORDER BY received_at, event_id LIMIT ?`,
      [providers, limit],
    );
    return rows.map(toPaymentRow);
  }

  /** Takes a due refund for a RefundWorkflow: true for one caller; due again after `runBoundMs` (> a run's length). */
  async takeRefund(eventId: string, runBoundMs: number): Promise<boolean> {
    const [result] = await this.pool.query<ResultSetHeader>(
      `UPDATE payments SET next_refund_at = NOW(3) + INTERVAL ? MICROSECOND, refund_attempts = refund_attempts + 1
       WHERE event_id = ? AND outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED')
         AND (next_refund_at IS NULL OR next_refund_at <= NOW(3))`,
      [Math.round(runBoundMs * 1_000), eventId],
    );
    return result.affectedRows === 1;
  }

  /** Due again in `delayMs` (a refund still under way, read again then; a start that failed, at once), with why. */
  async deferRefund(eventId: string, delayMs: number, error: string): Promise<void> {
    await this.pool.query(
      `UPDATE payments SET next_refund_at = NOW(3) + INTERVAL ? MICROSECOND, refund_error = ?
       WHERE event_id = ? AND outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED')`,
      [Math.round(delayMs * 1_000), error.slice(0, 500), eventId],
    );
  }

  /** Why the last ask was not answered, for an operator (Temporal retries it). */
  async noteRefundError(eventId: string, error: string): Promise<void> {
    await this.pool.query(
      `UPDATE payments SET refund_error = ? WHERE event_id = ? AND outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED')`,
      [error.slice(0, 500), eventId],
    );
  }

  /** Moves a refund on (by event id or refund id), forwards only: repeated or late events never move it back. */
  async recordRefundProgress(
    match: { eventId?: string; refundId?: string },
    progress: RefundProgress,
    /** A refund still under way (REFUND_REQUESTED) is read from the provider again after this, until it ends. */
    followInMs = REFUND_FIRST_FOLLOW_MS,
  ): Promise<boolean> {
    const from = REFUND_MOVES_FROM[progress.state];
    return inTransaction(this.pool, async (conn) => {
      const [result] = await conn.query<ResultSetHeader>(
        `UPDATE payments SET outcome = ?, refund_id = COALESCE(?, refund_id), refund_error = ?,
         next_refund_at = IF(? = 'REFUND_REQUESTED', NOW(3) + INTERVAL ? MICROSECOND, NULL)
       WHERE (event_id = ? OR refund_id = ?) AND outcome IN (?)`,
        [
          progress.state,
          progress.refundId,
          progress.error?.slice(0, 500) ?? null,
          progress.state,
          Math.round(followInMs * 1_000),
          match.eventId ?? null,
          match.refundId ?? null,
          from,
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
           ON DUPLICATE KEY UPDATE
             amount_cents = IF(VALUES(stage) > stage, VALUES(amount_cents), amount_cents),
             status = IF(VALUES(stage) > stage, VALUES(status), status),
             provider_status = IF(VALUES(stage) > stage, VALUES(provider_status), provider_status),
             reason = IF(VALUES(stage) > stage, VALUES(reason), reason),
             due_by = IF(VALUES(stage) > stage, VALUES(due_by), due_by),
             stage = GREATEST(stage, VALUES(stage))`,
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
      if (!changed || !status || !(SOLD_STATUSES as readonly string[]).includes(status)) return { changed, status };
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

/** How long after a refund is asked it is first read again from its provider (if no event ended it meanwhile). */
export const REFUND_FIRST_FOLLOW_MS = 60_000;

/** The outcomes a refund may move to each state from: forwards only. */
const REFUND_MOVES_FROM: Record<RefundState, StoredPaymentOutcome[]> = {
  REFUND_REQUESTED: ['REFUND_REQUIRED'],
  REFUNDED: ['REFUND_REQUIRED', 'REFUND_REQUESTED'],
  REFUND_FAILED: ['REFUND_REQUIRED', 'REFUND_REQUESTED', 'REFUNDED'],
};
