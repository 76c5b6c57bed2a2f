/**
 * OrderWorkflow's activities: thin, idempotent adapters to the store (MySQL) and the inventory
 * (Redis). Temporal runs each at least once, so every one of them gives the same end state however
 * often it runs; the store and the Lua scripts are where that idempotency is implemented.
 *
 * Errors: anything thrown as-is (connection refused, lock wait timeout, deadlock) is transient and
 * retried by the workflow's retry policy; a business rule that no retry can change is thrown with
 * ApplicationFailure.nonRetryable and a stable type.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { asyncLocalStorage, Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Store } from '../db/store.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import {
  durationToMs,
  isSold,
  type CancelReason,
  type PaymentIntentHandle,
  type PaymentReceived,
  type PersistOrderInput,
  type ProviderWithApi,
  type RefundReason,
} from '../model/order-workflow.js';
import {
  ProviderKeyReused,
  ProviderOutcomeUnknown,
  ProviderRefusal,
  type OpenedPayment,
  type PaymentProviderApi,
} from '../payments/provider.js';

export interface ActivityDeps {
  store: Store;
  inventory: RedisInventory;
  /**
   * Tells the API processes' status caches that an order is changing (OrderChangeNotifier,
   * src/order/reads.ts). Declared here, not imported: reads.ts leads through the order client to
   * the workflows, which import these activities' types (an import circle).
   */
  changes: { publish(orderNo: string): Promise<void> };
  /** The payment providers with an API this deployment has keys for (src/payments/provider.ts). */
  providers?: Partial<Record<ProviderWithApi, PaymentProviderApi>>;
  /** How long an intent may stay `processing` past its deadline before an error is logged (STRIPE_PROCESSING_ALERT). */
  processingAlertMs?: number;
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

/** What persisting an order wrote: its payment deadline. */
export interface PersistedOrder {
  paymentDeadline: string;
}

/** What closing an unpaid order found: it is cancelled, or a payment recorded in time pays it. */
export type UnpaidOrderClosed = { outcome: 'CANCELLED' } | { outcome: 'PAID_IN_TIME'; payment: PaymentReceived };

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

/** A payment at a provider: the order's number and total, and which provider. */
export interface ProviderPaymentInput {
  provider: ProviderWithApi;
  orderNo: string;
  amountCents: number;
}

/** The intent states after which it can no longer be paid or refunded into: nothing more to close. */
const FINAL_INTENT_STATUSES = ['canceled'];

