/** The order rows and the transactions that move them (persist, fail, pay, cancel), each under the row's lock. */
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import {
  HOLDING_STATUSES,
  isSold,
  judgeAtTheDoor,
  paymentOutcomesMovingTo,
  statusesMovingTo,
  type CancelReason,
  type CloseRequest,
  type CloseVerdict,
  type PaymentProviderName,
  type PaymentVerdict,
  type SoldStatus,
  type StoredOrderStatus,
} from '../model/order-workflow.js';
import {
  cast,
  date,
  inTransaction,
  isDuplicateKey,
  num,
  orNull,
  rowMapper,
  str,
  toOrderRow,
  type OrderRow,
  Store,
} from './rows.js';
import { recordOrderEvent } from './events.js';
import { applyTakebacks, disputeOwedMoney } from './refunds.js';

/** The columns an order row is written with; the others follow from them or from later changes. */
export type NewOrder = Pick<
  OrderRow,
  'orderNo' | 'sku' | 'userId' | 'quantity' | 'unitPriceCents' | 'paymentDeadline' | 'createdAt'
> & {
  idempotencyKey?: string;
  /** The deadline is MySQL's NOW() + this at the write, never before `paymentDeadline` (absent: that, as given). */
  paymentWindowMs?: number;
  /** The provider it is paid through when that provider has an API (Stripe): its intent decides its payments. */
  paymentProvider?: string;
};

/** A payment the order's row applied: what its workflow is told. */
export type AppliedPayment = Omit<DecidedPayment, 'provider' | 'verdict'>;

/** `paymentDeadline` as written; `applied`, `refundsOwed`: payments recorded before the row, as it decided them. */
export type InsertOrderResult =
  | { outcome: 'INSERTED'; paymentDeadline: Date; applied?: AppliedPayment; refundsOwed: OwedRefund[] }
  | { outcome: 'ALREADY_PERSISTED'; paymentDeadline: Date; applied?: AppliedPayment }
  | { outcome: 'SALE_NOT_FOUND' }
  | { outcome: 'OUT_OF_STOCK'; available: number }
  /** A row with this order number exists for another SKU or user. */
  | { outcome: 'CONFLICT' }
  /** The order was already ended FAILED or CANCELLED (the reconciler gave it up before this start persisted it). */
  | { outcome: 'CLOSED'; status: StoredOrderStatus; failureReason: string | null };

/** The one close's answer: the row's verdict; `changed`: readers are told; `refundsOwed`: refunds after the commit. */
export type ClosedOrder =
  | (CloseVerdict & { changed: boolean; refundsOwed: OwedRefund[] })
  /** A timeout asked before MySQL's clock reached the deadline: nothing changed; ask again in `dueInMs`. */
  | { outcome: 'NOT_DUE'; dueInMs: number; changed: false; refundsOwed: [] };

/** A payment left owed back, named for its refund's workflow. */
export type OwedRefund = Pick<DecidedPayment, 'eventId' | 'provider'>;

