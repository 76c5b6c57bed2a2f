/** Order events: each written by the transaction deciding its fact, placed in the feed once committed. */
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { ROLLOUT_SMOKE_SKU, type OrderEventType } from '../model/order-workflow.js';
import { cast, date, inTransaction, num, numOrNull, rowMapper, str, toOrderRow, Store } from './rows.js';

/** The columns toOrderEventRow reads, on `order_events e`. */
export const EVENT_COLUMNS = 'e.seq, e.position, e.event_id, e.type, e.created_at, e.order_json';
/** Events positioned per transaction: a sale's few seconds of events at most. */
const POSITION_PAGE = 2_000;
/** Positions a type-filtered read scans at most: its cursor moves past them whether any matched or not. */
export const FEED_SCAN_WINDOW = 5_000;

/** A page of the feed, read in one statement: the events and the marks beside them agree. */
export interface FeedPage {
  events: OrderEventRow[];
  /** Positions up to here were deleted (EVENTS_RETENTION): a cursor before it would miss them. */
  prunedThrough: number;
  /** Where the next read starts: the last event given, or as far as this read looked when the page is not full. */
  nextAfter: number;
}

/**
 * Under the feed row's lock, skipping open transactions' (locked) events: every position up to `positioned_through` is
 * committed, in write order. Every feed reader calls it first; one finding another positioning returns 0.
 */
export async function positionCommitted(pool: Pool): Promise<number> {
  return inTransaction(pool, async (conn) => {
    const [[feed]] = await conn.query<RowDataPacket[]>(
      'SELECT positioned_through FROM order_events_feed WHERE id = 1 FOR UPDATE SKIP LOCKED',
    );
    if (!feed) return 0;
    const [rows] = await conn.query<RowDataPacket[]>(
      'SELECT seq FROM order_events WHERE position IS NULL ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED',
      [POSITION_PAGE],
    );
    if (rows.length === 0) return 0;
    const seqs = rows.map((row) => Number(row.seq));
    const from = Number(feed.positioned_through);
    // FIELD: a seq's place in the list, so positions follow the order written.
    await conn.query('UPDATE order_events SET position = ? + FIELD(seq, ?) WHERE seq IN (?)', [from, seqs, seqs]);
    await conn.query('UPDATE order_events_feed SET positioned_through = ? WHERE id = 1', [from + seqs.length]);
    return seqs.length;
  });
}

export class EventStore extends Store {
  /** A type-filtered read looks FEED_SCAN_WINDOW positions ahead at most and moves its cursor past them. */
  async feedPage(query: { after: number; types?: readonly OrderEventType[]; limit: number }): Promise<FeedPage> {
    await positionCommitted(this.pool);
    const types = query.types?.length ? query.types : undefined;
    const upTo = types ? 'LEAST(f.positioned_through, ? + ?)' : 'f.positioned_through';
    // One statement, one snapshot: a prune committing meanwhile is either wholly seen (410) or not at all.
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT f.pruned_through, ${upTo} AS looked_to, ${EVENT_COLUMNS}
       FROM order_events_feed f
       LEFT JOIN order_events e ON e.position > ? AND e.position <= ${upTo}${types ? ' AND e.type IN (?)' : ''}
       WHERE f.id = 1 ORDER BY e.position LIMIT ?`,
      [
        ...(types ? [query.after, FEED_SCAN_WINDOW] : []),
        query.after,
        ...(types ? [query.after, FEED_SCAN_WINDOW, types] : []),
        query.limit,
      ],
    );
    const head = rows[0];
    if (!head) throw new Error('order_events_feed has no row (migration 016)');
    const events = rows.filter((row) => row.position !== null).map(toOrderEventRow);
    const full = events.length === query.limit;
    const nextAfter = full
      ? Number(events[events.length - 1]!.position)
      : Math.max(query.after, Number(head.looked_to));
    return { events, prunedThrough: Number(head.pruned_through), nextAfter };
  }

  async eventsOf(orderNo: string): Promise<OrderEventRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${EVENT_COLUMNS} FROM order_events e WHERE order_no = ? ORDER BY seq`,
      [orderNo],
    );
    return rows.map(toOrderEventRow);
  }
}

export const toOrderEventRow = rowMapper({
  seq: num,
  /** Its place in the feed, given once it committed; null until then. */
  position: numOrNull,
  eventId: str,
  type: cast<OrderEventType>,
  createdAt: date,
  /** The order's row as the deciding transaction left it. */
  order: (_, row) => toOrderRow(snapshotOf(row.order_json)),
});
export type OrderEventRow = ReturnType<typeof toOrderEventRow>;

/** MySQL's JSON type arrives parsed, MariaDB's (LONGTEXT) as text; DATETIMEs in it are UTC text (time_zone +00:00). */
function snapshotOf(column: unknown): RowDataPacket {
  const json = (typeof column === 'string' ? JSON.parse(column) : column) as Record<string, unknown>;
  const snapshot: Record<string, unknown> = { ...json };
  for (const name of ORDER_SNAPSHOT_DATES) {
    const value = json[name];
    snapshot[name] = typeof value === 'string' ? new Date(`${value.replace(' ', 'T')}Z`) : null;
  }
  return snapshot as RowDataPacket;
}

/** When the fact happened, by the order's own record: its column, or a time the caller read from the provider. */
const CREATED_AT: Partial<Record<OrderEventType, string>> = {
  'order.paid': 'paid_at',
  'order.cancelled': 'cancelled_at',
};

/** The order row's columns an event keeps (every one the admin view shows), as JSON. */
const ORDER_SNAPSHOT = `JSON_OBJECT(${(
  'order_no sku user_id quantity unit_price_cents total_cents status cancel_reason failure_reason payment_deadline ' +
  'created_at paid_at cancelled_at payment_provider refunded_cents dispute_status dispute_reason dispute_due_by ' +
  'dispute_amount_cents'
)
  .split(' ')
  .map((column) => `'${column}', ${column}`)
  .join(', ')})`;
const ORDER_SNAPSHOT_DATES = ['payment_deadline', 'created_at', 'paid_at', 'cancelled_at', 'dispute_due_by'];

/** In the deciding transaction (row lock held); once: a retry finds the unique key. `whenStatus`: if still in it. */
export async function recordOrderEvent(
  conn: PoolConnection,
  event: { orderNo: string; type: OrderEventType; occurrence?: string; createdAt?: Date; whenStatus?: string },
): Promise<void> {
  const occurrence = event.occurrence ?? '';
  const createdAt = CREATED_AT[event.type] ?? 'COALESCE(?, NOW(3))';
  // The rollout's smoke orders are the operator's own: no merchant hears of them.
  await conn.query(
    `INSERT IGNORE INTO order_events (event_id, order_no, type, occurrence, created_at, order_json)
     SELECT ?, order_no, ?, ?, ${createdAt}, ${ORDER_SNAPSHOT} FROM orders
     WHERE order_no = ? AND sku <> ?${event.whenStatus ? ' AND status = ?' : ''}`,
    [
      orderEventId(event.orderNo, event.type, occurrence),
      event.type,
      occurrence,
      ...(CREATED_AT[event.type] ? [] : [event.createdAt ?? null]),
      event.orderNo,
      ROLLOUT_SMOKE_SKU,
      ...(event.whenStatus ? [event.whenStatus] : []),
    ],
  );
}

/** Stable: the receiver's deduplication key, the same however often the event is sent. */
export function orderEventId(orderNo: string, type: OrderEventType, occurrence = ''): string {
  return `${orderNo}.${type}${occurrence ? `.${occurrence}` : ''}`;
}
