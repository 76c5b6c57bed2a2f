/**
 * The store: every SQL statement of the service (sales, orders, payments, health, reports) and the
 * one transaction helper. Activities, the API, the benchmark and the tests call it; nothing else
 * under src/ speaks SQL (the migrator and the database provisioning in this folder aside).
 *
 * Business outcomes (an order that is already there, a sale MySQL lacks stock for) are returned as
 * values; only infrastructure failures (connection refused, lock wait timeout, deadlock) are thrown,
 * so the caller decides what is retryable.
 */
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import {
  SOLD_STATUSES,
  STORED_ORDER_STATUSES,
  STORED_PAYMENT_OUTCOMES,
  paidOrderStatus,
  type CancelReason,
  type DisputeStanding,
  type PaymentOutcome,
  type PaymentProviderName,
  type RefundState,
  type RefundReason,
  type StoredOrderStatus,
  type StoredPaymentOutcome,
} from '../model/order-workflow.js';

/**
 * Whether a mysql2 error says the server is unwell (connection refused or lost, a timeout, a fatal
 * protocol error) rather than answering a statement (a duplicate key, a constraint): only the
 * former counts against the API's MySQL breaker and answers 503.
 */
export function isMysqlFailure(err: unknown): boolean {
  const sqlError = err as { sqlState?: unknown; fatal?: unknown };
  return !(typeof sqlError.sqlState === 'string' && sqlError.fatal !== true);
}

export interface SaleRecord {
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
  perUserLimit: number;
  startsAt: Date | null;
  endsAt: Date | null;
}

export interface SaleRow extends SaleRecord {
  /** MySQL's own count of units not held by an AWAITING_PAYMENT or PAID order. */
  available: number;
  createdAt: Date;
}

/** An order as its row in MySQL stores it: the order once persisted, and its record once closed. */
export interface OrderRow {
  orderNo: string;
  sku: string;
  userId: string;
  quantity: number;
  unitPriceCents: number;
  totalCents: number;
  status: StoredOrderStatus;
  cancelReason: CancelReason | null;
  failureReason: string | null;
  idempotencyKey: string | null;
  paymentDeadline: Date;
  createdAt: Date;
  paidAt: Date | null;
  cancelledAt: Date | null;
  /** Refunded at the provider without us asking (DISPUTED and REFUNDED orders: docs/api.md). */
  refundedCents: number;
  /** The newest dispute of the order's payment. */
  dispute: StoredDispute | null;
}

/** A dispute as the order row keeps it. */
export interface StoredDispute {
  standing: DisputeStanding;
  reason: string | null;
  /** By when evidence must reach the provider (Stripe's evidence_details.due_by). */
  dueBy: Date | null;
  amountCents: number;
}

/**
 * A refund or a dispute the provider reports on a payment of ours that we did not ask for. `stage` only grows
 * (Store.recordTakeback keeps the furthest one).
 */
export interface Takeback {
  id: string;
  kind: 'REFUND' | 'DISPUTE';
  provider: PaymentProviderName;
  intentId: string;
  orderNo: string;
  amountCents: number;
  /** A refund: PENDING, SUCCEEDED or FAILED; a dispute: its standing. */
  status: 'PENDING' | 'SUCCEEDED' | 'FAILED' | DisputeStanding;
  providerStatus: string;
  stage: number;
  reason: string | null;
  dueBy: Date | null;
  /** When the provider made it (its clock). */
  createdAt: Date;
}

/** The columns an order row is written with; the others follow from them or from later changes. */
export type NewOrder = Pick<
  OrderRow,
  'orderNo' | 'sku' | 'userId' | 'quantity' | 'unitPriceCents' | 'paymentDeadline' | 'createdAt'
> & {
  idempotencyKey?: string;
  /**
   * The payment deadline counts from when the row is written, by MySQL's clock: NOW() + this
   * window, never earlier than `paymentDeadline`. Without it, `paymentDeadline` is written as given.
   */
  paymentWindowMs?: number;
};

export type InsertOrderResult =
  /**
   * The row's payment deadline as written (see NewOrder.paymentWindowMs); for ALREADY_PERSISTED, an earlier attempt
   * wrote it.
   */
  | { outcome: 'INSERTED' | 'ALREADY_PERSISTED'; paymentDeadline: Date }
  | { outcome: 'SALE_NOT_FOUND' }
  | { outcome: 'OUT_OF_STOCK'; available: number }
  /** A row with this order number exists for another SKU or user. */
  | { outcome: 'CONFLICT' }
  /** The order was already ended FAILED or CANCELLED (the reconciler gave it up before this start persisted it). */
  | { outcome: 'CLOSED'; status: StoredOrderStatus; failureReason: string | null };

export interface PaymentRow {
  eventId: string;
  orderNo: string;
  amountCents: number;
  outcome: StoredPaymentOutcome;
  refundReason: string | null;
  /** Stamped once by MySQL when the event was first recorded: the time the arrival rule judges. */
  receivedAt: Date;
  /** The provider the money came through, and its id of the payment (Stripe: the PaymentIntent); null for generic. */
  provider: PaymentProviderName;
  providerRef: string | null;
  /** The provider's refund, once one was asked for, and why the last attempt did not get one. */
  refundId: string | null;
  refundError: string | null;
  refundAttempts: number;
  /** The idempotency key attempt the next refund ask goes under (bumped after a 5xx: Stripe replays it). */
  refundKeyAttempt: number;
  /** When the provider says the money moved (Stripe: the charge's `created`); null for the generic webhook. */
  paidAtProvider: Date | null;
  /** The delivery owner that holds (or last held) the row's lease; null before any. */
  deliveryOwner: string | null;
}

/** A delivery owner's hold on a RECEIVED payment: its name, and for how long (MySQL's clock). */
export interface DeliveryLease {
  owner: string;
  leaseMs: number;
}

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

/** A PaymentIntent opened for an order (payment_intents), recorded before its client secret is shown. */
export interface PaymentIntentRow {
  intentId: string;
  orderNo: string;
  provider: PaymentProviderName;
  keyAttempt: number;
  amountCents: number;
  currency: string;
  clientSecret: string | null;
  /** The provider's status as last seen (Stripe's PaymentIntent status). */
  status: string;
}

/** What MySQL knows of an intent a provider event names and of the order its metadata names. */
export interface IntentStanding {
  /** The intent as recorded (for whichever order), or null when none of our orders opened it. */
  intent: Pick<PaymentIntentRow, 'orderNo' | 'currency'> | null;
  /** Whether the named order has a row, and how many intents it opened. */
  orderExists: boolean;
  orderIntents: number;
}

/** A provider's refund as it moves on: asked, done, or refused (REFUND_STATES). */
export interface RefundProgress {
  state: RefundState;
  refundId: string | null;
  error?: string;
}

/** A payment attempt the provider reports failed (a declined card): recorded, no money moved. */
export interface PaymentFailure {
  eventId: string;
  orderNo: string;
  provider: PaymentProviderName;
  providerRef: string | null;
  code: string | null;
  message: string | null;
}

/**
 * What cancelUnpaidOrder found under the order row's lock. PAID_IN_TIME: a payment of the full
 * amount was recorded at or before the deadline, so the order is not cancelled and is to be paid
 * with it. NOT_DUE: a payment timeout asked before MySQL's clock passed the deadline.
 */