export class OrderStore extends Store {
  async getOrder(orderNo: string): Promise<OrderRow | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT * FROM orders WHERE order_no = ?', [orderNo]);
    return rows[0] ? toOrderRow(rows[0]) : null;
  }

  /** The rows of the given orders, by order number (orders without a row are absent). */
  async getOrders(orderNos: readonly string[]): Promise<Map<string, OrderRow>> {
    if (orderNos.length === 0) return new Map();
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT * FROM orders WHERE order_no IN (?)', [orderNos]);
    return new Map(rows.map((row) => [String(row.order_no), toOrderRow(row)]));
  }

  /** A page of a SKU's orders holding units, by order number after `afterOrderNo`: the reconciler's cursor. */
  async holdingOrdersPage(sku: string, afterOrderNo: string, limit: number): Promise<OrderRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT * FROM orders WHERE sku = ? AND status IN (?) AND order_no > ? ORDER BY order_no LIMIT ?`,
      [sku, HOLDING_STATUSES, afterOrderNo, limit],
    );
    return rows.map(toOrderRow);
  }

  /** A page of the SKU's orders whose checkout sent an Idempotency-Key, by order number. */
  async keyedOrdersPage(sku: string, afterOrderNo: string, limit: number) {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT order_no, user_id, idempotency_key FROM orders
       WHERE sku = ? AND idempotency_key IS NOT NULL AND order_no > ? ORDER BY order_no LIMIT ?`,
      [sku, afterOrderNo, limit],
    );
    return rows.map(rowMapper({ orderNo: str, userId: str, idempotencyKey: str }));
  }

  /** Doesn't read first (a round trip less): an earlier attempt shows as a duplicate key or "out of stock". */
  async insertAwaitingOrder(order: NewOrder): Promise<InsertOrderResult> {
    try {
      return await inTransaction(this.pool, async (conn): Promise<InsertOrderResult> => {
        await insertOrderRow(conn, order, 'AWAITING_PAYMENT', null);
        let paymentDeadline = order.paymentDeadline;
        if (order.paymentWindowMs !== undefined) {
          const [[written]] = await conn.query<RowDataPacket[]>(
            'SELECT payment_deadline FROM orders WHERE order_no = ?',
            [order.orderNo],
          );
          paymentDeadline = written?.payment_deadline as Date;
        }
        // The row written, the payments that came before it are its to decide (its workflow learns from this answer).
        const decided = await decideWaitingPayments(conn, order.orderNo, {
          status: 'AWAITING_PAYMENT',
          totalCents: order.unitPriceCents * order.quantity,
          paymentDeadline,
          paymentProvider: order.paymentProvider ?? null,
        });
        // Stock last: the SKU's sales row stays locked only until commit; the WHERE guard and CHECK refuse overselling.
        const [taken] = await conn.query<ResultSetHeader>(
          'UPDATE sales SET available = available - ? WHERE sku = ? AND available >= ?',
          [order.quantity, order.sku, order.quantity],
        );
        if (taken.affectedRows !== 1) throw new NothingTaken();
        const applied = appliedOf(decided);
        return { outcome: 'INSERTED', paymentDeadline, ...(applied ? { applied } : {}), refundsOwed: owedOf(decided) };
      });
    } catch (err) {
      // Nothing was taken: an earlier attempt may have persisted the order with the last units.
      if (err instanceof NothingTaken) {
        const [sales] = await this.pool.query<RowDataPacket[]>('SELECT available FROM sales WHERE sku = ?', [
          order.sku,
        ]);
        const result: InsertOrderResult = sales[0]
          ? { outcome: 'OUT_OF_STOCK', available: Number(sales[0].available) }
          : { outcome: 'SALE_NOT_FOUND' };
        return (await this.existingOrderMatches(order)) ?? result;
      }
      // An earlier attempt or a concurrent one won; a plain read (a locking read's gap lock deadlocks inserts).
      if (isDuplicateKey(err)) {
        const existing = await this.existingOrderMatches(order);
        if (existing) return existing;
      }
      throw err;
    }
  }

  /** An earlier attempt's row answers for this one only if it is the same order and was persisted, not ended. */
  private async existingOrderMatches(order: NewOrder): Promise<InsertOrderResult | null> {
    const [[row]] = await this.pool.query<RowDataPacket[]>(
      'SELECT sku, user_id, status, failure_reason, payment_deadline FROM orders WHERE order_no = ?',
      [order.orderNo],
    );
    if (!row) return null;
    if (row.sku !== order.sku || row.user_id !== order.userId) return { outcome: 'CONFLICT' };
    const status = row.status as StoredOrderStatus;
    if (status === 'FAILED' || status === 'CANCELLED')
      return { outcome: 'CLOSED', status, failureReason: (row.failure_reason as string | null) ?? null };
    const applied = isSold(status) ? await appliedPaymentOf(this.pool, order.orderNo) : undefined;
    return { outcome: 'ALREADY_PERSISTED', paymentDeadline: row.payment_deadline as Date, ...(applied && { applied }) };
  }

  /**
   * The one close (docs/fault-tolerance.md, "One close"): the row decides under its lock, whoever asks, payments
   * received first; the caller carries it out in Redis. Idempotent; no row: a FAILED one is written (PAYMENT: OPEN).
   */
  async close(order: NewOrder, request: CloseRequest): Promise<ClosedOrder> {
    return inTransaction(this.pool, async (conn): Promise<ClosedOrder> => {
      const [[row]] = await conn.query<RowDataPacket[]>(
        `SELECT sku, user_id, quantity, status, total_cents, payment_deadline, payment_provider, cancel_reason,
                failure_reason, paid_at, TIMESTAMPDIFF(MICROSECOND, NOW(3), payment_deadline) AS due_in_us
         FROM orders WHERE order_no = ? FOR UPDATE`,
        [order.orderNo],
      );
      // No row, or the number names another order (OrderConflict: another SKU or shopper; that row is untouched).
      if (!row || row.sku !== order.sku || row.user_id !== order.userId) {
        if (request.kind === 'PAYMENT') return { outcome: 'OPEN', changed: false, refundsOwed: [] };
        const named = request.kind === 'CANCEL' ? `${row ? 'OrderConflict' : 'OrderNotPersisted'}: ` : '';
        const reason = `${named}${request.reason}`.slice(0, 255);
        if (row) return { outcome: 'FAILED', reason, changed: false, refundsOwed: [] };
        await insertOrderRow(conn, order, 'FAILED', reason, true);
        await recordOrderEvent(conn, { orderNo: order.orderNo, type: 'order.failed', whenStatus: 'FAILED' });
        // Payments that came for it before any row are owed back for its failure (ORDER_FAILED).
        const decided = await decideWaitingPayments(conn, order.orderNo);
        return { outcome: 'FAILED', reason, changed: true, refundsOwed: owedOf(decided) };
      }
      // A payment received and not decided yet is decided first: one in time pays the order, whatever was asked.
      const held = toJudgedOrder(row);
      const decided = await decideWaitingPayments(conn, order.orderNo, held);
      const paid = decided.some((payment) => payment.verdict.outcome === 'APPLIED');
      const status: StoredOrderStatus = paid ? 'PAID' : held.status;
      const refundsOwed = owedOf(decided);
      const ended = (verdict: CloseVerdict, changed = decided.length > 0): ClosedOrder => ({
        ...verdict,
        changed,
        refundsOwed,
      });
      if (status === 'CANCELLED') return ended({ outcome: 'CANCELLED', reason: row.cancel_reason as CancelReason });
      if (status === 'FAILED') return ended({ outcome: 'FAILED', reason: String(row.failure_reason ?? 'FAILED') });
      if (isSold(status)) {
        if (request.kind !== 'RESERVATION_LOST') {
          const paidAt = paid ? await this.paidAtOf(conn, order.orderNo) : (row.paid_at as Date | null);
          return ended({ outcome: 'PAID', status: status as SoldStatus, paidAt: paidAt?.toISOString() ?? null });
        }
        // Sold, and Redis no longer holds its units: the order fails, its money owed back (ORDER_FAILED).
        refundsOwed.push(...(await failSoldOrder(conn, order.orderNo, row, request.reason)));
        return ended({ outcome: 'FAILED', reason: request.reason.slice(0, 255) }, true);
      }
      // Awaiting payment.
      if (request.kind === 'PAYMENT') return ended({ outcome: 'OPEN' });
      if (request.kind === 'CANCEL') {
        // Read under the lock: a payment recorded from now on is stamped later than this, so it is late.
        const dueInMs = Math.ceil(Number(row.due_in_us ?? 0) / 1_000);
        if (request.reason === 'PAYMENT_TIMEOUT' && dueInMs >= 0)
          return { outcome: 'NOT_DUE', dueInMs: dueInMs + 1, changed: false, refundsOwed: [] };
        const cancelled = { cancel_reason: request.reason, cancelled_at: MYSQL_NOW } as const;
        await endUnsold(conn, order.orderNo, row, 'CANCELLED', cancelled);
        return ended({ outcome: 'CANCELLED', reason: request.reason }, true);
      }
      const reason = request.reason.slice(0, 255);
      await endUnsold(conn, order.orderNo, row, 'FAILED', { failure_reason: reason });
      return ended({ outcome: 'FAILED', reason }, true);
    });
  }

  async appliedPayment(orderNo: string): Promise<AppliedPayment | undefined> {
    return appliedPaymentOf(this.pool, orderNo);
  }

  private async paidAtOf(conn: PoolConnection, orderNo: string): Promise<Date | null> {
    const [[row]] = await conn.query<RowDataPacket[]>('SELECT paid_at FROM orders WHERE order_no = ?', [orderNo]);
    return (row?.paid_at as Date | null) ?? null;
  }
}

