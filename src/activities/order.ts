/**
 * OrderWorkflow's activities: thin, idempotent adapters to the stores (MySQL) and the inventory
 * (Redis); those of its payment at a provider are in ./payments.ts. Temporal runs each at least
 * once, so every one of them gives the same end state however often it runs; the stores and the
 * Lua scripts are where that idempotency is implemented.
 *
 * Errors: anything thrown as-is (connection refused, lock wait timeout, deadlock) is transient and
 * retried by the workflow's retry policy; a business rule that no retry can change is thrown with
 * ApplicationFailure.nonRetryable and a stable type.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { asyncLocalStorage, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { OrderStore } from '../db/orders.js';
import type { PaymentStore } from '../db/payments.js';
import type { RefundStore } from '../db/refunds.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import {
  durationToMs,
  isSold,
  type CancelReason,
  type PaymentReceived,
  type PersistOrderInput,
} from '../model/order-workflow.js';

export interface ActivityDeps {
  stores: { orders: OrderStore; payments: PaymentStore; refunds: RefundStore };
  inventory: RedisInventory;
  /**
   * Tells the API processes' status caches that an order is changing (OrderChangeNotifier,
   * src/order/status-reads.ts): all these activities need of it.
   */
  changes: { publish(orderNo: string): Promise<void> };
}

