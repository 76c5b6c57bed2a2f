/** Reads for the admin views, invariant checks, gauges and health: counts, keyset pages, MySQL's clock. No writes. */
import type { Pool, RowDataPacket } from 'mysql2/promise';
import {
  STORED_ORDER_STATUSES,
  STORED_PAYMENT_OUTCOMES,
  type StoredOrderStatus,
  type StoredPaymentOutcome,
} from '../model/order-workflow.js';
import {
  PAYMENT_COLUMNS,
  toOrderRow,
  toPaymentRow,
  toSaleRow,
  type OrderRow,
  type PaymentRow,
  type SaleRow,
} from './rows.js';

/** A sale's figures in MySQL, for invariant checks and reports. */
export interface SaleStockFigures {
  stock: number;
  available: number;
  /** Units (sum of quantities) of the SKU's orders by stored status. */
  units: Record<StoredOrderStatus, number>;
  maxHeldByOneUser: number;
  usersHolding: number;
  /** Orders of the SKU whose checkout sent an Idempotency-Key: Redis keeps each key's mapping as long. */
  keyedOrders: number;
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

export class ReportStore {
  constructor(private readonly pool: Pool) {}

  /** A round trip, for health checks. */
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /** MySQL's clock (NOW(3)), in ms since the epoch: the one deadlines and arrivals are stamped by. */
  async clockMs(): Promise<number> {
    const [[row]] = await this.pool.query<RowDataPacket[]>('SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS ms');
    return Number(row?.ms);
  }

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

  /** A page of a SKU's orders with a row (PENDING ones have none), newest first by order number (creation time). */
  async ordersPage(query: {
    sku?: string;
    status?: StoredOrderStatus;
    beforeOrderNo?: string;
    limit: number;
  }): Promise<OrderRow[]> {
    // Without a SKU: every order, read down the primary key (order numbers begin with their creation time).
    const where = query.sku !== undefined ? ['sku = ?'] : ['TRUE'];
    const params: unknown[] = query.sku !== undefined ? [query.sku] : [];
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

  /**
   * A page of one shopper's orders with a row, newest first by order number (creation time), of one sale or all. Each
   * form reads its index in order, no sort: all of them `orders_by_user_order_no` (user_id, order_no); one sale's
   * `orders_by_user` (user_id, sku, then the primary key, order_no). Named, because unhinted MariaDB 10.11 read a
   * shopper's orders of one sale by intersecting orders_by_user with orders_by_sku_order_no, then sorting them.
   */
  async shopperOrdersPage(query: {
    userId: string;
    sku?: string;
    status?: StoredOrderStatus;
    beforeOrderNo?: string;
    limit: number;
  }): Promise<OrderRow[]> {
    const where = ['user_id = ?'];
    const params: unknown[] = [query.userId];
    if (query.sku !== undefined) {
      where.push('sku = ?');
      params.push(query.sku);
    }
    // The operators' view (GET /api/admin/orders?userId=): a shopper's few orders, filtered as read.
    if (query.status !== undefined) {
      where.push('status = ?');
      params.push(query.status);
    }
    if (query.beforeOrderNo !== undefined) {
      where.push('order_no < ?');
      params.push(query.beforeOrderNo);
    }
    const index = query.sku === undefined ? 'orders_by_user_order_no' : 'orders_by_user';
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT * FROM orders FORCE INDEX (${index}) WHERE ${where.join(' AND ')} ORDER BY order_no DESC LIMIT ?`,
      [...params, query.limit],
    );
    return rows.map(toOrderRow);
  }

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

  async orderCountsByStatus(sku: string): Promise<Record<StoredOrderStatus, number>> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT status, COUNT(*) AS n FROM orders WHERE sku = ? GROUP BY status',
      [sku],
    );
    return Object.fromEntries(
      STORED_ORDER_STATUSES.map((status) => [status, Number(rows.find((r) => r.status === status)?.n ?? 0)]),
    ) as Record<StoredOrderStatus, number>;
  }

  async countOrders(sku: string, status: StoredOrderStatus): Promise<number> {
    const [[row]] = await this.pool.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM orders WHERE sku = ? AND status = ?',
      [sku, status],
    );
    return Number(row?.n ?? 0);
  }

  async orderCreationTimes(sku: string): Promise<Map<string, Date>> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT order_no, created_at FROM orders WHERE sku = ?', [
      sku,
    ]);
    return new Map(rows.map((r) => [String(r.order_no), r.created_at as Date]));
  }

  /** A sale's order numbers; of `status` when given. */
  async orderNumbersOfSale(sku: string, status?: StoredOrderStatus): Promise<Set<string>> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT order_no FROM orders WHERE sku = ?${status ? ' AND status = ?' : ''}`,
      [sku, ...(status ? [status] : [])],
    );
    return new Set(rows.map((r) => String(r.order_no)));
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

  /** MySQL's side of a sale's invariants; null when the sale does not exist. */
  async saleStockFigures(sku: string): Promise<SaleStockFigures | null> {
    const [[sale], [byStatus], [[held]]] = await Promise.all([
      this.pool.query<RowDataPacket[]>('SELECT stock, available FROM sales WHERE sku = ?', [sku]),
      this.pool.query<RowDataPacket[]>(
        'SELECT status, SUM(quantity) AS units, COUNT(idempotency_key) AS keyed FROM orders WHERE sku = ? GROUP BY status',
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
      keyedOrders: byStatus.reduce((sum, r) => sum + Number(r.keyed ?? 0), 0),
    };
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
}
