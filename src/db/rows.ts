/** What the stores share: row types and their mappers, the transaction helper, which errors are MySQL failing. */
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type {
  CancelReason,
  DisputeStanding,
  PaymentProviderName,
  StoredOrderStatus,
  StoredPaymentOutcome,
} from '../model/order-workflow.js';

/**
 * The server refusing for a while, not the statement: contention (a deadlock still there after inTransaction's
 * retries, a lock wait), its connection limit, a shutdown, a kill, a replica still read-only after a failover.
 */
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
]);

/**
 * MySQL unwell (connection lost, timeout, fatal, a transient refusal), not a statement refused for what it is: only
 * that trips the API's breaker and answers 503 (retry); a statement refused for itself is a bug (500).
 */
export function isMysqlFailure(err: unknown): boolean {
  const sqlError = err as { sqlState?: unknown; fatal?: unknown; code?: unknown };
  if (typeof sqlError.code === 'string' && TRANSIENT_SQL_ERRORS.has(sqlError.code)) return true;
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
  /** The provider it is paid through when it has an API (Stripe); null for the generic webhook. */
  paymentProvider: string | null;
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

/** A refund or dispute reported on our payment unasked; `stage` only grows (recordTakeback keeps the furthest). */
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
  /** The idempotency key attempt the next refund ask goes under (bumped after a 5xx: Stripe replays it). */
  refundKeyAttempt: number;
  /** When the provider says the money moved (Stripe: the charge's `created`); null for the generic webhook. */
  paidAtProvider: Date | null;
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

/**
 * Runs `work` in one transaction, committed if it resolves. Connections are READ COMMITTED (src/db/pool.ts): no gap
 * locks, and each read sees what is committed, as transactions serialised on an order row's lock need. A deadlock (a
 * payment and its order's first write, each locking the other's row) is run again, up to three times in all.
 */
export async function inTransaction<T>(pool: Pool, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await oneTransaction(pool, work);
    } catch (err) {
      if (attempt >= 3 || (err as { code?: string }).code !== 'ER_LOCK_DEADLOCK') throw err;
    }
  }
}

async function oneTransaction<T>(pool: Pool, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
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

export const isDuplicateKey = (err: unknown) => (err as { code?: string }).code === 'ER_DUP_ENTRY';

export const PAYMENT_COLUMNS =
  'event_id, order_no, amount_cents, outcome, refund_reason, received_at, provider, provider_ref, refund_id, refund_error, ' +
  'refund_key_attempt, paid_at_provider';

export function toSaleRow(row: RowDataPacket): SaleRow {
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

export function toOrderRow(row: RowDataPacket): OrderRow {
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
    paymentProvider: (row.payment_provider as string | null) ?? null,
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

export function toTakeback(row: RowDataPacket): Takeback {
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

export function toPaymentRow(row: RowDataPacket): PaymentRow {
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
    refundKeyAttempt: Number(row.refund_key_attempt ?? 1),
    paidAtProvider: (row.paid_at_provider as Date | null | undefined) ?? null,
  };
}

export function toPaymentIntentRow(row: RowDataPacket): PaymentIntentRow {
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
