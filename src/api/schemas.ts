/** Request schemas: checks OpenAPI can state, an example per pattern (test/contract.test.ts); the rest described. */
import { z } from 'zod';
import { ORDER_EVENT_TYPES, STORED_ORDER_STATUSES, STORED_PAYMENT_OUTCOMES } from '../model/order-workflow.js';
import { CURSOR_POSITIONS, encodeCursor } from '../infra/cursor.js';
import { BUILD_ID } from '../config/index.js';
import {
  DEFAULT_OVERLAP_SECONDS,
  DELIVERY_STATUSES,
  ENDPOINT_ID_PATTERN,
  ENDPOINT_URL_PATTERN,
  ENDPOINT_URL_RULE,
  MAX_ENDPOINT_DESCRIPTION_CHARS,
  MAX_OVERLAP_SECONDS,
} from '../order-events/endpoints.js';
import { skuNotFound } from '../sales/sales-service.js';
import { USER_ID_PATTERN } from './auth.js';
import { orderNoSchema, orderStatusSchema, skuSchema, upTo64 } from '../infra/schema-fields.js';

export const MAX_QUANTITY_PER_ORDER = 100;

/** A path that does not match names nothing: the route answers its 404. */
export const skuParams = z.object({ sku: skuSchema });
/** The path's SKU; a malformed one names no sale: 404 SKU_NOT_FOUND, like an unknown one. */
export function pathSku(ctx: { params: Record<string, string | undefined> }, params: { sku: string } | null): string {
  if (!params) throw skuNotFound(ctx.params.sku ?? '');
  return params.sku;
}
export const orderParams = z.object({ orderNo: orderNoSchema });

/** The build a rollout is about to make current: a build id as the workers take it. */
export const smokeOrderRequestSchema = z.strictObject({
  buildId: BUILD_ID.meta({ examples: ['984eefa9e651f392-cdb395'] }),
});

/** Years 2001-2099 (a pattern states it): 2001-01-01T00:00+23:59 still clears "no bound" (0) and Redis's 2000 floor. */
const saleTime = z.iso
  .datetime({ offset: true })
  .regex(/^20(?:0[1-9]|[1-9]\d)-/, 'a year from 2001 to 2099')
  // Two patterns make zod drop the format; the value is still the date-time the first one checks.
  .meta({ override: ({ jsonSchema }) => Object.assign(jsonSchema, { format: 'date-time' }) });

export const createSaleSchema = z
  .strictObject({
    sku: skuSchema,
    // Counted as sent (in characters, as JSON Schema counts), stored trimmed.
    name: z
      .string()
      .max(200)
      .regex(/\S/, 'name: must not be blank')
      .trim()
      .meta({ examples: ['Launch T-shirt'] }),
    priceCents: z.number().int().min(0).max(100_000_000_00),
    stock: z.number().int().min(1).max(10_000_000),
    perUserLimit: z.number().int().min(1).max(MAX_QUANTITY_PER_ORDER),
    startsAt: saleTime.optional().meta({
      description: 'No start: open at once.',
      examples: ['2001-01-01T00:00:00Z', '2099-12-31T23:59:59.999-23:59'],
    }),
    endsAt: saleTime.optional().meta({
      description:
        'No end: never closes. Must be in the future, and after startsAt when both are given (else 400 INVALID_REQUEST).',
      examples: ['2099-12-31T23:59:59Z'],
    }),
    line: z
      .strictObject({
        admissionsPerSecond: z.number().int().min(1).max(100_000).optional().meta({
          description: 'Shoppers admitted to checkout per second (default LINE_ADMISSIONS_PER_SECOND).',
        }),
        admissionTtlSeconds: z.number().int().min(10).max(3_600).optional().meta({
          description: 'How long an admission lasts unspent (default LINE_ADMISSION_TTL).',
        }),
        preQueueOpensAt: saleTime.optional().meta({
          description: 'No time: joins are taken at once. Must be before startsAt (else 400 INVALID_REQUEST).',
          examples: ['2001-01-01T00:00:00Z'],
        }),
      })
      .optional()
      .meta({
        description:
          'A waiting line in front of the checkout (docs/api.md, "The waiting line"); `{}` takes the defaults. Without it, no line.',
      }),
  })
  .refine(
    (sale) => {
      const opens = sale.line?.preQueueOpensAt;
      return !opens || !sale.startsAt || Date.parse(opens) < Date.parse(sale.startsAt);
    },
    { message: 'line.preQueueOpensAt must be before startsAt', path: ['line', 'preQueueOpensAt'] },
  )
  .refine((sale) => !sale.startsAt || !sale.endsAt || Date.parse(sale.startsAt) < Date.parse(sale.endsAt), {
    message: 'endsAt must be after startsAt',
    path: ['endsAt'],
  })
  .refine((sale) => !sale.endsAt || Date.parse(sale.endsAt) > Date.now(), {
    message: 'endsAt is in the past: the sale would never open',
    path: ['endsAt'],
  });

