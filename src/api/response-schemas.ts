/** Response schemas (zod) for the OpenAPI document and tests; the `SameShape` checks tie each to its handler's type. */
import { z } from 'zod';
import { BREAKER_STATES, DEPENDENCY_NAMES, SERVER_NAMES } from '../infra/dependency-guard.js';
import { INVARIANTS } from '../invariants/check.js';
import {
  CANCEL_REASONS,
  DISPUTE_STANDINGS,
  ORDER_EVENT_TYPES,
  STORED_ORDER_STATUSES,
  STORED_PAYMENT_OUTCOMES,
  type OrderView,
} from '../model/order-workflow.js';
import type { WebhookAnswer } from '../payments/receiver.js';
import type { webhookAnswerSchema } from '../payments/providers/generic/route.js';
import { PAYMENT_PROVIDER_NAMES, PROVIDER_WITH_API_NAMES } from '../payments/providers/registry.js';
import type {
  AdminOrderPayments,
  AdminOrderView,
  AdminPaymentView,
  AdminSaleView,
  SaleStats,
} from '../sales/admin-service.js';
import type { SaleView } from '../sales/sale-view.js';
import type { LineView, PlaceView } from '../line/line-service.js';
import type { WorkerCacheFigures } from '../inventory/worker-figures.js';
import type { DeploymentStatus } from '../infra/worker-deployments.js';
import type { SmokeOrderResult } from '../order/smoke-order.js';
import type { OrderEvent } from '../events/order-events.js';
import {
  ATTEMPT_OUTCOMES,
  DELIVERY_STATUSES,
  type AttemptView,
  type DeliveryView,
  type EndpointView,
  type EndpointWithFigures,
  type EndpointWithSecret,
  type ResendAccepted,
} from '../events/endpoints.js';
import { ERROR_CODES, type ErrorCode } from '../infra/error-codes.js';
import { orderNoSchema, orderStatusSchema, skuSchema } from './schemas.js';

const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

const isoTime = z.iso.datetime({ offset: true });
/** An object schema under its own name in the OpenAPI document's components. */
const named = <S extends z.ZodRawShape>(id: string, shape: S) => z.object(shape).meta({ id });
const int = z.number().int();

export const errorCodeSchema = z
  .enum(ERROR_CODE_NAMES)
  .meta({ id: 'ErrorCode', description: 'A stable error code; the message is for people.' });

