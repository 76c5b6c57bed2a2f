/** The API's own answer schemas; each domain view's schema sits beside the code that makes it, its type inferred. */
import { z } from 'zod';
import { BREAKER_STATES, DEPENDENCY_NAMES, SERVER_NAMES } from '../infra/dependency-guard.js';
import { ERROR_CODES, type ErrorCode } from '../infra/error-codes.js';
import { eachOf, int, named, orderNoSchema, orderStatusSchema } from '../infra/schema-fields.js';
import { orderSchema } from '../order/lookup.js';

const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

export const errorCodeSchema = z
  .enum(ERROR_CODE_NAMES)
  .meta({ id: 'ErrorCode', description: 'A stable error code; the message is for people.' });

export const errorBodySchema = named('ApiError', {
  error: z.object({
    code: errorCodeSchema,
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

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

/** GET /api/dev/config: what the dashboard needs to link orders to the Web UI. */
export const devConfigSchema = named('DevConfig', {
  temporalUiUrl: z.string().nullable(),
  namespace: z.string(),
  devAdminToken: z.string().nullable(),
});
