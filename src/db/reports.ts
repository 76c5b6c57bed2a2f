/** Reads for the admin views, invariant checks, gauges and health: counts, keyset pages, MySQL's clock. No writes. */
import type { RowDataPacket } from 'mysql2/promise';
import {
  HOLDING_STATUSES,
  REFUNDS_OWED,
  STORED_ORDER_STATUSES,
  STORED_PAYMENT_OUTCOMES,
  type StoredOrderStatus,
  type StoredPaymentOutcome,
} from '../model/order-workflow.js';
import { toOrderRow, toPaymentRow, toSaleRow, type OrderRow, type PaymentRow, type SaleRow, Store } from './rows.js';

/** The outcomes of payments a provider refunds that are not refunded yet. */
const PROVIDER_REFUND_OUTCOMES = [...REFUNDS_OWED, 'REFUND_FAILED'] as const;

/** A payment as the admin views list it, with its order's SKU (null: the order has no row yet). */
export type PaymentListRow = PaymentRow & { sku: string | null };

export class ReportStore extends Store {
  /** A round trip, for health checks. */
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /** MySQL's clock (NOW(3)), in ms since the epoch: the one deadlines and arrivals are stamped by. */
  async clockMs(): Promise<number> {
    const [[row]] = await this.pool.query<RowDataPacket[]>('SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS ms');
    return Number(row?.ms);
  }

  /** Sales newest first, a keyset page after `before` (created_at, sku). */
  async salesPage(before: { createdAt: Date; sku: string } | undefined, limit: number): Promise<SaleRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${toSaleRow.columns} FROM sales ${before ? 'WHERE created_at < ? OR (created_at = ? AND sku < ?)' : ''}
       ORDER BY created_at DESC, sku DESC LIMIT ?`,
      [...(before ? [before.createdAt, before.createdAt, before.sku] : []), limit],
    );
    return rows.map(toSaleRow);
  }

  /** A page of orders with a row (not PENDING), newest first by number (creation time): all, a sale's, a shopper's. */
  async ordersPage(query: {
    userId?: string;
    sku?: string;
    status?: StoredOrderStatus;
    beforeOrderNo?: string;
    limit: number;
  }): Promise<OrderRow[]> {
    const where = (
      [
        ['user_id = ?', query.userId],
        ['sku = ?', query.sku],
        ['status = ?', query.status],
        ['order_no < ?', query.beforeOrderNo],
      ] as const
    ).filter(([, value]) => value !== undefined);
    // Read in index order, no sort: unhinted, MariaDB 10.11 intersected orders_by_user and orders_by_sku_order_no.
    const index = query.sku === undefined ? 'orders_by_user_order_no' : 'orders_by_user';
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT * FROM orders ${query.userId === undefined ? '' : `FORCE INDEX (${index})`}
       WHERE ${where.map(([condition]) => condition).join(' AND ') || 'TRUE'} ORDER BY order_no DESC LIMIT ?`,
      [...where.map(([, value]) => value), query.limit],
    );
    return rows.map(toOrderRow);
  }

  /** One shopper's orders (ordersPage): the operators' view (GET /api/admin/orders?userId=) and the shopper's own. */
  async shopperOrdersPage(query: Parameters<ReportStore['ordersPage']>[0] & { userId: string }): Promise<OrderRow[]> {
    return this.ordersPage(query);
  }

  /** Payments of one outcome oldest first, a keyset page after `after` (received_at, event_id). */
  async paymentsPage(query: {
    outcome: StoredPaymentOutcome;
    after?: { receivedAt: Date; eventId: string };
    limit: number;
  }): Promise<PaymentListRow[]> {
    const { after } = query;
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${toPaymentRow.columns.replace(/(\w+)/g, 'p.$1')}, o.sku FROM payments p LEFT JOIN orders o ON o.order_no = p.order_no
       WHERE p.outcome = ? ${after ? 'AND (p.received_at > ? OR (p.received_at = ? AND p.event_id > ?))' : ''}
       ORDER BY p.received_at, p.event_id LIMIT ?`,
      [query.outcome, ...(after ? [after.receivedAt, after.receivedAt, after.eventId] : []), query.limit],
    );
    return rows.map((row) => ({ ...toPaymentRow(row), sku: row.sku === null ? null : String(row.sku) }));
  }

  async orderCountsByStatus(sku: string): Promise<Record<StoredOrderStatus, number>> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT status, COUNT(*) AS n FROM orders WHERE sku = ? GROUP BY status',
      [sku],
    );
    return figuresBy(STORED_ORDER_STATUSES, rows, 'status', 'n');
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
    return figuresBy(STORED_PAYMENT_OUTCOMES, rows, 'outcome', 'n');
  }

  /** MySQL's side of a sale's invariants; null when the sale does not exist. */
  async saleStockFigures(sku: string) {
    const [[sale], [byStatus], [[held]]] = await Promise.all([
      this.pool.query<RowDataPacket[]>('SELECT stock, available FROM sales WHERE sku = ?', [sku]),
      this.pool.query<RowDataPacket[]>(
        'SELECT status, SUM(quantity) AS units, COUNT(idempotency_key) AS keyed FROM orders WHERE sku = ? GROUP BY status',
        [sku],
      ),
      this.pool.query<RowDataPacket[]>(
        `SELECT COALESCE(MAX(held), 0) AS maxHeld, COUNT(*) AS holders
         FROM (SELECT SUM(quantity) AS held FROM orders WHERE sku = ? AND status IN (?) GROUP BY user_id) t`,
        [sku, HOLDING_STATUSES],
      ),
    ]);
    const row = sale[0];
    if (!row) return null;
    return {
      stock: Number(row.stock),
      available: Number(row.available),
      /** Units (sum of quantities) of the SKU's orders by stored status. */
      units: figuresBy(STORED_ORDER_STATUSES, byStatus, 'status', 'units'),
      maxHeldByOneUser: Number(held?.maxHeld ?? 0),
      usersHolding: Number(held?.holders ?? 0),
      /** Orders of the SKU whose checkout sent an Idempotency-Key: Redis keeps each key's mapping as long. */
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
  async providerRefundCounts() {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT outcome, COUNT(*) AS n FROM payments
       WHERE provider <> 'generic' AND outcome IN (?) GROUP BY outcome`,
      [PROVIDER_REFUND_OUTCOMES],
    );
    return figuresBy(PROVIDER_REFUND_OUTCOMES, rows, 'outcome', 'n');
  }
}

/** Each key's figure: the `figure` column of the row whose `key` column names it; 0 when no row does. */
function figuresBy<K extends string>(keys: readonly K[], rows: RowDataPacket[], key: string, figure: string) {
  const figureOf = (k: K) => Number(rows.find((row) => row[key] === k)?.[figure] ?? 0);
  return Object.fromEntries(keys.map((k) => [k, figureOf(k)])) as Record<K, number>;
}
