/** The operators' views as the admin API answers them (OpenAPI `SaleStats`, `AdminOrder`, …), each type inferred. */
import { z } from 'zod';
import type { OrderRow, PaymentRow, SaleRow, Takeback } from '../db/rows.js';
import type { PaymentFailureRow } from '../db/payments.js';
import { INVARIANTS } from '../invariants/check.js';
import { STORED_ORDER_STATUSES, STORED_PAYMENT_OUTCOMES } from '../model/order-workflow.js';
import { eachOf, int, isoTime, named, orderNoSchema, shown, skuSchema } from '../infra/schema-fields.js';
import { disputeSchema } from '../order/lookup.js';
import { saleSchema } from './sale-view.js';

/** A registered provider's name (src/payments/providers/registry.ts): `generic`, `stripe`. */
const providerName = z.string().meta({ examples: ['generic', 'stripe'] });

const storedStatusFigures = eachOf(STORED_ORDER_STATUSES, int);

/** GET /api/admin/sales/{sku}/stats. */
export const saleStatsSchema = named('SaleStats', {
  sku: skuSchema,
  redis: z.object({ stock: int, available: int, reserved: int, sold: int }),
  mysql: z.object({ stock: int, available: int, orders: storedStatusFigures, units: storedStatusFigures }),
  runningWorkflows: int.meta({
    description: 'OrderWorkflows of the sale still running (PENDING or AWAITING_PAYMENT), from Temporal visibility.',
  }),
  payments: z.record(z.enum(STORED_PAYMENT_OUTCOMES), int).meta({
    description:
      "The payment events of the sale's orders by outcome: APPLIED, RECEIVED (waiting for its order's row), and the refunds: " +
      'REFUND_REQUIRED (through Stripe: to ask), REFUND_REQUESTED, REFUNDED, REFUND_FAILED (an operator settles it).',
  }),
  drift: z.object({ available: int, reserved: int, sold: int }).meta({
    description: 'Redis minus MySQL: 0 once no order is PENDING; while orders persist, Redis is ahead by their units.',
  }),
  invariants: z.object({ ok: z.boolean(), checks: z.record(z.enum(INVARIANTS), z.boolean()) }).meta({
    description:
      'The invariants of docs/fault-tolerance.md for this sale as they stand now (storesAgree only at rest).',
  }),
});

/** An order as the admin views (and, with fewer fields, the order events) show it. */
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
  provider: providerName,
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

const failedAttemptSchema = z.object({
  eventId: z.string(),
  provider: providerName,
  providerRef: z.string().nullable(),
  code: z.string().nullable().meta({ description: "The provider's decline or error code (card_declined, …)." }),
  message: z.string().nullable(),
  receivedAt: isoTime,
});

/** Money taken back without us asking: a refund in the provider's dashboard, or a dispute. */
const takenBackSchema = z.object({
  id: z.string().meta({ description: "The provider's refund (re_…) or dispute (dp_…)." }),
  kind: z.enum(['REFUND', 'DISPUTE']),
  amountCents: int,
  status: z.string().meta({ description: 'A refund: PENDING, SUCCEEDED, FAILED; a dispute: OPEN, WON, LOST.' }),
  providerStatus: z.string().meta({ description: "The provider's own status (needs_response, under_review, …)." }),
  reason: z.string().nullable(),
  dueBy: isoTime.nullable().meta({ description: "A dispute's deadline for evidence." }),
  createdAt: isoTime,
});

/** One order's payment events, failed payment attempts and money taken back (refunds without us, disputes). */
export const adminOrderPaymentsSchema = named('AdminOrderPayments', {
  orderNo: orderNoSchema,
  payments: z.array(adminPaymentSchema),
  failedAttempts: z.array(failedAttemptSchema),
  takenBack: z.array(takenBackSchema),
});

export const adminSaleSchema = saleSchema
  .omit({ reserved: true, sold: true })
  .extend({ available: int })
  .meta({ id: 'AdminSale' });

export type SaleStats = z.infer<typeof saleStatsSchema>;
export type StatusFigures = SaleStats['mysql']['units'];
export type AdminOrderView = z.infer<typeof adminOrderSchema>;
export type AdminPaymentView = z.infer<typeof adminPaymentSchema>;
export type AdminOrderPayments = z.infer<typeof adminOrderPaymentsSchema>;
export type AdminSaleView = z.infer<typeof adminSaleSchema>;

export const adminOrderView = (row: OrderRow): AdminOrderView => shown(adminOrderSchema, row);
export const adminPaymentView = (row: PaymentRow & { sku: string | null }): AdminPaymentView =>
  shown(adminPaymentSchema, row);
export const adminSaleView = (row: SaleRow): AdminSaleView => shown(adminSaleSchema, row);
export const failedAttemptView = (row: PaymentFailureRow): z.infer<typeof failedAttemptSchema> =>
  shown(failedAttemptSchema, row);
export const takenBackView = (row: Takeback): z.infer<typeof takenBackSchema> => shown(takenBackSchema, row);