/** A column set to MySQL's clock as the statement runs: one clock for a payment's times and an order's. */
const MYSQL_NOW = Symbol('NOW(3)');

/** Moves the row (its lock held) to `to`, with `columns`, along ORDER_MOVES only: another move is a bug, and throws. */
async function moveStatus(
  conn: PoolConnection,
  orderNo: string,
  to: StoredOrderStatus,
  columns: Record<string, string | number | null | typeof MYSQL_NOW> = {},
): Promise<void> {
  const names = Object.keys(columns);
  const set = names.map((name) => `, ${name} = ${columns[name] === MYSQL_NOW ? 'NOW(3)' : '?'}`).join('');
  const values = names.map((name) => columns[name]).filter((value) => value !== MYSQL_NOW);
  const [moved] = await conn.query<ResultSetHeader>(
    `UPDATE orders SET status = ?${set} WHERE order_no = ? AND status IN (?)`,
    [to, ...values, orderNo, statusesMovingTo(to)],
  );
  if (moved.affectedRows !== 1) throw new Error(`order ${orderNo}: no move to ${to} from its status (ORDER_MOVES)`);
}

/** An order no longer awaiting payment has nothing to pay through: its intents' client secrets are dropped. */
async function forgetClientSecrets(conn: PoolConnection, orderNo: string): Promise<void> {
  await conn.query('UPDATE payment_intents SET client_secret = NULL WHERE order_no = ? AND client_secret IS NOT NULL', [
    orderNo,
  ]);
}

