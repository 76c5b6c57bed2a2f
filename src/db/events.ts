/** Order events, read by the feed; each is written by the transaction that decides its fact (recordOrderEvent). */
import type { RowDataPacket } from 'mysql2/promise';
import type { OrderEventType } from '../model/order-workflow.js';
import { ORDER_SNAPSHOT_DATES } from './orders.js';
import { cast, date, num, rowMapper, str, toOrderRow, Store } from './rows.js';

const EVENT_COLUMNS = 'seq, event_id, type, created_at, order_json';

/**
 * How far back an event may still be uncommitted: the age of the oldest transaction open now (information_schema, in
 * the server's own time zone, hence CONVERT_TZ), plus 1 s for its whole-second start and 1 s for a statement stamped
 * before it took its seq. An event recorded before that bound has every smaller seq committed or gone.
 */
export const SETTLED_BEFORE = `NOW(6) - INTERVAL (2000000 + COALESCE((
    SELECT MAX(TIMESTAMPDIFF(MICROSECOND, trx_started, CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', 'SYSTEM')))
    FROM information_schema.innodb_trx), 0)) MICROSECOND`;

export class EventStore extends Store {
  /** Events after `afterSeq` in seq order, up to the first one a transaction still open might precede. */
  async eventsAfter(query: { afterSeq: number; types?: readonly OrderEventType[]; limit: number }) {
    const types = query.types?.length ? query.types : undefined;
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${EVENT_COLUMNS} FROM order_events
       WHERE seq > ? AND recorded_at < ${SETTLED_BEFORE}${types ? ' AND type IN (?)' : ''}
       ORDER BY seq LIMIT ?`,
      [query.afterSeq, ...(types ? [types] : []), query.limit],
    );
    return rows.map(toOrderEventRow);
  }

  /** Every event of an order, in the order written. */
  async eventsOf(orderNo: string): Promise<OrderEventRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${EVENT_COLUMNS} FROM order_events WHERE order_no = ? ORDER BY seq`,
      [orderNo],
    );
    return rows.map(toOrderEventRow);
  }
}

export const toOrderEventRow = rowMapper({
  seq: num,
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
