/**
 * Order events as the merchant's systems read them (docs/api.md, "Order events"): one envelope per fact the order's row
 * decided, and the feed to catch up from, in creation order with a cursor that never skips a late commit.
 */
import type { EventStore, OrderEventRow } from '../db/events.js';
import type { WebhookStore } from '../db/webhooks.js';
import { Refusal } from '../infra/refusal.js';
import { CURSOR_POSITIONS, decodeCursor, encodeCursor } from '../infra/cursor.js';
import type { OrderEventType } from '../model/order-workflow.js';
import { adminOrderView, type AdminOrderView } from '../sales/admin-service.js';

export interface OrderEvent {
  /** Stable: the same however often it is sent or read, for the receiver's deduplication. */
  id: string;
  type: OrderEventType;
  /** When it happened, by the order's own record. */
  created: string;
  data: { order: AdminOrderView };
}

export interface OrderEventPage {
  items: OrderEvent[];
  /** Where to go on from: after the last event given, or where the request started when none was ready. */
  nextCursor: string;
}

export function orderEventOf(row: OrderEventRow): OrderEvent {
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

  /**
   * Up to `limit` events after the cursor (from the first kept without one), of `types` when given. A cursor behind
   * what EVENTS_RETENTION deleted is 410 CURSOR_EXPIRED: a page from it would be short without saying so.
   */
  async read(query: { after?: string; types?: readonly OrderEventType[]; limit: number }): Promise<OrderEventPage> {
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
    const lastSeq = rows[rows.length - 1]?.seq ?? afterSeq;
    return { items: rows.map(orderEventOf), nextCursor: encodeCursor([String(lastSeq)]) };
  }
}
