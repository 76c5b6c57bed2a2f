/** Order events (docs/api.md): one per fact the row decided; a feed in commit order whose cursor never skips one. */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { EventStore, OrderEventRow } from '../db/events.js';
import type { OrderRow } from '../db/rows.js';
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
    private readonly events: Pick<EventStore, 'feedPage'>,
    customers: CustomerReferences,
  ) {
    // The feed is read by fulfilment systems with a token of their own: shoppers by reference only.
    this.audience = { customers, shopperId: false };
  }

  /**
   * Up to `limit` events after the cursor, in the order they committed. A cursor behind EVENTS_RETENTION is 410 (its
   * page would be short, unsaid); the next cursor moves past every position this read looked at, matching or not.
   */
  async read(query: {
    after?: string;
    types?: readonly OrderEventType[];
    limit: number;
  }): Promise<{ items: OrderEvent[]; nextCursor: string }> {
    const after = query.after ? Number(decodeCursor(query.after, CURSOR_POSITIONS.events)[0]) : 0;
    const page = await this.events.feedPage({
      after,
      ...(query.types ? { types: query.types } : {}),
      limit: query.limit,
    });
    if (query.after && after < page.prunedThrough)
      throw new Refusal(
        'CURSOR_EXPIRED',
        'events after this cursor are older than the feed keeps (EVENTS_RETENTION); read from the start, without a cursor',
      );
    return {
      items: page.events.map((row) => orderEventOf(row, this.audience)),
      nextCursor: encodeCursor([String(page.nextAfter)]),
    };
  }
}
