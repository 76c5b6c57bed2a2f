/** Order events (docs/api.md): one per fact the row decided; a feed in commit order whose cursor never skips one. */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { EventStore, OrderEventRow } from '../db/events.js';
import type { OrderRow } from '../db/rows.js';
import { Refusal } from '../infra/refusal.js';
import { CURSOR_POSITIONS, decodeCursor, encodeCursor } from '../infra/cursor.js';
import { z } from 'zod';
import { CANCEL_REASONS, ORDER_EVENT_TYPES, type OrderEventType } from '../model/order-workflow.js';
import { isoTime, named, shown } from '../infra/schema-fields.js';
import { adminOrderSchema } from '../sales/admin-views.js';

/** The order as an event carries it: the admin view without internals, the shopper as an opaque reference. */
export const eventOrderSchema = adminOrderSchema
  .omit({ userId: true, failureReason: true })
  .extend({
    cancelReason: z.enum(CANCEL_REASONS).nullable(),
    customer: z.string().meta({
      description:
        'The shopper, as an opaque reference: the same for all their orders while EVENTS_CUSTOMER_SECRET is kept',
      examples: ['cus_3q2Vd0mXQm1wW8k2b0Hc7s9a'],
    }),
    userId: z
      .string()
      .optional()
      .meta({ description: "The shopper's own id: only to an endpoint created with includeShopperId" }),
  })
  .meta({ id: 'EventOrder' });

export const orderEventSchema = named('OrderEvent', {
  id: z.string().meta({ description: "Stable: the receiver's deduplication key" }),
  type: z.enum(ORDER_EVENT_TYPES),
  created: isoTime.meta({ description: "When it happened, by the order's own record" }),
  data: z.object({ order: eventOrderSchema.meta({ description: 'The order as it stood then' }) }),
});

export const orderEventPageSchema = named('OrderEventPage', {
  items: z.array(orderEventSchema),
  nextCursor: z.string().meta({
    description: 'Pass as `after` for what comes next, also when empty: past every event this read looked at',
  }),
});

export type OrderEvent = z.infer<typeof orderEventSchema>;
/** What the event's order shows, and the shopper's id it is named by. */
const eventFactsSchema = eventOrderSchema.omit({ customer: true }).extend({ userId: z.string() });

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

/** What fulfilment needs, as the deciding transaction left it; no failureReason, price internals or idempotency key. */
export function eventOrderOf(order: OrderRow, audience: EventAudience): OrderEvent['data']['order'] {
  const { userId, ...facts } = shown(eventFactsSchema, order);
  return {
    ...facts,
    customer: audience.customers.of(userId),
    ...(audience.shopperId ? { userId } : {}),
  };
}

/** `id` is stable (the receiver deduplicates by it); `created`: when it happened, by the order's own record. */
export function orderEventOf(row: OrderEventRow, audience: EventAudience): OrderEvent {
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

  /** In commit order; a cursor behind EVENTS_RETENTION is 410, as its page would be silently short. */
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
