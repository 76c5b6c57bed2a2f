/** Webhook endpoints, deliveries, attempts, the feed's retention; a delivery is an event's seq, no body copied. */
import type { PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { OrderEventType } from '../model/order-workflow.js';
import { EVENT_COLUMNS, positionCommitted, toOrderEventRow } from './events.js';
import { cast, date, inTransaction, num, numOrNull, orNull, rowMapper, str, Store } from './rows.js';

export const DELIVERY_STATUSES = ['PENDING', 'DELIVERED', 'GAVE_UP'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];
export const ATTEMPT_OUTCOMES = ['delivered', 'gone', 'slow_down', 'failed', 'refused'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

export type NewEndpoint = Pick<EndpointRow, 'endpointId' | 'url' | 'description' | 'secretBox'> & {
  eventTypes: readonly OrderEventType[];
  /** Default false: the shopper by the opaque reference only. */
  includeShopperId?: boolean;
};

/** A due delivery with its event, as sent. */
const toDueDelivery = rowMapper({
  seq: (_, row) => Number(row.event_seq),
  attempts: num,
  retryUntil: date,
  event: (_, row) => toOrderEventRow(row),
});
export type DueDelivery = ReturnType<typeof toDueDelivery>;

/** What an attempt leaves on its delivery; `next`: PENDING, tried again `inMs` from now (MySQL's clock), or final. */
export type AttemptRecord = Omit<AttemptRow, 'attemptId' | 'attemptedAt'> & {
  next: { status: 'PENDING'; inMs: number } | { status: 'DELIVERED' | 'GAVE_UP' };
};

/** An endpoint's sealed secrets: the one that signs, and the one beside it during a rotation's overlap. */
export interface SealedSecrets {
  endpointId: string;
  secretBox: Buffer;
  oldSecretBox: Buffer | null;
}

export interface DeliveryFigures {
  pending: number;
  /** Of the pending: those tried at least once (the endpoint failed them, or asked to slow down). */
  failing: number;
  delivered: number;
  gaveUp: number;
  /** When the oldest event still owed was queued; null when none is. */
  oldestPendingQueuedAt: Date | null;
}

/** What the worker's order-event gauges show, read once per reconcile run. */
export interface OrderEventFigures {
  /** The feed's newest position: how many events it has given a place, pruned ones included (0 before the first). */
  newestPosition: number;
  /** Every endpoint (none is ever deleted), enabled or not. */
  endpoints: Array<ReturnType<typeof toEndpointFigures>>;
}

const DELIVERY_COLUMNS =
  'd.endpoint_id, d.event_seq, e.event_id, e.type, d.status, d.attempts, d.next_attempt_at, d.retry_until, ' +
  'd.last_status, d.last_error, d.queued_at, d.delivered_at';

export class WebhookStore extends Store {
  /** A new endpoint, owed the events written from now on. */
  async createEndpoint(endpoint: NewEndpoint): Promise<EndpointRow> {
    await this.pool.query(
      `INSERT INTO webhook_endpoints (endpoint_id, url, event_types, description, include_shopper_id, enabled,
         secret_box, feed_position, created_at, updated_at)
       SELECT ?, ?, ?, ?, ?, 1, ?, positioned_through, NOW(3), NOW(3) FROM order_events_feed WHERE id = 1`,
      [
        endpoint.endpointId,
        endpoint.url,
        endpoint.eventTypes.join(','),
        endpoint.description,
        endpoint.includeShopperId ? 1 : 0,
        endpoint.secretBox,
      ],
    );
    const row = await this.getEndpoint(endpoint.endpointId);
    if (!row) throw new Error(`endpoint ${endpoint.endpointId} vanished after its insert`);
    return row;
  }

  async getEndpoint(endpointId: string): Promise<EndpointRow | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${toEndpointRow.columns} FROM webhook_endpoints WHERE endpoint_id = ?`,
      [endpointId],
    );
    return rows[0] ? toEndpointRow(rows[0]) : null;
  }

  /** Every endpoint, oldest first (a merchant has a handful). */
  async listEndpoints(limit = 500): Promise<EndpointRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${toEndpointRow.columns} FROM webhook_endpoints ORDER BY created_at, endpoint_id LIMIT ?`,
      [limit],
    );
    return rows.map(toEndpointRow);
  }

  async enabledEndpointIds(limit = 500): Promise<string[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT endpoint_id FROM webhook_endpoints WHERE enabled = 1 ORDER BY endpoint_id LIMIT ?',
      [limit],
    );
    return rows.map((row) => String(row.endpoint_id));
  }

  /** Changes what is given; enabling clears the disabled reason and any pause. Null: no such endpoint. */
  async updateEndpoint(
    endpointId: string,
    change: {
      url?: string;
      eventTypes?: readonly OrderEventType[];
      description?: string | null;
      includeShopperId?: boolean;
      enabled?: boolean;
    },
  ): Promise<EndpointRow | null> {
    const sets: string[] = [];
    const values: unknown[] = [];
    const set = (column: string, value: unknown) => {
      sets.push(`${column} = ?`);
      values.push(value);
    };
    if (change.url !== undefined) set('url', change.url);
    if (change.eventTypes !== undefined) set('event_types', change.eventTypes.join(','));
    if (change.description !== undefined) set('description', change.description);
    if (change.includeShopperId !== undefined) set('include_shopper_id', change.includeShopperId ? 1 : 0);
    if (change.enabled === true) sets.push('enabled = 1, disabled_reason = NULL, paused_until = NULL');
    if (change.enabled === false) sets.push(`enabled = 0, disabled_reason = 'disabled by an operator'`);
    if (sets.length > 0)
      await this.pool.query(
        `UPDATE webhook_endpoints SET ${sets.join(', ')}, updated_at = NOW(3) WHERE endpoint_id = ?`,
        [...values, endpointId],
      );
    return this.getEndpoint(endpointId);
  }

  /** The endpoint answered 410 Gone: no more attempts until an operator enables it again. */
  async disableEndpoint(endpointId: string, reason: string): Promise<void> {
    await this.pool.query(
      'UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, updated_at = NOW(3) WHERE endpoint_id = ?',
      [reason.slice(0, 300), endpointId],
    );
  }

  /** No attempt to the endpoint for `forMs` (it asked us to slow down); every owed delivery waits as long. */
  async pauseEndpoint(endpointId: string, forMs: number): Promise<void> {
    await inTransaction(this.pool, async (conn) => {
      await conn.query(
        'UPDATE webhook_endpoints SET paused_until = NOW(3) + INTERVAL ? MICROSECOND WHERE endpoint_id = ?',
        [Math.round(forMs * 1_000), endpointId],
      );
      await conn.query(
        `UPDATE webhook_deliveries SET next_attempt_at = GREATEST(next_attempt_at, NOW(3) + INTERVAL ? MICROSECOND)
         WHERE endpoint_id = ? AND status = 'PENDING'`,
        [Math.round(forMs * 1_000), endpointId],
      );
    });
  }

  /** Every endpoint's sealed secrets, disabled ones included (a key's rotation reseals them all). */
  async endpointSecretBoxes(): Promise<SealedSecrets[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT endpoint_id, secret_box, old_secret_box FROM webhook_endpoints ORDER BY endpoint_id',
    );
    return rows.map((row) => ({
      endpointId: String(row.endpoint_id),
      secretBox: row.secret_box as Buffer,
      oldSecretBox: (row.old_secret_box as Buffer | null) ?? null,
    }));
  }

  /** `to` in place of `from`, unless the endpoint's boxes changed since they were read (a rotation: it wins). */
  async replaceSecretBoxes(from: SealedSecrets, to: Omit<SealedSecrets, 'endpointId'>): Promise<void> {
    await this.pool.query(
      `UPDATE webhook_endpoints SET secret_box = ?, old_secret_box = ?
       WHERE endpoint_id = ? AND secret_box = ? AND old_secret_box <=> ?`,
      [to.secretBox, to.oldSecretBox, from.endpointId, from.secretBox, from.oldSecretBox],
    );
  }

  /** The current secret still signs until `oldUntil`; refused (`rotated` false) mid-overlap unless `replaceAll`. */
  async rotateSecret(
    endpointId: string,
    secretBox: Buffer,
    rotation: { oldUntil: Date; replaceAll: boolean },
  ): Promise<{ row: EndpointRow; rotated: boolean } | null> {
    const [changed] = await this.pool.query<ResultSetHeader>(
      `UPDATE webhook_endpoints SET old_secret_box = secret_box, secret_box = ?, old_secret_until = ?,
         updated_at = NOW(3)
       WHERE endpoint_id = ? AND (? OR old_secret_until IS NULL OR old_secret_until <= NOW(3))`,
      [secretBox, rotation.oldUntil, endpointId, rotation.replaceAll],
    );
    const row = await this.getEndpoint(endpointId);
    return row && { row, rotated: changed.affectedRows === 1 };
  }

  /** Queues the endpoint's events and moves its place on in one transaction; `more`: a full page was read. */
  async queueNewEvents(endpointId: string, retryPeriodMs: number, limit: number) {
    await positionCommitted(this.pool);
    return inTransaction(this.pool, async (conn) => {
      const [[endpoint]] = await conn.query<RowDataPacket[]>(
        'SELECT feed_position, event_types, enabled, paused_until FROM webhook_endpoints WHERE endpoint_id = ? FOR UPDATE',
        [endpointId],
      );
      if (!endpoint || Number(endpoint.enabled) !== 1) return { queued: 0, more: false, enabled: false };
      const [events] = await conn.query<RowDataPacket[]>(
        'SELECT seq, position, type FROM order_events WHERE position > ? ORDER BY position LIMIT ?',
        [endpoint.feed_position, limit],
      );
      if (events.length === 0) return { queued: 0, more: false, enabled: true };
      const types = typesOf(endpoint.event_types);
      const owed = events.filter((event) => types.length === 0 || types.includes(event.type as OrderEventType));
      // An endpoint that asked us to wait (pauseEndpoint) is owed its new events no sooner than its pause ends.
      if (owed.length > 0)
        await conn.query(
          `INSERT IGNORE INTO webhook_deliveries (endpoint_id, event_seq, status, next_attempt_at, retry_until, queued_at)
           SELECT ?, seq, 'PENDING', GREATEST(NOW(3), COALESCE(?, NOW(3))), NOW(3) + INTERVAL ? MICROSECOND, NOW(3)
           FROM order_events WHERE seq IN (?)`,
          [endpointId, endpoint.paused_until ?? null, retryPeriodMs * 1_000, owed.map((event) => event.seq)],
        );
      await conn.query('UPDATE webhook_endpoints SET feed_position = ? WHERE endpoint_id = ?', [
        events[events.length - 1]?.position,
        endpointId,
      ]);
      return { queued: owed.length, more: events.length === limit, enabled: true };
    });
  }

  /** Deliveries due now, oldest try first, with their events. */
  async dueDeliveries(endpointId: string, limit: number): Promise<DueDelivery[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT d.event_seq, d.attempts, d.retry_until, ${EVENT_COLUMNS}
       FROM webhook_deliveries d JOIN order_events e ON e.seq = d.event_seq
       WHERE d.endpoint_id = ? AND d.status = 'PENDING' AND d.next_attempt_at <= NOW(3)
       ORDER BY d.next_attempt_at, d.event_seq LIMIT ?`,
      [endpointId, limit],
    );
    return rows.map(toDueDelivery);
  }

  /** How long until the next owed delivery is due, by MySQL's clock (≤ 0: due now); null when nothing is owed. */
  async nextDueInMs(endpointId: string): Promise<number | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT TIMESTAMPDIFF(MICROSECOND, NOW(3), MIN(next_attempt_at)) AS micros FROM webhook_deliveries
       WHERE endpoint_id = ? AND status = 'PENDING'`,
      [endpointId],
    );
    const micros = rows[0]?.micros;
    return micros === null || micros === undefined ? null : Number(micros) / 1_000;
  }

  /** One attempt and what it leaves on its delivery, together; an attempt at a delivery no longer PENDING is kept. */
  async recordAttempt(endpointId: string, seq: number, attempt: AttemptRecord): Promise<void> {
    await inTransaction(this.pool, async (conn) => {
      await conn.query(
        `INSERT INTO webhook_attempts (endpoint_id, event_seq, attempted_at, outcome, http_status, error, duration_ms)
         VALUES (?, ?, NOW(3), ?, ?, ?, ?)`,
        [
          endpointId,
          seq,
          attempt.outcome,
          attempt.httpStatus,
          attempt.error?.slice(0, 400) ?? null,
          attempt.durationMs === null ? null : Math.round(attempt.durationMs),
        ],
      );
      await settleDelivery(conn, endpointId, seq, attempt);
    });
  }

  /** An endpoint's deliveries, newest event first, keyset-paged by seq; of `status` when given. */
  async deliveriesPage(endpointId: string, query: { status?: DeliveryStatus; beforeSeq?: number; limit: number }) {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN order_events e ON e.seq = d.event_seq
       WHERE d.endpoint_id = ?${query.status ? ' AND d.status = ?' : ''}${query.beforeSeq ? ' AND d.event_seq < ?' : ''}
       ORDER BY d.event_seq DESC LIMIT ?`,
      [endpointId, ...(query.status ? [query.status] : []), ...(query.beforeSeq ? [query.beforeSeq] : []), query.limit],
    );
    return rows.map(toDeliveryRow);
  }

  async deliveryOf(endpointId: string, eventId: string): Promise<DeliveryRow | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN order_events e ON e.seq = d.event_seq
       WHERE d.endpoint_id = ? AND e.event_id = ?`,
      [endpointId, eventId],
    );
    return rows[0] ? toDeliveryRow(rows[0]) : null;
  }

  /** A delivery's attempts, oldest first. */
  async attemptsOf(endpointId: string, seq: number, limit = 100): Promise<AttemptRow[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT attempt_id, attempted_at, outcome, http_status, error, duration_ms FROM webhook_attempts
       WHERE endpoint_id = ? AND event_seq = ? ORDER BY attempt_id LIMIT ?`,
      [endpointId, seq, limit],
    );
    return rows.map(toAttemptRow);
  }

  /** Due now with a fresh retry period, whatever became of it (even an event the endpoint was never owed). */
  async resend(endpointId: string, eventId: string, retryPeriodMs: number): Promise<boolean> {
    const [result] = await this.pool.query<ResultSetHeader>(
      `INSERT INTO webhook_deliveries (endpoint_id, event_seq, status, next_attempt_at, retry_until, queued_at)
       SELECT ?, seq, 'PENDING', NOW(3), NOW(3) + INTERVAL ? MICROSECOND, NOW(3) FROM order_events WHERE event_id = ?
       ON DUPLICATE KEY UPDATE status = 'PENDING', next_attempt_at = NOW(3), retry_until = VALUES(retry_until),
         delivered_at = NULL`,
      [endpointId, retryPeriodMs * 1_000, eventId],
    );
    return result.affectedRows > 0;
  }

  /** Per endpoint: what is owed (and failing), delivered and given up, and the oldest owed. */
  async deliveryFigures(): Promise<Map<string, DeliveryFigures>> {
    // Each status one range of webhook_deliveries_figures (013); only PENDING rows, the backlog, are read beyond it.
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT endpoint_id, status, COUNT(*) AS n, 0 AS failing, NULL AS oldest
       FROM webhook_deliveries FORCE INDEX (webhook_deliveries_figures)
       WHERE status IN ('DELIVERED', 'GAVE_UP') GROUP BY status, endpoint_id
       UNION ALL
       SELECT endpoint_id, status, COUNT(*), SUM(attempts > 0), MIN(queued_at)
       FROM webhook_deliveries FORCE INDEX (webhook_deliveries_figures)
       WHERE status = 'PENDING' GROUP BY endpoint_id`,
    );
    const figures = new Map<string, DeliveryFigures>();
    for (const row of rows) {
      const id = String(row.endpoint_id);
      const entry = figures.get(id) ?? { pending: 0, failing: 0, delivered: 0, gaveUp: 0, oldestPendingQueuedAt: null };
      const n = Number(row.n);
      if (row.status === 'PENDING') {
        entry.pending = n;
        entry.failing = Number(row.failing);
        entry.oldestPendingQueuedAt = row.oldest as Date;
      } else if (row.status === 'DELIVERED') entry.delivered = n;
      else entry.gaveUp = n;
      figures.set(id, entry);
    }
    return figures;
  }

  /** The worker's gauges in one read; deliveries in webhook_deliveries_figures (013) alone, DELIVERED ones never. */
  async orderEventFigures(): Promise<OrderEventFigures> {
    await positionCommitted(this.pool);
    // The feed's row first, joined to every endpoint: with no endpoint the newest seq is still read.
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT feed.positioned_through AS newest_seq, ep.endpoint_id, ep.enabled, COALESCE(p.n, 0) AS pending, p.oldest_age_us,
         COALESCE(g.n, 0) AS gave_up
       FROM order_events_feed feed
       LEFT JOIN webhook_endpoints ep ON TRUE
       LEFT JOIN (SELECT endpoint_id, COUNT(*) AS n, TIMESTAMPDIFF(MICROSECOND, MIN(queued_at), NOW(3)) AS oldest_age_us
                  FROM webhook_deliveries FORCE INDEX (webhook_deliveries_figures)
                  WHERE status = 'PENDING' GROUP BY endpoint_id) p ON p.endpoint_id = ep.endpoint_id
       LEFT JOIN (SELECT endpoint_id, COUNT(*) AS n
                  FROM webhook_deliveries FORCE INDEX (webhook_deliveries_figures)
                  WHERE status = 'GAVE_UP' GROUP BY endpoint_id) g ON g.endpoint_id = ep.endpoint_id
       WHERE feed.id = 1 ORDER BY ep.endpoint_id`,
    );
    return {
      newestPosition: Number(rows[0]?.newest_seq ?? 0),
      endpoints: rows.filter((row) => row.endpoint_id !== null).map(toEndpointFigures),
    };
  }

  /** Oldest events first, with their deliveries (retention ≥ retry period); a cursor before the mark is expired. */
  async pruneEvents(before: Date, limit: number): Promise<number> {
    // Positioned first: an event never positioned could be deleted without a cursor knowing it was skipped.
    await positionCommitted(this.pool);
    return inTransaction(this.pool, async (conn) => {
      const [rows] = await conn.query<RowDataPacket[]>(
        `SELECT seq, position, recorded_at < ? AS old FROM order_events WHERE position IS NOT NULL
         ORDER BY position LIMIT ?`,
        [before, limit],
      );
      // The oldest positions, up to the first one still kept: the feed loses a prefix, never a hole.
      const firstKept = rows.findIndex((row) => Number(row.old) !== 1);
      const pruned = firstKept === -1 ? rows : rows.slice(0, firstKept);
      const last = pruned[pruned.length - 1]?.position;
      if (last === undefined) return 0;
      const seqs = pruned.map((row) => Number(row.seq));
      await conn.query('DELETE FROM webhook_attempts WHERE event_seq IN (?)', [seqs]);
      await conn.query('DELETE FROM webhook_deliveries WHERE event_seq IN (?)', [seqs]);
      await conn.query('DELETE FROM order_events WHERE seq IN (?)', [seqs]);
      await conn.query('UPDATE order_events_feed SET pruned_through = GREATEST(pruned_through, ?) WHERE id = 1', [
        last,
      ]);
      return pruned.length;
    });
  }
}

async function settleDelivery(conn: PoolConnection, endpointId: string, seq: number, attempt: AttemptRecord) {
  const common = [attempt.httpStatus, attempt.error?.slice(0, 400) ?? null];
  if (attempt.next.status === 'PENDING')
    await conn.query(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?,
         next_attempt_at = GREATEST(next_attempt_at, NOW(3) + INTERVAL ? MICROSECOND)
       WHERE endpoint_id = ? AND event_seq = ? AND status = 'PENDING'`,
      [...common, Math.round(attempt.next.inMs * 1_000), endpointId, seq],
    );
  else
    await conn.query(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, status = ?,
         next_attempt_at = NULL, delivered_at = IF(? = 'DELIVERED', NOW(3), NULL)
       WHERE endpoint_id = ? AND event_seq = ? AND status = 'PENDING'`,
      [...common, attempt.next.status, attempt.next.status, endpointId, seq],
    );
}

function typesOf(column: unknown): OrderEventType[] {
  const text = String(column ?? '');
  return text === '' ? [] : (text.split(',') as OrderEventType[]);
}

const toEndpointRow = rowMapper({
  endpointId: str,
  url: str,
  /** Empty: every type. */
  eventTypes: typesOf,
  description: orNull<string>,
  /** Its events carry the shopper's own id beside the opaque customer reference. */
  includeShopperId: (value) => Number(value) === 1,
  enabled: (value) => Number(value) === 1,
  disabledReason: orNull<string>,
  secretBox: cast<Buffer>,
  oldSecretBox: orNull<Buffer>,
  oldSecretUntil: orNull<Date>,
  /** The feed's position up to which its events are queued. */
  feedPosition: num,
  pausedUntil: orNull<Date>,
  createdAt: date,
  updatedAt: date,
});
export type EndpointRow = ReturnType<typeof toEndpointRow>;

const toEndpointFigures = rowMapper({
  endpointId: str,
  enabled: (value) => Number(value) === 1,
  pending: num,
  gaveUp: num,
  /** How long ago, by MySQL's clock, its oldest pending delivery was queued; null when none is pending. */
  oldestPendingAgeSeconds: (_, row) =>
    row.oldest_age_us === null ? null : Math.max(0, Number(row.oldest_age_us) / 1_000_000),
});

const toDeliveryRow = rowMapper({
  endpointId: str,
  seq: (_, row) => Number(row.event_seq),
  eventId: str,
  type: cast<OrderEventType>,
  status: cast<DeliveryStatus>,
  attempts: num,
  nextAttemptAt: orNull<Date>,
  retryUntil: date,
  lastStatus: numOrNull,
  lastError: orNull<string>,
  queuedAt: date,
  deliveredAt: orNull<Date>,
});
export type DeliveryRow = ReturnType<typeof toDeliveryRow>;

const toAttemptRow = rowMapper({
  attemptId: num,
  attemptedAt: date,
  outcome: cast<AttemptOutcome>,
  httpStatus: numOrNull,
  error: orNull<string>,
  durationMs: numOrNull,
});
export type AttemptRow = ReturnType<typeof toAttemptRow>;