/** Every error answer: `{ "error": { "code", "message", "details"? } }`. */
export const errorBodySchema = named('ApiError', {
  error: z.object({
    code: errorCodeSchema,
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const saleSchema = named('Sale', {
  sku: skuSchema,
  name: z.string(),
  priceCents: int,
  stock: int,
  available: int.meta({ description: 'Units a shopper can still reserve now (Redis, the live count).' }),
  reserved: int,
  sold: int,
  perUserLimit: int,
  startsAt: isoTime.nullable(),
  endsAt: isoTime.nullable(),
  createdAt: isoTime,
});

const etaReasonSchema = z.enum(['PAUSED', 'RATE_LOWERED']).nullable();

/** A shopper's place in a sale's waiting line (GET /api/sales/{sku}/line/me). */
export const placeSchema = named('LinePlace', {
  sku: skuSchema,
  state: z.enum(['WAITING', 'ADMITTED', 'EXPIRED', 'CHECKED_OUT', 'SOLD_OUT', 'PAUSED', 'CLOSED']),
  preQueue: z
    .boolean()
    .meta({ description: 'Joined before the start, which has not come: the position is drawn then.' }),
  position: int.nullable(),
  ahead: int.nullable().meta({ description: 'Places before this one not yet admitted.' }),
  waitTimeKnown: z.boolean(),
  eta: z
    .object({ minSeconds: int, maxSeconds: int })
    .nullable()
    .meta({ description: 'The wait as a band; it never rises unless `etaRaisedBy` says why.' }),
  admissionsPerSecond: int,
  lineLength: int,
  servedThrough: int.meta({ description: 'Every position up to this one has been admitted.' }),
  startsAt: isoTime.nullable(),
  admission: z
    .object({ token: z.string(), expiresAt: isoTime })
    .nullable()
    .meta({ description: "State ADMITTED: send `token` as the checkout's `Admission-Token` before `expiresAt`." }),
  etaEpoch: int,
  etaRaisedBy: etaReasonSchema,
  refreshAfterSeconds: int
    .nullable()
    .meta({ description: 'When to ask again (also `Retry-After`); null when nothing will change.' }),
  unitsMayComeBack: z.boolean().meta({
    description: 'Sold out, or waiting behind the units left (no `eta`): the turn comes only with units coming back.',
  }),
});

/** A sale's waiting line (GET /api/sales/{sku}/line): its state, counters and the fair start's seed. */
export const lineSchema = named('Line', {
  sku: skuSchema,
  state: z.enum(['PRE_QUEUE', 'OPEN', 'PAUSED', 'SOLD_OUT', 'CLOSED']),
  length: int,
  servedThrough: int,
  admissionsPerSecond: int,
  admissionTtlSeconds: int,
  preQueueOpensAt: isoTime.nullable(),
  startsAt: isoTime.nullable(),
  paused: z.boolean(),
  epoch: int,
  epochReason: etaReasonSchema,
  admitted: int,
  consumed: int,
  givenBack: int,
  seedHash: z
    .string()
    .meta({ description: 'SHA-256 (hex) of the seed that ranks the pre-queue, public from the start.' }),
  seed: z.string().nullable().meta({ description: 'The seed itself, revealed once the sale has started.' }),
  soldOutAt: isoTime.nullable(),
});

/** A card holder's dispute of an order's payment, as the order shows it. */
export const disputeSchema = named('Dispute', {
  standing: z.enum(DISPUTE_STANDINGS).meta({
    description: 'OPEN (the order is DISPUTED) while the bank decides; WON (PAID again) or LOST (REFUNDED).',
  }),
  reason: z.string().nullable().meta({ description: "The provider's reason (fraudulent, product_not_received, …)." }),
  dueBy: isoTime.nullable().meta({ description: 'By when evidence must reach the provider.' }),
  amountCents: int,
});

export const orderSchema = named('Order', {
  orderNo: orderNoSchema,
  sku: skuSchema,
  quantity: int,
  totalCents: int,
  status: orderStatusSchema,
  cancelReason: z.enum(CANCEL_REASONS).optional(),
  paymentDeadline: isoTime.meta({
    description:
      'When the order became AWAITING_PAYMENT + PAYMENT_WINDOW (while PENDING: createdAt + PAYMENT_WINDOW, the earliest it can be). ' +
      'A payment recorded after it is refunded; after it, an unpaid order is cancelled.',
  }),
  createdAt: isoTime,
  paidAt: isoTime.optional(),
  paymentProvider: z.enum(PROVIDER_WITH_API_NAMES).optional().meta({
    description: 'The provider the order is paid through (PAYMENT_PROVIDER=stripe); absent: the generic webhook.',
  }),
  paymentIntent: z
    .object({
      id: z.string().meta({ examples: ['pi_3PgafyB7WZ01zgkW'] }),
      clientSecret: z.string().meta({
        description:
          "Stripe.js confirms the payment with it (and the publishable key); shown to the order's shopper only.",
      }),
    })
    .optional()
    .meta({
      description:
        "The order's Stripe PaymentIntent, while the order is AWAITING_PAYMENT and once it is made (a moment after the order " +
        'is persisted; until then the read is not cached, so the next poll shows it).',
    }),
  refundedCents: int.optional().meta({
    description:
      "Refunded at the payment provider after the order was paid, without this service asking (a refund in Stripe's " +
      'Dashboard): all of it makes the order REFUNDED.',
  }),
  dispute: disputeSchema.optional(),
});

/** GET /api/orders/{orderNo}: the order, and where the answer came from. */
export const orderReadSchema = orderSchema
  .extend({
    source: z.enum(['database', 'stores', 'workflow']).meta({
      description:
        "`database`: the order's MySQL row, which decides how it ends. `stores`: no row yet, its promise in Redis " +
        "(PENDING). `workflow`: MySQL out of reach, the order's workflow answered (it may lag its row by a step).",
    }),
  })
  .meta({ id: 'OrderRead' });

const statusUrl = z.string().meta({ description: 'Where to poll the order: /api/orders/{orderNo}.' });

export const checkoutAcceptedSchema = named('CheckoutAccepted', {
  orderNo: orderNoSchema,
  status: orderStatusSchema.meta({
    description: 'PENDING for a new order; a repeated Idempotency-Key answers its order as it is now.',
  }),
  statusUrl,
});

/** A waiting checkout (Prefer: wait=N) whose order was persisted within the wait: the order and where to poll it. */
export const checkoutPersistedSchema = orderSchema.extend({ statusUrl }).meta({ id: 'CheckoutPersisted' });

export const cancelAcceptedSchema = named('CancelAccepted', {
  orderNo: orderNoSchema,
  status: orderStatusSchema.meta({
    description:
      'The status the cancel left: CANCELLED, its units back on sale; through a provider with an API (Stripe) ' +
      'AWAITING_PAYMENT until the provider confirms no payment can still succeed (poll the order to see it CANCELLED).',
  }),
  cancelRequested: z.literal(true),
});

export const devLoginAnswerSchema = named('DevLoginAnswer', {
  token: z.string().meta({ description: 'An HS256 shopper JWT, sub = userId.' }),
  userId: z.string(),
});

/** An object with every one of `keys`, each `schema`. */
const eachOf = <K extends string, S extends z.ZodType>(keys: readonly K[], schema: S) =>
  z.object(Object.fromEntries(keys.map((key) => [key, schema])) as Record<K, S>);

/** Each server the readiness probe checks (SERVER_NAMES). */
const healthChecksSchema = eachOf(SERVER_NAMES, z.enum(['up', 'down'])).meta({ id: 'HealthChecks' });
/** Each dependency's circuit breaker in this process (`workflows`: the order workflows answering, i.e. the worker). */
const breakersSchema = eachOf(DEPENDENCY_NAMES, z.enum(BREAKER_STATES)).meta({ id: 'Breakers' });

/** How far each clock this process is compared with is from its own (the other minus this one), as last measured. */
const clocksSchema = z
  .record(
    z.string(),
    z.object({
      offsetMs: int.meta({ description: "The other clock minus this process's, in ms." }),
      uncertaintyMs: int.meta({
        description: 'Half the round trip of the measurement: the offset is exact within this.',
      }),
      measuredAt: z.string(),
    }),
  )
  .meta({ id: 'ClockOffsets' });

export const healthOkSchema = named('HealthOk', {
  status: z.literal('ok'),
  checks: healthChecksSchema,
  breakers: breakersSchema,
  clocks: clocksSchema,
});
/** A dependency down (with the checks and breakers), or draining after SIGTERM (without them). */
export const healthDownSchema = errorBodySchema
  .extend({
    checks: healthChecksSchema.optional(),
    breakers: breakersSchema.optional(),
    clocks: clocksSchema.optional(),
  })
  .meta({ id: 'HealthDown' });

export const livenessSchema = named('Liveness', { status: z.literal('ok') });

const storedStatusFigures = eachOf(STORED_ORDER_STATUSES, int);

/** GET /api/admin/sales/{sku}/stats. */
export const saleStatsSchema = named('SaleStats', {
  sku: skuSchema,
  redis: z.object({
    stock: int,
    available: int,
    reserved: int,
    sold: int,
  }),
  mysql: z.object({
    stock: int,
    available: int,
    orders: storedStatusFigures,
    units: storedStatusFigures,
  }),
  runningWorkflows: int,
  payments: z.record(z.enum(STORED_PAYMENT_OUTCOMES), int).meta({
    description:
      "The payment events of the sale's orders by outcome: APPLIED, RECEIVED (waiting for its order's row), and the refunds: " +
      'REFUND_REQUIRED (through Stripe: to ask), REFUND_REQUESTED, REFUNDED, REFUND_FAILED (an operator settles it).',
  }),
  drift: z.object({ available: int, reserved: int, sold: int }),
  invariants: z.object({ ok: z.boolean(), checks: z.record(z.enum(INVARIANTS), z.boolean()) }),
});

export const adminOrderSchema = named('AdminOrder', {
  orderNo: orderNoSchema,
  sku: skuSchema,
  userId: z.string(),
  quantity: int,
  totalCents: int,
  status: z.enum(STORED_ORDER_STATUSES),
  cancelReason: z.string().nullable(),
  failureReason: z.string().nullable(),
  paymentDeadline: isoTime,
  createdAt: isoTime,
  paidAt: isoTime.nullable(),
  cancelledAt: isoTime.nullable(),
  refundedCents: int,
  dispute: disputeSchema.nullable(),
});

export const adminPaymentSchema = named('AdminPayment', {
  eventId: z.string(),
  orderNo: z.string(),
  sku: z.string().nullable(),
  amountCents: int,
  outcome: z.enum(STORED_PAYMENT_OUTCOMES),
  refundReason: z.string().nullable(),
  receivedAt: isoTime,
  provider: z.enum(PAYMENT_PROVIDER_NAMES),
  providerRef: z
    .string()
    .nullable()
    .meta({ description: "The provider's id of the payment (Stripe: the PaymentIntent)." }),
  refundId: z.string().nullable().meta({ description: "The provider's refund, once asked (Stripe: re_…)." }),
  refundError: z
    .string()
    .nullable()
    .meta({ description: 'Why the last refund attempt got no refund, or why it failed.' }),
});

export const adminOrderPaymentsSchema = named('AdminOrderPayments', {
  orderNo: orderNoSchema,
  payments: z.array(adminPaymentSchema),
  failedAttempts: z.array(
    z.object({
      eventId: z.string(),
      provider: z.enum(PAYMENT_PROVIDER_NAMES),
      providerRef: z.string().nullable(),
      code: z.string().nullable().meta({ description: "The provider's decline or error code (card_declined, …)." }),
      message: z.string().nullable(),
      receivedAt: isoTime,
    }),
  ),
  takenBack: z.array(
    z.object({
      id: z.string().meta({ description: "The provider's refund (re_…) or dispute (dp_…)." }),
      kind: z.enum(['REFUND', 'DISPUTE']),
      amountCents: int,
      status: z.string().meta({ description: 'A refund: PENDING, SUCCEEDED, FAILED; a dispute: OPEN, WON, LOST.' }),
      providerStatus: z.string().meta({ description: "The provider's own status (needs_response, under_review, …)." }),
      reason: z.string().nullable(),
      dueBy: isoTime.nullable().meta({ description: "A dispute's deadline for evidence." }),
      createdAt: isoTime,
    }),
  ),
});

export const adminSaleSchema = saleSchema
  .omit({ reserved: true, sold: true })
  .extend({ available: int })
  .meta({ id: 'AdminSale' });

/** A keyset page: pass `nextCursor` back as `cursor` until it is null. */
export const pageSchema = <T extends z.ZodType>(item: T, id: string) =>
  named(id, { items: z.array(item), nextCursor: z.string().nullable() });

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

/** GET /api/dev/config: what the dashboard needs to link orders to the Web UI. */
export const devConfigSchema = named('DevConfig', {
  temporalUiUrl: z.string().nullable(),
  namespace: z.string(),
  devAdminToken: z.string().nullable(),
});

/** GET /api/admin/workers: each worker still publishing its workflow cache's figures. */
export const workerFiguresSchema = named('WorkerFigures', {
  workers: z.array(
    z.object({
      worker: z.string().meta({ description: 'The worker process: host and pid.' }),
      at: isoTime.meta({ description: 'When it read these, by its own clock (it publishes every 5 s).' }),
      cached: int.meta({ description: 'Workflows in its cache now.' }),
      maxCached: int.meta({ description: 'Its bound (WORKER_MAX_CACHED_WORKFLOWS).' }),
      interval: z
        .object({
          seconds: z.number(),
          hits: int,
          misses: int,
          forcedEvictions: int,
        })
        .nullable()
        .meta({
          description:
            "Since its previous publication, from its Core runtime's temporal_sticky_cache_* counters: tasks of a cached workflow (hits), of one replayed (misses), evictions forced by a full cache. Null with its metrics port off.",
        }),
    }),
  ),
});

export const smokeOrderResultSchema = named('SmokeOrderResult', {
  orderNo: z.string(),
  status: z.literal('CANCELLED'),
  ranOn: z.string().meta({ description: 'The version its workflow ran on: `<deployment name>.<build id>`.' }),
  ms: int.meta({ description: 'From its reservation to its close.' }),
});

export const deploymentStatusSchema = named('DeploymentStatus', {
  deploymentName: z.string().meta({ description: 'The Worker Deployment (WORKER_DEPLOYMENT_NAME).' }),
  currentBuildId: z.string().nullable().meta({ description: 'The build new orders start on; null before any.' }),
  rampingBuildId: z.string().nullable().meta({ description: 'A build taking a percentage of new orders, if any.' }),
  rampingPercentage: z.number(),
  versions: z.array(
    z.object({
      buildId: z.string(),
      status: z.enum(['INACTIVE', 'CURRENT', 'RAMPING', 'DRAINING', 'DRAINED']).meta({
        description:
          "Temporal's routing status: DRAINED once no run pinned to it is open, of any type (its workers can stop).",
      }),
      openOrders: int.meta({ description: 'OrderWorkflows open on this build (visibility).' }),
      openRuns: z.record(z.string(), int).meta({
        description:
          'Open runs pinned to this build, by workflow type (orders included): the build drains once all are 0.',
      }),
    }),
  ),
  unversionedOpenOrders: int.meta({
    description: 'Orders started before versioning: they run on the current build.',
  }),
});

/** Compiles only when A and B are the same type; each line below ties a schema to its source type. */
type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameShape = <T extends true>(proof: T) => proof;
sameShape<SameShape<z.infer<typeof saleSchema>, SaleView>>(true);
sameShape<SameShape<z.infer<typeof placeSchema>, PlaceView>>(true);
sameShape<SameShape<z.infer<typeof lineSchema>, LineView>>(true);
sameShape<SameShape<z.infer<typeof orderSchema>, OrderView>>(true);
sameShape<SameShape<Omit<z.infer<typeof webhookAnswerSchema>, 'received'>, WebhookAnswer>>(true);
sameShape<SameShape<z.infer<typeof saleStatsSchema>, SaleStats>>(true);
sameShape<SameShape<z.infer<typeof adminOrderSchema>, AdminOrderView>>(true);
sameShape<SameShape<z.infer<typeof adminPaymentSchema>, AdminPaymentView>>(true);
sameShape<SameShape<z.infer<typeof adminSaleSchema>, AdminSaleView>>(true);
sameShape<SameShape<z.infer<typeof adminOrderPaymentsSchema>, AdminOrderPayments>>(true);
sameShape<SameShape<z.infer<typeof workerFiguresSchema>, { workers: WorkerCacheFigures[] }>>(true);
sameShape<SameShape<z.infer<typeof deploymentStatusSchema>, DeploymentStatus>>(true);
sameShape<SameShape<z.infer<typeof smokeOrderResultSchema>, SmokeOrderResult>>(true);
sameShape<SameShape<z.infer<typeof orderEventSchema>, OrderEvent>>(true);

// ---- Webhook endpoints (docs/api.md, "Webhook endpoints"): never a secret but in a create's or rotation's answer ----

export const webhookEndpointSchema = named('WebhookEndpoint', {
  endpointId: z.string().meta({ examples: ['ep_01ARZ3NDEKTSV4RRFFQ69G5FAV'] }),
  url: z.string(),
  eventTypes: z.array(z.enum(ORDER_EVENT_TYPES)).meta({ description: 'Empty: every type.' }),
  description: z.string().nullable(),
  includeShopperId: z.boolean().meta({ description: "Its events carry the shopper's own id (`userId`)." }),
  enabled: z.boolean(),
  disabledReason: z
    .string()
    .nullable()
    .meta({ description: 'Why it is disabled: by an operator, or the endpoint answered 410 Gone.' }),
  oldSecretUntil: isoTime
    .nullable()
    .meta({ description: 'Until when the secret before the last rotation signs beside the current one.' }),
  pausedUntil: isoTime
    .nullable()
    .meta({ description: 'The endpoint asked to slow down (429, 502-504, Retry-After): nothing sent before then.' }),
  createdAt: isoTime,
  updatedAt: isoTime,
});

export const webhookEndpointReadSchema = webhookEndpointSchema
  .extend({
    deliveries: z
      .object({
        pending: int.meta({ description: 'Events owed, not yet delivered.' }),
        failing: int.meta({ description: 'Of those owed, the ones tried at least once.' }),
        delivered: int,
        gaveUp: int.meta({ description: 'Not delivered within EVENTS_RETRY_PERIOD (the feed has them).' }),
        oldestPendingQueuedAt: isoTime.nullable(),
      })
      .meta({ description: 'Its deliveries still kept (EVENTS_RETENTION).' }),
  })
  .meta({ id: 'WebhookEndpointRead' });

export const webhookEndpointListSchema = named('WebhookEndpointList', { items: z.array(webhookEndpointReadSchema) });

export const webhookEndpointWithSecretSchema = named('WebhookEndpointWithSecret', {
  endpoint: webhookEndpointSchema,
  secret: z.string().meta({
    description: 'The signing secret (whsec_ + base64), shown this once: it is stored encrypted and never read back.',
    examples: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
  }),
});

export const webhookDeliverySchema = named('WebhookDelivery', {
  eventId: z.string(),
  type: z.enum(ORDER_EVENT_TYPES),
  status: z.enum(DELIVERY_STATUSES).meta({
    description: 'PENDING until a 2xx (DELIVERED) or until retryUntil passes (GAVE_UP).',
  }),
  attempts: int,
  nextAttemptAt: isoTime.nullable(),
  retryUntil: isoTime,
  lastStatus: int.nullable().meta({ description: "The last attempt's HTTP status, if it got one." }),
  lastError: z.string().nullable(),
  queuedAt: isoTime,
  deliveredAt: isoTime.nullable(),
});

export const webhookAttemptListSchema = named('WebhookAttemptList', {
  items: z.array(
    z.object({
      attemptedAt: isoTime,
      outcome: z.enum(ATTEMPT_OUTCOMES).meta({
        description:
          'delivered (2xx), gone (410: the endpoint is disabled), slow_down (429, 502-504), failed (any other answer, ' +
          'or none), refused (not sent: the address or https rule).',
      }),
      httpStatus: int.nullable(),
      error: z
        .string()
        .nullable()
        .meta({
          description:
            "The kind of failure in a few words ('answered 500', 'connection refused', 'address refused: …'): never an " +
            "address, a resolver's answer or the answer's body.",
        }),
      durationMs: int.nullable(),
    }),
  ),
});

export const webhookResendSchema = named('WebhookResendAccepted', {
  endpointId: z.string(),
  eventId: z.string(),
  status: z.literal('PENDING'),
});

sameShape<SameShape<z.infer<typeof webhookEndpointSchema>, EndpointView>>(true);
sameShape<SameShape<z.infer<typeof webhookEndpointReadSchema>, EndpointWithFigures>>(true);
sameShape<SameShape<z.infer<typeof webhookEndpointWithSecretSchema>, EndpointWithSecret>>(true);
sameShape<SameShape<z.infer<typeof webhookDeliverySchema>, DeliveryView>>(true);
sameShape<SameShape<z.infer<typeof webhookAttemptListSchema>, { items: AttemptView[] }>>(true);
sameShape<SameShape<z.infer<typeof webhookResendSchema>, ResendAccepted>>(true);
