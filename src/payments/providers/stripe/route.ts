/** Stripe's webhook route (POST /api/payments/stripe) as the app mounts it and the OpenAPI document shows it. */
import { z } from 'zod';
import { REFUND_REASONS, STRIPE_WEBHOOK_OUTCOMES } from '../../../model/order-workflow.js';
import type { WebhookRoute } from '../definition.js';

const stripeName = z.string().min(1).max(255);

export const STRIPE_WEBHOOK_ROUTE: WebhookRoute = {
  path: '/api/payments/stripe',
  operationId: 'stripeWebhook',
  summary: "Stripe's signed webhook events (PAYMENT_PROVIDER=stripe)",
  description:
    'Verified with the Stripe SDK (constructEvent over the raw body, STRIPE_WEBHOOK_SECRET). `payment_intent.succeeded` takes the ' +
    "generic webhook's record-first path: recorded once by event id, judged by when it arrived, answered with the order's verdict " +
    '(202 RECEIVED when its order has no row yet: decided as the row is written, without a retry). `payment_intent.payment_failed` and refund events are RECORDED; any ' +
    'other event is IGNORED. 503: not recorded; Stripe retries.',
  signature: {
    scheme: 'stripeSignature',
    header: 'Stripe-Signature',
    description:
      "Stripe signs each event with the endpoint's secret (STRIPE_WEBHOOK_SECRET); verified by the Stripe SDK over the raw body.",
  },
  headers: z.object({
    // No bounds of its own: the SDK judges it whole (INVALID_SIGNATURE).
    'Stripe-Signature': z.string().meta({
      description:
        '`t=<unix seconds>,v1=<hex HMAC-SHA256(STRIPE_WEBHOOK_SECRET, t + "." + raw body)>` as Stripe sends it, verified by the Stripe ' +
        "SDK's constructEvent over the raw body. Missing, not matching, or with t more than 5 minutes off: 400 INVALID_SIGNATURE.",
      examples: [`t=1700000000,v1=${'5f'.repeat(32)}`],
    }),
  }),
  // Only id and type are read; the rest is Stripe's (its signature covers the raw body: no unknown field is refused).
  body: z.looseObject({
    id: stripeName.meta({ examples: ['evt_1PgafyB7WZ01zgkW'] }),
    type: stripeName.meta({ examples: ['payment_intent.succeeded'] }),
  }),
  answer: z
    .object({
      received: z.literal(true),
      type: z.string().meta({ description: "The Stripe event's type." }),
      outcome: z.enum(STRIPE_WEBHOOK_OUTCOMES).meta({
        description:
          "A payment: the order's verdict, as the generic webhook answers it. `RECORDED`: a failed payment attempt or a refund's " +
          'progress was recorded (or was already). `IGNORED`: an event the order does not use, or for no order of this service.',
      }),
      refundReason: z.enum(REFUND_REASONS).optional(),
    })
    .meta({ id: 'StripeWebhookAnswer' }),
  answers: {
    200: 'The verdict on a payment, or RECORDED / IGNORED',
    202: 'RECEIVED: recorded before its order row; decided as the row is written',
  },
  unavailable: '`UNAVAILABLE`: the event could not be recorded (MySQL did not answer in time); Stripe retries',
};
