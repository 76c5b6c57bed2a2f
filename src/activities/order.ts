/**
 * OrderWorkflow's activities: idempotent adapters to the stores (MySQL) and the inventory (Redis), which make them so.
 * Errors thrown as-is are transient and retried; a rule no retry can change throws nonRetryable with a stable type.
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
  type PaymentVerdict,
  type PersistOrderInput,
  type RefundReason,
} from '../model/order-workflow.js';

export interface ActivityDeps {
  stores: { orders: OrderStore; payments: PaymentStore; refunds: RefundStore };
  inventory: RedisInventory;
  /** Tells the API processes' status caches an order is changing (OrderChangeNotifier, src/order/status-reads.ts). */
  changes: { publish(orderNo: string): Promise<void> };
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

/** One cancelUnpaidOrder attempt waits in-process this long for MySQL's clock (of its 10 s); longer is a retry. */
const MAX_IN_PROCESS_CLOCK_WAIT_MS = 5_000;

/** What persisting an order wrote: its payment deadline, and the payment its row applied as it was written, if any. */
export interface PersistedOrder {
  paymentDeadline: string;
  applied?: PaymentReceived;
}

/** Cancelled (for the reason the row keeps), or paid by a payment its row applied first. */
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
     * Claims the reservation in Redis (from then on only this order's workflow releases or confirms it; a lost one is
     * retaken while its units are there), then writes the row AWAITING_PAYMENT and takes MySQL's stock in one
     * transaction: a retry finds both and takes nothing twice. The deadline counts from the row's write by MySQL's
     * clock (which stamps payments), never earlier than the input's. A payment that came first and paid it is answered.
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
          // The reconciler gave it up (FAILED) first: the order fails and its workflow gives back the units it claimed.
          throw ApplicationFailure.nonRetryable(
            `order ${order.orderNo} was already ${result.status}${result.failureReason ? `: ${result.failureReason}` : ''}`,
            FailureTypes.orderClosed,
          );
      }
    },

    /** The verdict of the order's row on a payment the previous build's API delivers (payUpdate), deciding it first. */
    async decideDeliveredPayment(payment: { orderNo: string; eventId: string }): Promise<PaymentVerdict> {
      const { decided } = await stores.payments.decideWaitingFor(payment.orderNo, { noSuchOrder: false });
      if (decided > 0) await changes.publish(payment.orderNo);
      const row = await stores.payments.getPayment(payment.eventId);
      // Retried: the order's row decides it once written (its persist or failure commits before this runs).
      if (!row || row.outcome === 'RECEIVED') throw new Error(`payment ${payment.eventId} is not decided yet`);
      if (row.outcome === 'APPLIED') return { outcome: 'APPLIED' };
      return row.refundReason
        ? { outcome: 'REFUND_REQUIRED', refundReason: row.refundReason as RefundReason }
        : { outcome: 'REFUND_REQUIRED' };
    },

    /**
     * Ends the order FAILED in MySQL so no 202 goes without a trace; an AWAITING_PAYMENT row the workflow never learnt
     * of gives its units back to MySQL's stock.
     */
    async recordOrderFailure(order: PersistOrderInput & { reason: string }): Promise<void> {
      await stores.orders.failOrder(newOrder(order), order.reason);
      // After the commit, before the workflow shows FAILED: readers stop caching the open state.
      // A failed publish fails the attempt, which is retried (every step here is idempotent).
      await changes.publish(order.orderNo);
    },

    /**
     * Cancels an unpaid order unless its row applied a payment first (under the row's lock), which is then answered. A
     * payment timeout is judged by MySQL's clock alone: a timer that fired early waits in-process up to
     * MAX_IN_PROCESS_CLOCK_WAIT_MS, beyond that as a retry due when MySQL's clock gets there.
     */
    async cancelUnpaidOrder(cancel: {
      orderNo: string;
      reason: CancelReason;
      cancelledAt: string;
    }): Promise<UnpaidOrderClosed> {
      const request = { ...cancel, cancelledAt: new Date(cancel.cancelledAt) };
      let result = await stores.orders.cancelUnpaidOrder(request);
      // A timer may fire a millisecond early, so one wait is not always enough.
      const waitUntil = Date.now() + MAX_IN_PROCESS_CLOCK_WAIT_MS;
      while (result.outcome === 'NOT_DUE' && Date.now() + result.dueInMs <= waitUntil) {
        await sleep(result.dueInMs);
        result = await stores.orders.cancelUnpaidOrder(request);
      }
      switch (result.outcome) {
        // NOT_AWAITING_PAYMENT: a row changed by hand (only the workflow writes it once persisted): closed anyway.
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
     * Gives the units back in Redis as their owner; a repeat is a no-op. Only for a final order, so the record is
     * dropped too (the row answers for it): released records would pile up otherwise.
     */
    async releaseReservation(reservation: { sku: string; orderNo: string; orderFailed?: boolean }): Promise<string> {
      const outcome = await inventory.release(reservation.sku, reservation.orderNo, {
        as: 'owner',
        forget: true,
        orderFailed: reservation.orderFailed === true,
      });
      if (outcome === 'NOT_FOUND') {
        // Redis lost it (a failover, a restore): no units to give back, but the checkout's key must still name this
        // order, or a retry with it would make a new one.
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
     * C -> S. A reservation Redis lost behind an order MySQL holds is made again as sold if units and limit allow: a
     * payment made in time is not refunded for Redis's loss. Else NOT_FOUND, and the order fails.
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
