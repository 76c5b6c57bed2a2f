/** OrderWorkflow as its callers see it, re-exporting ./order-rules.ts; in the workflow bundle: deterministic only. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import ms from 'ms';
import type { CancelReason, OrderStatus, PaymentProviderName, StoredPaymentOutcome } from './order-rules.js';

export * from './order-rules.js';

/** What starts an order: the workflow's input, kept in its history (changing it needs a patch). */
export interface OrderInput {
  orderNo: string;
  sku: string;
  userId: string;
  quantity: number;
  unitPriceCents: number;
  idempotencyKey?: string;
  /** ISO time the API reserved the stock. */
  createdAt: string;
  /** A duration string ("30m"), in the input so a changed PAYMENT_WINDOW never moves a running order's deadline. */
  paymentWindow: string;
  /** The provider the order makes a payment at (Stripe: a PaymentIntent); absent for the generic webhook. */
  paymentProvider?: ProviderWithApi;
}

/** The providers with an API the order talks to (src/payments/provider.ts); the generic webhook has none. */
export type ProviderWithApi = Exclude<PaymentProviderName, 'generic'>;

/** The id only: the client secret would sit in every history and export, so MySQL keeps it, encrypted. */
export interface PaymentIntentRef {
  id: string;
}

/** What the shopper's client needs to pay the order at its provider (Stripe: confirm the PaymentIntent). */
export interface PaymentIntentHandle extends PaymentIntentRef {
  /** Lets the client confirm the payment with the publishable key; shown to the order's shopper only. */
  clientSecret: string;
}

export interface PaymentReceived {
  /** The provider's event id: the same event delivered twice is applied once. */
  eventId: string;
  amountCents: number;
  /** The payments row's received_at, stamped by MySQL: the order's row decides by it, however late delivered. */
  receivedAt: string;
}

/** What persisting an order needs (persistOrder, recordOrderFailure): the input and its payment deadline. */
export type PersistOrderInput = OrderInput & { paymentDeadline: string };

/** The order as its workflow reports it (query, Updates, result): its row decides, this follows ("One close"). */
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
  /** When it became payable (while PENDING: createdAt) + the payment window; unpaid after it, it is cancelled. */
  paymentDeadline: string;
  paidAt?: string;
  paymentProvider?: ProviderWithApi;
  /** Its payment at that provider, once made; a build before payload encryption also kept the secret here: ignored. */
  paymentIntent?: PaymentIntentRef;
}

/** PENDING, its deadline the earliest it can be (moved later once persisted). */
export function pendingOrderState(input: OrderInput): OrderState {
  return {
    orderNo: input.orderNo,
    sku: input.sku,
    userId: input.userId,
    quantity: input.quantity,
    totalCents: input.unitPriceCents * input.quantity,
    status: 'PENDING',
    createdAt: input.createdAt,
    paymentDeadline: new Date(Date.parse(input.createdAt) + durationToMs(input.paymentWindow)).toISOString(),
    ...(input.paymentProvider ? { paymentProvider: input.paymentProvider } : {}),
  };
}

/** Only wakes the order to ask its row (the one close): one sent by hand, with no payment behind it, sells nothing. */
export const paymentAppliedSignal = defineSignal<[PaymentReceived]>('paymentApplied');
/** The shopper's cancel: the order's row decides (a payment applied first wins: refused NOT_CANCELLABLE). */
export const cancelUpdate = defineUpdate<OrderState, []>('cancel');
/** The state once persisting has an outcome (not PENDING); the waiting checkout sends it with Update-with-Start. */
export const awaitPersistedUpdate = defineUpdate<OrderState, []>('awaitPersisted');
export const statusQuery = defineQuery<OrderState>('status');

/** The message of a refused cancel Update starts with this code, so callers can tell it apart. */
export const NOT_CANCELLABLE = 'NOT_CANCELLABLE';

/** The workflow type, as registered by the worker (the exported function's name). */
export const ORDER_WORKFLOW_TYPE = 'OrderWorkflow';

/** Its signature: callers start it by name with these types; src/workflows/order.ts satisfies it. */
export type OrderWorkflowSignature = (input: OrderInput) => Promise<OrderState>;

/** The order's own queue with a suffix: its workers pace openPayment and closePayment at the provider's rate. */
export function providerTaskQueue(orderTaskQueue: string): string {
  return `${orderTaskQueue}-provider`;
}

/** Merchants' deliveries of order events: slots of their own, so a deep or failing endpoint never takes the orders'. */
export function deliveryTaskQueue(orderTaskQueue: string): string {
  return `${orderTaskQueue}-deliveries`;
}

/** Queues a version must poll before going current; not the deliveries' queue: older builds (a rollback's) lack it. */
export function requiredTaskQueues(orderTaskQueue: string): string[] {
  return [orderTaskQueue, providerTaskQueue(orderTaskQueue)];
}

/** RefundWorkflow's id is per payment event: a second start while one runs joins it. */
export const REFUND_WORKFLOW_TYPE = 'RefundWorkflow';
/** What a refund's run left its payment as: moved on, under way at the provider, or already past (another run's). */
export type RefundRunOutcome = StoredPaymentOutcome | 'NOT_FOUND';
export type RefundWorkflowSignature = (input: { eventId: string }) => Promise<RefundRunOutcome>;
export function refundWorkflowId(eventId: string): string {
  return `refund-${eventId}`;
}
/** One workflow per order: the id is derived from the order number, so it can never run twice. */
export function orderWorkflowId(orderNo: string): string {
  return `order-${orderNo}`;
}

/** Set once for Web UI filters; not the status (a visibility write per change) nor the user id (stored in clear). */
export const ORDER_SKU_SEARCH_ATTRIBUTE = defineSearchAttributeKey('OrderSku', SearchAttributeType.KEYWORD);

export const ORDER_SEARCH_ATTRIBUTES = [ORDER_SKU_SEARCH_ATTRIBUTE] as const;

/** Crockford base32 like a ULID (10 chars of ms time, 16 random): sortable, unique across instances uncoordinated. */
export const ORDER_NO_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const ORDER_NO_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** When the order number was made (ms since the epoch), from its first 10 characters; null if it is not one. */
export function orderNoTime(orderNo: string): number | null {
  if (!ORDER_NO_PATTERN.test(orderNo)) return null;
  let time = 0;
  for (const char of orderNo.slice(0, 10)) time = time * 32 + ORDER_NO_ALPHABET.indexOf(char);
  return time;
}

/** A duration ("30m", "2 hours") in ms, parsed by `ms` as the SDK does; here as the workflow computes its deadline. */
export function durationToMs(value: string | number): number {
  const parsed = typeof value === 'number' ? value : ms(value as Parameters<typeof ms>[0]);
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed <= 0) {
    throw new TypeError(`not a positive duration: ${JSON.stringify(value)}`);
  }
  return parsed;
}
