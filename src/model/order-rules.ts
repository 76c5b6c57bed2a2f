/** The order's vocabulary, declared once, and its rules as pure functions; imports nothing (workflow bundle, web/). */

/** The statuses an order row can have: a PENDING order exists only in its workflow. */
export const STORED_ORDER_STATUSES = [
  'AWAITING_PAYMENT',
  'PAID',
  'CANCELLED',
  'FAILED',
  'DISPUTED',
  'REFUNDED',
] as const;

/** In the order an order moves through them (docs/api.md, "Order states"); only a provider sets DISPUTED, REFUNDED. */
export const ORDER_STATUSES = ['PENDING', ...STORED_ORDER_STATUSES] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** While open the order's workflow carries it on (its row decides how it ends); it never changes the others. */
export const OPEN_STATUSES: readonly OrderStatus[] = ['PENDING', 'AWAITING_PAYMENT'];

export type StoredOrderStatus = (typeof STORED_ORDER_STATUSES)[number];

/** Paid, whatever became of the money since: a unit whose money went back stays sold, its goods may be on their way. */
export const SOLD_STATUSES = ['PAID', 'DISPUTED', 'REFUNDED'] as const satisfies readonly StoredOrderStatus[];

export function isSold(status: OrderStatus | undefined): boolean {
  return (SOLD_STATUSES as readonly string[]).includes(status ?? '');
}

export type SoldStatus = (typeof SOLD_STATUSES)[number];

/** Units sold, from units by status. */
export function soldUnits(units: Readonly<Record<SoldStatus, number>>): number {
  return SOLD_STATUSES.reduce((sold, status) => sold + units[status], 0);
}

/** An order in these holds its units (reserved or sold): the per-user limit and the reconciler count them. */
export const HOLDING_STATUSES = ['AWAITING_PAYMENT', ...SOLD_STATUSES] as const satisfies readonly StoredOrderStatus[];

/** The one state machine (docs/fault-tolerance.md, "One close"); a sold order fails only if Redis lost its units. */
export const ORDER_MOVES = {
  AWAITING_PAYMENT: ['PAID', 'CANCELLED', 'FAILED'],
  PAID: ['DISPUTED', 'REFUNDED', 'FAILED'],
  DISPUTED: ['PAID', 'REFUNDED', 'FAILED'],
  REFUNDED: ['PAID', 'DISPUTED', 'FAILED'],
  CANCELLED: [],
  FAILED: [],
} as const satisfies { readonly [From in StoredOrderStatus]: readonly StoredOrderStatus[] };

/** AWAITING_PAYMENT once persisted, FAILED if given up before. */
export const ORDER_FIRST_STATUSES = ['AWAITING_PAYMENT', 'FAILED'] as const satisfies readonly StoredOrderStatus[];

/** The statuses from which a row may move to `to` (ORDER_MOVES): a status statement's guard. */
export function statusesMovingTo(to: StoredOrderStatus): StoredOrderStatus[] {
  return STORED_ORDER_STATUSES.filter((from) => (ORDER_MOVES[from] as readonly StoredOrderStatus[]).includes(to));
}

/** Final: no move leaves it. */
export function isFinal(status: StoredOrderStatus): boolean {
  return ORDER_MOVES[status].length === 0;
}

/** What Redis holds for an order in each row status: the close carries the row's verdict out by it, nothing else. */
export const RESERVATION_OF_STATUS = {
  AWAITING_PAYMENT: 'CLAIMED',
  PAID: 'SOLD',
  DISPUTED: 'SOLD',
  REFUNDED: 'SOLD',
  CANCELLED: 'RELEASED',
  FAILED: 'RELEASED',
} as const satisfies { readonly [Status in StoredOrderStatus]: 'CLAIMED' | 'SOLD' | 'RELEASED' };

/** What the merchant's fulfilment hears (docs/api.md, "Order events"). */
export const ORDER_EVENT_TYPES = [
  'order.paid',
  'order.cancelled',
  'order.failed',
  'order.refunded',
  'order.disputed',
  'order.dispute_closed',
] as const;
export type OrderEventType = (typeof ORDER_EVENT_TYPES)[number];

/** Stripe's dispute statuses folded: OPEN while the card holder's bank decides (an inquiry included). */
export const DISPUTE_STANDINGS = ['OPEN', 'WON', 'LOST'] as const;
export type DisputeStanding = (typeof DISPUTE_STANDINGS)[number];

/** What the provider reported taken back from a paid order, and the status the order shows for it. */
export interface MoneyTakenBack {
  /** Refunds made at the provider without us (pending or done), in cents. */
  refundedCents: number;
  /** The newest dispute of the order's payment, if any. */
  dispute: DisputeStanding | null;
}