/** The row (its lock held) moves to CANCELLED or FAILED, its units back in MySQL's stock, and tells of it. */
async function endUnsold(
  conn: PoolConnection,
  orderNo: string,
  row: RowDataPacket,
  to: 'CANCELLED' | 'FAILED',
  columns: Parameters<typeof moveStatus>[3],
): Promise<void> {
  await moveStatus(conn, orderNo, to, columns);
  if (row.payment_provider !== null) await forgetClientSecrets(conn, orderNo);
  await conn.query('UPDATE sales SET available = available + ? WHERE sku = ?', [row.quantity, row.sku]);
  await recordOrderEvent(conn, { orderNo, type: to === 'FAILED' ? 'order.failed' : 'order.cancelled' });
}

/** A sold order fails (its lock held): units back in MySQL's stock, its applied payment owed back (ORDER_FAILED). */
async function failSoldOrder(
  conn: PoolConnection,
  orderNo: string,
  row: RowDataPacket,
  reason: string,
): Promise<OwedRefund[]> {
  await endUnsold(conn, orderNo, row, 'FAILED', { failure_reason: reason.slice(0, 255) });
  // Perhaps with money taken back since: a failed order keeps no money; a chargeback already recorded is its refund.
  const [applied] = await conn.query<RowDataPacket[]>(
    `SELECT event_id, provider, provider_ref FROM payments WHERE order_no = ? AND outcome = 'APPLIED' FOR UPDATE`,
    [orderNo],
  );
  await conn.query(
    `UPDATE payments SET outcome = 'REFUND_REQUIRED', refund_reason = 'ORDER_FAILED'
     WHERE order_no = ? AND outcome = 'APPLIED' AND outcome IN (?)`,
    [orderNo, paymentOutcomesMovingTo('REFUND_REQUIRED')],
  );
  const owed: OwedRefund[] = [];
  for (const payment of applied) {
    const provider = payment.provider as PaymentProviderName;
    const settledByDispute =
      payment.provider_ref && (await disputeOwedMoney(conn, provider, String(payment.provider_ref)));
    if (!settledByDispute) owed.push({ eventId: String(payment.event_id), provider });
  }
  return owed;
}

/** The payments a decision left owed back. */
function owedOf(decided: readonly DecidedPayment[]): OwedRefund[] {
  return decided
    .filter((payment) => payment.verdict.outcome === 'REFUND_REQUIRED')
    .map((payment) => ({ eventId: payment.eventId, provider: payment.provider }));
}

/** The payment that paid the order, if one did (the earliest applied: one only, but for rows changed by hand). */
async function appliedPaymentOf(
  db: Pick<Pool, 'query'> | PoolConnection,
  orderNo: string,
): Promise<AppliedPayment | undefined> {
  const [[row]] = await db.query<RowDataPacket[]>(
    `SELECT event_id, amount_cents, received_at FROM payments WHERE order_no = ? AND outcome = 'APPLIED'
     ORDER BY received_at, event_id LIMIT 1`,
    [orderNo],
  );
  if (!row) return undefined;
  return { eventId: String(row.event_id), amountCents: Number(row.amount_cents), receivedAt: row.received_at as Date };
}

async function insertOrderRow(
  conn: PoolConnection,
  order: NewOrder,
  status: StoredOrderStatus,
  failureReason: string | null,
  ignoreExisting = false,
): Promise<void> {
  await conn.query(
    `INSERT ${ignoreExisting ? 'IGNORE ' : ''}INTO orders (order_no, sku, user_id, quantity, unit_price_cents, total_cents, status,
                         payment_provider, failure_reason, idempotency_key, payment_deadline, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ${order.paymentWindowMs === undefined ? '?' : 'GREATEST(CAST(? AS DATETIME(3)), NOW(3) + INTERVAL ? MICROSECOND)'}, ?)`,
    [
      order.orderNo,
      order.sku,
      order.userId,
      order.quantity,
      order.unitPriceCents,
      order.unitPriceCents * order.quantity,
      status,
      order.paymentProvider ?? null,
      failureReason,
      order.idempotencyKey ?? null,
      order.paymentDeadline,
      ...(order.paymentWindowMs === undefined ? [] : [order.paymentWindowMs * 1_000]),
      order.createdAt,
    ],
  );
}

