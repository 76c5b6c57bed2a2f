/** What the stores share: row types and their mappers, the transaction helper, which errors are MySQL failing. */
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type {
  CancelReason,
  DisputeStanding,
  PaymentProviderName,
  StoredOrderStatus,
  StoredPaymentOutcome,
} from '../model/order-workflow.js';

/** The server refusing for a while, not the statement (contention, its connection limit, a failover, credentials). */
const TRANSIENT_SQL_ERRORS: ReadonlySet<string> = new Set([
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
  'ER_CONNECTION_KILLED',
  'ER_STATEMENT_TIMEOUT',
  'ER_OPTION_PREVENTS_STATEMENT',
  // Our credentials refused (MYSQL_URL): MySQL is unavailable to us until an operator fixes them, not a bug of ours.
  'ER_ACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
]);

/** MySQL unwell, not a statement refused for itself (a bug, 500): only that trips the API's breaker (503, retry). */
export function isMysqlFailure(err: unknown): boolean {
  const sqlError = err as { sqlState?: unknown; fatal?: unknown; code?: unknown };
  if (typeof sqlError.code === 'string' && TRANSIENT_SQL_ERRORS.has(sqlError.code)) return true;
  return !(typeof sqlError.sqlState === 'string' && sqlError.fatal !== true);
}

/**
 * READ COMMITTED (src/db/pool.ts): no gap locks, and each read sees what committed, as transactions serialised on an
 * order row's lock need. A deadlock (a payment and its order's first write) is run again, three times in all.
 */
export async function inTransaction<T>(pool: Pool, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const conn = await pool.getConnection();
    try {
      await conn.beginTransaction();
      const result = await work(conn);
      await conn.commit();
      return result;
    } catch (err) {
      await conn.rollback().catch(() => {});
      if (attempt >= 3 || (err as { code?: string }).code !== 'ER_LOCK_DEADLOCK') throw err;
    } finally {
      conn.release();
    }
  }
}

/** A store: its SQL over the service's one pool (src/db/stores.ts). */
export class Store {
  constructor(protected readonly pool: Pool) {}
}

export const isDuplicateKey = (err: unknown) => (err as { code?: string }).code === 'ER_DUP_ENTRY';

/** How a field reads its column's value (the whole row at hand for those that read others). */
type Read<T> = (value: unknown, row: RowDataPacket) => T;
export const str: Read<string> = (value) => String(value);
export const num: Read<number> = (value) => Number(value);
export const date: Read<Date> = (value) => value as Date;
export const cast = <T>(value: unknown) => value as T;
/** SQL NULL, or a column the row lacks (an order event's snapshot has no idempotency_key), reads as null. */
export const orNull = <T>(value: unknown) => (value as T | null | undefined) ?? null;
export const numOrNull = (value: unknown) => (value === null ? null : Number(value));

type RowOf<F extends Record<string, Read<unknown>>> = { [K in keyof F]: ReturnType<F[K]> };

/** Each field reads its snake_case column; `columns` lists them for a SELECT (when every field reads its own). */
export function rowMapper<F extends Record<string, Read<unknown>>>(fields: F) {
  const columns = Object.entries(fields).map(
    ([field, read]) => [field, field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), read] as const,
  );
  const map = (row: RowDataPacket) =>
    Object.fromEntries(columns.map(([field, column, read]) => [field, read(row[column], row)])) as RowOf<F>;
  return Object.assign(map, { columns: columns.map(([, column]) => column).join(', ') });
}

export const toSaleRow = rowMapper({
  sku: str,
  name: str,
  priceCents: num,
  stock: num,
  /** MySQL's own count of units not held by an AWAITING_PAYMENT or PAID order. */
  available: num,
  perUserLimit: num,
  startsAt: orNull<Date>,
  endsAt: orNull<Date>,
  createdAt: date,
});
export type SaleRow = ReturnType<typeof toSaleRow>;
export type SaleRecord = Omit<SaleRow, 'available' | 'createdAt'>;

