/** Order events (docs/api.md): one per fact the row decided; a feed whose cursor never skips a late commit. */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { EventStore, OrderEventRow } from '../db/events.js';
import type { OrderRow } from '../db/rows.js';
import type { WebhookStore } from '../db/webhooks.js';
import { Refusal } from '../infra/refusal.js';
import { CURSOR_POSITIONS, decodeCursor, encodeCursor } from '../infra/cursor.js';
import type { OrderEventType } from '../model/order-workflow.js';
import { shown } from '../sales/sales-service.js';

export type OrderEvent = ReturnType<typeof orderEventOf>;

/** How a shopper is named to merchants: an opaque reference, stable while EVENTS_CUSTOMER_SECRET is (HMAC-SHA256). */
export class CustomerReferences {
  private readonly key: KeyObject;

  constructor(key: string) {
    this.key = createSecretKey(Buffer.from(key, 'utf8'));
  }

  of(userId: string): string {
    return `cus_${createHmac('sha256', this.key).update(userId).digest('base64url').slice(0, 24)}`;
  }
}

/** Who reads the events: every reader gets the reference; the shopper's id only where an endpoint asked for it. */
export interface EventAudience {
  customers: CustomerReferences;
  shopperId: boolean;
}

/**
 * What fulfilment needs of the order, as the deciding transaction left it: its reference, SKU, quantity, amounts,
 * status and times. No internal error text (failureReason), price internals or idempotency key.
 */
export function eventOrderOf(order: OrderRow, audience: EventAudience) {
  const { userId, ...facts } = shown(order, ['unitPriceCents', 'idempotencyKey', 'paymentProvider', 'failureReason']);
  return {
    ...facts,
    customer: audience.customers.of(userId),
    ...(audience.shopperId ? { userId } : {}),
  };
}

/** `id` is stable (the receiver deduplicates by it); `created`: when it happened, by the order's own record. */
export function orderEventOf(row: OrderEventRow, audience: EventAudience) {
  return {
    id: row.eventId,
    type: row.type,
    created: row.createdAt.toISOString(),
    data: { order: eventOrderOf(row.order, audience) },
  };
}

export class OrderEventFeed {
  private readonly audience: EventAudience;

  constructor(
    private readonly events: Pick<EventStore, 'eventsAfter'>,
    private readonly retention: Pick<WebhookStore, 'prunedThroughSeq'>,
    customers: CustomerReferences,
  ) {
    // The feed is read by fulfilment systems with a token of their own: shoppers by reference only.
    this.audience = { customers, shopperId: false };
  }

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
    return { items: rows.map((row) => orderEventOf(row, this.audience)), nextCursor: encodeCursor([String(lastSeq)]) };
  }
}