const userIdSchema = upTo64(USER_ID_PATTERN, 'userId: 1-64 letters, digits or _.:@-', 'alice');
export const devLoginSchema = z.strictObject({ userId: userIdSchema });

export const checkoutSchema = z.strictObject({
  sku: skuSchema,
  quantity: z.number().int().min(1).max(MAX_QUANTITY_PER_ORDER),
});

/** Absent: a new purchase; present, even empty, it must be a key (an unset variable must not lose idempotency). */
export const idempotencyKeySchema = upTo64(
  /^[\x21-\x7e]+$/,
  'Idempotency-Key: 1-64 printable ASCII characters',
  'alice-1',
).optional();

export const checkoutHeadersSchema = z.object({
  'Idempotency-Key': idempotencyKeySchema,
  'Admission-Token': z.string().min(1).max(1_024).optional().meta({
    description: 'A sale with a waiting line: the admission its line gave you (GET /api/sales/{sku}/line/me).',
  }),
  Prefer: z.string().optional().meta({
    description:
      'RFC 7240 `wait=N`: hold the answer up to N seconds (at most CHECKOUT_MAX_WAIT) until the order is persisted or failed',
  }),
});

/** An operator's change to a sale's line; `{}` changes nothing. */
export const lineControlSchema = z.strictObject({
  paused: z.boolean().optional(),
  admissionsPerSecond: z.number().int().min(1).max(100_000).optional(),
});

export const simulatePaymentSchema = z.strictObject({ orderNo: orderNoSchema });

