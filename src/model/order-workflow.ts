/**
 * The OrderWorkflow as its callers see it: its type name and signature, id, input, state, Updates,
 * query, search attributes and the order number's form. Declared once here and shared by the
 * workflow, the order's workflow client, the stores and the tests; the vocabulary (statuses,
 * reasons, outcomes) and the rules on the state live in ./order-rules.ts, exported from here too.
 *
 * The workflow bundle takes this file in (src/workers/bundle.ts hashes it with the workflows), so
 * it holds only deterministic code: pure functions, constants and the SDK's define* helpers.
 * States are described in docs/api.md, the rules in docs/fault-tolerance.md.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import ms from 'ms';
import type { CancelReason, DisputeStanding, OrderStatus, PaymentProviderName, PaymentVerdict } from './order-rules.js';

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
  /**
   * How long the shopper has to pay, as a duration string ("30m"). It travels in the input so that
   * changing PAYMENT_WINDOW never changes the deadline of an order already running.
   */
  paymentWindow: string;
  /**
   * The provider the order is paid through when it makes a payment per order (Stripe: a
   * PaymentIntent); absent for the generic webhook, which needs nothing made.
   */
  paymentProvider?: ProviderWithApi;
}

/** The providers with an API the order talks to (src/payments/provider.ts); the generic webhook has none. */
export type ProviderWithApi = Exclude<PaymentProviderName, 'generic'>;

/** What the shopper's client needs to pay the order at its provider (Stripe: confirm the PaymentIntent). */
export interface PaymentIntentHandle {
  id: string;
  /** Lets the client confirm the payment with the publishable key; shown to the order's shopper only. */
  clientSecret: string;
}

export interface PaymentReceived {
  /** The provider's event id: the same event delivered twice is applied once. */
  eventId: string;
  amountCents: number;
  /**
   * When the payment was recorded (the payments row's received_at, stamped by MySQL): the order
   * judges the payment by it, however late it is delivered.
   */
  receivedAt: string;
}

/** One payment event in the order's state, with what became of it. */
export interface PaymentRecord extends PaymentVerdict {
  eventId: string;
  amountCents: number;
}

/** What persisting an order needs (persistOrder, recordOrderFailure): the input and its payment deadline. */
export type PersistOrderInput = OrderInput & { paymentDeadline: string };

/**
 * The order as its workflow holds it: what the `status` query and the Updates answer, and the
 * workflow's result. The API shows the shopper a part of it (OrderView).
 */
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
  /**
   * When the order became payable + the payment window (while PENDING: createdAt + the window): after it, an unpaid
   * order is cancelled.
   */
  paymentDeadline: string;
  paidAt?: string;
  /** Every payment event the workflow saw, with what became of it. */
  payments: PaymentRecord[];
  /** The provider the order is paid through, when it is not the generic webhook. */
  paymentProvider?: ProviderWithApi;
  /** Its payment at that provider, once made (while AWAITING_PAYMENT the shopper pays through it). */
  paymentIntent?: PaymentIntentHandle;
}

/**
 * The order's state when its workflow starts: PENDING, its payment deadline the earliest it can be
 * (the reservation + the payment window, moved later once persisted).
 */
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
    payments: [],
    ...(input.paymentProvider ? { paymentProvider: input.paymentProvider } : {}),
  };
}

/**
 * The order as the API shows it to its shopper (docs/api.md): its state without the user id and the payments; the
 * PaymentIntent only while the order awaits payment.
 */
export type OrderView = OrderViewOfState & {
  /** Refunded at the provider after payment without us asking (docs/api.md, "Order states"). */
  refundedCents?: number;
  /** The newest dispute of the order's payment. */
  dispute?: OrderDispute;
};

/** A dispute of an order's payment, as the order shows it. */
export interface OrderDispute {
  standing: DisputeStanding;
  reason: string | null;
  dueBy: string | null;
  amountCents: number;
}

type OrderViewOfState = Pick<
  OrderState,
  | 'orderNo'
  | 'sku'
  | 'quantity'
  | 'totalCents'
  | 'status'
  | 'cancelReason'
  | 'paymentDeadline'
  | 'createdAt'
  | 'paidAt'
  | 'paymentProvider'
  | 'paymentIntent'
>;

/**
 * The card's payment signal: a payment the order's row applied (PaymentStore.recordPayment), sent after the commit.
 * The workflow follows the row's decision and closes the order as PAID; it does not judge the payment again. A signal
 * needs no worker: Temporal keeps it in the history until one runs the order (docs/fault-tolerance.md).
 */