/** DISPUTED while a dispute is open; REFUNDED once all the money went back (or a dispute was lost); else PAID. */
export function paidOrderStatus(totalCents: number, takenBack: MoneyTakenBack): 'PAID' | 'DISPUTED' | 'REFUNDED' {
  if (takenBack.dispute === 'OPEN') return 'DISPUTED';
  if (takenBack.dispute === 'LOST' || takenBack.refundedCents >= totalCents) return 'REFUNDED';
  return 'PAID';
}

/** OPERATOR_CANCELLED: the workflow itself was cancelled (Web UI, CLI) while the order awaited payment. */
export const CANCEL_REASONS = ['PAYMENT_TIMEOUT', 'USER_CANCELLED', 'OPERATOR_CANCELLED'] as const;
export type CancelReason = (typeof CANCEL_REASONS)[number];

/** The order row's verdict on one payment event (the workflow carries it out). */
export const PAYMENT_OUTCOMES = ['APPLIED', 'REFUND_REQUIRED'] as const;
export type PaymentOutcome = (typeof PAYMENT_OUTCOMES)[number];

/** A refund through a provider's API (Stripe); REFUND_FAILED goes to an operator, as a generic-webhook refund does. */
export const REFUND_STATES = ['REFUND_REQUESTED', 'REFUNDED', 'REFUND_FAILED'] as const;
export type RefundState = (typeof REFUND_STATES)[number];

/** A provider's refund as it moves on: asked, done, or refused (REFUND_STATES). */
export interface RefundProgress {
  state: RefundState;
  refundId: string | null;
  error?: string;
}

/** A payment row's outcome: RECEIVED until its order's row decides it, then the verdict, then the refund's. */
export const STORED_PAYMENT_OUTCOMES = ['RECEIVED', ...PAYMENT_OUTCOMES, ...REFUND_STATES] as const;
export type StoredPaymentOutcome = (typeof STORED_PAYMENT_OUTCOMES)[number];

/** Payment moves: APPLIED is owed back if its order fails; REFUNDED goes REFUND_FAILED if a won dispute undoes it. */
export const PAYMENT_MOVES = {
  RECEIVED: ['APPLIED', 'REFUND_REQUIRED'],
  APPLIED: ['REFUND_REQUIRED'],
  REFUND_REQUIRED: ['REFUND_REQUESTED', 'REFUNDED', 'REFUND_FAILED'],
  REFUND_REQUESTED: ['REFUNDED', 'REFUND_FAILED'],
  REFUNDED: ['REFUND_FAILED'],
  REFUND_FAILED: [],
} as const satisfies { readonly [From in StoredPaymentOutcome]: readonly StoredPaymentOutcome[] };

/** The outcomes from which a payment may move to `to` (PAYMENT_MOVES): a statement's guard. */
export function paymentOutcomesMovingTo(to: StoredPaymentOutcome): StoredPaymentOutcome[] {
  return STORED_PAYMENT_OUTCOMES.filter((from) =>
    (PAYMENT_MOVES[from] as readonly StoredPaymentOutcome[]).includes(to),
  );
}

/** Money owed back and not yet settled: a refund to ask, or one asked and under way. */
export const REFUNDS_OWED = ['REFUND_REQUIRED', 'REFUND_REQUESTED'] as const satisfies readonly StoredPaymentOutcome[];

/** A plain string here, checked against src/payments/providers/registry.ts where a name comes in. */
export type PaymentProviderName = string;

/** The verdict, DUPLICATE for an event already judged, or RECEIVED before its order's row exists (decided then). */
export const WEBHOOK_OUTCOMES = [...PAYMENT_OUTCOMES, 'DUPLICATE', 'RECEIVED'] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

/** Stripe's webhook answers a payment as the generic one does; its other events are RECORDED or IGNORED. */
export const STRIPE_WEBHOOK_OUTCOMES = [...WEBHOOK_OUTCOMES, 'RECORDED', 'IGNORED'] as const;
export type StripeWebhookOutcome = (typeof STRIPE_WEBHOOK_OUTCOMES)[number];

/** RECEIVED_AFTER_DEADLINE: by when recorded, not delivered; INTENT_MISMATCH: our intent, another order or currency. */
export const REFUND_REASONS = [
  'ORDER_NOT_AWAITING_PAYMENT',
  'AMOUNT_MISMATCH',
  'ALREADY_PAID',
  'ORDER_FAILED',
  'RECEIVED_AFTER_DEADLINE',
  'ORDER_NOT_FOUND',
  'INTENT_MISMATCH',
] as const;
export type RefundReason = (typeof REFUND_REASONS)[number];

/** The arrival rule: recorded at or before the deadline is in time (the store applies it in SQL too). */
export function receivedInTime(receivedAt: string, paymentDeadline: string): boolean {
  return Date.parse(receivedAt) <= Date.parse(paymentDeadline);
}

/** A shopper may ask to cancel an order while it is open; its row decides (a payment applied first wins). */
export function isCancellable(status: OrderStatus): boolean {
  return OPEN_STATUSES.includes(status);
}

