/** Payments, each recorded once and decided by its order's row (orders.ts); intents, failed attempts, event cursors. */
import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { type PaymentProviderName, type RefundReason } from '../model/order-workflow.js';
import { decideWaitingPayments } from './orders.js';
import {
  cast,
  date,
  inTransaction,
  orNull,
  rowMapper,
  str,
  toPaymentIntentRow,
  toPaymentRow,
  type PaymentIntentRow,
  type PaymentRow,
  Store,
} from './rows.js';

/** A payment event as the webhooks record it. */
export interface RecordedPaymentEvent {
  eventId: string;
  orderNo: string;
  amountCents: number;
  /** Absent: the generic webhook. */
  provider?: PaymentProviderName;
  providerRef?: string;
  /** When the provider says the money moved (Stripe's charge `created`), when it says. */
  paidAtProvider?: Date;
}

/** What MySQL knows of an intent a provider event names and of the order its metadata names. */
export interface IntentStanding {
  /** The intent as recorded (for whichever order), or null when none of our orders opened it. */
  intent: Pick<PaymentIntentRow, 'orderNo' | 'currency'> | null;
  /** Whether the named order has a row, and how many intents it opened. */
  orderExists: boolean;
  orderIntents: number;
}

const toPaymentFailure = rowMapper({
  eventId: str,
  orderNo: str,
  provider: cast<PaymentProviderName>,
  providerRef: orNull<string>,
  code: orNull<string>,
  message: orNull<string>,
  receivedAt: date,
});
export type PaymentFailureRow = ReturnType<typeof toPaymentFailure>;
/** A payment attempt the provider reports failed (a declined card): recorded, no money moved. */
export type PaymentFailure = Omit<PaymentFailureRow, 'receivedAt'>;

