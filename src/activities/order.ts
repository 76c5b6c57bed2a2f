// OrderWorkflow's activities. Thrown as-is: retried; a rule no retry can change: nonRetryable with a stable type.
import { setTimeout as sleep } from 'node:timers/promises';
import { asyncLocalStorage, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { OrderStore } from '../db/orders.js';
import type { RedisInventory } from '../redis/inventory.js';
import {
  durationToMs,
  type CloseRequest,
  type CloseVerdict,
  type PaymentReceived,
  type PersistOrderInput,
} from '../model/order-workflow.js';
import { newOrderOf, OrderCloser, type OrderChanges, type RefundStarts } from '../order/close.js';

export interface ActivityDeps {
  stores: { orders: OrderStore };
  inventory: RedisInventory;
  /** Tells the API processes' status caches an order is changing (OrderChangeNotifier, src/order/status-reads.ts). */
  changes: OrderChanges;
  /** Starts the refund of each payment a close or a persist left owed (the reconciler starts any it missed). */
  refunds?: RefundStarts;
}

/** Stable types of non-retryable failures, visible in the Web UI and in the order's failureReason. */
export const FailureTypes = {
  saleNotFound: 'SaleNotFound',
  outOfStockInDatabase: 'OutOfStockInDatabase',
  orderConflict: 'OrderConflict',
  /** The order's row was already final (FAILED or CANCELLED) when its start came to persist it. */
  orderClosed: 'OrderClosed',
  /** The reservation was released before the claim (the API gave up on it, or the reconciler found it orphaned). */
  reservationReleased: 'ReservationReleased',
  /** Redis has no record of the reservation (lost in a Redis crash before it reached disk). */
  reservationLost: 'ReservationLost',
  /** A payment timeout reached MySQL before MySQL's clock passed the deadline (clocks differ): retried. */
  deadlineNotReached: 'DeadlineNotReached',
  /** The payment provider refused to make the order's payment (an invalid request): it cannot be paid. */
  paymentRefused: 'PaymentRefused',
  /** An idempotency key was reused with other parameters: a bug, surfaced instead of retried. */
  idempotencyKeyReused: 'IdempotencyKeyReused',
} as const;

/** A failure no retry can change, with its stable type. */
export const refused = (message: string, type: keyof typeof FailureTypes) =>
  ApplicationFailure.nonRetryable(message, FailureTypes[type]);

/** One close attempt waits in-process this long for MySQL's clock (of its 10 s); longer is a retry. */
const MAX_IN_PROCESS_CLOCK_WAIT_MS = 5_000;

/** A payment as the workflow carries it (a Signal, a result): its time as ISO text. */
export const received = (payment: { eventId: string; amountCents: number; receivedAt: Date }): PaymentReceived => ({
  ...payment,
  receivedAt: payment.receivedAt.toISOString(),
});

export function createActivities({ stores, inventory, changes, refunds }: ActivityDeps) {
  const closer = new OrderCloser({ orders: stores.orders, inventory, changes, refunds });
  return {
    // Claims the reservation (then this workflow's alone), writes the row, takes the stock: one MySQL transaction.
    async persistOrder(order: PersistOrderInput) {
      const claim = await inventory.claim({ ...order, reservedAtMs: Date.parse(order.createdAt) });
      if (claim === 'RELEASED')
        throw refused(
          `reservation of order ${order.orderNo} was released before the order was persisted`,
          'reservationReleased',
        );
      if (claim === 'NOT_FOUND')
        throw refused(`Redis has no reservation for order ${order.orderNo}`, 'reservationLost');
      const result = await stores.orders.insertAwaitingOrder({
        ...newOrderOf(order),
        paymentWindowMs: durationToMs(order.paymentWindow),
        ...(order.paymentProvider ? { paymentProvider: order.paymentProvider } : {}),
      });
      switch (result.outcome) {
        case 'INSERTED':
        case 'ALREADY_PERSISTED':
          if (result.applied) await changes.publish(order.orderNo);
          if (result.outcome === 'INSERTED' && result.refundsOwed.length > 0) refunds?.start(result.refundsOwed);
          return {
            paymentDeadline: result.paymentDeadline.toISOString(),
            ...(result.applied ? { applied: received(result.applied) } : {}),
          };
        case 'SALE_NOT_FOUND':
          throw refused(`sale ${order.sku} does not exist in MySQL`, 'saleNotFound');
        case 'OUT_OF_STOCK':
          throw refused(
            `sale ${order.sku} has ${result.available} units available in MySQL, order needs ${order.quantity}`,
            'outOfStockInDatabase',
          );
        case 'CONFLICT':
          throw refused(`order ${order.orderNo} exists for another sku or user`, 'orderConflict');
        case 'CLOSED':
          // The reconciler gave it up (FAILED) first: the order fails and its workflow gives back the units it claimed.
          throw refused(
            `order ${order.orderNo} was already ${result.status}${result.failureReason ? `: ${result.failureReason}` : ''}`,
            'orderClosed',
          );
      }
    },

    // The one close (docs/fault-tolerance.md): the row decides, Redis follows; a timeout waits for MySQL's clock.
    async closeOrder(close: { order: PersistOrderInput; request: CloseRequest }): Promise<CloseVerdict> {
      const order = newOrderOf(close.order);
      let closed = await closer.close(order, close.request);
      // A timer may fire a millisecond early, so one wait is not always enough.
      const waitUntil = Date.now() + MAX_IN_PROCESS_CLOCK_WAIT_MS;
      while (closed.outcome === 'NOT_DUE' && Date.now() + closed.dueInMs <= waitUntil) {
        await sleep(closed.dueInMs);
        closed = await closer.close(order, close.request);
      }
      if (closed.outcome === 'NOT_DUE') {
        if (asyncLocalStorage.getStore())
          log.warn(
            "Temporal's timer fired before MySQL's clock reached the payment deadline; waiting for MySQL's clock",
            { orderNo: order.orderNo, dueInMs: closed.dueInMs },
          );
        throw ApplicationFailure.create({
          message: `order ${order.orderNo}: MySQL's clock is ${closed.dueInMs} ms short of the payment deadline`,
          type: FailureTypes.deadlineNotReached,
          nextRetryDelay: closed.dueInMs,
        });
      }
      const { changed: _changed, refundsOwed: _owed, ...verdict } = closed;
      return verdict;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
