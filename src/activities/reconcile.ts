/**
 * The reconciler's activities: bounded work, safe to run again; every repair is an idempotent Lua step or store call
 * guarded to do only what the order's own workflow would have done.
 */
import type { OrderRow } from '../db/rows.js';
import type { OrderStore } from '../db/orders.js';
import type { PaymentStore } from '../db/payments.js';
import type { RefundStore } from '../db/refunds.js';
import { Deadline } from '../infra/dependency-guard.js';
import { signalAppliedPayment } from '../payments/receiver.js';
import type { ReportStore } from '../db/reports.js';
import type { SaleStore } from '../db/sales.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';
import { isSold, REFUND_TAKEN_FOR_MS } from '../model/order-workflow.js';
import {
  noReservationWork,
  PROMISE_MAX_AGE_MS,
  type AdoptionPageResult,
  type PaymentSignalPage,
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

/** Every status but the two whose workflow gives the units back (a paid order's stay sold whatever follows). */
function holdsUnits(row: OrderRow | undefined): row is OrderRow {
  return row !== undefined && row.status !== 'CANCELLED' && row.status !== 'FAILED';
}

/** How far back (by Redis's clock) the survey looks for sales defined in Redis alone. */
const REDIS_ONLY_HORIZON_MS = 7 * 24 * 3_600_000;

export function createReconcileActivities({
  stores,
  inventory,
  orders,
  refundProviders = [],
  refundGauges,
  deliveryGauges,
  deliveries = null,
  eventRetentionMs,
}: ReconcileDeps) {
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
     * Signals again payments applied over `olderThanMs` ago whose row is still marked (the webhook's signal failed).
     * The first failure ends the page: the rest would wait on the same absent Temporal, and stay marked.
     */
    async signalAppliedPayments(input: { olderThanMs: number; limit: number }): Promise<PaymentSignalPage> {
      const rows = await stores.payments.paymentsToTell(input.olderThanMs, input.limit);
      const page: PaymentSignalPage = { read: rows.length, signalled: 0, failed: 0 };
      for (const row of rows) {
        try {
          await signalAppliedPayment({ orders, payments: stores.payments }, row, Deadline.in(10_000));
          page.signalled++;
        } catch {
          page.failed++;
          break;
        }
        beat();
      }
      return page;
    },

    /**
     * Starts the RefundWorkflow of refunds due, each taken for the run's bound first so concurrent runs start it once.
     * A failed start leaves its row due and ends the page (Temporal is away). `readGauges`: a run's first page.
     */
    async startDueRefunds(input: { limit: number; readGauges?: boolean }): Promise<RefundStartPage> {
      const gauges = input.readGauges ? refundGauges?.() : undefined;
      if (gauges) {
        gauges.waiting(await stores.reports.providerRefundCounts());
        gauges.takenBack(await stores.reports.takenBackCounts());
      }
      const rows = await stores.refunds.refundsDue(input.limit, refundProviders);
      const page: RefundStartPage = { read: rows.length, started: 0, failed: 0 };
      for (const row of rows) {
        if (!(await stores.refunds.takeRefund(row.eventId, REFUND_TAKEN_FOR_MS))) continue;
        try {
          await orders.startRefund(row.eventId, Deadline.in(10_000));
          page.started++;
        } catch (err) {
          await stores.refunds.deferRefund(row.eventId, 0, `the refund's workflow did not start: ${String(err)}`);
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
     * One HSCAN page of a sale's reservations; each live one past the grace is aligned to a final MySQL order, its
     * promise started, or released with a FAILED row (docs/fault-tolerance.md, "The reconciler").
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
      };
      for (const reservation of live) {
        const row = rows.get(reservation.orderNo);
        const old = reservation.reservedAtMs < cutoff;
        if (row) {
          // The workflow writes MySQL before it releases: a CANCELLED or FAILED row with a live reservation is a
          // close in progress (the same release, done twice, is harmless) or a write Redis lost.
          if (!old) continue;
          if (row.status === 'CANCELLED' || row.status === 'FAILED') {
            const orderFailed = row.status === 'FAILED';
            if ((await inventory.release(sku, reservation.orderNo, { as: 'owner', orderFailed })) === 'RELEASED')
              result.alignedReleased++;
          } else if (isSold(row.status)) {
            // Sold, its workflow still to close it: the close confirms the unit or fails the order and releases it, so
            // only a workflow that is gone leaves Redis to this.
            const workflow = await orders.workflowState(reservation.orderNo);
            beat();
            if (workflow !== 'RUNNING' && (await inventory.confirm(sku, reservation.orderNo)) === 'CONFIRMED')
              result.alignedConfirmed++;
          }
          continue;
        }
        result.pendingUnits += reservation.quantity;
        if (!old) continue;
        let workflow = await orders.workflowState(reservation.orderNo);
        beat();
        if (workflow === 'RUNNING') continue; // persisting (MySQL may be down): its workflow owns it
        let reason: string;
        if (workflow === 'NOT_FOUND') {
          const promised =
            reservation.state === 'RESERVED' ? await inventory.orderInput(sku, reservation.orderNo) : null;
          if (promised && reservation.reservedAtMs >= expiredBefore) {
            // A promise whose starts all failed or never came (no starter ran): kept now.
            const started = await orders.start(promised);
            beat();
            if (started === 'STARTED') {
              result.startedPromises++;
              continue;
            }
            workflow = 'CLOSED';
          }
        }
        if (workflow === 'NOT_FOUND') {
          reason =
            reservation.reservedAtMs < expiredBefore
              ? 'PromiseExpired: the order could not be started within the maximum age of a promise'
              : 'ReservationOrphaned: the order was never started (the API stopped between the reservation and the start)';
        } else {
          reason = 'ReservationAbandoned: the order workflow closed without persisting the order';
        }
        // The row first, then the units: a failure between leaves a FAILED row over a live reservation, released by the
        // next attempt; a start meanwhile finds the row and fails (OrderClosed); a row its start wrote first is left.
        const sale = await stores.sales.getSale(sku);
        const status = await stores.orders.insertFailedOrder(
          {
            orderNo: reservation.orderNo,
            sku,
            userId: reservation.userId,
            quantity: reservation.quantity,
            unitPriceCents: sale?.priceCents ?? 0,
            paymentDeadline: new Date(reservation.reservedAtMs),
            createdAt: new Date(reservation.reservedAtMs),
          },
          reason,
        );
        if (status !== 'FAILED') continue;
        const released =
          workflow === 'NOT_FOUND'
            ? await inventory.release(sku, reservation.orderNo, {
                as: 'unclaimed',
                reservedBeforeMs: cutoff,
                orderFailed: true,
              })
            : await inventory.release(sku, reservation.orderNo, { as: 'owner', orderFailed: true });
        if (released !== 'RELEASED') continue; // claimed meanwhile: its workflow finds the row and gives the units back
        result.pendingUnits -= reservation.quantity;
        if (workflow === 'NOT_FOUND') result.releasedOrphans++;
        else result.releasedAbandoned++;
      }
      return result;
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
      // A cancel landing between that read and the adopt released no record. Its workflow writes the row
      // before releasing: a row still holding here means its release is yet to come and finds the record.
      const after = await stores.orders.getOrders(adopted);
      for (const orderNo of adopted) {
        if (holdsUnits(after.get(orderNo))) continue;
        // The workflow's own release (owner, forget): whichever of the two comes second finds nothing.
        if ((await inventory.release(input.sku, orderNo, { as: 'owner', forget: true })) === 'RELEASED')
          result.undone++;
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
