/**
 * The reconciler's activities: bounded work, safe to run again; every repair is an idempotent Lua step or store call
 * guarded to do only what the order's own workflow would have done.
 */
import type { OrderRow } from '../db/rows.js';
import type { OrderStore } from '../db/orders.js';
import type { PaymentStore } from '../db/payments.js';
import type { RefundStore } from '../db/refunds.js';
import { Deadline } from '../infra/dependency-guard.js';
import type { ReportStore } from '../db/reports.js';
import type { SaleStore } from '../db/sales.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import { OrderCloser, orderOfRow, type OrderChanges, type RefundStarts } from '../order/close.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';
import { isFinal, isSold } from '../model/order-workflow.js';
import {
  noReservationWork,
  PROMISE_MAX_AGE_MS,
  type AdoptionPageResult,
  type ProviderOrderToSettle,
  type RefundStartPage,
  type ReservationPageResult,
  type SaleDrift,
  type SaleSurvey,
  type SurveyPage,
  type WaitingPaymentPage,
} from '../reconcile/definitions.js';
import { beat } from './heartbeat.js';
import type { EndpointDeliveryClient } from '../events/endpoint-delivery-client.js';
import type { OrderEventFigures, WebhookStore } from '../db/webhooks.js';

export interface ReconcileDeps {
  stores: {
    orders: OrderStore;
    sales: SaleStore;
    reports: ReportStore;
    payments: PaymentStore;
    refunds: RefundStore;
    webhooks: WebhookStore;
  };
  inventory: RedisInventory;
  orders: OrderWorkflowClient;
  /** Tells the API processes an order it closed changed. */
  changes: OrderChanges;
  /** Starts the refunds a close it carried out left owed (the next run's startOwedRefunds would too). */
  refunds?: RefundStarts;
  /** The providers this worker refunds through (their APIs configured); none: refunds stay for an operator. */
  refundProviders?: readonly string[];
  /** Told, at every run, how many refunds wait in each state and how much money providers took back (gauges). */
  refundGauges?: () => RefundGauges;
  /** Told, at every run, what the order events' deliveries owe and how old the oldest is (gauges). */
  deliveryGauges?: () => DeliveryGauges;
  /** Starts an enabled endpoint's delivery workflow where none runs; null: no Temporal client (no deliveries). */
  deliveries?: Pick<EndpointDeliveryClient, 'ensureRunning'> | null;
  /** EVENTS_RETENTION: the feed keeps events this long. */
  eventRetentionMs?: number;
}

/** The refund gauges of the worker's metrics (src/workers/worker.ts). */
export interface RefundGauges {
  waiting(counts: Record<'REFUND_REQUIRED' | 'REFUND_REQUESTED' | 'REFUND_FAILED', number>): void;
  takenBack(counts: { DISPUTED: number; REFUNDED: number; disputesDueWithin72h: number }): void;
}

/** The order events' gauges of the worker's metrics (src/workers/worker.ts). */
export interface DeliveryGauges {
  show(figures: OrderEventFigures): void;
}

/** Every status but the two whose units went back (a paid order's stay sold whatever follows). */
function holdsUnits(row: OrderRow | undefined): row is OrderRow {
  return row !== undefined && row.status !== 'CANCELLED' && row.status !== 'FAILED';
}

function providerOrderOf(row: OrderRow, provider: string): ProviderOrderToSettle {
  return {
    orderNo: row.orderNo,
    sku: row.sku,
    provider,
    amountCents: row.totalCents,
    paymentDeadline: row.paymentDeadline.toISOString(),
  };
}

/** How far back (by Redis's clock) the survey looks for sales defined in Redis alone. */
const REDIS_ONLY_HORIZON_MS = 7 * 24 * 3_600_000;