export const paymentAppliedSignal = defineSignal<[PaymentReceived]>('paymentApplied');

/**
 * The shopper's cancel, whose verdict is the order row's (the workflow cancels the row first): refused NOT_CANCELLABLE
 * once a payment was applied (a refusal the validator can tell never enters the history).
 */
export const cancelUpdate = defineUpdate<OrderState, []>('cancel');
/**
 * Answers once the order's persistence has an outcome: the state as soon as it is no longer
 * PENDING (AWAITING_PAYMENT once persisted; FAILED, with failureReason, once it failed for good).
 * The waiting checkout sends it with Update-with-Start.
 */
export const awaitPersistedUpdate = defineUpdate<OrderState, []>('awaitPersisted');
export const statusQuery = defineQuery<OrderState>('status');

/** The message of a refused cancel Update starts with this code, so callers can tell it apart. */
export const NOT_CANCELLABLE = 'NOT_CANCELLABLE';

/** The workflow type, as registered by the worker (the exported function's name). */
export const ORDER_WORKFLOW_TYPE = 'OrderWorkflow';

/** Its signature: callers start it by name with these types; src/workflows/order.ts satisfies it. */
export type OrderWorkflowSignature = (input: OrderInput) => Promise<OrderState>;

/**
 * The task queue of an order's provider requests (openPayment, closePayment): the order's own queue
 * with a suffix, served by workers that pace them at the provider's rate.
 */
export function providerTaskQueue(orderTaskQueue: string): string {
  return `${orderTaskQueue}-provider`;
}

/**
 * A payment its row owes back through a provider's API is refunded by RefundWorkflow (src/workflows/refunds.ts),
 * one per payment event (a second start while one runs joins it), started by the reconciler.
 */
export const REFUND_WORKFLOW_TYPE = 'RefundWorkflow';
export type RefundWorkflowSignature = (input: { eventId: string }) => Promise<string>;
export function refundWorkflowId(eventId: string): string {
  return `refund-${eventId}`;
}
/** A run's activity gives up after this; its row, taken for a minute more, is then due for the next run. */
export const REFUND_RUN_BOUND_MS = 3_600_000;
export const REFUND_TAKEN_FOR_MS = REFUND_RUN_BOUND_MS + 60_000;

/** One workflow per order: the id is derived from the order number, so it can never run twice. */
export function orderWorkflowId(orderNo: string): string {
  return `order-${orderNo}`;
}

/**
 * Custom search attributes, set once at the start, so operators can filter orders in the Web UI
 * (`OrderSku = "SKU-1" AND ExecutionStatus = "Running"`). The stack registers them. The status is
 * not one: a visibility write per change that nothing read (the status query answers it).
 */
export const ORDER_SKU_SEARCH_ATTRIBUTE = defineSearchAttributeKey('OrderSku', SearchAttributeType.KEYWORD);
export const ORDER_USER_SEARCH_ATTRIBUTE = defineSearchAttributeKey('OrderUserId', SearchAttributeType.KEYWORD);

export const ORDER_SEARCH_ATTRIBUTES = [ORDER_SKU_SEARCH_ATTRIBUTE, ORDER_USER_SEARCH_ATTRIBUTE] as const;

/**
 * Order numbers: 10 chars of millisecond time then 16 random chars, in Crockford base32 (like a
 * ULID). Sortable by creation time, unique across API instances without coordination (80 random
 * bits per millisecond), and safe in URLs and workflow ids. Made by the checkout (newOrderNo).
 */
export const ORDER_NO_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const ORDER_NO_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** When the order number was made (ms since the epoch), from its first 10 characters; null if it is not one. */
export function orderNoTime(orderNo: string): number | null {
  if (!ORDER_NO_PATTERN.test(orderNo)) return null;
  let time = 0;
  for (const char of orderNo.slice(0, 10)) time = time * 32 + ORDER_NO_ALPHABET.indexOf(char);
  return time;
}

/**
 * Milliseconds of a duration string ("30m", "90s", "2 hours") or number, with `ms`, the parser
 * Temporal's SDK itself uses; throws on anything that is not a positive duration. Here because the
 * workflow computes the payment deadline from the duration in its input; config and auth share it
 * so every process reads a duration the same way.
 */
export function durationToMs(value: string | number): number {
  const parsed = typeof value === 'number' ? value : ms(value as Parameters<typeof ms>[0]);
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed <= 0) {
    throw new TypeError(`not a positive duration: ${JSON.stringify(value)}`);
  }
  return parsed;
}