export class PaymentStore extends Store {
  /**
   * A row per payment's money (a generic event, or a PaymentIntent whichever event told first), each event kept as
   * evidence. The order row's lock comes first, so received_at is stamped after a close holding it read MySQL's clock.
   */
  async recordPayment(
    event: RecordedPaymentEvent,
    source: string,
    refundReason?: RefundReason,
  ): Promise<{ row: PaymentRow; judged: boolean }> {
    return inTransaction(this.pool, async (conn) => {
      await conn.query('SELECT 1 FROM orders WHERE order_no = ? FOR UPDATE', [event.orderNo]);
      // Ignored on either key: the event's id seen before, or the provider's payment recorded by another event.
      await conn.query<ResultSetHeader>(
        `INSERT IGNORE INTO payments
             (event_id, order_no, amount_cents, outcome, refund_reason, provider, provider_ref, paid_at_provider)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          event.eventId,
          event.orderNo,
          event.amountCents,
          refundReason ? 'REFUND_REQUIRED' : 'RECEIVED',
          refundReason ?? null,
          event.provider ?? 'generic',
          event.providerRef ?? null,
          event.paidAtProvider ?? null,
        ],
      );
      const [rows] = await conn.query<RowDataPacket[]>(
        event.providerRef
          ? `SELECT ${toPaymentRow.columns} FROM payments WHERE event_id = ?
               UNION SELECT ${toPaymentRow.columns} FROM payments WHERE provider = ? AND provider_ref = ?`
          : `SELECT ${toPaymentRow.columns} FROM payments WHERE event_id = ?`,
        event.providerRef ? [event.eventId, event.provider ?? 'generic', event.providerRef] : [event.eventId],
      );
      // The event's own row first (an event id seen before keeps its row), else the payment's.
      const found = rows.find((r) => String(r.event_id) === event.eventId) ?? rows[0];
      if (!found) throw new Error(`payment ${event.eventId} vanished after it was recorded`);
      const row = toPaymentRow(found);
      // A provider's payment gathers its events; a generic event is its own row, nothing to add.
      if (event.providerRef)
        await conn.query('INSERT IGNORE INTO payment_evidence (event_id, payment_event_id, source) VALUES (?, ?, ?)', [
          event.eventId,
          row.eventId,
          source,
        ]);
      if (row.outcome !== 'RECEIVED' || row.orderNo !== event.orderNo) return { row, judged: false };
      // Its own row written, it reads the order's: decided now, or by the transaction that writes the order's row.
      const mine = (await decideWaitingPayments(conn, event.orderNo)).find(
        (decided) => decided.eventId === row.eventId,
      );
      if (!mine) return { row, judged: false };
      const { outcome, refundReason: reason } = mine.verdict;
      return { row: { ...row, outcome, refundReason: reason ?? null }, judged: true };
    });
  }

  /** The payment rows `where` picks (a condition, an order, a limit). */
  private async payments(where: string, values: unknown[]): Promise<PaymentRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${toPaymentRow.columns} FROM payments WHERE ${where}`,
      values,
    );
    return rows.map(toPaymentRow);
  }

  async getPayment(eventId: string): Promise<PaymentRow | null> {
    return (await this.payments('event_id = ?', [eventId]))[0] ?? null;
  }

  async paymentsOfOrder(orderNo: string): Promise<PaymentRow[]> {
    return this.payments('order_no = ? ORDER BY event_id', [orderNo]);
  }

  /** The payment rows of these provider payments (Stripe: PaymentIntents); one at most each, by the schema. */
  async paymentsOfIntents(provider: PaymentProviderName, intentIds: readonly string[]): Promise<PaymentRow[]> {
    if (intentIds.length === 0) return [];
    return this.payments('provider = ? AND provider_ref IN (?)', [provider, intentIds]);
  }

  /** The payment recorded for a provider's payment (Stripe: its PaymentIntent), and the order that opened it. */
  async paymentOfIntent(provider: PaymentProviderName, intentId: string) {
    const [[payment = null], [intents]] = await Promise.all([
      this.payments('provider = ? AND provider_ref = ?', [provider, intentId]),
      this.pool.query<RowDataPacket[]>('SELECT order_no FROM payment_intents WHERE intent_id = ?', [intentId]),
    ]);
    return { payment, orderNo: payment?.orderNo ?? (intents[0] ? String(intents[0].order_no) : null) };
  }

  /** Which payment each of these provider events told of, and through what (webhook, catch-up, close). */
  async paymentEvidence(eventIds: readonly string[]) {
    if (eventIds.length === 0) return [];
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT event_id, payment_event_id, source, received_at FROM payment_evidence WHERE event_id IN (?)',
      [eventIds],
    );
    return rows.map(rowMapper({ eventId: str, paymentEventId: str, source: str, receivedAt: date }));
  }

  // ---- payments RECEIVED before their order's row: its first write decides them, the reconciler those left ----

  /** Up to `limit` payments still RECEIVED, recorded over `olderThanMs` ago by MySQL's clock, oldest first. */
  async waitingPayments(olderThanMs: number, limit: number): Promise<PaymentRow[]> {
    return this.payments(
      `outcome = 'RECEIVED' AND received_at < NOW(3) - INTERVAL ? MICROSECOND ORDER BY received_at LIMIT ?`,
      [Math.round(olderThanMs * 1_000), limit],
    );
  }

  /** Has the order's row decide its waiting payments; no row and `noSuchOrder` (never issued): ORDER_NOT_FOUND. */
  async decideWaitingFor(orderNo: string, options: { noSuchOrder: boolean }) {
    return inTransaction(this.pool, async (conn) => {
      const [orders] = await conn.query<RowDataPacket[]>('SELECT 1 FROM orders WHERE order_no = ? FOR UPDATE', [
        orderNo,
      ]);
      if (orders.length > 0) {
        const decided = await decideWaitingPayments(conn, orderNo);
        return { decided: decided.length, orderExists: true };
      }
      if (!options.noSuchOrder) return { decided: 0, orderExists: false };
      const [refunded] = await conn.query<ResultSetHeader>(
        `UPDATE payments SET outcome = 'REFUND_REQUIRED', refund_reason = 'ORDER_NOT_FOUND'
           WHERE order_no = ? AND outcome = 'RECEIVED'`,
        [orderNo],
      );
      return { decided: refunded.affectedRows, orderExists: false };
    });
  }

  // ---- payment intents --------------------------------------------------------------------------

  /** Records a PaymentIntent opened for an order (idempotent: the same intent twice is one row). */
  async recordPaymentIntent(intent: PaymentIntentRow): Promise<void> {
    await this.pool.query(
      `INSERT INTO payment_intents (intent_id, order_no, provider, key_attempt, amount_cents, currency, client_secret, status)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE client_secret = COALESCE(client_secret, VALUES(client_secret))`,
      [
        intent.intentId,
        intent.orderNo,
        intent.provider,
        intent.keyAttempt,
        intent.amountCents,
        intent.currency,
        intent.clientSecret,
        intent.status,
      ],
    );
  }

  async paymentIntentsOf(orderNo: string): Promise<PaymentIntentRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT * FROM payment_intents WHERE order_no = ? ORDER BY key_attempt, created_at',
      [orderNo],
    );
    return rows.map(toPaymentIntentRow);
  }

  /** The intent's status as the provider last told it. */
  async recordPaymentIntentStatus(intentId: string, status: string): Promise<void> {
    // A closed intent cannot be paid through: its client secret is dropped (one made after its order closed too).
    await this.pool.query(
      `UPDATE payment_intents SET status = ?, client_secret = IF(? IN ('succeeded', 'canceled'), NULL, client_secret)
       WHERE intent_id = ?`,
      [status, status, intentId],
    );
  }

  /** The opening's idempotency key attempt (1 until a 5xx moved it on), and whether the order's close has begun. */
  async paymentOpening(orderNo: string): Promise<{ keyAttempt: number; closed: boolean }> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT key_attempt, closed_at FROM payment_openings WHERE order_no = ?',
      [orderNo],
    );
    return { keyAttempt: Number(rows[0]?.key_attempt ?? 1), closed: Boolean(rows[0]?.closed_at) };
  }

  /** Marks the close begun before its intents are read: an opening recording an intent later cancels it itself. */
  async closePaymentOpening(orderNo: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO payment_openings (order_no, closed_at) VALUES (?, NOW(3))
       ON DUPLICATE KEY UPDATE closed_at = COALESCE(closed_at, NOW(3))`,
      [orderNo],
    );
  }

  /** Moves the opening to the key after `from` (a 5xx under it); two attempts that saw the same 5xx move it once. */
  async nextPaymentOpeningKey(orderNo: string, from: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO payment_openings (order_no, key_attempt) VALUES (?, ?)
       ON DUPLICATE KEY UPDATE key_attempt = GREATEST(key_attempt, VALUES(key_attempt))`,
      [orderNo, from + 1],
    );
  }

  /** What MySQL knows of `intentId` and of `orderNo` (the webhook's check that an intent is the order's). */
  async intentStanding(intentId: string, orderNo: string): Promise<IntentStanding> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT
         (SELECT order_no FROM payment_intents WHERE intent_id = ?) AS intent_order_no,
         (SELECT currency FROM payment_intents WHERE intent_id = ?) AS intent_currency,
         EXISTS (SELECT 1 FROM orders WHERE order_no = ?) AS order_exists,
         (SELECT COUNT(*) FROM payment_intents WHERE order_no = ?) AS order_intents`,
      [intentId, intentId, orderNo, orderNo],
    );
    const row = rows[0]!;
    return {
      intent:
        row.intent_order_no === null || row.intent_order_no === undefined
          ? null
          : { orderNo: String(row.intent_order_no), currency: String(row.intent_currency) },
      orderExists: Number(row.order_exists) === 1,
      orderIntents: Number(row.order_intents),
    };
  }

  // ---- failed attempts, and the provider's events caught up -------------------------------------

  /** Records a failed payment attempt once (its event id dedupes the provider's retries). */
  async recordPaymentFailure(failure: PaymentFailure): Promise<void> {
    await this.pool.query(
      `INSERT IGNORE INTO payment_failures (event_id, order_no, provider, provider_ref, code, message) VALUES (?, ?, ?, ?, ?, ?)`,
      [
        failure.eventId,
        failure.orderNo,
        failure.provider,
        failure.providerRef,
        failure.code?.slice(0, 128) ?? null,
        failure.message?.slice(0, 500) ?? null,
      ],
    );
  }

  async paymentFailuresOfOrder(orderNo: string): Promise<PaymentFailureRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT event_id, order_no, provider, provider_ref, code, message, received_at FROM payment_failures
       WHERE order_no = ? ORDER BY received_at, event_id`,
      [orderNo],
    );
    return rows.map(toPaymentFailure);
  }

  /** Where the catch-up reads a provider's events from (its `created`, in seconds); null before its first run. */
  async eventCursor(provider: PaymentProviderName): Promise<number | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT created_from FROM provider_event_cursors WHERE provider = ?',
      [provider],
    );
    return rows[0] ? Number(rows[0].created_from) : null;
  }

  /** Moves the cursor on to `createdFrom` (never back: two runs that overlap keep the furthest). */
  async moveEventCursor(provider: PaymentProviderName, createdFrom: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO provider_event_cursors (provider, created_from) VALUES (?, ?)
       ON DUPLICATE KEY UPDATE created_from = GREATEST(created_from, VALUES(created_from))`,
      [provider, createdFrom],
    );
  }
}

/** Where an intent's client secret is sealed: bound to its row, so a value copied to another row does not open. */
export function clientSecretContext(intentId: string): string {
  return `payment_intents.client_secret:${intentId}`;
}
