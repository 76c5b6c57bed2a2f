/** The generic webhook's route (POST /api/payments/webhook: this service's own signed event) for app and OpenAPI. */
import { z } from 'zod';
import { ORDER_NO_PATTERN } from '../../../model/order-workflow.js';
import { webhookAnswerSchema } from '../../receiver.js';
import type { WebhookRoute } from '../definition.js';
import { PAYMENT_SIGNATURE_PATTERN } from './signature.js';

const EVENT_ID_RULE = 'eventId: 1-128 letters, digits or _.:-';

export const GENERIC_WEBHOOK_ROUTE: WebhookRoute = {
  path: '/api/payments/webhook',
  operationId: 'paymentWebhook',
  summary: "The payment provider's signed payment event",
  description:
    "Recorded first (the event id is a primary key; MySQL stamps when it arrived) and decided by the order's row in " +
    'the same transaction. 200: the verdict, APPLIED or REFUND_REQUIRED (kept for a refund), or DUPLICATE for an event ' +
    "already decided. 202 RECEIVED: recorded before the order's row was written; decided as it is written (no retry " +
    "needed). A payment is judged by when it arrived: recorded at or before the order's paymentDeadline with the full " +
    'amount, it pays the order. 503: not recorded; retry.',
  signature: {
    scheme: 'paymentSignature',
    header: 'Payment-Signature',
    description:
      'The payment provider signs each webhook: `t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, t + "." + raw body)>`, ' +
      'accepted within 5 minutes of t; several v1 values are allowed while a secret rotates.',
  },
  // Declared for the document; verifyWebhookSignature (./signature.ts) checks it with the same pattern.
  headers: z.object({
    'Payment-Signature': z
      .string()
      .regex(PAYMENT_SIGNATURE_PATTERN)
      .meta({
        description:
          '`t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, t + "." + raw body)>`, more v1 values while a secret rotates; ' +
          'elements of other schemes (`v0=…`) are ignored. ' +
          'Malformed, not matching the raw body, or with t more than 5 minutes off: 400 INVALID_SIGNATURE.',
        examples: [`t=1700000000,v1=${'5f'.repeat(32)}`],
      }),
  }),
  // Strict like every other body: a field this API does not know is refused, not ignored.
  body: z.strictObject({
    eventId: z
      .string()
      .min(1, EVENT_ID_RULE)
      .max(128, EVENT_ID_RULE)
      .regex(/^[A-Za-z0-9_.:-]+$/, EVENT_ID_RULE)
      .meta({
        description:
          "The payment's identity: sent again it answers DUPLICATE; sent again for another orderNo, 400 INVALID_REQUEST.",
        examples: ['evt_01ARZ3NDEKTSV4RRFFQ69G5FAV'],
      }),
    type: z.literal('payment.succeeded'),
    orderNo: z
      .string()
      .regex(ORDER_NO_PATTERN, 'not an order number')
      .meta({ examples: ['01ARZ3NDEKTSV4RRFFQ69G5FAV'] }),
    amountCents: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  }),
  answer: webhookAnswerSchema,
  answers: {
    200: "The order's verdict on the event (APPLIED, REFUND_REQUIRED), or DUPLICATE",
    202: 'RECEIVED: recorded; the verdict comes later, without a retry',
  },
  unavailable: '`UNAVAILABLE`: the event could not be recorded (MySQL did not answer in time); retry after Retry-After',
};