export type CancelUnpaidResult =
  | { outcome: 'CANCELLED' }
  | { outcome: 'PAID_IN_TIME'; payment: { eventId: string; amountCents: number; receivedAt: Date } }
  /** MySQL's clock is `dueInMs` short of the deadline. */
  | { outcome: 'NOT_DUE'; dueInMs: number }
  /** No AWAITING_PAYMENT row (never written, or already closed): nothing to cancel. */
  | { outcome: 'NOT_AWAITING_PAYMENT' };

/** A sale's figures in MySQL, for invariant checks and reports. */
export interface SaleStockFigures {
  stock: number;
  available: number;
  /** Units (sum of quantities) of the SKU's orders by stored status. */
  units: Record<StoredOrderStatus, number>;
  /** Units held (AWAITING_PAYMENT + PAID) by the user who holds the most. */
  maxHeldByOneUser: number;
  /** Users holding at least one unit (AWAITING_PAYMENT or PAID). */
  usersHolding: number;
}

/** A payment as the admin views list it: the event, its order's sale, and when it arrived. */
export interface PaymentListRow extends PaymentRow {
  /** The SKU of the payment's order; null when the order has no row (yet). */
  sku: string | null;
}

/** Where a keyset page of payments starts: after this (received_at, event_id). */
export interface PaymentPosition {
  receivedAt: Date;
  eventId: string;
}

/** Where a keyset page of sales starts: after this (created_at, sku), newest first. */
export interface SalePosition {
  createdAt: Date;
  sku: string;
}

/**
 * Runs `work` in one transaction on one pooled connection: committed if it resolves, rolled back if
 * it throws. `readCommitted`: the transaction locks only the rows it reads (no gap locks) and each
 * read sees what is committed, for transactions that serialise on one row's lock.
 */
