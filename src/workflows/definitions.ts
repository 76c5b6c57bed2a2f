/**
 * The order's contract: the OrderWorkflow's type name, id, input, state, signals, query, search
 * attributes and the cancel rule. Defined once here and shared by the workflow, the order client
 * (src/orders), the API and the tests. Deterministic-safe: only type imports, pure functions and
 * @temporalio/workflow's define* helpers. States and rules are described in docs/contract.md.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal } from '@temporalio/workflow';

export type OrderStatus = 'PENDING' | 'AWAITING_PAYMENT' | 'PAID' | 'CANCELLED' | 'FAILED';
export type CancelReason = 'PAYMENT_TIMEOUT' | 'USER_CANCELLED';
export type PaymentOutcome = 'APPLIED' | 'REFUND_REQUIRED';
/** Why a payment was not applied to its order. */
export type RefundReason = 'ORDER_NOT_AWAITING_PAYMENT' | 'AMOUNT_MISMATCH' | 'ALREADY_PAID' | 'ORDER_FAILED';

export const TERMINAL_STATUSES: readonly OrderStatus[] = ['PAID', 'CANCELLED', 'FAILED'];

export interface OrderInput {
  orderNo: string;
  sku: string;
  userId: string;
  quantity: number;
  unitPriceCents: number;
  idempotencyKey?: string;
  /** ISO time the API reserved the stock. */
  createdAt: string;
  /**
   * How long the shopper has to pay, as a duration string ("30m"). It travels in the input so that
   * changing PAYMENT_WINDOW never changes the deadline of an order already running.
   */
  paymentWindow: string;
}

export interface PaymentReceived {
  /** The provider's event id: the same event delivered twice is applied once. */
  eventId: string;
  amountCents: number;
}

export interface PaymentRecord {
  eventId: string;
  amountCents: number;
  outcome: PaymentOutcome;
  refundReason?: RefundReason;
}

/** What the `status` query answers; the API's GET /api/orders/:orderNo is built from it. */
export interface OrderState {
  orderNo: string;
  sku: string;
  userId: string;
  quantity: number;
  totalCents: number;
  status: OrderStatus;
  cancelReason?: CancelReason;
  failureReason?: string;
  createdAt: string;
  /** createdAt + the payment window: after it, an unpaid order is cancelled. */
  paymentDeadline: string;
  paidAt?: string;
  /** Every payment event the workflow saw, with what became of it. */
  payments: PaymentRecord[];
}

export const paymentReceivedSignal = defineSignal<[PaymentReceived]>('paymentReceived');
export const cancelOrderSignal = defineSignal<[]>('cancelOrder');
export const statusQuery = defineQuery<OrderState>('status');

/** The workflow type, as registered by the worker (the exported function's name). */
export const ORDER_WORKFLOW_TYPE = 'OrderWorkflow';

/** States in which the order is still open (its workflow decides what happens next). */
export const OPEN_STATUSES: readonly OrderStatus[] = ['PENDING', 'AWAITING_PAYMENT'];

/**
 * The cancel rule, in one place: an order can be cancelled by its shopper while it is open and no
 * payment has been accepted for it.
 */
export function isCancellable(state: Pick<OrderState, 'status' | 'payments'>): boolean {
  return OPEN_STATUSES.includes(state.status) && !state.payments.some((p) => p.outcome === 'APPLIED');
}

/** One workflow per order: the id is derived from the order number, so it can never run twice. */
export function orderWorkflowId(orderNo: string): string {
  return `order-${orderNo}`;
}

/**
 * Custom search attributes, so operators can filter orders in the Web UI
 * (e.g. `OrderSku = "SKU-1" AND OrderStatus = "AWAITING_PAYMENT"`). The stack registers them.
 */
export const ORDER_SKU_SEARCH_ATTRIBUTE = defineSearchAttributeKey('OrderSku', SearchAttributeType.KEYWORD);
export const ORDER_USER_SEARCH_ATTRIBUTE = defineSearchAttributeKey('OrderUserId', SearchAttributeType.KEYWORD);
export const ORDER_STATUS_SEARCH_ATTRIBUTE = defineSearchAttributeKey('OrderStatus', SearchAttributeType.KEYWORD);

export const ORDER_SEARCH_ATTRIBUTES = [ORDER_SKU_SEARCH_ATTRIBUTE, ORDER_USER_SEARCH_ATTRIBUTE, ORDER_STATUS_SEARCH_ATTRIBUTE] as const;
