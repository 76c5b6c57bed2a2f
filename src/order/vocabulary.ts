/**
 * The order's vocabulary: every status, reason and outcome an order and its payments can have,
 * each list declared once. The types below, the API's zod enums (src/api/schemas.ts,
 * src/api/response-schemas.ts), the store's stored statuses and the dashboard derive from these
 * lists. It imports nothing, so both the workflow bundle (through contract.ts, which re-exports it)
 * and the dashboard's browser script can take it in; everything else imports it from contract.ts.
 */

/** An order's statuses in the order it moves through them (docs/api.md, "Order states"). */
export const ORDER_STATUSES = ['PENDING', 'AWAITING_PAYMENT', 'PAID', 'CANCELLED', 'FAILED'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** While open the order's workflow decides what happens next; the other statuses are final. */
export const OPEN_STATUSES: readonly OrderStatus[] = ['PENDING', 'AWAITING_PAYMENT'];

/** The statuses an order row can have: a PENDING order exists only in its workflow. */
export const STORED_ORDER_STATUSES = ['AWAITING_PAYMENT', 'PAID', 'CANCELLED', 'FAILED'] as const satisfies readonly OrderStatus[];
export type StoredOrderStatus = (typeof STORED_ORDER_STATUSES)[number];

/** OPERATOR_CANCELLED: the workflow itself was cancelled (Web UI, CLI) while the order awaited payment. */
export const CANCEL_REASONS = ['PAYMENT_TIMEOUT', 'USER_CANCELLED', 'OPERATOR_CANCELLED'] as const;
export type CancelReason = (typeof CANCEL_REASONS)[number];

/** The workflow's verdict on one payment event. */
export const PAYMENT_OUTCOMES = ['APPLIED', 'REFUND_REQUIRED'] as const;
export type PaymentOutcome = (typeof PAYMENT_OUTCOMES)[number];

/** A payment row's outcome: RECEIVED from the webhook's first write until the verdict is written. */
export const STORED_PAYMENT_OUTCOMES = ['RECEIVED', ...PAYMENT_OUTCOMES] as const;
export type StoredPaymentOutcome = (typeof STORED_PAYMENT_OUTCOMES)[number];

/**
 * The webhook's answer: the verdict, DUPLICATE for an event already judged, or RECEIVED for an
 * event recorded whose verdict did not come in time (it is delivered and judged later).
 */
export const WEBHOOK_OUTCOMES = [...PAYMENT_OUTCOMES, 'DUPLICATE', 'RECEIVED'] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

/**
 * Why a payment was not applied to its order. RECEIVED_AFTER_DEADLINE: recorded after the order's
 * payment deadline (judged by when it arrived, not when it was delivered); ORDER_NOT_FOUND: no
 * order with that number was ever accepted.
 */
export const REFUND_REASONS = [
  'ORDER_NOT_AWAITING_PAYMENT',
  'AMOUNT_MISMATCH',
  'ALREADY_PAID',
  'ORDER_FAILED',
  'RECEIVED_AFTER_DEADLINE',
  'ORDER_NOT_FOUND',
] as const;
export type RefundReason = (typeof REFUND_REASONS)[number];
