/** Money going back: refunds we ask a provider for (forwards only), and reversals (refunds, disputes) it reports. */
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import {
  REFUNDS_OWED,
  isSold,
  paidOrderStatus,
  paymentOutcomesMovingTo,
  statusesMovingTo,
  type DisputeStanding,
  type PaymentProviderName,
  type RefundProgress,
  type StoredOrderStatus,
} from '../model/order-workflow.js';
import { recordOrderEvent } from './events.js';
import { inTransaction, orNull, rowMapper, str, toTakeback, type PaymentRow, type Takeback, Store } from './rows.js';

/** A refund's statuses that take money back (or will): a failed one took none. */
const REFUNDS_NOT_FAILED = ['PENDING', 'SUCCEEDED'] as const;

/** A payment owed back, as the reconciler starts its refund. */
const toOwedPayment = rowMapper({ eventId: str, provider: str, providerRef: orNull<string> });
export type OwedPayment = ReturnType<typeof toOwedPayment>;

/** A reversal's fields as its furthest stage reported them: a later stage wins; an older or repeated one, none. */
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
       WHERE provider = ? AND intent_id = ? AND kind = 'REFUND' AND status IN (?)`,
      [payment.provider, payment.providerRef, REFUNDS_NOT_FAILED],
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

/** Sets a paid order's status and figures from its reversals (paidOrderStatus); the caller holds the row's lock. */
export async function applyTakebacks(conn: PoolConnection, orderNo: string): Promise<StoredOrderStatus> {
  const [[order]] = await conn.query<RowDataPacket[]>('SELECT status, total_cents FROM orders WHERE order_no = ?', [
    orderNo,
  ]);
  if (!order) throw new Error(`order ${orderNo} vanished under its lock`);
  if (!isSold(order.status)) return order.status as StoredOrderStatus;
  const [[refunds], [disputes]] = await Promise.all([
    conn.query<RowDataPacket[]>(
      `SELECT takeback_id, amount_cents, status, created_at FROM payment_takebacks
       WHERE order_no = ? AND kind = 'REFUND' AND status IN (?)`,
      [orderNo, REFUNDS_NOT_FAILED],
    ),
    conn.query<RowDataPacket[]>(
      `SELECT takeback_id, status, reason, due_by, amount_cents, created_at FROM payment_takebacks
       WHERE order_no = ? AND kind = 'DISPUTE' ORDER BY created_at DESC, takeback_id DESC LIMIT 1`,
      [orderNo],
    ),
  ]);
  const refundedCents = refunds.reduce((cents, refund) => cents + Number(refund.amount_cents), 0);
  const dispute = disputes[0];
  const status = paidOrderStatus(Number(order.total_cents), {
    refundedCents,
    dispute: dispute ? (dispute.status as DisputeStanding) : null,
  });
  // The status stays, or moves along ORDER_MOVES (among the sold statuses).
  await conn.query(
    `UPDATE orders SET status = ?, refunded_cents = ?, dispute_status = ?, dispute_reason = ?, dispute_due_by = ?,
       dispute_amount_cents = ? WHERE order_no = ? AND (status = ? OR status IN (?))`,
    [
      status,
      refundedCents,
      dispute?.status ?? null,
      dispute?.reason ?? null,
      dispute?.due_by ?? null,
      dispute?.amount_cents ?? null,
      orderNo,
      status,
      statusesMovingTo(status),
    ],
  );
  // Each fact once (the events' unique key): a refund that went through, a dispute opened, a dispute decided.
  for (const refund of refunds)
    if (refund.status === 'SUCCEEDED')
      await recordOrderEvent(conn, {
        orderNo,
        type: 'order.refunded',
        occurrence: String(refund.takeback_id),
        createdAt: refund.created_at as Date,
      });
  if (dispute) {
    const occurrence = String(dispute.takeback_id);
    await recordOrderEvent(conn, {
      orderNo,
      type: 'order.disputed',
      occurrence,
      createdAt: dispute.created_at as Date,
    });
    if (dispute.status !== 'OPEN') await recordOrderEvent(conn, { orderNo, type: 'order.dispute_closed', occurrence });
  }
  return status;
}

/**
 * A dispute settles money owed back: open or lost, the chargeback refunded the shopper (REFUNDED); won, the provider
 * refuses to refund a disputed charge, so an operator does (REFUND_FAILED). The furthest dispute: both callers agree.
 */
export async function disputeOwedMoney(
  db: Pick<Pool, 'query'> | PoolConnection,
  provider: PaymentProviderName,
  intentId: string,
): Promise<boolean> {
  const [disputes] = await db.query<RowDataPacket[]>(
    // Not an inquiry (Stripe's warning_*): it withdraws no money and the charge stays refundable.
    `SELECT takeback_id, status FROM payment_takebacks
     WHERE provider = ? AND intent_id = ? AND kind = 'DISPUTE' AND provider_status NOT LIKE 'warning%'
     ORDER BY stage DESC, created_at DESC LIMIT 1`,
    [provider, intentId],
  );
  const dispute = disputes[0];
  if (!dispute) return false;
  const disputeId = String(dispute.takeback_id);
  // Along PAYMENT_MOVES: owed back and not asked yet, REFUNDED by the chargeback; REFUND_FAILED once it is won.
  const [moved] =
    dispute.status === 'WON'
      ? await db.query<ResultSetHeader>(
          `UPDATE payments SET outcome = 'REFUND_FAILED', refund_error = ?
           WHERE provider = ? AND provider_ref = ?
             AND (outcome = 'REFUND_REQUIRED' OR (outcome = 'REFUNDED' AND refund_id = ?))
             AND outcome IN (?)`,
          [
            `dispute ${disputeId} was won: the money is ours again and a disputed charge cannot be refunded; refund it by hand`,
            provider,
            intentId,
            disputeId,
            paymentOutcomesMovingTo('REFUND_FAILED'),
          ],
        )
      : await db.query<ResultSetHeader>(
          `UPDATE payments SET outcome = 'REFUNDED', refund_id = ?, refund_error = NULL
           WHERE provider = ? AND provider_ref = ? AND outcome = 'REFUND_REQUIRED'`,
          [disputeId, provider, intentId],
        );
  return moved.affectedRows > 0;
}
