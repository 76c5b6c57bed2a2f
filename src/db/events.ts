/** Order events, read by the feed; each is written by the transaction that decides its fact (recordOrderEvent). */
import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { OrderEventType } from '../model/order-workflow.js';
import { ORDER_SNAPSHOT_DATES } from './orders.js';
import { toOrderRow, type OrderRow } from './rows.js';

export interface OrderEventRow {
  seq: number;
  eventId: string;
  type: OrderEventType;
  createdAt: Date;
  /** The order's row as the deciding transaction left it. */
  order: OrderRow;
}

/**
 * How far back an event may still be uncommitted: the age of the oldest transaction open now (information_schema, in
 * the server's own time zone, hence CONVERT_TZ), plus 1 s for its whole-second start and 1 s for a statement stamped
 * before it took its seq. An event recorded before that bound has every smaller seq committed or gone.
 */
export const SETTLED_BEFORE = `NOW(6) - INTERVAL (2000000 + COALESCE((
    SELECT MAX(TIMESTAMPDIFF(MICROSECOND, trx_started, CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', 'SYSTEM')))
    FROM information_schema.innodb_trx), 0)) MICROSECOND`;

export class EventStore {
  constructor(private readonly pool: Pool) {}

  /** Events after `afterSeq` in seq order, up to the first one a transaction still open might precede. */
  async eventsAfter(query: {
    afterSeq: number;
    types?: readonly OrderEventType[];
    limit: number;
  }): Promise<OrderEventRow[]> {
    const types = query.types?.length ? query.types : undefined;
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT seq, event_id, type, created_at, order_json FROM order_events
       WHERE seq > ? AND recorded_at < ${SETTLED_BEFORE}${types ? ' AND type IN (?)' : ''}
       ORDER BY seq LIMIT ?`,
      [query.afterSeq, ...(types ? [types] : []), query.limit],
    );
    return rows.map(toOrderEventRow);
  }

  /** Every event of an order, in the order written. */
  async eventsOf(orderNo: string): Promise<OrderEventRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT seq, event_id, type, created_at, order_json FROM order_events WHERE order_no = ? ORDER BY seq',
      [orderNo],
    );
    return rows.map(toOrderEventRow);
  }
}

export function toOrderEventRow(row: RowDataPacket): OrderEventRow {
  // MySQL's JSON type arrives parsed, MariaDB's (LONGTEXT) as text; DATETIMEs in it are UTC text (time_zone +00:00).
  const json = (typeof row.order_json === 'string' ? JSON.parse(row.order_json) : row.order_json) as Record<
    string,
    unknown
  >;
  const snapshot: Record<string, unknown> = { ...json };
  for (const column of ORDER_SNAPSHOT_DATES) {
    const value = json[column];
    snapshot[column] = typeof value === 'string' ? new Date(`${value.replace(' ', 'T')}Z`) : null;
  }
  return {
    seq: Number(row.seq),
    eventId: String(row.event_id),
    type: row.type as OrderEventType,
    createdAt: row.created_at as Date,
    order: toOrderRow(snapshot as RowDataPacket),
  };
}