export async function inTransaction<T>(
  pool: Pool,
  work: (conn: PoolConnection) => Promise<T>,
  options: { readCommitted?: boolean } = {},
): Promise<T> {
  const conn = await pool.getConnection();
  try {
    if (options.readCommitted) await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
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

const isDuplicateKey = (err: unknown) => (err as { code?: string }).code === 'ER_DUP_ENTRY';

export class Store {
  constructor(readonly pool: Pool) {}

  /** A round trip, for health checks. */
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  // ---- sales ----------------------------------------------------------------------------------

  /**
   * Inserts the sale and, inside the same transaction, runs `alsoElsewhere` (the Redis definition):
   * the transaction commits only if that returns true, so the sale exists in both places or in
   * neither. Returns false when a sale for the SKU already exists (here or there).
   */
  async createSale(sale: SaleRecord, alsoElsewhere: () => Promise<boolean>): Promise<boolean> {
    try {
      return await inTransaction(this.pool, async (conn) => {
        await conn.query(
          `INSERT INTO sales (sku, name, price_cents, stock, available, per_user_limit, starts_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [sale.sku, sale.name, sale.priceCents, sale.stock, sale.stock, sale.perUserLimit, sale.startsAt, sale.endsAt],
        );
        if (!(await alsoElsewhere())) throw new SaleExistsElsewhere();
        return true;
      });
    } catch (err) {
      if (isDuplicateKey(err) || err instanceof SaleExistsElsewhere) return false;
      throw err;
    }
  }

  async getSale(sku: string): Promise<SaleRow | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT sku, name, price_cents, stock, available, per_user_limit, starts_at, ends_at, created_at FROM sales WHERE sku = ?',
      [sku],
    );
    const row = rows[0];
    return row ? toSaleRow(row) : null;
  }

  /**
   * Sets the sale's end to `endsAt` unless it ends at or before it already (the earlier end wins,
   * so a retried close never moves the end). Returns the sale's end afterwards; undefined when there
   * is no such sale.
   */
  async closeSale(sku: string, endsAt: Date): Promise<Date | null | undefined> {
    await this.pool.query('UPDATE sales SET ends_at = ? WHERE sku = ? AND (ends_at IS NULL OR ends_at > ?)', [
      endsAt,
      sku,
      endsAt,
    ]);
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT ends_at FROM sales WHERE sku = ?', [sku]);
    return rows[0] ? ((rows[0].ends_at as Date | null) ?? null) : undefined;
  }

  /** One page of sales, newest first (created_at, then SKU, descending), after `before` when given. */
  async salesPage(before: SalePosition | undefined, limit: number): Promise<SaleRow[]> {
    const columns = 'sku, name, price_cents, stock, available, per_user_limit, starts_at, ends_at, created_at';
    const [rows] = before
      ? await this.pool.query<RowDataPacket[]>(
          `SELECT ${columns} FROM sales WHERE created_at < ? OR (created_at = ? AND sku < ?) ORDER BY created_at DESC, sku DESC LIMIT ?`,
          [before.createdAt, before.createdAt, before.sku, limit],
        )
      : await this.pool.query<RowDataPacket[]>(
          `SELECT ${columns} FROM sales ORDER BY created_at DESC, sku DESC LIMIT ?`,
          [limit],
        );
    return rows.map(toSaleRow);
  }

  /** Test and operator helper: removes a sale row (orders keep their SKU). */
  async deleteSale(sku: string): Promise<void> {
    await this.pool.query('DELETE FROM sales WHERE sku = ?', [sku]);
  }

  // ---- orders ---------------------------------------------------------------------------------

  /** MySQL's clock (NOW(3)), in ms since the epoch: the one deadlines and arrivals are stamped by. */
  async clockMs(): Promise<number> {
    const [[row]] = await this.pool.query<RowDataPacket[]>('SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS ms');
    return Number(row?.ms);
  }

  async getOrder(orderNo: string): Promise<OrderRow | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT * FROM orders WHERE order_no = ?', [orderNo]);
    return rows[0] ? toOrderRow(rows[0]) : null;
  }

  /**
   * Inserts the order as AWAITING_PAYMENT and takes its units from MySQL's available stock, in one
   * transaction. Idempotent on the order number: a retry after a lost commit finds the row and
   * answers ALREADY_PERSISTED without taking stock twice.
   *
   * The first attempt of an order almost never finds a row, so it does not look first (one round
   * trip less per order, docs/performance.md): a row committed by an earlier attempt shows as a
   * duplicate key, whose rollback gives back the stock taken again, or, when that stock is no
   * longer there, as "out of stock", which is checked against the row before it is believed.
   */
  async insertAwaitingOrder(order: NewOrder): Promise<InsertOrderResult> {
    let result: InsertOrderResult;
    try {
      result = await inTransaction(this.pool, async (conn): Promise<InsertOrderResult> => {
        // Every insert of a SKU takes its sales row first, so they queue instead of deadlocking.
        // The guard in WHERE (and the table's CHECK) makes MySQL refuse to sell what it lacks.
        const [taken] = await conn.query<ResultSetHeader>(
          'UPDATE sales SET available = available - ? WHERE sku = ? AND available >= ?',
          [order.quantity, order.sku, order.quantity],
        );
        if (taken.affectedRows !== 1) {
          const [sale] = await conn.query<RowDataPacket[]>('SELECT available FROM sales WHERE sku = ?', [order.sku]);
          return sale[0]
            ? { outcome: 'OUT_OF_STOCK', available: Number(sale[0].available) }
            : { outcome: 'SALE_NOT_FOUND' };
        }
        await insertOrderRow(conn, order, 'AWAITING_PAYMENT', null);
        if (order.paymentWindowMs === undefined) return { outcome: 'INSERTED', paymentDeadline: order.paymentDeadline };
        const [[written]] = await conn.query<RowDataPacket[]>(
          'SELECT payment_deadline FROM orders WHERE order_no = ?',
          [order.orderNo],
        );
        return { outcome: 'INSERTED', paymentDeadline: written?.payment_deadline as Date };
      });
    } catch (err) {
      // An earlier attempt committed, or a concurrent one won; the rollback gave our stock back.
      // A plain read (no locking read: a gap lock here deadlocks concurrent inserts).
      if (isDuplicateKey(err)) {
        const existing = await this.existingOrderMatches(order);
        if (existing) return existing;
      }
      throw err;
    }
    // Nothing was taken: an earlier attempt may have persisted the order with the last units.
    if (result.outcome !== 'INSERTED') return (await this.existingOrderMatches(order)) ?? result;
    return result;
  }

  /**
   * An earlier attempt's row answers for this one only if it is the same order and was persisted (not ended without
   * it).
   */
  private async existingOrderMatches(order: NewOrder): Promise<InsertOrderResult | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT sku, user_id, status, failure_reason, payment_deadline FROM orders WHERE order_no = ?',
      [order.orderNo],
    );
    const row = rows[0];
    if (!row) return null;
    if (row.sku !== order.sku || row.user_id !== order.userId) return { outcome: 'CONFLICT' };
    const status = row.status as StoredOrderStatus;
    if (status === 'FAILED' || status === 'CANCELLED')
      return { outcome: 'CLOSED', status, failureReason: (row.failure_reason as string | null) ?? null };
    return { outcome: 'ALREADY_PERSISTED', paymentDeadline: row.payment_deadline as Date };
  }

  /**
   * The reconciler's first write when it gives an order up: a FAILED row, only where the order has
   * none (a row written meanwhile by the order's own start stays as it is). Answers the status the
   * row has afterwards: FAILED when this (or an earlier attempt) wrote it. Idempotent.
   */
  async insertFailedOrder(order: NewOrder, reason: string): Promise<StoredOrderStatus> {
    await insertOrderRow(this.pool, order, 'FAILED', reason.slice(0, 255), true);
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT status FROM orders WHERE order_no = ?', [
      order.orderNo,
    ]);
    return rows[0]?.status as StoredOrderStatus;
  }

  /**
   * Ends an order as FAILED, so no accepted checkout goes without a trace: writes a FAILED row when
   * there is none, and turns a row persisted as AWAITING_PAYMENT (a persist that committed although
   * its answer was lost) into FAILED, giving its units back to MySQL's available stock in the same
   * transaction. A row already final is left as it is. Idempotent.
   */
  async failOrder(order: NewOrder, reason: string): Promise<void> {
    const failureReason = reason.slice(0, 255);
    await inTransaction(this.pool, async (conn) => {
      const [rows] = await conn.query<RowDataPacket[]>(
        'SELECT sku, quantity, status FROM orders WHERE order_no = ? FOR UPDATE',
        [order.orderNo],
      );
      const row = rows[0];
      if (!row) {
        await insertOrderRow(conn, order, 'FAILED', failureReason, true);
        return;
      }
      if (row.status !== 'AWAITING_PAYMENT') return;
      await conn.query(`UPDATE orders SET status = 'FAILED', failure_reason = ? WHERE order_no = ?`, [
        failureReason,
        order.orderNo,
      ]);
      await conn.query('UPDATE sales SET available = available + ? WHERE sku = ?', [row.quantity, row.sku]);
    });
  }

  /** AWAITING_PAYMENT → PAID, and the payment recorded as applied, in one transaction. */
  async markPaid(payment: { orderNo: string; eventId: string; amountCents: number; paidAt: Date }): Promise<void> {
    await inTransaction(this.pool, async (conn) => {
      await conn.query(
        `UPDATE orders SET status = 'PAID', paid_at = ? WHERE order_no = ? AND status = 'AWAITING_PAYMENT'`,
        [payment.paidAt, payment.orderNo],
      );
      await conn.query(
        `INSERT INTO payments (event_id, order_no, amount_cents, outcome) VALUES (?, ?, ?, 'APPLIED')
         ON DUPLICATE KEY UPDATE outcome = 'APPLIED', refund_reason = NULL`,
        [payment.eventId, payment.orderNo, payment.amountCents],
      );
      // A refund or dispute the provider reported before the payment reached the order (events out of order).
      const [[takebacks]] = await conn.query<RowDataPacket[]>(
        'SELECT EXISTS (SELECT 1 FROM payment_takebacks WHERE order_no = ?) AS any_',
        [payment.orderNo],
      );
      if (Number(takebacks?.any_) === 1) await applyTakebacks(conn, payment.orderNo);
    });
  }

  // ---- money taken back after payment -----------------------------------------------------------

  /**
   * Records a refund or dispute the provider reported, forwards only, and moves a paid order to the status it makes
   * (PAID, DISPUTED, REFUNDED) in the same transaction, under the order row's lock. Answers whether the takeback
   * changed, and the order's status after (null: no row).
   */
  async recordTakeback(takeback: Takeback): Promise<{ changed: boolean; status: StoredOrderStatus | null }> {
    return inTransaction(
      this.pool,
      async (conn) => {
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
        if (!changed || !status || !(SOLD_STATUSES as readonly string[]).includes(status)) return { changed, status };
        return { changed, status: await applyTakebacks(conn, takeback.orderNo) };
      },
      { readCommitted: true },
    );
  }

  /** The refunds and disputes the provider reported on an order's payment, oldest first. */
  async takebacksOf(orderNo: string): Promise<Takeback[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT * FROM payment_takebacks WHERE order_no = ? ORDER BY created_at, takeback_id',
      [orderNo],
    );
    return rows.map(toTakeback);
  }

  /** A refund or dispute recorded by the provider's id, or null. */
  async getTakeback(id: string): Promise<Takeback | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT * FROM payment_takebacks WHERE takeback_id = ?', [
      id,
    ]);
    return rows[0] ? toTakeback(rows[0]) : null;
  }

  /** Which payment each of these provider events told of, and through what (webhook, catch-up, close). */
  async paymentEvidence(
    eventIds: readonly string[],
  ): Promise<Array<{ eventId: string; paymentEventId: string; source: string; receivedAt: Date }>> {
    if (eventIds.length === 0) return [];
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT event_id, payment_event_id, source, received_at FROM payment_evidence WHERE event_id IN (?)',
      [eventIds],
    );
    return rows.map((row) => ({
      eventId: String(row.event_id),
      paymentEventId: String(row.payment_event_id),
      source: String(row.source),
      receivedAt: row.received_at as Date,
    }));
  }

  /** The payment rows of these provider payments (Stripe: PaymentIntents); one at most each, by the schema. */
  async paymentsOfIntents(provider: PaymentProviderName, intentIds: readonly string[]): Promise<PaymentRow[]> {
    if (intentIds.length === 0) return [];
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE provider = ? AND provider_ref IN (?)`,
      [provider, intentIds],
    );
    return rows.map(toPaymentRow);
  }

  /** The payment recorded for a provider's payment (Stripe: its PaymentIntent), and the order that opened it. */
  async paymentOfIntent(
    provider: PaymentProviderName,
    intentId: string,
  ): Promise<{ payment: PaymentRow | null; orderNo: string | null }> {
    const [[payments], [intents]] = await Promise.all([
      this.pool.query<RowDataPacket[]>(
        `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE provider = ? AND provider_ref = ?`,
        [provider, intentId],
      ),
      this.pool.query<RowDataPacket[]>('SELECT order_no FROM payment_intents WHERE intent_id = ?', [intentId]),
    ]);
    const payment = payments[0] ? toPaymentRow(payments[0]) : null;
    return { payment, orderNo: payment?.orderNo ?? (intents[0] ? String(intents[0].order_no) : null) };
  }

  /** Orders whose money the provider took back, by status (the worker's gauges). */
  async takenBackCounts(): Promise<{ DISPUTED: number; REFUNDED: number; disputesDueWithin72h: number }> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT
         SUM(status = 'DISPUTED') AS disputed,
         SUM(status = 'REFUNDED') AS refunded,
         SUM(status = 'DISPUTED' AND dispute_due_by < NOW(3) + INTERVAL 72 HOUR) AS due_soon
       FROM orders WHERE status IN ('DISPUTED','REFUNDED')`,
    );
    const row = rows[0];
    return {
      DISPUTED: Number(row?.disputed ?? 0),
      REFUNDED: Number(row?.refunded ?? 0),
      disputesDueWithin72h: Number(row?.due_soon ?? 0),
    };
  }

  /**
   * Cancels an unpaid order unless a payment that pays it was recorded first: the arrival rule
   * (docs/fault-tolerance.md, "A payment's path"). Under the order row's lock, which recordPayment
   * takes too, so a payment is either recorded before this looks (and found: PAID_IN_TIME, nothing
   * changes) or after it committed (then MySQL stamps it later than the deadline, or than the
   * shopper's cancel). A payment timeout waits for MySQL's own clock to pass the deadline
   * (NOT_DUE), so a payment stamped at or before the deadline is always seen. Idempotent: a retry
   * after a lost commit finds the order CANCELLED.
   */
  async cancelUnpaidOrder(cancel: {
    orderNo: string;
    reason: CancelReason;
    cancelledAt: Date;
  }): Promise<CancelUnpaidResult> {
    return inTransaction(
      this.pool,
      async (conn): Promise<CancelUnpaidResult> => {
        const [rows] = await conn.query<RowDataPacket[]>(
          'SELECT sku, quantity, status, total_cents, payment_deadline FROM orders WHERE order_no = ? FOR UPDATE',
          [cancel.orderNo],
        );
        const order = rows[0];
        if (order?.status === 'CANCELLED') return { outcome: 'CANCELLED' };
        if (order?.status !== 'AWAITING_PAYMENT') return { outcome: 'NOT_AWAITING_PAYMENT' };
        // Read after the lock is held: a payment recorded from now on is stamped later than this.
        const [[clock]] = await conn.query<RowDataPacket[]>('SELECT TIMESTAMPDIFF(MICROSECOND, NOW(3), ?) AS dueInUs', [
          order.payment_deadline,
        ]);
        const dueInMs = Math.ceil(Number(clock?.dueInUs ?? 0) / 1_000);
        if (cancel.reason === 'PAYMENT_TIMEOUT' && dueInMs >= 0) return { outcome: 'NOT_DUE', dueInMs: dueInMs + 1 };
        const [paid] = await conn.query<RowDataPacket[]>(
          `SELECT event_id, amount_cents, received_at FROM payments
           WHERE order_no = ? AND amount_cents = ? AND received_at <= ? AND outcome IN ('RECEIVED','APPLIED')
           ORDER BY received_at, event_id LIMIT 1`,
          [cancel.orderNo, order.total_cents, order.payment_deadline],
        );
        const payment = paid[0];
        if (payment) {
          return {
            outcome: 'PAID_IN_TIME',
            payment: {
              eventId: String(payment.event_id),
              amountCents: Number(payment.amount_cents),
              receivedAt: payment.received_at as Date,
            },
          };
        }
        await conn.query(
          `UPDATE orders SET status = 'CANCELLED', cancel_reason = ?, cancelled_at = ? WHERE order_no = ?`,
          [cancel.reason, cancel.cancelledAt, cancel.orderNo],
        );
        await conn.query('UPDATE sales SET available = available + ? WHERE sku = ?', [order.quantity, order.sku]);
        return { outcome: 'CANCELLED' };
      },
      { readCommitted: true },
    );
  }

  /** The rows of the given orders, by order number (orders without a row are absent). */
  async getOrders(orderNos: readonly string[]): Promise<Map<string, OrderRow>> {
    if (orderNos.length === 0) return new Map();
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT * FROM orders WHERE order_no IN (?)', [orderNos]);
    return new Map(rows.map((row) => [String(row.order_no), toOrderRow(row)]));
  }

  /**
   * One page of a SKU's orders that hold units (AWAITING_PAYMENT or PAID), in order-number order
   * after `afterOrderNo`: the reconciler's cursor over MySQL.
   */
  async holdingOrdersPage(sku: string, afterOrderNo: string, limit: number): Promise<OrderRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT * FROM orders WHERE sku = ? AND status IN ('AWAITING_PAYMENT','PAID','DISPUTED','REFUNDED') AND order_no > ? ORDER BY order_no LIMIT ?`,
      [sku, afterOrderNo, limit],
    );
    return rows.map(toOrderRow);
  }

  /** Which of these SKUs have a sale row. */
  async existingSaleSkus(skus: readonly string[]): Promise<Set<string>> {
    if (skus.length === 0) return new Set();
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT sku FROM sales WHERE sku IN (?)', [skus]);
    return new Set(rows.map((row) => String(row.sku)));
  }

  /** One page of sale SKUs after `afterSku`, in SKU order. */
  async saleSkusPage(afterSku: string, limit: number): Promise<string[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT sku FROM sales WHERE sku > ? ORDER BY sku LIMIT ?', [
      afterSku,
      limit,
    ]);
    return rows.map((row) => String(row.sku));
  }

  /**
   * One page of a SKU's orders (those with a row: PENDING orders have none yet), newest first by
   * order number (which starts with its creation time), optionally of one status, before
   * `beforeOrderNo` when given.
   */
  async ordersPage(query: {
    sku: string;
    status?: StoredOrderStatus;
    beforeOrderNo?: string;
    limit: number;
  }): Promise<OrderRow[]> {
    const where = ['sku = ?'];
    const params: unknown[] = [query.sku];
    if (query.status) {
      where.push('status = ?');
      params.push(query.status);
    }
    if (query.beforeOrderNo) {
      where.push('order_no < ?');
      params.push(query.beforeOrderNo);
    }
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT * FROM orders WHERE ${where.join(' AND ')} ORDER BY order_no DESC LIMIT ?`,
      [...params, query.limit],
    );
    return rows.map(toOrderRow);
  }

  /** How many orders of a SKU are in each stored status. */
  async orderCountsByStatus(sku: string): Promise<Record<StoredOrderStatus, number>> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT status, COUNT(*) AS n FROM orders WHERE sku = ? GROUP BY status',
      [sku],
    );
    return Object.fromEntries(
      STORED_ORDER_STATUSES.map((status) => [status, Number(rows.find((r) => r.status === status)?.n ?? 0)]),
    ) as Record<StoredOrderStatus, number>;
  }

  /** How many of a SKU's orders are in `status`. */
  async countOrders(sku: string, status: StoredOrderStatus): Promise<number> {
    const [[row]] = await this.pool.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM orders WHERE sku = ? AND status = ?',
      [sku, status],
    );
    return Number(row?.n ?? 0);
  }

  /** Order number → creation time of every order of a SKU. */
  async orderCreationTimes(sku: string): Promise<Map<string, Date>> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT order_no, created_at FROM orders WHERE sku = ?', [
      sku,
    ]);
    return new Map(rows.map((r) => [String(r.order_no), r.created_at as Date]));
  }

  // ---- payments -------------------------------------------------------------------------------

  /**
   * Records a payment event as RECEIVED, once, and answers the stored row. A payment is its money:
   * one row per event for the generic webhook, one row per provider payment (Stripe's
   * PaymentIntent) otherwise, whichever event or read told of it first; every event is kept as
   * evidence of its row. MySQL stamps received_at on the first recording only, so every delivery
   * carries the same arrival time. Takes the order row's lock for the insert (when the row
   * exists), so the insert and cancelUnpaidOrder are ordered one way or the other, never interleaved.
   */
  async recordPayment(
    event: RecordedPaymentEvent,
    source = 'webhook',
    /** Money that must be given back whatever its order says: recorded so at once, never RECEIVED for a sweep. */
    refundReason?: RefundReason,
    /** A new RECEIVED row is leased to this delivery owner at once (no other process's sweep takes it meanwhile). */
    lease?: DeliveryLease,
  ): Promise<PaymentRow> {
    return inTransaction(
      this.pool,
      async (conn) => {
        await conn.query('SELECT order_no FROM orders WHERE order_no = ? LOCK IN SHARE MODE', [event.orderNo]);
        // Ignored on either key: the event's id seen before, or the provider's payment recorded by another event.
        await conn.query(
          `INSERT IGNORE INTO payments
             (event_id, order_no, amount_cents, outcome, refund_reason, provider, provider_ref, paid_at_provider,
              delivery_owner, delivery_due_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(3) + INTERVAL ? MICROSECOND)`,
          [
            event.eventId,
            event.orderNo,
            event.amountCents,
            refundReason ? 'REFUND_REQUIRED' : 'RECEIVED',
            refundReason ?? null,
            event.provider ?? 'generic',
            event.providerRef ?? null,
            event.paidAtProvider ?? null,
            lease?.owner ?? null,
            Math.round((lease?.leaseMs ?? 0) * 1_000),
          ],
        );
        const [rows] = await conn.query<RowDataPacket[]>(
          event.providerRef
            ? `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE event_id = ?
               UNION SELECT ${PAYMENT_COLUMNS} FROM payments WHERE provider = ? AND provider_ref = ?`
            : `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE event_id = ?`,
          event.providerRef ? [event.eventId, event.provider ?? 'generic', event.providerRef] : [event.eventId],
        );
        // The event's own row first (an event id seen before keeps its row), else the payment's.
        const row = rows.find((r) => String(r.event_id) === event.eventId) ?? rows[0];
        if (!row) throw new Error(`payment ${event.eventId} vanished after it was recorded`);
        // A provider's payment gathers its events; a generic event is its own row, nothing to add.
        if (event.providerRef)
          await conn.query(
            'INSERT IGNORE INTO payment_evidence (event_id, payment_event_id, source) VALUES (?, ?, ?)',
            [event.eventId, String(row.event_id), source],
          );
        return toPaymentRow(row);
      },
      { readCommitted: true },
    );
  }

  // ---- payment intents -------------------------------------------------------------------------

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

  /** Every intent an order opened, in the order they were opened. */
  async paymentIntentsOf(orderNo: string): Promise<PaymentIntentRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT * FROM payment_intents WHERE order_no = ? ORDER BY key_attempt, created_at',
      [orderNo],
    );
    return rows.map(toPaymentIntentRow);
  }

  /** The intent's status as the provider last told it. */
  async recordPaymentIntentStatus(intentId: string, status: string): Promise<void> {
    await this.pool.query('UPDATE payment_intents SET status = ? WHERE intent_id = ?', [status, intentId]);
  }

  /**
   * Where the order's opening stands: the idempotency key attempt it is asked under now (1 until a
   * 5xx moved it on), and whether the order's close at the provider has begun.
   */
  async paymentOpening(orderNo: string): Promise<{ keyAttempt: number; closed: boolean }> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT key_attempt, closed_at FROM payment_openings WHERE order_no = ?',
      [orderNo],
    );
    return { keyAttempt: Number(rows[0]?.key_attempt ?? 1), closed: Boolean(rows[0]?.closed_at) };
  }

  /**
   * Marks the order's close at the provider as begun, before its intents are read: an opening that
   * records an intent after that read finds the mark and cancels the intent itself.
   */
  async closePaymentOpening(orderNo: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO payment_openings (order_no, closed_at) VALUES (?, NOW(3))
       ON DUPLICATE KEY UPDATE closed_at = COALESCE(closed_at, NOW(3))`,
      [orderNo],
    );
  }

  /**
   * Moves the order's opening on to the key after `from` (the provider answered 5xx under it). Two
   * attempts that saw the same 5xx move it once.
   */
  async nextPaymentOpeningKey(orderNo: string, from: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO payment_openings (order_no, key_attempt) VALUES (?, ?)
       ON DUPLICATE KEY UPDATE key_attempt = GREATEST(key_attempt, VALUES(key_attempt))`,
      [orderNo, from + 1],
    );
  }

  /** The refund of a payment goes under the key after `from` from now on (the provider answered 5xx under it). */
  async nextRefundKey(eventId: string, from: number): Promise<void> {
    await this.pool.query(
      'UPDATE payments SET refund_key_attempt = GREATEST(refund_key_attempt, ?) WHERE event_id = ?',
      [from + 1, eventId],
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

  /**
   * Settles a payment still RECEIVED with the API's view of its outcome; one the workflow has
   * already recorded is left as the workflow wrote it.
   */
  async settleReceivedPayment(
    eventId: string,
    verdict: { outcome: PaymentOutcome; refundReason?: RefundReason },
  ): Promise<void> {
    await this.pool.query(
      `UPDATE payments SET outcome = ?, refund_reason = ? WHERE event_id = ? AND outcome = 'RECEIVED'`,
      [
        verdict.outcome,
        verdict.outcome === 'REFUND_REQUIRED' ? (verdict.refundReason ?? 'ORDER_NOT_AWAITING_PAYMENT') : null,
        eventId,
      ],
    );
  }

  /**
   * Leases up to `limit` payments still RECEIVED whose lease is over (or that never had one), recorded more than
   * `olderThanMs` ago by MySQL's clock, to `lease.owner`, and answers them: the sweep of a delivery owner. Rows come
   * in the order they fell due (a row recorded without a lease is due when recorded), so a row that keeps failing,
   * due later after each try, never hides newer ones.
   */
  async leaseDueDeliveries(lease: DeliveryLease, olderThanMs: number, limit: number): Promise<PaymentRow[]> {
    const [result] = await this.pool.query<ResultSetHeader>(
      `UPDATE payments SET delivery_owner = ?, delivery_due_at = NOW(3) + INTERVAL ? MICROSECOND
       WHERE outcome = 'RECEIVED' AND received_at < NOW(3) - INTERVAL ? MICROSECOND
         AND (delivery_due_at IS NULL OR delivery_due_at <= NOW(3))
       ORDER BY delivery_due_at, received_at LIMIT ?`,
      [lease.owner, Math.round(lease.leaseMs * 1_000), Math.round(olderThanMs * 1_000), limit],
    );
    if (result.affectedRows === 0) return [];
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE outcome = 'RECEIVED' AND delivery_owner = ? LIMIT ?`,
      [lease.owner, limit],
    );
    return rows.map(toPaymentRow);
  }

  /**
   * Takes (or keeps) the lease of a RECEIVED payment for `lease.owner` before a delivery: true when the row is its
   * owner's now (it held it, or the last lease is over), false when another owner holds it or it was judged.
   */
  async claimDelivery(eventId: string, lease: DeliveryLease): Promise<boolean> {
    const [result] = await this.pool.query<ResultSetHeader>(
      `UPDATE payments SET delivery_owner = ?, delivery_due_at = NOW(3) + INTERVAL ? MICROSECOND,
         delivery_attempts = delivery_attempts + 1
       WHERE event_id = ? AND outcome = 'RECEIVED'
         AND (delivery_owner <=> ? OR delivery_due_at IS NULL OR delivery_due_at <= NOW(3))`,
      [lease.owner, Math.round(lease.leaseMs * 1_000), eventId, lease.owner],
    );
    return result.affectedRows === 1;
  }

  /** A delivery that got no verdict: the owner keeps the row and tries again in `delayMs` (MySQL's clock). */
  async deferDelivery(eventId: string, owner: string, delayMs: number): Promise<void> {
    await this.pool.query(
      `UPDATE payments SET delivery_due_at = NOW(3) + INTERVAL ? MICROSECOND
       WHERE event_id = ? AND outcome = 'RECEIVED' AND delivery_owner = ?`,
      [Math.round(delayMs * 1_000), eventId, owner],
    );
  }

  /** Who delivers (or delivered) a payment, and how many deliveries were claimed for it. */
  async deliveryOf(eventId: string): Promise<{ owner: string | null; dueAt: Date | null; attempts: number } | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT delivery_owner, delivery_due_at, delivery_attempts FROM payments WHERE event_id = ?',
      [eventId],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      owner: (row.delivery_owner as string | null) ?? null,
      dueAt: (row.delivery_due_at as Date | null) ?? null,
      attempts: Number(row.delivery_attempts),
    };
  }

  /** A stopping owner's rows are due at once, for another owner's sweep. */
  async releaseDeliveries(ownerPrefix: string): Promise<void> {
    await this.pool.query(
      `UPDATE payments SET delivery_due_at = NOW(3) WHERE outcome = 'RECEIVED' AND delivery_owner LIKE ?`,
      [`${ownerPrefix.replace(/[\\%_]/g, '\\$&')}%`],
    );
  }

  /** Payments still RECEIVED (not judged yet), oldest first. */
  async receivedPayments(limit: number): Promise<PaymentRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE outcome = 'RECEIVED' ORDER BY received_at LIMIT ?`,
      [limit],
    );
    return rows.map(toPaymentRow);
  }

  /** Payments not judged yet (RECEIVED), and how old the oldest is by MySQL's clock (ms; 0 when none). */
  async receivedPaymentsBacklog(): Promise<{ count: number; oldestMs: number }> {
    const [[row]] = await this.pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n, COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(received_at), NOW(3)), 0) AS oldest_us
       FROM payments WHERE outcome = 'RECEIVED'`,
    );
    return { count: Number(row?.n ?? 0), oldestMs: Math.round(Number(row?.oldest_us ?? 0) / 1_000) };
  }

  /**
   * A payment that must be given back: late, a second one, or the wrong amount. A refund already
   * under way (REFUND_REQUESTED and after) is left as it is: a retried activity must not ask twice.
   */
  async recordRefundRequired(refund: {
    orderNo: string;
    eventId: string;
    amountCents: number;
    reason: RefundReason;
  }): Promise<void> {
    await this.pool.query(
      `INSERT INTO payments (event_id, order_no, amount_cents, outcome, refund_reason) VALUES (?, ?, ?, 'REFUND_REQUIRED', ?)
       ON DUPLICATE KEY UPDATE
         refund_reason = IF(outcome IN ('RECEIVED','APPLIED','REFUND_REQUIRED'), VALUES(refund_reason), refund_reason),
         outcome = IF(outcome IN ('RECEIVED','APPLIED','REFUND_REQUIRED'), 'REFUND_REQUIRED', outcome)`,
      [refund.eventId, refund.orderNo, refund.amountCents, refund.reason],
    );
  }

  // ---- refunds through a provider --------------------------------------------------------------

  /**
   * Refunds of providers that refund through their API that are due now by MySQL's clock, oldest first:
   * REFUND_REQUIRED ones to ask (never tried, or their backoff is over), and REFUND_REQUESTED ones to read again
   * until they end (their next look is due).
   */
  async refundsDue(limit: number): Promise<PaymentRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${PAYMENT_COLUMNS} FROM payments
       WHERE outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED') AND provider <> 'generic'
         AND (next_refund_at IS NULL OR next_refund_at <= NOW(3))
       ORDER BY received_at, event_id LIMIT ?`,
      [limit],
    );
    return rows.map(toPaymentRow);
  }

  /**
   * Takes a due refund for `leaseMs`: true for exactly one owner, which then asks the provider. A
   * taker that dies leaves the row due again when the lease ends; the provider's idempotency key
   * makes a second ask return the first refund.
   */
  async claimRefund(eventId: string, leaseMs: number): Promise<boolean> {
    const [result] = await this.pool.query<ResultSetHeader>(
      `UPDATE payments SET next_refund_at = NOW(3) + INTERVAL ? MICROSECOND, refund_attempts = refund_attempts + 1
       WHERE event_id = ? AND outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED')
         AND (next_refund_at IS NULL OR next_refund_at <= NOW(3))`,
      [Math.round(leaseMs * 1_000), eventId],
    );
    return result.affectedRows === 1;
  }

  /** The provider did not answer (or answered 5xx): due again in `delayMs`, with why. */
  async deferRefund(eventId: string, delayMs: number, error: string): Promise<void> {
    await this.pool.query(
      `UPDATE payments SET next_refund_at = NOW(3) + INTERVAL ? MICROSECOND, refund_error = ?
       WHERE event_id = ? AND outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED')`,
      [Math.round(delayMs * 1_000), error.slice(0, 500), eventId],
    );
  }

  /**
   * Moves a payment's refund on, by the payment's event id or the provider's refund id: only
   * forwards (REFUND_REQUIRED → REFUND_REQUESTED → REFUNDED → REFUND_FAILED, a refund the provider
   * reports failed after it succeeded included), so events that arrive twice or out of order never
   * move it back. Returns whether a row moved.
   */
  async recordRefundProgress(
    match: { eventId?: string; refundId?: string },
    progress: RefundProgress,
    /** A refund still under way (REFUND_REQUESTED) is read from the provider again after this, until it ends. */
    followInMs = REFUND_FIRST_FOLLOW_MS,
  ): Promise<boolean> {
    const from = REFUND_MOVES_FROM[progress.state];
    const [result] = await this.pool.query<ResultSetHeader>(
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
    return result.affectedRows > 0;
  }

  // ---- the provider's events caught up ------------------------------------------------------------

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

  /** Payments by outcome among those a provider refunds (the refunds-waiting gauge). */
  async providerRefundCounts(): Promise<Record<'REFUND_REQUIRED' | 'REFUND_REQUESTED' | 'REFUND_FAILED', number>> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT outcome, COUNT(*) AS n FROM payments
       WHERE provider <> 'generic' AND outcome IN ('REFUND_REQUIRED','REFUND_REQUESTED','REFUND_FAILED') GROUP BY outcome`,
    );
    const counts = { REFUND_REQUIRED: 0, REFUND_REQUESTED: 0, REFUND_FAILED: 0 };
    for (const row of rows) counts[row.outcome as keyof typeof counts] = Number(row.n);
    return counts;
  }

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

  /** The payment events of a sale's orders by outcome (refunds waiting, done, failed included). */
  async paymentCountsOfSale(sku: string): Promise<Record<StoredPaymentOutcome, number>> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT p.outcome, COUNT(*) AS n FROM payments p JOIN orders o ON o.order_no = p.order_no
       WHERE o.sku = ? GROUP BY p.outcome`,
      [sku],
    );
    const counts = Object.fromEntries(STORED_PAYMENT_OUTCOMES.map((outcome) => [outcome, 0])) as Record<
      StoredPaymentOutcome,
      number
    >;
    for (const row of rows) counts[row.outcome as StoredPaymentOutcome] = Number(row.n);
    return counts;
  }

  /** An order's failed payment attempts, oldest first. */
  async paymentFailuresOfOrder(orderNo: string): Promise<(PaymentFailure & { receivedAt: Date })[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT event_id, order_no, provider, provider_ref, code, message, received_at FROM payment_failures
       WHERE order_no = ? ORDER BY received_at, event_id`,
      [orderNo],
    );
    return rows.map((row) => ({
      eventId: String(row.event_id),
      orderNo: String(row.order_no),
      provider: row.provider as PaymentProviderName,
      providerRef: (row.provider_ref as string | null) ?? null,
      code: (row.code as string | null) ?? null,
      message: (row.message as string | null) ?? null,
      receivedAt: row.received_at as Date,
    }));
  }

  async getPayment(eventId: string): Promise<PaymentRow | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE event_id = ?`,
      [eventId],
    );
    const row = rows[0];
    if (!row) return null;
    return toPaymentRow(row);
  }

  /** One page of payments with `outcome`, oldest first (received_at, then event id), after `after` when given. */
  async paymentsPage(query: {
    outcome: StoredPaymentOutcome;
    after?: PaymentPosition;
    limit: number;
  }): Promise<PaymentListRow[]> {
    const columns = `${PAYMENT_COLUMNS.split(', ')
      .map((column) => `p.${column}`)
      .join(', ')}, o.sku`;
    const from = 'payments p LEFT JOIN orders o ON o.order_no = p.order_no';
    const [rows] = query.after
      ? await this.pool.query<RowDataPacket[]>(
          `SELECT ${columns} FROM ${from} WHERE p.outcome = ? AND (p.received_at > ? OR (p.received_at = ? AND p.event_id > ?))
           ORDER BY p.received_at, p.event_id LIMIT ?`,
          [query.outcome, query.after.receivedAt, query.after.receivedAt, query.after.eventId, query.limit],
        )
      : await this.pool.query<RowDataPacket[]>(
          `SELECT ${columns} FROM ${from} WHERE p.outcome = ? ORDER BY p.received_at, p.event_id LIMIT ?`,
          [query.outcome, query.limit],
        );
    return rows.map((row) => ({ ...toPaymentRow(row), sku: row.sku === null ? null : String(row.sku) }));
  }

  async paymentsOfOrder(orderNo: string): Promise<PaymentRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${PAYMENT_COLUMNS} FROM payments WHERE order_no = ? ORDER BY event_id`,
      [orderNo],
    );
    return rows.map(toPaymentRow);
  }

  // ---- reports --------------------------------------------------------------------------------

  /** MySQL's side of a sale's invariants; null when the sale does not exist. */
  async saleStockFigures(sku: string): Promise<SaleStockFigures | null> {
    const [[sale], [byStatus], [[held]]] = await Promise.all([
      this.pool.query<RowDataPacket[]>('SELECT stock, available FROM sales WHERE sku = ?', [sku]),
      this.pool.query<RowDataPacket[]>(
        'SELECT status, SUM(quantity) AS units FROM orders WHERE sku = ? GROUP BY status',
        [sku],
      ),
      this.pool.query<RowDataPacket[]>(
        `SELECT COALESCE(MAX(held), 0) AS maxHeld, COUNT(*) AS holders
         FROM (SELECT SUM(quantity) AS held FROM orders WHERE sku = ? AND status IN ('AWAITING_PAYMENT','PAID','DISPUTED','REFUNDED') GROUP BY user_id) t`,
        [sku],
      ),
    ]);
    const row = sale[0];
    if (!row) return null;
    const units = Object.fromEntries(
      STORED_ORDER_STATUSES.map((status) => [status, Number(byStatus.find((r) => r.status === status)?.units ?? 0)]),
    ) as Record<StoredOrderStatus, number>;
    return {
      stock: Number(row.stock),
      available: Number(row.available),
      units,
      maxHeldByOneUser: Number(held?.maxHeld ?? 0),
      usersHolding: Number(held?.holders ?? 0),
    };
  }

  /** The order numbers of a SKU that have a row (any status). */
  async orderNumbersOfSale(sku: string): Promise<Set<string>> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT order_no FROM orders WHERE sku = ?', [sku]);
    return new Set(rows.map((r) => String(r.order_no)));
  }
}

class SaleExistsElsewhere extends Error {}

const PAYMENT_COLUMNS =
  'event_id, order_no, amount_cents, outcome, refund_reason, received_at, provider, provider_ref, refund_id, refund_error, ' +
  'refund_attempts, refund_key_attempt, paid_at_provider, delivery_owner';

/** How long after a refund is asked it is first read again from its provider (if no event ended it meanwhile). */
export const REFUND_FIRST_FOLLOW_MS = 60_000;

/** The outcomes a refund may move to each state from: forwards only. */
const REFUND_MOVES_FROM: Record<RefundState, StoredPaymentOutcome[]> = {
  REFUND_REQUESTED: ['REFUND_REQUIRED'],
  REFUNDED: ['REFUND_REQUIRED', 'REFUND_REQUESTED'],
  REFUND_FAILED: ['REFUND_REQUIRED', 'REFUND_REQUESTED', 'REFUNDED'],
};

async function insertOrderRow(
  db: Pick<Pool, 'query'> | PoolConnection,
  order: NewOrder,
  status: StoredOrderStatus,
  failureReason: string | null,
  ignoreExisting = false,
): Promise<void> {
  await db.query(
    `INSERT ${ignoreExisting ? 'IGNORE ' : ''}INTO orders (order_no, sku, user_id, quantity, unit_price_cents, total_cents, status,
                         failure_reason, idempotency_key, payment_deadline, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ${order.paymentWindowMs === undefined ? '?' : 'GREATEST(CAST(? AS DATETIME(3)), NOW(3) + INTERVAL ? MICROSECOND)'}, ?)`,
    [
      order.orderNo,
      order.sku,
      order.userId,
      order.quantity,
      order.unitPriceCents,
      order.unitPriceCents * order.quantity,
      status,
      failureReason,
      order.idempotencyKey ?? null,
      order.paymentDeadline,
      ...(order.paymentWindowMs === undefined ? [] : [order.paymentWindowMs * 1_000]),
      order.createdAt,
    ],
  );
}

function toSaleRow(row: RowDataPacket): SaleRow {
  return {
    sku: String(row.sku),
    name: String(row.name),
    priceCents: Number(row.price_cents),
    stock: Number(row.stock),
    available: Number(row.available),
    perUserLimit: Number(row.per_user_limit),
    startsAt: (row.starts_at as Date | null) ?? null,
    endsAt: (row.ends_at as Date | null) ?? null,
    createdAt: row.created_at as Date,
  };
}

function toOrderRow(row: RowDataPacket): OrderRow {
  return {
    orderNo: String(row.order_no),
    sku: String(row.sku),
    userId: String(row.user_id),
    quantity: Number(row.quantity),
    unitPriceCents: Number(row.unit_price_cents),
    totalCents: Number(row.total_cents),
    status: row.status as StoredOrderStatus,
    cancelReason: (row.cancel_reason as CancelReason | null) ?? null,
    failureReason: (row.failure_reason as string | null) ?? null,
    idempotencyKey: (row.idempotency_key as string | null) ?? null,
    paymentDeadline: row.payment_deadline as Date,
    createdAt: row.created_at as Date,
    paidAt: (row.paid_at as Date | null) ?? null,
    cancelledAt: (row.cancelled_at as Date | null) ?? null,
    refundedCents: Number(row.refunded_cents ?? 0),
    dispute:
      row.dispute_status === null || row.dispute_status === undefined
        ? null
        : {
            standing: row.dispute_status as DisputeStanding,
            reason: (row.dispute_reason as string | null) ?? null,
            dueBy: (row.dispute_due_by as Date | null) ?? null,
            amountCents: Number(row.dispute_amount_cents ?? 0),
          },
  };
}

function toTakeback(row: RowDataPacket): Takeback {
  return {
    id: String(row.takeback_id),
    kind: row.kind as Takeback['kind'],
    provider: row.provider as PaymentProviderName,
    intentId: String(row.intent_id),
    orderNo: String(row.order_no),
    amountCents: Number(row.amount_cents),
    status: row.status as Takeback['status'],
    providerStatus: String(row.provider_status),
    stage: Number(row.stage),
    reason: (row.reason as string | null) ?? null,
    dueBy: (row.due_by as Date | null) ?? null,
    createdAt: row.created_at as Date,
  };
}

/**
 * Sets a paid order's status and figures from the takebacks recorded for it (paidOrderStatus); the caller holds the
 * order row's lock. Returns the status it has now.
 */
async function applyTakebacks(conn: PoolConnection, orderNo: string): Promise<StoredOrderStatus> {
  const [[order]] = await conn.query<RowDataPacket[]>('SELECT status, total_cents FROM orders WHERE order_no = ?', [
    orderNo,
  ]);
  if (!order) throw new Error(`order ${orderNo} vanished under its lock`);
  if (!(SOLD_STATUSES as readonly string[]).includes(String(order.status))) return order.status as StoredOrderStatus;
  const [[refunded], [disputes]] = await Promise.all([
    conn.query<RowDataPacket[]>(
      `SELECT COALESCE(SUM(amount_cents), 0) AS cents FROM payment_takebacks
       WHERE order_no = ? AND kind = 'REFUND' AND status IN ('PENDING','SUCCEEDED')`,
      [orderNo],
    ),
    conn.query<RowDataPacket[]>(
      `SELECT status, reason, due_by, amount_cents FROM payment_takebacks
       WHERE order_no = ? AND kind = 'DISPUTE' ORDER BY created_at DESC, takeback_id DESC LIMIT 1`,
      [orderNo],
    ),
  ]);
  const refundedCents = Number(refunded[0]?.cents ?? 0);
  const dispute = disputes[0];
  const status = paidOrderStatus(Number(order.total_cents), {
    refundedCents,
    dispute: dispute ? (dispute.status as DisputeStanding) : null,
  });
  await conn.query(
    `UPDATE orders SET status = ?, refunded_cents = ?, dispute_status = ?, dispute_reason = ?, dispute_due_by = ?,
       dispute_amount_cents = ? WHERE order_no = ?`,
    [
      status,
      refundedCents,
      dispute?.status ?? null,
      dispute?.reason ?? null,
      dispute?.due_by ?? null,
      dispute?.amount_cents ?? null,
      orderNo,
    ],
  );
  return status;
}

function toPaymentRow(row: RowDataPacket): PaymentRow {
  return {
    eventId: String(row.event_id),
    orderNo: String(row.order_no),
    amountCents: Number(row.amount_cents),
    outcome: row.outcome as StoredPaymentOutcome,
    refundReason: (row.refund_reason as string | null) ?? null,
    receivedAt: row.received_at as Date,
    provider: (row.provider as PaymentProviderName | undefined) ?? 'generic',
    providerRef: (row.provider_ref as string | null | undefined) ?? null,
    refundId: (row.refund_id as string | null | undefined) ?? null,
    refundError: (row.refund_error as string | null | undefined) ?? null,
    refundAttempts: Number(row.refund_attempts ?? 0),
    refundKeyAttempt: Number(row.refund_key_attempt ?? 1),
    paidAtProvider: (row.paid_at_provider as Date | null | undefined) ?? null,
    deliveryOwner: (row.delivery_owner as string | null | undefined) ?? null,
  };
}

function toPaymentIntentRow(row: RowDataPacket): PaymentIntentRow {
  return {
    intentId: String(row.intent_id),
    orderNo: String(row.order_no),
    provider: row.provider as PaymentProviderName,
    keyAttempt: Number(row.key_attempt),
    amountCents: Number(row.amount_cents),
    currency: String(row.currency),
    clientSecret: (row.client_secret as string | null) ?? null,
    status: String(row.status),
  };
}