/**
 * The order's row decides (docs/fault-tolerance.md, "A payment's path"); a payment leaves RECEIVED here only. A payment
 * and the row's first write each write their own row first, so the later to commit sees the other's. No gap locks:
 * order numbers grow, so one past the newest would hold up every new order's payment.
 */
export async function decideWaitingPayments(
  conn: PoolConnection,
  orderNo: string,
  /** The row as this transaction holds it (its lock held): not read again. */
  held?: JudgedOrder,
): Promise<DecidedPayment[]> {
  const [[read]] = held
    ? [[]]
    : await conn.query<RowDataPacket[]>(
        `SELECT status, total_cents, payment_deadline, payment_provider FROM orders WHERE order_no = ? FOR UPDATE`,
        [orderNo],
      );
  const order = held ?? (read && toJudgedOrder(read));
  if (!order) return [];
  const [waiting] = await conn.query<RowDataPacket[]>(
    // By outcome's index it would lock every order's RECEIVED payments (deadlocks seen at 100 payments/s).
    `SELECT event_id, amount_cents, received_at, provider FROM payments FORCE INDEX (payments_by_order)
     WHERE order_no = ? AND outcome = 'RECEIVED' ORDER BY received_at, event_id FOR UPDATE`,
    [orderNo],
  );
  let status = order.status;
  const decided: DecidedPayment[] = [];
  for (const payment of waiting.map(toWaitingPayment)) {
    const verdict = judgeAtTheDoor(
      {
        status,
        totalCents: order.totalCents,
        paymentDeadline: order.paymentDeadline.toISOString(),
        intentDecides: order.paymentProvider !== null,
      },
      { amountCents: payment.amountCents, receivedAt: payment.receivedAt.toISOString() },
    );
    if (verdict.outcome === 'APPLIED') {
      await moveStatus(conn, orderNo, 'PAID', { paid_at: MYSQL_NOW });
      if (order.paymentProvider !== null) await forgetClientSecrets(conn, orderNo);
      await conn.query(`UPDATE payments SET outcome = 'APPLIED' WHERE event_id = ? AND outcome IN (?)`, [
        payment.eventId,
        paymentOutcomesMovingTo('APPLIED'),
      ]);
      await recordOrderEvent(conn, { orderNo, type: 'order.paid' });
      const [[takebacks]] = await conn.query<RowDataPacket[]>(
        'SELECT EXISTS (SELECT 1 FROM payment_takebacks WHERE order_no = ?) AS any_',
        [orderNo],
      );
      if (Number(takebacks?.any_) === 1) await applyTakebacks(conn, orderNo);
      status = 'PAID';
    } else {
      await conn.query(
        `UPDATE payments SET outcome = 'REFUND_REQUIRED', refund_reason = ? WHERE event_id = ? AND outcome IN (?)`,
        [verdict.refundReason ?? null, payment.eventId, paymentOutcomesMovingTo('REFUND_REQUIRED')],
      );
    }
    decided.push({ ...payment, verdict });
  }
  return decided;
}

/** The order's row as read to decide its payments. */
const toJudgedOrder = rowMapper({
  status: cast<StoredOrderStatus>,
  totalCents: num,
  paymentDeadline: date,
  paymentProvider: orNull<string>,
});
type JudgedOrder = ReturnType<typeof toJudgedOrder>;

const toWaitingPayment = rowMapper({
  eventId: str,
  amountCents: num,
  receivedAt: date,
  provider: (value) => (value as PaymentProviderName | null) ?? 'generic',
});

/** insertAwaitingOrder's stock was not there (or no sale): the transaction rolls back, the order row with it. */
class NothingTaken extends Error {}

export type DecidedPayment = ReturnType<typeof toWaitingPayment> & { verdict: PaymentVerdict };

export function appliedOf(decided: readonly DecidedPayment[]): AppliedPayment | undefined {
  const applied = decided.find((payment) => payment.verdict.outcome === 'APPLIED');
  return applied && { eventId: applied.eventId, amountCents: applied.amountCents, receivedAt: applied.receivedAt };
}