export function createActivities({
  store,
  inventory,
  changes,
  providers = {},
  processingAlertMs = 3_600_000,
}: ActivityDeps) {
  const providerApi = (name: ProviderWithApi): PaymentProviderApi => {
    const api = providers[name];
    // Retried, not failed: the keys are configuration an operator can still set.
    if (!api) throw new Error(`payment provider ${name} is not configured on this worker (set its keys)`);
    return api;
  };
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
      const result = await store.insertAwaitingOrder({
        ...newOrder(order),
        paymentWindowMs: durationToMs(order.paymentWindow),
      });
      switch (result.outcome) {
        case 'INSERTED':
        case 'ALREADY_PERSISTED':
          return { paymentDeadline: result.paymentDeadline.toISOString() };
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
      await store.failOrder(newOrder(order), order.reason);
      // After the commit, before the workflow shows FAILED: readers stop caching the open state.
      // A failed publish fails the attempt, which is retried (every step here is idempotent).
      await changes.publish(order.orderNo);
    },

    /** AWAITING_PAYMENT → PAID, and the payment recorded as applied, in one transaction. */
    async markPaid(payment: { orderNo: string; eventId: string; amountCents: number; paidAt: string }): Promise<void> {
      await store.markPaid({ ...payment, paidAt: new Date(payment.paidAt) });
      await changes.publish(payment.orderNo);
    },

    /**
     * Closes an unpaid order as CANCELLED unless a payment recorded in time pays it (the arrival
     * rule, applied in MySQL under the order row's lock: Store.cancelUnpaidOrder): then the
     * payment is answered and nothing changes. A payment timeout is judged by MySQL's clock alone:
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
      let result = await store.cancelUnpaidOrder(request);
      if (result.outcome === 'NOT_DUE') {
        await sleep(Math.min(result.dueInMs, MAX_IN_PROCESS_CLOCK_WAIT_MS));
        result = await store.cancelUnpaidOrder(request);
      }
      switch (result.outcome) {
        // NOT_AWAITING_PAYMENT: nothing to cancel in MySQL (only the workflow writes its row once
        // persisted, so this is a row changed by hand); the workflow closes the order all the same.
        case 'CANCELLED':
        case 'NOT_AWAITING_PAYMENT':
          await changes.publish(cancel.orderNo);
          return { outcome: 'CANCELLED' };
        case 'PAID_IN_TIME':
          return {
            outcome: 'PAID_IN_TIME',
            payment: { ...result.payment, receivedAt: result.payment.receivedAt.toISOString() },
          };
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

    /** A payment that must be given back: late, a second one, or the wrong amount. */
    async recordRefundRequired(refund: {
      orderNo: string;
      eventId: string;
      amountCents: number;
      reason: RefundReason;
    }): Promise<void> {
      await store.recordRefundRequired(refund);
    },

    /**
     * Gives the order's reserved units back in Redis, as their owner; a second call is a no-op.
     * Called only to close a final order, so the record is dropped too (the order's row answers
     * for it from then on): released records would otherwise pile up with every cancelled order.
     */
    async releaseReservation(reservation: { sku: string; orderNo: string }): Promise<string> {
      const outcome = await inventory.release(reservation.sku, reservation.orderNo, { as: 'owner', forget: true });
      if (outcome === 'NOT_FOUND') {
        // Redis lost the reservation (a failover, a restore): no units to give back, but the
        // checkout's key must go on naming this order, or a retry with it would make a new one.
        const row = await store.getOrder(reservation.orderNo);
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
      const row = await store.getOrder(reservation.orderNo);
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

    /**
     * Makes the order's payment at its provider (Stripe: a PaymentIntent), for the shopper's client
     * to pay, and records it with the order before its client secret is shown. An intent recorded
     * by an earlier attempt is answered again. The idempotency key moves on only after a 5xx (the
     * provider replays that answer to the same key); after a timeout, a 409 or a 429 the same key
     * finds what the first ask made. Every intent opened is kept and cancelled at the close; one
     * lost behind a 5xx never had its client secret shown. A request the provider refuses fails the
     * order (it cannot be paid); a key reused with other parameters is a bug, surfaced the same way.
     */
    async openPayment(payment: ProviderPaymentInput): Promise<PaymentIntentHandle> {
      const api = providerApi(payment.provider);
      const opened = (await store.paymentIntentsOf(payment.orderNo)).find(
        (intent) => intent.clientSecret !== null && !FINAL_INTENT_STATUSES.includes(intent.status),
      );
      if (opened?.clientSecret) return { id: opened.intentId, clientSecret: opened.clientSecret };
      const { keyAttempt, closed } = await store.paymentOpening(payment.orderNo);
      // The order is closing (its workflow gave up on this opening): nothing more is made.
      if (closed)
        throw ApplicationFailure.nonRetryable(`order ${payment.orderNo} is closing`, FailureTypes.orderClosed);
      try {
        const intent = await api.openPayment({ ...payment, keyAttempt });
        await recordOpened({ ...payment, keyAttempt }, intent, intent.clientSecret);
        // Answered after the order's close read its intents (a provider that hung): this intent is closed here.
        if ((await store.paymentOpening(payment.orderNo)).closed) {
          const late = await api.closeIntent({ orderNo: payment.orderNo, intentId: intent.id, attempt: 1 });
          await store.recordPaymentIntentStatus(intent.id, late.status);
          log.warn('a PaymentIntent made after its order began closing was cancelled', {
            orderNo: payment.orderNo,
            intentId: intent.id,
            status: late.status,
          });
        }
        return { id: intent.id, clientSecret: intent.clientSecret };
      } catch (err) {
        if (err instanceof ProviderOutcomeUnknown) await store.nextPaymentOpeningKey(payment.orderNo, keyAttempt);
        if (err instanceof ProviderRefusal)
          throw ApplicationFailure.nonRetryable(err.message, FailureTypes.paymentRefused);
        if (err instanceof ProviderKeyReused)
          throw ApplicationFailure.nonRetryable(err.message, FailureTypes.idempotencyKeyReused);
        throw err;
      }
    },

    /**
     * Closes every payment the order opened at its provider and answers what the provider's state
     * decides (docs/fault-tolerance.md, "Stripe: the intent decides"): CANCELED when none can be
     * paid any more; SUCCEEDED when one was paid before its cancel (its money is recorded first, one
     * row per intent, and pays the order); PROCESSING while one's money is on its way. Idempotent: a
     * retry asks each intent again, and a cancelled one is final.
     */
    async closePayment(
      payment: ProviderPaymentInput & { paymentIntentId?: string; paymentDeadline?: string },
    ): Promise<ProviderClose> {
      const api = providerApi(payment.provider);
      // First the mark, then the read: an opening that records an intent after this read cancels it itself.
      await store.closePaymentOpening(payment.orderNo);
      const recorded = await store.paymentIntentsOf(payment.orderNo);
      const intentIds = recorded.filter((i) => !FINAL_INTENT_STATUSES.includes(i.status)).map((i) => i.intentId);
      // An order opened before intents were recorded names its one intent itself.
      if (payment.paymentIntentId && !recorded.some((i) => i.intentId === payment.paymentIntentId))
        intentIds.push(payment.paymentIntentId);
      // An opening whose answer never came (the provider hung past its timeout) may still have made an
      // intent: its key, asked again, answers it, and it is cancelled with the others.
      const { keyAttempt } = await store.paymentOpening(payment.orderNo);
      if (!payment.paymentIntentId && !recorded.some((i) => i.keyAttempt === keyAttempt)) {
        const unanswered = await findUnansweredIntent(api, { ...payment, keyAttempt });
        if (unanswered) intentIds.push(unanswered);
      }
      const attempt = Context.current().info.attempt;
      let paid: PaymentReceived | undefined;
      let processing = false;
      for (const intentId of intentIds) {
        const closed = await api.closeIntent({ orderNo: payment.orderNo, intentId, attempt });
        await store.recordPaymentIntentStatus(intentId, closed.status);
        if (closed.status === 'succeeded') {
          // The money is recorded before the order is told: the intent's row, whatever event comes later.
          const row = await store.recordPayment(
            {
              eventId: intentId,
              orderNo: payment.orderNo,
              amountCents: closed.amountReceived,
              provider: payment.provider,
              providerRef: intentId,
              paidAtProvider: closed.paidAt,
            },
            'intent-read',
          );
          paid ??= { eventId: row.eventId, amountCents: row.amountCents, receivedAt: row.receivedAt.toISOString() };
        } else if (closed.status === 'processing') {
          processing = true;
          const pastDeadlineMs = payment.paymentDeadline ? Date.now() - Date.parse(payment.paymentDeadline) : 0;
          if (pastDeadlineMs > processingAlertMs)
            log.error("a PaymentIntent is still processing long past its order's deadline; its unit stays held", {
              orderNo: payment.orderNo,
              intentId,
              processingSince: closed.since.toISOString(),
              pastDeadlineMs,
            });
        }
      }
      if (paid) return { state: 'SUCCEEDED', payment: paid };
      return { state: processing ? 'PROCESSING' : 'CANCELED' };
    },
  };

  /** Records an intent an opening made; its client secret only when the shopper is to be shown it. */
  function recordOpened(
    opening: ProviderPaymentInput & { keyAttempt: number },
    intent: OpenedPayment,
    clientSecret: string | null,
  ): Promise<void> {
    return store.recordPaymentIntent({
      intentId: intent.id,
      orderNo: opening.orderNo,
      provider: opening.provider,
      keyAttempt: opening.keyAttempt,
      amountCents: intent.amountCents,
      currency: intent.currency,
      clientSecret,
      status: intent.status,
    });
  }

  /**
   * The intent an unanswered opening made, found by asking its key again (which makes one if the
   * first ask never reached the provider: it is cancelled all the same), and recorded. None when the
   * key replays a 5xx or a refusal: whatever it made, its client secret was never shown.
   */
  async function findUnansweredIntent(
    api: PaymentProviderApi,
    opening: ProviderPaymentInput & { keyAttempt: number },
  ): Promise<string | undefined> {
    try {
      const intent = await api.openPayment(opening);
      await recordOpened(opening, intent, null);
      return intent.id;
    } catch (err) {
      if (err instanceof ProviderOutcomeUnknown || err instanceof ProviderRefusal || err instanceof ProviderKeyReused)
        return undefined;
      throw err;
    }
  }
}

/** What closing an order's payments at its provider found (closePayment). */
export type ProviderClose =
  { state: 'CANCELED' } | { state: 'SUCCEEDED'; payment: PaymentReceived } | { state: 'PROCESSING' };

export type Activities = ReturnType<typeof createActivities>;
