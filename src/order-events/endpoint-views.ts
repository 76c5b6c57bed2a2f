/** Webhook endpoints as answered (docs/api.md, "Webhook endpoints"); the secret only in a create's or rotation's. */
import { z } from 'zod';
import { ATTEMPT_OUTCOMES, DELIVERY_STATUSES } from '../db/webhooks.js';
import type { AttemptRow, DeliveryFigures, DeliveryRow, EndpointRow } from '../db/webhooks.js';
import { ORDER_EVENT_TYPES } from '../model/order-workflow.js';
import { int, isoTime, named, shown } from '../infra/schema-fields.js';

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

const deliveryFiguresSchema = z
  .object({
    pending: int.meta({ description: 'Events owed, not yet delivered.' }),
    failing: int.meta({ description: 'Of those owed, the ones tried at least once.' }),
    delivered: int,
    gaveUp: int.meta({ description: 'Not delivered within EVENTS_RETRY_PERIOD (the feed has them).' }),
    oldestPendingQueuedAt: isoTime.nullable(),
  })
  .meta({ description: 'Its deliveries still kept (EVENTS_RETENTION).' });

export const webhookEndpointReadSchema = webhookEndpointSchema
  .extend({ deliveries: deliveryFiguresSchema })
  .meta({ id: 'WebhookEndpointRead' });

export const webhookEndpointListSchema = named('WebhookEndpointList', { items: z.array(webhookEndpointReadSchema) });

/** A create's or rotation's answer: the only time the secret is shown. */
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

const webhookAttemptSchema = z.object({
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
});

export const webhookAttemptListSchema = named('WebhookAttemptList', { items: z.array(webhookAttemptSchema) });

export const webhookResendSchema = named('WebhookResendAccepted', {
  endpointId: z.string(),
  eventId: z.string(),
  status: z.literal('PENDING'),
});

export type EndpointView = z.infer<typeof webhookEndpointSchema>;
export type EndpointWithFigures = z.infer<typeof webhookEndpointReadSchema>;
export type EndpointWithSecret = z.infer<typeof webhookEndpointWithSecretSchema>;
export type DeliveryView = z.infer<typeof webhookDeliverySchema>;
export type AttemptView = z.infer<typeof webhookAttemptSchema>;
export type ResendAccepted = z.infer<typeof webhookResendSchema>;

const NO_FIGURES: DeliveryFigures = { pending: 0, failing: 0, delivered: 0, gaveUp: 0, oldestPendingQueuedAt: null };

export function endpointView(row: EndpointRow): EndpointView {
  return {
    ...shown(webhookEndpointSchema, row),
    eventTypes: [...row.eventTypes],
    // The old secret signs beside the new one only while it is kept.
    oldSecretUntil: row.oldSecretBox && row.oldSecretUntil ? row.oldSecretUntil.toISOString() : null,
  };
}

export function withFigures(row: EndpointRow, figures: DeliveryFigures = NO_FIGURES): EndpointWithFigures {
  return { ...endpointView(row), deliveries: shown(deliveryFiguresSchema, figures) };
}

export const deliveryView = (row: DeliveryRow): DeliveryView => shown(webhookDeliverySchema, row);
export const attemptView = (row: AttemptRow): AttemptView => shown(webhookAttemptSchema, row);