/** A dispute as the order row keeps it; `dueBy`: by when evidence must reach the provider (evidence_details.due_by). */
export interface StoredDispute {
  standing: DisputeStanding;
  reason: string | null;
  dueBy: Date | null;
  amountCents: number;
}

/** An order as its row in MySQL stores it: the order once persisted, and its record once closed. */
export const toOrderRow = rowMapper({
  orderNo: str,
  sku: str,
  userId: str,
  quantity: num,
  unitPriceCents: num,
  totalCents: num,
  status: cast<StoredOrderStatus>,
  cancelReason: orNull<CancelReason>,
  failureReason: orNull<string>,
  idempotencyKey: orNull<string>,
  paymentDeadline: date,
  createdAt: date,
  paidAt: orNull<Date>,
  cancelledAt: orNull<Date>,
  /** The provider it is paid through when it has an API (Stripe); null for the generic webhook. */
  paymentProvider: orNull<string>,
  /** Refunded at the provider without us asking (DISPUTED and REFUNDED orders: docs/api.md). */
  refundedCents: (value) => Number(value ?? 0),
  /** The newest dispute of the order's payment. */
  dispute: (_, row): StoredDispute | null =>
    row.dispute_status === null || row.dispute_status === undefined
      ? null
      : {
          standing: row.dispute_status as DisputeStanding,
          reason: orNull<string>(row.dispute_reason),
          dueBy: orNull<Date>(row.dispute_due_by),
          amountCents: Number(row.dispute_amount_cents ?? 0),
        },
});
export type OrderRow = ReturnType<typeof toOrderRow>;

/** A reversal: a refund or dispute made at the provider, unasked; `stage` only grows (recordTakeback). */
export const toTakeback = rowMapper({
  id: (_, row) => String(row.takeback_id),
  kind: cast<'REFUND' | 'DISPUTE'>,
  provider: cast<PaymentProviderName>,
  intentId: str,
  orderNo: str,
  amountCents: num,
  /** A refund: PENDING, SUCCEEDED or FAILED; a dispute: its standing. */
  status: cast<'PENDING' | 'SUCCEEDED' | 'FAILED' | DisputeStanding>,
  providerStatus: str,
  stage: num,
  reason: orNull<string>,
  dueBy: orNull<Date>,
  /** When the provider made it (its clock). */
  createdAt: date,
});
export type Takeback = ReturnType<typeof toTakeback>;

export const toPaymentRow = rowMapper({
  eventId: str,
  orderNo: str,
  amountCents: num,
  outcome: cast<StoredPaymentOutcome>,
  refundReason: orNull<string>,
  /** Stamped once by MySQL when the event was first recorded: the time the arrival rule judges. */
  receivedAt: date,
  /** The provider the money came through, and its id of the payment (Stripe: the PaymentIntent); null for generic. */
  provider: (value) => (value as PaymentProviderName | undefined) ?? 'generic',
  providerRef: orNull<string>,
  /** The provider's refund, once one was asked for, and why the last attempt did not get one. */
  refundId: orNull<string>,
  refundError: orNull<string>,
  /** The idempotency key attempt the next refund ask goes under (bumped after a 5xx: Stripe replays it). */
  refundKeyAttempt: (value) => Number(value ?? 1),
  /** When the provider says the money moved (Stripe: the charge's `created`); null for the generic webhook. */
  paidAtProvider: orNull<Date>,
});
export type PaymentRow = ReturnType<typeof toPaymentRow>;

/** A PaymentIntent opened for an order (payment_intents), recorded before its client secret is shown. */
export const toPaymentIntentRow = rowMapper({
  intentId: str,
  orderNo: str,
  provider: cast<PaymentProviderName>,
  keyAttempt: num,
  amountCents: num,
  currency: str,
  clientSecret: orNull<string>,
  /** The provider's status as last seen (Stripe's PaymentIntent status). */
  status: str,
});
export type PaymentIntentRow = ReturnType<typeof toPaymentIntentRow>;
