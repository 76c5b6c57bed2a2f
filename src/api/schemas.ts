/**
 * Request schemas (zod), each declared once by its route (src/api/route.ts), which validates with it
 * and documents it: bodies strict, so unknown fields, wrong types, fractions, zero, negatives and
 * huge numbers are refused with INVALID_REQUEST before anything changes; path parameters, query
 * strings and headers likewise. The enums come from the order's vocabulary.
 */
import { z } from 'zod';
import { ORDER_NO_PATTERN } from '../orders/order-number.js';
import { ORDER_STATUSES, STORED_ORDER_STATUSES, STORED_PAYMENT_OUTCOMES } from '../workflows/definitions.js';
import { USER_ID_PATTERN } from './auth.js';

export const MAX_QUANTITY_PER_ORDER = 100;

export const skuSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'sku: 1-64 letters, digits, "_", "." or "-"');
export const orderNoSchema = z.string().regex(ORDER_NO_PATTERN, 'not an order number');
export const orderStatusSchema = z.enum(ORDER_STATUSES).meta({ id: 'OrderStatus' });

/** Path parameters: a path that does not match names nothing (the route answers its 404). */
export const skuParams = z.object({ sku: skuSchema });
export const orderParams = z.object({ orderNo: orderNoSchema });

/**
 * A sale window's bounds: ISO times from 2000 to before 2100. Far-off or pre-1970 times are
 * mistakes, and the range keeps every real bound apart from "no bound" in Redis.
 */
export const SALE_WINDOW = { earliest: Date.parse('2000-01-01T00:00:00Z'), latest: Date.parse('2100-01-01T00:00:00Z') } as const;
const saleTime = z.iso
  .datetime({ offset: true })
  .refine((iso) => Date.parse(iso) >= SALE_WINDOW.earliest && Date.parse(iso) < SALE_WINDOW.latest, 'must be between 2000-01-01 and 2100-01-01');

export const createSaleSchema = z
  .strictObject({
    sku: skuSchema,
    name: z.string().trim().min(1).max(200),
    priceCents: z.number().int().min(0).max(100_000_000_00),
    stock: z.number().int().min(1).max(10_000_000),
    perUserLimit: z.number().int().min(1).max(MAX_QUANTITY_PER_ORDER),
    startsAt: saleTime.optional(),
    endsAt: saleTime.optional(),
  })
  .refine((sale) => !sale.startsAt || !sale.endsAt || Date.parse(sale.startsAt) < Date.parse(sale.endsAt), {
    message: 'endsAt must be after startsAt',
    path: ['endsAt'],
  })
  .refine((sale) => !sale.endsAt || Date.parse(sale.endsAt) > Date.now(), { message: 'endsAt is in the past: the sale would never open', path: ['endsAt'] });

export const devLoginSchema = z.strictObject({ userId: z.string().regex(USER_ID_PATTERN, 'userId: 1-64 letters, digits or _.:@-') });

export const checkoutSchema = z.strictObject({
  sku: skuSchema,
  quantity: z.number().int().min(1).max(MAX_QUANTITY_PER_ORDER),
});

export const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7e]{1,64}$/, 'Idempotency-Key: 1-64 printable ASCII characters')
  .optional();

export const checkoutHeadersSchema = z.object({
  'Idempotency-Key': idempotencyKeySchema,
  Prefer: z
    .string()
    .optional()
    .meta({ description: 'RFC 7240 `wait=N`: hold the answer up to N seconds (at most CHECKOUT_MAX_WAIT) until the order is persisted or failed' }),
});

/** Strict like every other body: a field this API does not know is refused, not ignored. */
export const paymentWebhookSchema = z.strictObject({
  eventId: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'eventId: 1-128 letters, digits or _.:-'),
  type: z.literal('payment.succeeded'),
  orderNo: orderNoSchema,
  amountCents: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

export const simulatePaymentSchema = z.strictObject({ orderNo: orderNoSchema });

// ---- admin views (query strings) ----------------------------------------------------------------

/** Page sizes of the admin lists: 1–200, 50 when not given. */
const pageLimit = z
  .string()
  .regex(/^\d{1,3}$/, 'limit: an integer from 1 to 200')
  .transform(Number)
  .pipe(z.number().int().min(1, 'limit: at least 1').max(200, 'limit: at most 200'))
  .default(50);
/** An opaque cursor this API gave in `nextCursor`; decoded and checked by src/sales/cursor.ts. */
const pageCursor = z.string().min(1).max(512).optional();

export const adminOrdersQuerySchema = z.strictObject({
  sku: skuSchema,
  status: z.enum(STORED_ORDER_STATUSES).optional(),
  cursor: pageCursor,
  limit: pageLimit,
});

export const adminPaymentsQuerySchema = z.strictObject({
  outcome: z.enum(STORED_PAYMENT_OUTCOMES).default('REFUND_REQUIRED'),
  cursor: pageCursor,
  limit: pageLimit,
});

export const adminSalesQuerySchema = z.strictObject({ cursor: pageCursor, limit: pageLimit });

/** The longest long-poll of GET /api/orders/:orderNo?waitForChange= (below proxies' 30-60 s idle timeouts). */
export const MAX_STATUS_WAIT_SECONDS = 25;
export const DEFAULT_STATUS_WAIT_SECONDS = 20;

/**
 * GET /api/orders/:orderNo's query: without waitForChange it answers at once; timeoutSeconds needs
 * it (DEFAULT_STATUS_WAIT_SECONDS when absent). The spec shows timeoutSeconds as the integer it is
 * read as.
 */
export const orderWaitQuerySchema = z
  .object({
    waitForChange: orderStatusSchema
      .optional()
      .meta({ description: 'Long-poll: answer as soon as the status differs from this one (at once if it already does)' }),
    timeoutSeconds: z
      .string()
      .regex(/^\d{1,2}$/, 'timeoutSeconds: whole seconds 1-25')
      .transform(Number)
      .pipe(z.number().int().min(1).max(MAX_STATUS_WAIT_SECONDS))
      .optional()
      .meta({
        description: `With waitForChange: the longest wait in whole seconds (default ${DEFAULT_STATUS_WAIT_SECONDS})`,
        override: ({ jsonSchema }) => {
          delete jsonSchema.pattern;
          Object.assign(jsonSchema, { type: 'integer', minimum: 1, maximum: MAX_STATUS_WAIT_SECONDS });
        },
      }),
  })
  .refine((query) => query.timeoutSeconds === undefined || query.waitForChange !== undefined, {
    message: 'timeoutSeconds goes with waitForChange',
    path: ['timeoutSeconds'],
  });