/** Digits read as a number and checked as one, so the document declares an integer with bounds, not a pattern. */
function queryInteger(name: string, min: number, max: number) {
  const integer = z.number().int().min(min, `${name}: at least ${min}`).max(max, `${name}: at most ${max}`);
  const { $schema: _dialect, ...declared } = z.toJSONSchema(integer);
  return z
    .string()
    .regex(/^\d+$/, `${name}: a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(integer)
    .meta({
      override: ({ jsonSchema }) => {
        delete jsonSchema.pattern;
        Object.assign(jsonSchema, declared);
      },
    });
}

/** zod leaves the default out of a transformed input's schema: declared here. */
function withDefault(integer: ReturnType<typeof queryInteger>, value: number) {
  return integer.default(value).meta({ override: ({ jsonSchema }) => Object.assign(jsonSchema, { default: value }) });
}

const pageLimit = withDefault(queryInteger('limit', 1, 200), 50);

/** A `nextCursor` passed back as it is, decoded and checked against `position` by src/infra/cursor.ts. */
function pageCursor(position: z.ZodType, example: string[]) {
  const { $schema: _dialect, ...contentSchema } = z.toJSONSchema(position, { io: 'input' });
  // No length of its own: its content bounds it (a longer one cannot decode to a position).
  return z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'cursor: pass nextCursor back as it is')
    .meta({
      description: "A nextCursor this API returned, as it is (base64url JSON of the position of the page's last row)",
      contentEncoding: 'base64url',
      contentMediaType: 'application/json',
      contentSchema,
      examples: [encodeCursor(example)],
    })
    .optional();
}

// Not strict: OpenAPI cannot declare "no other parameter", so an unknown one is ignored, never refused.
export const adminOrdersQuerySchema = z.object({
  sku: skuSchema.optional().meta({ description: "Only this sale's orders (neither sku nor userId: every order)" }),
  userId: userIdSchema
    .optional()
    .meta({ description: "A shopper's orders: Temporal's history and search attributes do not show who ordered" }),
  status: z.enum(STORED_ORDER_STATUSES).optional(),
  cursor: pageCursor(CURSOR_POSITIONS.orders, ['01ARZ3NDEKTSV4RRFFQ69G5FAV']),
  limit: pageLimit,
});

export const adminPaymentsQuerySchema = z.object({
  outcome: z.enum(STORED_PAYMENT_OUTCOMES).default('REFUND_REQUIRED'),
  cursor: pageCursor(CURSOR_POSITIONS.payments, ['2026-11-23T17:12:00.000Z', 'evt_01ARZ3NDEKTSV4RRFFQ69G5FAV']),
  limit: pageLimit,
});

export const adminSalesQuerySchema = z.object({
  cursor: pageCursor(CURSOR_POSITIONS.sales, ['2026-11-23T17:12:00.000Z', 'TSHIRT-1']),
  limit: pageLimit,
});

/** GET /api/orders: the token's shopper's orders, of one sale or all. */
export const shopperOrdersQuerySchema = z.object({
  sku: skuSchema.optional().meta({ description: 'Only the orders of this sale' }),
  cursor: pageCursor(CURSOR_POSITIONS.orders, ['01ARZ3NDEKTSV4RRFFQ69G5FAV']),
  limit: withDefault(queryInteger('limit', 1, 100), 20),
});

/** A pattern for a comma-separated list of `values`, so the document refuses what the route refuses. */
function listOf(values: readonly string[]): RegExp {
  const one = `(?:${values.map((value) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`;
  return new RegExp(`^${one}(?:,${one})*$`);
}

/** GET /api/admin/events: the order events feed, from a cursor, of some types. */
export const orderEventsQuerySchema = z.object({
  after: pageCursor(CURSOR_POSITIONS.events, ['1042']),
  types: z
    .string()
    .regex(listOf(ORDER_EVENT_TYPES), `a comma-separated list of ${ORDER_EVENT_TYPES.join(', ')}`)
    .meta({ description: 'Only these types, comma-separated', examples: ['order.paid,order.cancelled'] })
    .transform((list) => list.split(','))
    .pipe(z.array(z.enum(ORDER_EVENT_TYPES)).min(1))
    .optional(),
  limit: withDefault(queryInteger('limit', 1, 500), 100),
});

/** The longest long-poll: below proxies' 30-60 s idle timeouts. */
export const MAX_STATUS_WAIT_SECONDS = 25;
export const DEFAULT_STATUS_WAIT_SECONDS = 20;

/** timeoutSeconds alone is legal and ignored: OpenAPI cannot declare a parameter that depends on another. */
export const orderWaitQuerySchema = z.object({
  waitForChange: orderStatusSchema.optional().meta({
    description: 'Long-poll: answer as soon as the status differs from this one (at once if it already does)',
  }),
  timeoutSeconds: queryInteger('timeoutSeconds', 1, MAX_STATUS_WAIT_SECONDS)
    .optional()
    .meta({
      description: `With waitForChange: the longest wait in whole seconds (default ${DEFAULT_STATUS_WAIT_SECONDS}); without it, ignored`,
    }),
});

// ---- Webhook endpoints (docs/api.md, "Webhook endpoints"): merchants' endpoints for order events ----------------

export const endpointIdSchema = z
  .string()
  .regex(ENDPOINT_ID_PATTERN, 'not a webhook endpoint id')
  .meta({ examples: ['ep_01ARZ3NDEKTSV4RRFFQ69G5FAV'] });
export const webhookEndpointParams = z.object({ endpointId: endpointIdSchema });
/** An event of the feed by its `id` (GET /api/admin/events). */
export const webhookDeliveryParams = z.object({
  endpointId: endpointIdSchema,
  // No lower bound: an empty segment is no path.
  eventId: z
    .string()
    .max(200)
    .meta({ examples: ['01ARZ3NDEKTSV4RRFFQ69G5FAV.order.paid'] }),
});

const endpointUrlSchema = z
  .string()
  .regex(ENDPOINT_URL_PATTERN, ENDPOINT_URL_RULE)
  .meta({
    description:
      'Where the events are POSTed: an absolute http:// or https:// URL, at most 2048 characters, without credentials; ' +
      'https:// only where EVENTS_REQUIRE_HTTPS (production by default), else 400 INVALID_REQUEST.',
    examples: ['https://shop.example/webhooks/orders'],
  });
const endpointEventTypesSchema = z
  .array(z.enum(ORDER_EVENT_TYPES))
  .refine((types) => new Set(types).size === types.length, { message: 'each type at most once' })
  .meta({
    description:
      'The types sent, each at most once (else 400 INVALID_REQUEST); empty (or absent at creation): every type.',
    examples: [['order.paid', 'order.cancelled']],
  });
const endpointDescriptionSchema = z
  .string()
  .max(MAX_ENDPOINT_DESCRIPTION_CHARS)
  .meta({ examples: ['Fulfilment (warehouse)'] });

const includeShopperIdSchema = z.boolean().meta({
  description:
    "true: its events carry the shopper's own id (`userId`) beside the opaque `customer` reference; default false.",
});

export const createWebhookEndpointSchema = z.strictObject({
  url: endpointUrlSchema,
  eventTypes: endpointEventTypesSchema.optional(),
  description: endpointDescriptionSchema.optional(),
  includeShopperId: includeShopperIdSchema.optional(),
});

/** A change to an endpoint; `{}` changes nothing. */
export const updateWebhookEndpointSchema = z.strictObject({
  url: endpointUrlSchema.optional(),
  eventTypes: endpointEventTypesSchema.optional(),
  description: endpointDescriptionSchema.optional().meta({ description: "'' removes it." }),
  includeShopperId: includeShopperIdSchema.optional(),
  enabled: z.boolean().optional().meta({
    description: 'false: nothing more is queued or sent; true: events queue again from where they stopped.',
  }),
});

export const rotateEndpointSecretSchema = z.strictObject({
  overlapSeconds: z
    .number()
    .int()
    .min(0)
    .max(MAX_OVERLAP_SECONDS)
    .optional()
    .meta({
      description: `How long the old secret keeps signing beside the new one (default ${DEFAULT_OVERLAP_SECONDS}, a day).`,
    }),
});

export const webhookDeliveriesQuerySchema = z.object({
  status: z.enum(DELIVERY_STATUSES).optional(),
  cursor: pageCursor(CURSOR_POSITIONS.deliveries, ['1042']),
  limit: pageLimit,
});