/** Why a payment cannot be applied to an order closed (or closing) as `status`. */
export function refundReasonFor(status: OrderStatus | undefined): RefundReason {
  if (isSold(status)) return 'ALREADY_PAID';
  if (status === 'FAILED') return 'ORDER_FAILED';
  return 'ORDER_NOT_AWAITING_PAYMENT';
}

/** The order row's verdict on one payment event (the workflow carries it out). */
export interface PaymentVerdict {
  outcome: PaymentOutcome;
  refundReason?: RefundReason;
}

/** A payment as it is judged: its amount and when MySQL recorded it (ISO). */
export interface PaymentArrival {
  amountCents: number;
  receivedAt: string;
}

export interface PayableOrder {
  totalCents: number;
  paymentDeadline: string;
  paid: boolean;
  /** The status the order is closed or closing as; undefined while it waits for a payment. */
  closingAs: OrderStatus | undefined;
  /** False for a provider whose intent cannot be paid once cancelled (Stripe): its state machine, not the deadline. */
  deadlineDecides?: boolean;
}

/** The payment's own facts come first (amount, arrival), so the reason does not depend on delivery time. */
export function judgePayment(order: PayableOrder, payment: PaymentArrival): PaymentVerdict {
  if (payment.amountCents !== order.totalCents) return refund('AMOUNT_MISMATCH');
  if (order.deadlineDecides !== false && !receivedInTime(payment.receivedAt, order.paymentDeadline))
    return refund('RECEIVED_AFTER_DEADLINE');
  if (order.paid) return refund('ALREADY_PAID');
  if (order.closingAs) return refund(refundReasonFor(order.closingAs));
  return { outcome: 'APPLIED' };
}

/** An order's row as read under its lock to decide a payment (decideWaitingPayments, src/db/orders.ts). */
export interface OrderAtTheDoor {
  status: StoredOrderStatus;
  totalCents: number;
  paymentDeadline: string;
  /** Stripe's intent: its state machine, not the deadline, decides (docs/fault-tolerance.md). */
  intentDecides: boolean;
}

/** The order's row decides (docs/fault-tolerance.md, "A payment's path"): every payment once, under the row's lock. */
export function judgeAtTheDoor(order: OrderAtTheDoor, payment: PaymentArrival): PaymentVerdict {
  return judgePayment(
    {
      totalCents: order.totalCents,
      paymentDeadline: order.paymentDeadline,
      paid: isSold(order.status),
      closingAs: order.status === 'AWAITING_PAYMENT' ? undefined : order.status,
      deadlineDecides: !order.intentDecides,
    },
    payment,
  );
}

/** What a close asks of the row (docs/fault-tolerance.md, "One close"); a payment it applied first wins regardless. */
export type CloseRequest =
  /** A payment may have been applied (a Signal, a provider's close): PAID if the row is sold, else nothing changes. */
  | { kind: 'PAYMENT' }
  /** Unless paid; a timeout once MySQL's clock passed the deadline. */
  | { kind: 'CANCEL'; reason: CancelReason }
  /** Unless paid, for a reason of ours. */
  | { kind: 'FAIL'; reason: string }
  /** Even if paid: Redis no longer holds its units. */
  | { kind: 'RESERVATION_LOST'; reason: string };

/** The row's answer to a close: how the order ended, or OPEN (a PAYMENT asked of a row awaiting payment). */
export type CloseVerdict =
  | { outcome: 'OPEN' }
  | { outcome: 'PAID'; status: SoldStatus; paidAt: string | null }
  | { outcome: 'CANCELLED'; reason: CancelReason }
  | { outcome: 'FAILED'; reason: string };

/** What the workflow asks the row when its wait ends; a payment's Signal only asks whether it paid. */
export function closeRequestOf(wait: {
  operatorCancelled: boolean;
  shopperCancelled: boolean;
  /** Why the order's payment could not be made at its provider; undefined while it could. */
  paymentUnavailable?: string | undefined;
  deadlinePassed: boolean;
}): CloseRequest {
  if (wait.operatorCancelled) return { kind: 'CANCEL', reason: 'OPERATOR_CANCELLED' };
  if (wait.shopperCancelled) return { kind: 'CANCEL', reason: 'USER_CANCELLED' };
  if (wait.paymentUnavailable) return { kind: 'FAIL', reason: wait.paymentUnavailable };
  if (wait.deadlinePassed) return { kind: 'CANCEL', reason: 'PAYMENT_TIMEOUT' };
  return { kind: 'PAYMENT' };
}

function refund(refundReason: RefundReason): PaymentVerdict {
  return { outcome: 'REFUND_REQUIRED', refundReason };
}

/** `npm run rollout`'s smoke orders' sale: real orders, the operator's own, of which no merchant hears (no events). */
export const ROLLOUT_SMOKE_SKU = 'ROLLOUT-SMOKE';