export function createReconcileActivities({
  stores,
  inventory,
  orders,
  changes,
  refunds,
  refundProviders = [],
  refundGauges,
  deliveryGauges,
  deliveries = null,
  eventRetentionMs,
}: ReconcileDeps) {
  // The one close, as an order's workflow runs it: the reconciler carries out what the row decided, for an order whose
  // workflow is gone or late (docs/fault-tolerance.md, "One close").
  const closer = new OrderCloser({ orders: stores.orders, inventory, changes, ...(refunds ? { refunds } : {}) });

  /**
   * A live reservation past the grace whose order has a row: the row decides. Final: its units go back. Sold:
   * confirmed, and its workflow (whose Signal may be lost) signalled again, once its payment is a grace old. Awaiting
   * payment past its deadline with no workflow running (terminated, reset): closed as its timer would have, a provider
   * order's intents first (`toSettleAtProvider`, by the reconciling workflow).
   */
  const settleByRow = async (
    row: OrderRow,
    nowMs: number,
    graceMs: number,
    result: ReservationPageResult,
  ): Promise<void> => {
    if (isFinal(row.status)) {
      const closed = await closer.close(orderOfRow(row), { kind: 'PAYMENT' });
      if (closed.outcome === 'CANCELLED' || closed.outcome === 'FAILED') result.alignedReleased++;
      return;
    }
    if (isSold(row.status)) {
      if (row.paidAt && row.paidAt.getTime() > nowMs - graceMs) return;
      const applied = await stores.orders.appliedPayment(row.orderNo);
      if (applied)
        await orders
          .signalPaymentApplied(row.orderNo, { ...applied, receivedAt: applied.receivedAt.toISOString() })
          .catch(() => undefined);
      const closed = await closer.close(orderOfRow(row), { kind: 'PAYMENT' });
      if (closed.outcome === 'PAID') result.alignedConfirmed++;
      return;
    }
    if (row.paymentDeadline.getTime() > nowMs) return;
    if ((await orders.workflowState(row.orderNo)) === 'RUNNING') return;
    if (row.paymentProvider) {
      result.toSettleAtProvider.push(providerOrderOf(row, row.paymentProvider));
      return;
    }
    const closed = await closer.close(orderOfRow(row), { kind: 'CANCEL', reason: 'PAYMENT_TIMEOUT' });
    if (closed.outcome !== 'NOT_DUE') result.closedForGoneWorkflows++;
  };
  // Sales in Redis with no MySQL row (a create's commit was lost): every order fails SaleNotFound until the same
  // POST /api/sales completes the sale.
  const salesOnlyInRedis = async (among?: readonly string[]): Promise<string[]> => {
    const skus =
      among ??
      (await inventory.activeSales((await inventory.clockMs()) - REDIS_ONLY_HORIZON_MS)).map((sale) => sale.sku);
    const inMysql = await stores.sales.existingSaleSkus(skus);
    const defined = await Promise.all(
      skus.filter((sku) => !inMysql.has(sku)).map(async (sku) => ((await inventory.getSale(sku)) ? sku : null)),
    );
    return defined.filter((sku): sku is string => sku !== null).sort();
  };
  return {
    /**
     * Every enabled endpoint has its delivery workflow (one created or enabled while Temporal was away, or whose run
     * failed, is started here); and the feed forgets events older than EVENTS_RETENTION, a page at a time. The run's
     * last page (one pruning less than a full page) reads the gauges.
     */
    async keepOrderEventDeliveries(input: { prunePage: number }): Promise<{ endpoints: number; pruned: number }> {
      const endpoints = deliveries ? await stores.webhooks.enabledEndpointIds() : [];
      for (const endpointId of endpoints) {
        await deliveries?.ensureRunning(endpointId);
        beat();
      }
      const pruned =
        eventRetentionMs === undefined
          ? 0
          : await stores.webhooks.pruneEvents(new Date(Date.now() - eventRetentionMs), input.prunePage);
      // Once per run, as startDueRefunds's first page, yet with no new input: ReconcileWorkflow (pinned) is unchanged.
      const gauges = pruned < input.prunePage ? deliveryGauges?.() : undefined;
      if (gauges) gauges.show(await stores.webhooks.orderEventFigures());
      return { endpoints: endpoints.length, pruned };
    },

    /** Redis and MySQL counters of one page of sales, and which of them need their reservations scanned. */
    async surveySales(page: { afterSku: string; limit: number; skus?: string[] }): Promise<SurveyPage> {
      const skus = page.skus
        ? [...page.skus]
            .sort()
            .filter((sku) => sku > page.afterSku)
            .slice(0, page.limit)
        : await stores.sales.saleSkusPage(page.afterSku, page.limit);
      const surveys = await Promise.all(
        skus.map(async (sku): Promise<SaleSurvey> => {
          const [redis, mysql, keys] = await Promise.all([
            inventory.getSale(sku),
            stores.reports.saleStockFigures(sku),
            inventory.keyCount(sku),
          ]);
          // Every key Redis ever mapped stays (orders not yet in MySQL add more): fewer than MySQL's were lost.
          const keysMissing = redis ? Math.max(0, (mysql?.keyedOrders ?? 0) - keys) : 0;
          const awaitingPayment = mysql?.units.AWAITING_PAYMENT ?? 0;
          // Sold: paid, whatever became of the money since (a unit whose money went back stays sold).
          const paid = (mysql?.units.PAID ?? 0) + (mysql?.units.DISPUTED ?? 0) + (mysql?.units.REFUNDED ?? 0);
          const needsScan =
            redis !== null &&
            (redis.reserved > 0 ||
              redis.reserved !== awaitingPayment ||
              redis.sold !== paid ||
              redis.available !== (mysql?.available ?? redis.available) ||
              keysMissing > 0);
          return {
            sku,
            redis: redis && {
              stock: redis.stock,
              available: redis.available,
              reserved: redis.reserved,
              sold: redis.sold,
            },
            mysql: { stock: mysql?.stock ?? 0, available: mysql?.available ?? 0, awaitingPayment, paid },
            needsScan,
            keysMissing,
          };
        }),
      );
      const next = skus.length === page.limit ? (skus.at(-1) ?? null) : null;
      // Once per run (its first page): sales Redis has and MySQL lacks, which no page above visits.
      if (page.afterSku !== '') return { surveys, next };
      return { surveys, next, onlyInRedis: await salesOnlyInRedis(page.skus) };
    },

    /**
     * Starts the RefundWorkflow of each payment owed back through a provider with an API where none runs (a start after
     * its commit that failed, a run that failed): one running is joined (USE_EXISTING), nothing asked twice. A failed
     * start ends the page (Temporal is away). `readGauges`: a run's first page.
     */
    async startOwedRefunds(input: {
      afterEventId: string;
      limit: number;
      readGauges?: boolean;
    }): Promise<RefundStartPage> {
      const gauges = input.readGauges ? refundGauges?.() : undefined;
      if (gauges) {
        gauges.waiting(await stores.reports.providerRefundCounts());
        gauges.takenBack(await stores.reports.takenBackCounts());
      }
      const rows = await stores.refunds.owedRefundsPage(refundProviders, input.afterEventId, input.limit);
      const page: RefundStartPage = {
        read: rows.length,
        started: 0,
        failed: 0,
        next: rows.length === input.limit ? (rows.at(-1)?.eventId ?? null) : null,
      };
      for (const row of rows) {
        try {
          await orders.startRefund(row.eventId, Deadline.in(10_000));
          page.started++;
        } catch {
          page.failed++;
          break;
        }
        beat();
      }
      return page;
    },

    /**
     * Has the row decide payments still RECEIVED after `olderThanMs` (recorded before it existed, or by an earlier
     * build). With no row, workflow or reservation past `notFoundAfterMs`, no order of ours has it: ORDER_NOT_FOUND.
     */
    async decideWaitingPayments(input: {
      olderThanMs: number;
      notFoundAfterMs: number;
      limit: number;
    }): Promise<WaitingPaymentPage> {
      const rows = await stores.payments.waitingPayments(input.olderThanMs, input.limit);
      const page: WaitingPaymentPage = { read: rows.length, decided: 0, orderNotFound: 0 };
      for (const orderNo of new Set(rows.map((row) => row.orderNo))) {
        const byRow = await stores.payments.decideWaitingFor(orderNo, { noSuchOrder: false });
        page.decided += byRow.decided;
        const oldest = Math.min(
          ...rows.filter((row) => row.orderNo === orderNo).map((row) => row.receivedAt.getTime()),
        );
        if (byRow.orderExists || Date.now() - oldest < input.notFoundAfterMs) continue;
        if ((await orders.workflowState(orderNo)) !== 'NOT_FOUND' || (await inventory.findOrderInput(orderNo)) !== null)
          continue;
        const refunded = await stores.payments.decideWaitingFor(orderNo, { noSuchOrder: true });
        if (refunded.orderExists) page.decided += refunded.decided;
        else page.orderNotFound += refunded.decided;
        beat();
      }
      return page;
    },

    /**
     * One HSCAN page of a sale's reservations; each live one past the grace is made to say what its order's row says
     * (the one close, as its workflow would run it), or, with no row and no workflow to write one, failed and released
     * (docs/fault-tolerance.md, "The reconciler"). Promises are started by their one owner, the PromiseStarter.
     */
    async reconcileReservations(input: {
      sku: string;
      cursor: string;
      reservationGraceMs: number;
      count: number;
      promiseMaxAgeMs?: number;
    }): Promise<ReservationPageResult> {
      const { sku } = input;
      const page = await inventory.scanReservations(sku, input.cursor, input.count);
      const live = page.reservations.filter((r) => r.state === 'RESERVED' || r.state === 'CLAIMED');
      const rows = await stores.orders.getOrders(live.map((r) => r.orderNo));
      // By Redis's clock: reservedAtMs is the API's, which /readyz keeps within CLOCK_SKEW_MARGIN of
      // Redis's; this worker's own clock may be anywhere.
      const now = await inventory.clockMs();
      const cutoff = now - input.reservationGraceMs;
      const expiredBefore = now - (input.promiseMaxAgeMs ?? PROMISE_MAX_AGE_MS);
      const result: ReservationPageResult = {
        ...noReservationWork(),
        cursor: page.cursor,
        scanned: page.reservations.length,
        live: live.length,
        toSettleAtProvider: [],
      };
      for (const reservation of live) {
        const row = rows.get(reservation.orderNo);
        if (reservation.reservedAtMs >= cutoff) {
          if (!row) result.pendingUnits += reservation.quantity;
          continue;
        }
        if (row) {
          await settleByRow(row, now, input.reservationGraceMs, result);
          beat();
          continue;
        }
        result.pendingUnits += reservation.quantity;
        const workflow = await orders.workflowState(reservation.orderNo);
        beat();
        if (workflow === 'RUNNING') continue; // persisting (MySQL may be down): its workflow writes the row
        const promised =
          workflow === 'NOT_FOUND' && reservation.state === 'RESERVED'
            ? await inventory.orderInput(sku, reservation.orderNo)
            : null;
        // A promise within its age: its owner starts it.
        if (promised && reservation.reservedAtMs >= expiredBefore) continue;
        const reason =
          workflow !== 'NOT_FOUND'
            ? 'ReservationAbandoned: the order workflow closed without persisting the order'
            : promised
              ? 'PromiseExpired: the order could not be started within the maximum age of a promise'
              : 'ReservationOrphaned: the order was never started (the API stopped between the reservation and the start)';
        // The row first (the one close writes it FAILED), then the units: a failure between leaves a FAILED row over a
        // live reservation, released by the next pass; a start meanwhile finds the row and fails (OrderClosed).
        const sale = await stores.sales.getSale(sku);
        const reservedAt = new Date(reservation.reservedAtMs);
        const closed = await closer.close(
          {
            orderNo: reservation.orderNo,
            sku,
            userId: reservation.userId,
            quantity: reservation.quantity,
            unitPriceCents: sale?.priceCents ?? 0,
            paymentDeadline: reservedAt,
            createdAt: reservedAt,
          },
          { kind: 'FAIL', reason },
          // No workflow ever owned it: released only while unclaimed (a start claiming it now finds the FAILED row).
          workflow === 'NOT_FOUND' ? { as: 'unclaimed', reservedBeforeMs: cutoff } : { as: 'owner' },
        );
        if (closed.outcome !== 'FAILED') continue;
        result.pendingUnits -= reservation.quantity;
        if (workflow === 'NOT_FOUND') result.releasedOrphans++;
        else result.releasedAbandoned++;
      }
      return result;
    },

    /**
     * A provider order whose workflow is gone, its intents closed at the provider (none can be paid any more): its row
     * closes it as its timer would have (a payment the provider took was recorded and applied: PAID).
     */
    async closeSettledProviderOrder(input: { orderNo: string }): Promise<'CLOSED' | 'OPEN'> {
      const row = await stores.orders.getOrder(input.orderNo);
      if (!row) return 'OPEN';
      const closed = await closer.close(orderOfRow(row), { kind: 'CANCEL', reason: 'PAYMENT_TIMEOUT' });
      return closed.outcome === 'NOT_DUE' || closed.outcome === 'OPEN' ? 'OPEN' : 'CLOSED';
    },

    /** One page of the sale's orders with a checkout key; each key Redis lost is set again to name its order. */
    async restoreLostKeys(input: {
      sku: string;
      afterOrderNo: string;
      limit: number;
    }): Promise<{ next: string | null; restored: number }> {
      const rows = await stores.orders.keyedOrdersPage(input.sku, input.afterOrderNo, input.limit);
      const restored = await inventory.restoreKeys(
        input.sku,
        rows.map((row) => ({ userId: row.userId, key: row.idempotencyKey, orderNo: row.orderNo })),
      );
      return { next: rows.length === input.limit ? (rows.at(-1)?.orderNo ?? null) : null, restored };
    },

    /** One page of MySQL orders holding units; those Redis has no record of are adopted back. */
    async adoptMissingReservations(input: {
      sku: string;
      afterOrderNo: string;
      limit: number;
    }): Promise<AdoptionPageResult> {
      const rows = await stores.orders.holdingOrdersPage(input.sku, input.afterOrderNo, input.limit);
      const records = await inventory.getReservations(
        input.sku,
        rows.map((row) => row.orderNo),
      );
      const result: AdoptionPageResult = {
        next: rows.length === input.limit ? (rows.at(-1)?.orderNo ?? null) : null,
        adopted: 0,
        notAdopted: 0,
        undone: 0,
      };
      const missing = rows.filter((_, i) => !records[i]).map((row) => row.orderNo);
      if (missing.length === 0) return result;
      // Read again: an order cancelled between the two reads above (its row final, then its record
      // released by its workflow) must not be held again; the others are adopted as their row says now.
      const current = await stores.orders.getOrders(missing);
      const adopted: string[] = [];
      for (const orderNo of missing) {
        const row = current.get(orderNo);
        if (!holdsUnits(row)) continue;
        const outcome = await inventory.adopt(input.sku, {
          orderNo: row.orderNo,
          userId: row.userId,
          quantity: row.quantity,
          state: row.status === 'AWAITING_PAYMENT' ? 'CLAIMED' : 'SOLD',
          reservedAtMs: row.createdAt.getTime(),
          idempotencyKey: row.idempotencyKey,
        });
        if (outcome === 'ADOPTED') {
          result.adopted++;
          adopted.push(orderNo);
        } else if (outcome !== 'EXISTS') result.notAdopted++;
      }
      if (adopted.length === 0) return result;
      // A close landing between that read and the adopt released no record. Its row is written before its release: a
      // row still holding here means its release is yet to come and finds the record; one that no longer holds is
      // carried out here, as the one close does (a failed order's units back even if adopted as sold).
      const after = await stores.orders.getOrders(adopted);
      for (const orderNo of adopted) {
        const row = after.get(orderNo);
        if (!row || holdsUnits(row)) continue;
        const closed = await closer.close(orderOfRow(row), { kind: 'PAYMENT' });
        if (closed.outcome === 'CANCELLED' || closed.outcome === 'FAILED') result.undone++;
      }
      return result;
    },

    /** The sale's counters in both stores and how far apart they are, given the pending units. */
    async saleDrift(input: { sku: string; pendingUnits: number }): Promise<SaleDrift> {
      const [redis, mysql] = await Promise.all([
        inventory.getSale(input.sku),
        stores.reports.saleStockFigures(input.sku),
      ]);
      const awaitingPayment = mysql?.units.AWAITING_PAYMENT ?? 0;
      // Sold: paid, whatever became of the money since (a unit whose money went back stays sold).
      const paid = (mysql?.units.PAID ?? 0) + (mysql?.units.DISPUTED ?? 0) + (mysql?.units.REFUNDED ?? 0);
      const mysqlAvailable = mysql?.available ?? 0;
      const drift = {
        reserved: (redis?.reserved ?? 0) - (awaitingPayment + input.pendingUnits),
        sold: (redis?.sold ?? 0) - paid,
        available: (redis?.available ?? 0) - (mysqlAvailable - input.pendingUnits),
      };
      return {
        sku: input.sku,
        redis: redis && { stock: redis.stock, available: redis.available, reserved: redis.reserved, sold: redis.sold },
        mysql: { available: mysqlAvailable, awaitingPayment, paid },
        pendingUnits: input.pendingUnits,
        ...drift,
        agrees: drift.reserved === 0 && drift.sold === 0 && drift.available === 0,
      };
    },
  };
}

export type ReconcileActivities = ReturnType<typeof createReconcileActivities>;
