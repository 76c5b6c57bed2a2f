/** The reconciler's activities: bounded, safe to run again; each repair does only what the order's workflow would. */
import { log } from '@temporalio/activity';
import type { OrderRow } from '../db/rows.js';
import type { Stores } from '../db/stores.js';
import { Deadline } from '../infra/dependency-guard.js';
import type { RedisInventory } from '../redis/inventory.js';
import { newOrderOf, OrderCloser, type OrderChanges, type RefundStarts } from '../order/close.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';
import { isFinal, isSold, soldUnits } from '../model/order-workflow.js';
import { countersOf, driftOf } from '../invariants/check.js';
import {
  noReservationWork,
  PROMISE_MAX_AGE_MS,
  type AdoptionPageResult,
  type RefundStartPage,
  type RedisCounters,
  type ReservationPageResult,
  type SaleDrift,
  type SaleSurvey,
  type SurveyPage,
  type WaitingPaymentPage,
} from '../model/reconcile-workflow.js';
import { beat } from './heartbeat.js';
import { received } from './order.js';
import type { EndpointDeliveryClient } from '../order-events/endpoint-delivery-client.js';
import type { OrderEventFigures } from '../db/webhooks.js';
import type { EndpointSecretBox } from '../order-events/endpoint-secrets.js';

export interface ReconcileDeps {
  stores: Pick<Stores, 'orders' | 'sales' | 'reports' | 'payments' | 'refunds' | 'webhooks'>;
  inventory: RedisInventory;
  orders: OrderWorkflowClient;
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
  /** Endpoints' secrets sealed under an older EVENTS_SECRET_KEY are sealed again under the first. */
  endpointSecrets?: Pick<EndpointSecretBox, 'open' | 'seal' | 'isCurrent'>;
}

export interface RefundGauges {
  waiting(counts: Record<'REFUND_REQUIRED' | 'REFUND_REQUESTED' | 'REFUND_FAILED', number>): void;
  takenBack(counts: { DISPUTED: number; REFUNDED: number; disputesDueWithin72h: number }): void;
}

export interface DeliveryGauges {
  show(figures: OrderEventFigures): void;
}

/** Every endpoint's secrets (current and overlapping) sealed under the key that seals now; a concurrent change wins. */
export async function resealEndpointSecrets(
  webhooks: Pick<ReconcileDeps['stores']['webhooks'], 'endpointSecretBoxes' | 'replaceSecretBoxes'>,
  box: NonNullable<ReconcileDeps['endpointSecrets']>,
  unsealable: (endpointId: string, error: string) => void = (endpointId, error) =>
    log.warn('an endpoint secret could not be sealed again', { endpointId, error }),
): Promise<void> {
  for (const sealed of await webhooks.endpointSecretBoxes()) {
    try {
      const boxes = [sealed.secretBox, sealed.oldSecretBox].filter((one): one is Buffer => one !== null);
      if (boxes.every((one) => box.isCurrent(one))) continue;
      const again = (one: Buffer | null) =>
        one && (box.isCurrent(one) ? one : box.seal(sealed.endpointId, box.open(sealed.endpointId, one)));
      await webhooks.replaceSecretBoxes(sealed, {
        secretBox: again(sealed.secretBox)!,
        oldSecretBox: again(sealed.oldSecretBox),
      });
    } catch (err) {
      // One that no listed key opens (its key dropped too soon) stays as it is: its deliveries fail and say why.
      unsealable(sealed.endpointId, String(err));
    }
    beat();
  }
}

/** Every status but the two whose units went back (a paid order's stay sold whatever follows). */
function holdsUnits(row: OrderRow | undefined): row is OrderRow {
  return row !== undefined && row.status !== 'CANCELLED' && row.status !== 'FAILED';
}

/** Where the next page starts: after the last key of a full page; null after the last page. */
function nextAfter<T>(rows: readonly T[], limit: number, key: (row: T) => string): string | null {
  const last = rows.at(-1);
  return rows.length === limit && last !== undefined ? key(last) : null;
}

/** How far back (by Redis's clock) the survey looks for sales defined in Redis alone. */
const REDIS_ONLY_HORIZON_MS = 7 * 24 * 3_600_000;