/** Stable types of non-retryable failures, visible in the Web UI and in the order's failureReason. */
export const FailureTypes = {
  saleNotFound: 'SaleNotFound',
  outOfStockInDatabase: 'OutOfStockInDatabase',
  orderConflict: 'OrderConflict',
  /** The order's row was already final (FAILED or CANCELLED) when its start came to persist it. */
  orderClosed: 'OrderClosed',
  /**
   * The reservation was released before the order could claim it (the API gave up on it, or the reconciler found it
   * orphaned).
   */
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

/**
 * How long one cancelUnpaidOrder attempt waits in-process for MySQL's clock to pass the deadline
 * (inside its 10 s start-to-close timeout); a longer wait is a retry Temporal schedules.
 */
const MAX_IN_PROCESS_CLOCK_WAIT_MS = 5_000;

/** What persisting an order wrote: its payment deadline, and the payment its row applied as it was written, if any. */
export interface PersistedOrder {
  paymentDeadline: string;
  applied?: PaymentReceived;
}

/**
 * What closing an unpaid order found: cancelled (for the reason the row keeps), or paid by a payment its row applied
 * first.
 */
export type UnpaidOrderClosed =
  { outcome: 'CANCELLED'; reason: CancelReason } | { outcome: 'PAID_IN_TIME'; payment: PaymentReceived };

const received = (payment: { eventId: string; amountCents: number; receivedAt: Date }): PaymentReceived => ({
  ...payment,
  receivedAt: payment.receivedAt.toISOString(),
});

const newOrder = (order: PersistOrderInput) => ({
  orderNo: order.orderNo,
  sku: order.sku,
  userId: order.userId,
  quantity: order.quantity,
  unitPriceCents: order.unitPriceCents,
  ...(order.idempotencyKey ? { idempotencyKey: order.idempotencyKey } : {}),
  paymentDeadline: new Date(order.paymentDeadline),
  createdAt: new Date(order.createdAt),
});

export function createActivities({ stores, inventory, changes }: ActivityDeps) {
  return {
    /**
     * Claims the order's reservation in Redis (from then on only this order's workflow may release
     * or confirm it), then inserts the order as AWAITING_PAYMENT and takes its units from MySQL's
     * available stock in one transaction. A retry after a lost answer finds the claim and the row
     * and succeeds without taking stock twice. A reservation released before the claim fails the
     * order for good (its units may already be someone else's); one Redis lost is taken again if
     * its units are still there, else the order fails.
     *
     * The payment deadline counts from when the row is written, by MySQL's clock (the clock
     * payments are stamped by), never earlier than the input's, so a late start or persist keeps
     * the shopper's whole window. A retry after a lost answer reads the deadline back from the row.
     * Payments that came before the row are decided as it is written; one that paid it is answered.
     */
    async persistOrder(order: PersistOrderInput): Promise<PersistedOrder> {
      const claim = await inventory.claim({ ...order, reservedAtMs: Date.parse(order.createdAt) });
      if (claim === 'RELEASED') {
        throw ApplicationFailure.nonRetryable(
          `reservation of order ${order.orderNo} was released before the order was persisted`,
          FailureTypes.reservationReleased,
        );
      }
      if (claim === 'NOT_FOUND') {
        throw ApplicationFailure.nonRetryable(
          `Redis has no reservation for order ${order.orderNo}`,
          FailureTypes.reservationLost,
        );
      }
      const result = await stores.orders.insertAwaitingOrder({
        ...newOrder(order),
        paymentWindowMs: durationToMs(order.paymentWindow),
        ...(order.paymentProvider ? { paymentProvider: order.paymentProvider } : {}),
      });
      switch (result.outcome) {
        case 'INSERTED':
        case 'ALREADY_PERSISTED':
          if (result.applied) await changes.publish(order.orderNo);
          return {
            paymentDeadline: result.paymentDeadline.toISOString(),
            ...(result.applied ? { applied: received(result.applied) } : {}),
          };
        case 'SALE_NOT_FOUND':
          throw ApplicationFailure.nonRetryable(`sale ${order.sku} does not exist in MySQL`, FailureTypes.saleNotFound);
        case 'OUT_OF_STOCK':
          throw ApplicationFailure.nonRetryable(
            `sale ${order.sku} has ${result.available} units available in MySQL, order needs ${order.quantity}`,
            FailureTypes.outOfStockInDatabase,
          );
        case 'CONFLICT':
          throw ApplicationFailure.nonRetryable(
            `order ${order.orderNo} exists for another sku or user`,
            FailureTypes.orderConflict,
          );
        case 'CLOSED':
          // Given up (the reconciler wrote FAILED) before this start persisted it: the order fails,
          // and its workflow gives back the units it claimed.
          throw ApplicationFailure.nonRetryable(
            `order ${order.orderNo} was already ${result.status}${result.failureReason ? `: ${result.failureReason}` : ''}`,
            FailureTypes.orderClosed,
          );
      }
    },

    /**
     * Ends the order as FAILED in MySQL, so no 202 goes without a trace: a FAILED row, or an
     * AWAITING_PAYMENT row (persisted, but the workflow never learnt it) turned FAILED with its
     * units given back to MySQL's stock, as the reservation is given back in Redis.
     */
    async recordOrderFailure(order: PersistOrderInput & { reason: string }): Promise<void> {
      await stores.orders.failOrder(newOrder(order), order.reason);
      // After the commit, before the workflow shows FAILED: readers stop caching the open state.
      // A failed publish fails the attempt, which is retried (every step here is idempotent).
      await changes.publish(order.orderNo);
    },

    /**
     * Closes an unpaid order as CANCELLED unless its row applied a payment first (under the order row's lock:
     * OrderStore.cancelUnpaidOrder): then the payment is answered and nothing changes. The shopper's cancel runs it
     * before it is accepted, so the row's verdict is the cancel's. A payment timeout is judged by MySQL's clock alone:
     * when Temporal's timer fired before MySQL's clock passed the deadline (the clocks differ), it
     * waits, in-process up to MAX_IN_PROCESS_CLOCK_WAIT_MS, beyond that as a retry due when MySQL's
     * clock gets there. However far the clocks are apart, a payment MySQL stamps in time is found.
     */
    async cancelUnpaidOrder(cancel: {
      orderNo: string;
      reason: CancelReason;
      cancelledAt: string;
    }): Promise<UnpaidOrderClosed> {
      const request = { ...cancel, cancelledAt: new Date(cancel.cancelledAt) };
      let result = await stores.orders.cancelUnpaidOrder(request);
      // Until MySQL's clock passes the deadline, within the in-process budget: a timer may fire a millisecond
      // early, so one wait is not always enough (seen once in CI: "1 ms short").
      const waitUntil = Date.now() + MAX_IN_PROCESS_CLOCK_WAIT_MS;
      while (result.outcome === 'NOT_DUE' && Date.now() + result.dueInMs <= waitUntil) {
        await sleep(result.dueInMs);
        result = await stores.orders.cancelUnpaidOrder(request);
      }
      switch (result.outcome) {
        // NOT_AWAITING_PAYMENT: nothing to cancel in MySQL (only the workflow writes its row once
        // persisted, so this is a row changed by hand); the workflow closes the order all the same.
        case 'CANCELLED':
          await changes.publish(cancel.orderNo);
          return { outcome: 'CANCELLED', reason: result.reason };
        case 'NOT_AWAITING_PAYMENT':
          await changes.publish(cancel.orderNo);
          return { outcome: 'CANCELLED', reason: cancel.reason };
        case 'PAID_IN_TIME':
          await changes.publish(cancel.orderNo);
          return { outcome: 'PAID_IN_TIME', payment: received(result.payment) };
        case 'NOT_DUE':
          if (asyncLocalStorage.getStore()) {
            log.warn(
              "Temporal's timer fired before MySQL's clock reached the payment deadline; waiting for MySQL's clock",
              {
                orderNo: cancel.orderNo,
                dueInMs: result.dueInMs,
              },
            );
          }
          throw ApplicationFailure.create({
            message: `order ${cancel.orderNo}: MySQL's clock is ${result.dueInMs} ms short of the payment deadline`,
            type: FailureTypes.deadlineNotReached,
            nextRetryDelay: result.dueInMs,
          });
      }
    },

    /**
     * Gives the order's reserved units back in Redis, as their owner; a second call is a no-op.
     * Called only to close a final order, so the record is dropped too (the order's row answers
     * for it from then on): released records would otherwise pile up with every cancelled order.
     */
    async releaseReservation(reservation: { sku: string; orderNo: string; orderFailed?: boolean }): Promise<string> {
      const outcome = await inventory.release(reservation.sku, reservation.orderNo, {
        as: 'owner',
        forget: true,
        orderFailed: reservation.orderFailed === true,
      });
      if (outcome === 'NOT_FOUND') {
        // Redis lost the reservation (a failover, a restore): no units to give back, but the
        // checkout's key must go on naming this order, or a retry with it would make a new one.
        const row = await stores.orders.getOrder(reservation.orderNo);
        if (row?.idempotencyKey)
          await inventory.restoreKey(reservation.sku, {
            userId: row.userId,
            key: row.idempotencyKey,
            orderNo: row.orderNo,
          });
      }
      return outcome;
    },

    /**
     * The paid order's units: C -> S. A reservation Redis lost (a failover, a restore) behind the
     * order MySQL holds is made again as sold, whole (units, holding, key), if the units and the
     * limit allow: a payment made in time is not refunded for Redis's loss. Else NOT_FOUND, and
     * the order fails (its units went to others, or its shopper holds the limit through another).
     */
    async confirmReservation(reservation: { sku: string; orderNo: string }): Promise<string> {
      const outcome = await inventory.confirm(reservation.sku, reservation.orderNo);
      if (outcome !== 'NOT_FOUND') return outcome;
      const row = await stores.orders.getOrder(reservation.orderNo);
      if (!row || (row.status !== 'AWAITING_PAYMENT' && !isSold(row.status))) return outcome;
      const adopted = await inventory.adopt(reservation.sku, {
        orderNo: row.orderNo,
        userId: row.userId,
        quantity: row.quantity,
        state: 'SOLD',
        reservedAtMs: row.createdAt.getTime(),
        idempotencyKey: row.idempotencyKey,
      });
      if (adopted === 'ADOPTED') return 'CONFIRMED';
      // Made again meanwhile (the reconciler's adoption): confirm that one.
      if (adopted === 'EXISTS') return inventory.confirm(reservation.sku, reservation.orderNo);
      return outcome;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
