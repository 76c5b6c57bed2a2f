/** Order events (docs/api.md): one per fact the row decided; a feed whose cursor never skips a late commit. */
import type { EventStore, OrderEventRow } from '../db/events.js';
import type { WebhookStore } from '../db/webhooks.js';
import { Refusal } from '../infra/refusal.js';
import { CURSOR_POSITIONS, decodeCursor, encodeCursor } from '../infra/cursor.js';
import type { OrderEventType } from '../model/order-workflow.js';
import { adminOrderView } from '../sales/admin-service.js';

export type OrderEvent = ReturnType<typeof orderEventOf>;

/** `id` is stable (the receiver deduplicates by it); `created`: when it happened, by the order's own record. */
export function orderEventOf(row: OrderEventRow) {
  return {
    id: row.eventId,
    type: row.type,
    created: row.createdAt.toISOString(),
    data: { order: adminOrderView(row.order) },
  };
}

export class OrderEventFeed {
  constructor(
    private readonly events: Pick<EventStore, 'eventsAfter'>,
    private readonly retention: Pick<WebhookStore, 'prunedThroughSeq'>,
  ) {}

  /** Up to `limit` events after the cursor; one behind EVENTS_RETENTION is 410 (its page would be short, unsaid). */
  async read(query: {
    after?: string;
    types?: readonly OrderEventType[];
    limit: number;
  }): Promise<{ items: OrderEvent[]; nextCursor: string }> {
    const afterSeq = query.after ? Number(decodeCursor(query.after, CURSOR_POSITIONS.events)[0]) : 0;
    if (query.after && afterSeq < (await this.retention.prunedThroughSeq()))
      throw new Refusal(
        'CURSOR_EXPIRED',
        'events after this cursor are older than the feed keeps (EVENTS_RETENTION); read from the start, without a cursor',
      );
    const rows = await this.events.eventsAfter({
      afterSeq,
      ...(query.types ? { types: query.types } : {}),
      limit: query.limit,
    });
    // After the last event given, or where the request started when none was ready.
    const lastSeq = rows[rows.length - 1]?.seq ?? afterSeq;
    return { items: rows.map(orderEventOf), nextCursor: encodeCursor([String(lastSeq)]) };
  }
}