export function createReconcileActivities(deps: ReconcileDeps) {
  const { stores, inventory, orders, changes, refunds, deliveries, eventRetentionMs } = deps;
  // The one close, for an order whose workflow is gone or late (docs/fault-tolerance.md, "One close").
  const closer = new OrderCloser({ orders: stores.orders, inventory, changes, refunds });

  // Past the grace the row decides: a sold order's Signal is resent (maybe lost); one overdue with no workflow closes.
  const settleByRow = async (row: OrderRow, nowMs: number, graceMs: number, result: ReservationPageResult) => {
    if (isFinal(row.status)) {
      const closed = await closer.close(newOrderOf(row), { kind: 'PAYMENT' });
      if (closed.outcome === 'CANCELLED' || closed.outcome === 'FAILED') result.alignedReleased++;
      return;
    }
    if (isSold(row.status)) {
      if (row.paidAt && row.paidAt.getTime() > nowMs - graceMs) return;
      const applied = await stores.orders.appliedPayment(row.orderNo);
      // Not to a workflow with a task pending: it holds its Signal, only behind, and another would add to the backlog.
      if (applied && !(await orders.hasWorkflowTaskPending(row.orderNo).catch(() => false)))
        await orders.signalPaymentApplied(row.orderNo, received(applied)).catch(() => undefined);
      const closed = await closer.close(newOrderOf(row), { kind: 'PAYMENT' });
      if (closed.outcome === 'PAID') result.alignedConfirmed++;
      return;
    }
    if (row.paymentDeadline.getTime() > nowMs) return;
    if ((await orders.workflowState(row.orderNo)) === 'RUNNING') return;
    if (row.paymentProvider) {
      const { orderNo, sku, totalCents: amountCents } = row;
      const paymentDeadline = row.paymentDeadline.toISOString();
      result.toSettleAtProvider.push({ orderNo, sku, provider: row.paymentProvider, amountCents, paymentDeadline });
      return;
    }
    const closed = await closer.close(newOrderOf(row), { kind: 'CANCEL', reason: 'PAYMENT_TIMEOUT' });
    if (closed.outcome !== 'NOT_DUE') result.closedForGoneWorkflows++;
  };
  // Sales in Redis with no MySQL row (a lost commit): orders fail SaleNotFound until the same POST /api/sales.
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
  /** A sale's counters in both stores: Redis's, and MySQL's with its units awaiting payment and sold. */
  const saleFigures = async (sku: string) => {
    const [redis, mysql] = await Promise.all([inventory.getSale(sku), stores.reports.saleStockFigures(sku)]);
    return {
      redis: redis && countersOf(redis),
      mysql,
      awaitingPayment: mysql?.units.AWAITING_PAYMENT ?? 0,
      paid: mysql ? soldUnits(mysql.units) : 0,
    };
  };
  return {
    /** Starts missing delivery workflows, prunes a page past EVENTS_RETENTION, reseals what an older key sealed. */
    async keepOrderEventDeliveries(input: { prunePage: number }): Promise<{ endpoints: number; pruned: number }> {
      if (deps.endpointSecrets) await resealEndpointSecrets(stores.webhooks, deps.endpointSecrets);
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
      if (pruned < input.prunePage) deps.deliveryGauges?.().show(await stores.webhooks.orderEventFigures());
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
          const [{ redis, mysql, awaitingPayment, paid }, keys] = await Promise.all([
            saleFigures(sku),
            inventory.keyCount(sku),
          ]);
          // Every key Redis ever mapped stays (orders not yet in MySQL add more): fewer than MySQL's were lost.
          const keysMissing = redis ? Math.max(0, (mysql?.keyedOrders ?? 0) - keys) : 0;
          // With no MySQL row of the sale, its available units are not compared.
          const drifts = (counters: RedisCounters) =>
            Object.values(
              driftOf(counters, { available: mysql?.available ?? counters.available, awaitingPayment, sold: paid }),
            ).some((units) => units !== 0);
          const needsScan = redis !== null && (redis.reserved > 0 || drifts(redis) || keysMissing > 0);
          return {
            sku,
            redis,
            mysql: { stock: mysql?.stock ?? 0, available: mysql?.available ?? 0, awaitingPayment, paid },
            needsScan,
            keysMissing,
          };
        }),
      );
      const next = nextAfter(skus, page.limit, (sku) => sku);
      // Once per run (its first page): sales Redis has and MySQL lacks, which no page above visits.
      if (page.afterSku !== '') return { surveys, next };
      return { surveys, next, onlyInRedis: await salesOnlyInRedis(page.skus) };
    },

    /** Starts owed refunds' workflows where none runs (USE_EXISTING); a failed start ends the page (Temporal away). */
    async startOwedRefunds(input: { afterEventId: string; limit: number; readGauges?: boolean }) {
      const gauges = input.readGauges ? deps.refundGauges?.() : undefined;
      if (gauges) {
        gauges.waiting(await stores.reports.providerRefundCounts());
        gauges.takenBack(await stores.reports.takenBackCounts());
      }
      const rows = await stores.refunds.owedRefundsPage(deps.refundProviders ?? [], input.afterEventId, input.limit);
      const page: RefundStartPage = {
        read: rows.length,
        started: 0,
        failed: 0,
        next: nextAfter(rows, input.limit, (row) => row.eventId),
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

    /** Rows decide payments still RECEIVED; with no row, workflow or reservation after a while: ORDER_NOT_FOUND. */
    async decideWaitingPayments(input: { olderThanMs: number; notFoundAfterMs: number; limit: number }) {
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

    /** One HSCAN page: a live reservation past the grace ends as its row says; with no row or workflow, failed. */
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
      // By Redis's clock: reservedAtMs is the API's, kept within CLOCK_SKEW_MARGIN of it; ours may be anywhere.
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
      // Unclaimed, a pending start within its age, never started: the starter starts it, so Temporal is not asked.
      const queued = await inventory.awaitingStart(
        sku,
        live
          .filter(
            (r) =>
              r.state === 'RESERVED' &&
              !rows.has(r.orderNo) &&
              r.reservedAtMs < cutoff &&
              r.reservedAtMs >= expiredBefore,
          )
          .map((r) => r.orderNo),
      );
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
        if (queued.has(reservation.orderNo)) continue;
        const workflow = await orders.workflowState(reservation.orderNo);
        beat();
        if (workflow === 'RUNNING') continue; // persisting (MySQL may be down): its workflow writes the row
        const promised =
          workflow === 'NOT_FOUND' && reservation.state === 'RESERVED'
            ? await inventory.orderInput(sku, reservation.orderNo)
            : null;
        // A pending start within its age: the starter starts it.
        if (promised && reservation.reservedAtMs >= expiredBefore) continue;
        const reason =
          workflow !== 'NOT_FOUND'
            ? 'ReservationAbandoned: the order workflow closed without persisting the order'
            : promised
              ? 'PromiseExpired: the order could not be started within the maximum age of a pending start'
              : 'ReservationOrphaned: the order was never started (the API stopped between the reservation and the start)';
        // The row first (the one close writes it FAILED), then the units: a failure between leaves a FAILED row over a
        // live reservation, released by the next pass; a start meanwhile finds the row and fails (OrderClosed).
        const { orderNo, userId, quantity, reservedAtMs } = reservation;
        const unitPriceCents = (await stores.sales.getSale(sku))?.priceCents ?? 0;
        const reservedAt = new Date(reservedAtMs);
        const closed = await closer.close(
          { orderNo, sku, userId, quantity, unitPriceCents, paymentDeadline: reservedAt, createdAt: reservedAt },
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

    /** A gone workflow's provider order, its intents closed: its row closes it as its timer would (or PAID). */
    async closeSettledProviderOrder(input: { orderNo: string }): Promise<'CLOSED' | 'OPEN'> {
      const row = await stores.orders.getOrder(input.orderNo);
      if (!row) return 'OPEN';
      const closed = await closer.close(newOrderOf(row), { kind: 'CANCEL', reason: 'PAYMENT_TIMEOUT' });
      return closed.outcome === 'NOT_DUE' || closed.outcome === 'OPEN' ? 'OPEN' : 'CLOSED';
    },

    /** One page of the sale's orders with a checkout key; each key Redis lost is set again to name its order. */
    async restoreLostKeys(input: { sku: string; afterOrderNo: string; limit: number }) {
      const rows = await stores.orders.keyedOrdersPage(input.sku, input.afterOrderNo, input.limit);
      const restored = await inventory.restoreKeys(
        input.sku,
        rows.map((row) => ({ userId: row.userId, key: row.idempotencyKey, orderNo: row.orderNo })),
      );
      return { next: nextAfter(rows, input.limit, (row) => row.orderNo), restored };
    },

    /** One page of MySQL orders holding units; those Redis has no record of are adopted back. */
    async adoptMissingReservations(input: { sku: string; afterOrderNo: string; limit: number }) {
      const rows = await stores.orders.holdingOrdersPage(input.sku, input.afterOrderNo, input.limit);
      const orderNos = rows.map((row) => row.orderNo);
      const records = await inventory.getReservations(input.sku, orderNos);
      const result: AdoptionPageResult = {
        next: nextAfter(rows, input.limit, (row) => row.orderNo),
        adopted: 0,
        notAdopted: 0,
        undone: 0,
      };
      const missing = orderNos.filter((_, i) => !records[i]);
      if (missing.length === 0) return result;
      // Read again: an order cancelled between the reads above (row final, record released) must not be held again.
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
      // A close between that read and the adopt released no record. Its row is written first: a row still holding means
      // its release is yet to come; one that no longer does is carried out here (a failed order's units back if sold).
      const after = await stores.orders.getOrders(adopted);
      for (const orderNo of adopted) {
        const row = after.get(orderNo);
        if (!row || holdsUnits(row)) continue;
        const closed = await closer.close(newOrderOf(row), { kind: 'PAYMENT' });
        if (closed.outcome === 'CANCELLED' || closed.outcome === 'FAILED') result.undone++;
      }
      return result;
    },

    /** The sale's counters in both stores and how far apart they are, given the pending units. */
    async saleDrift(input: { sku: string; pendingUnits: number }): Promise<SaleDrift> {
      const { redis, mysql, awaitingPayment, paid } = await saleFigures(input.sku);
      const mysqlAvailable = mysql?.available ?? 0;
      const drift = driftOf(redis, { available: mysqlAvailable, awaitingPayment, sold: paid }, input.pendingUnits);
      return {
        sku: input.sku,
        redis,
        mysql: { available: mysqlAvailable, awaitingPayment, paid },
        pendingUnits: input.pendingUnits,
        ...drift,
        agrees: drift.reserved === 0 && drift.sold === 0 && drift.available === 0,
      };
    },
  };
}

export type ReconcileActivities = ReturnType<typeof createReconcileActivities>;
