/**
 * What the fault suite checks once the system is quiet again after a fault: the invariants of
 * docs/fault-tolerance.md held against what the API told its clients during the fault.
 */
import type { Client } from '@temporalio/client';
import type { RedisClient } from '../src/infra/redis.js';
import type { Store } from '../src/db/store.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { parseReservation, RedisInventory, saleKeys } from '../src/inventory/redis-inventory.js';
import type { OrderClient } from '../src/orders/order-client.js';
import { waitFor } from '../stack/wait-for.js';
import { RECONCILE_WORKFLOW_TYPE, type ReconcileReport } from '../src/workflows/reconcile-definitions.js';
import type { TrafficResult } from './shoppers.js';

export const CHAOS_CHECKS = [
  'noOversell',
  'conservation',
  'storesAgree',
  'reservedEqualsLiveOrders',
  'every202HasAnOrderRow',
  'everyPaymentSettled',
  'paidOrdersHaveOnePayment',
  'noShopperLockedOut',
  'perUserLimit',
] as const;
export type ChaosCheck = (typeof CHAOS_CHECKS)[number];

export interface CheckDeps {
  store: Store;
  redis: RedisClient;
  temporal: Client;
}

/** Running OrderWorkflows of the SKU, from Temporal's visibility store. */
async function runningOrders(temporal: Client, sku: string): Promise<number> {
  const { count } = await temporal.workflow.count(`OrderSku = '${sku}' AND ExecutionStatus = 'Running'`);
  return count;
}

/**
 * Quiet means: every accepted order is final, no reservation holds a unit, no payment is still
 * RECEIVED, and that stays so for a few seconds (a reconcile run has then passed too).
 */
export async function waitForQuiescence(deps: CheckDeps, sku: string, accepted: readonly string[], timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  const inventory = new RedisInventory(deps.redis);
  let quietSince: number | undefined;
  await waitFor(
    async () => {
      const [sale, rows, stuck, running] = await Promise.all([
        inventory.getSale(sku),
        deps.store.getOrders(accepted),
        deps.store.receivedPaymentsBefore(new Date(Date.now() + 60_000), 1_000),
        runningOrders(deps.temporal, sku),
      ]);
      const ordersOfSku = new Set(accepted);
      const quiet =
        sale !== null &&
        sale.reserved === 0 &&
        running === 0 &&
        [...rows.values()].every((row) => row.status !== 'AWAITING_PAYMENT') &&
        rows.size === accepted.length &&
        !stuck.some((payment) => ordersOfSku.has(payment.orderNo));
      if (!quiet) quietSince = undefined;
      else quietSince ??= Date.now();
      return quietSince !== undefined && Date.now() - quietSince >= 3_000;
    },
    { what: `sale ${sku} to be quiet`, timeoutMs, intervalMs: 500, retryErrors: true },
  ).catch(() => undefined);
  return (Date.now() - t0) / 1000;
}

/**
 * Seconds from the fault until no reservation is stranded and the stores agree, up to the orders
 * in flight: every reservation still holding units has an order row or a running workflow (no
 * orphan left), and Redis's reserved and available equal MySQL's plus those in-flight units.
 * Called once the checkouts are over; payments and cancels may still be flowing.
 */
export async function waitForRepair(deps: CheckDeps, sku: string, faultAt: number, timeoutMs: number, orders: OrderClient): Promise<number> {
  const inventory = new RedisInventory(deps.redis);
  await waitFor(
    async () => {
      const [sale, mysql, records] = await Promise.all([
        inventory.getSale(sku),
        deps.store.saleStockFigures(sku),
        deps.redis.hgetall(saleKeys(sku).reservations),
      ]);
      if (!sale || !mysql) return false;
      const live = Object.entries(records).flatMap(([orderNo, record]) => {
        const reservation = parseReservation(record);
        return reservation.state === 'RESERVED' || reservation.state === 'CLAIMED' ? [{ orderNo, ...reservation }] : [];
      });
      const rows = await deps.store.getOrders(live.map((r) => r.orderNo));
      const inFlight = live.filter((r) => !rows.has(r.orderNo));
      for (const reservation of inFlight) if ((await orders.workflowState(reservation.orderNo)) !== 'RUNNING') return false;
      const inFlightUnits = inFlight.reduce((units, r) => units + r.quantity, 0);
      const heldInMysql = live.filter((r) => rows.get(r.orderNo)?.status === 'AWAITING_PAYMENT').reduce((units, r) => units + r.quantity, 0);
      return sale.reserved === heldInMysql + inFlightUnits && sale.available === mysql.available - inFlightUnits;
    },
    { what: `Redis to agree with the orders of ${sku}`, timeoutMs, intervalMs: 250, retryErrors: true },
  ).catch(() => undefined);
  return (Date.now() - faultAt) / 1000;
}

/** What the reconciler's runs since `since` did for the sale: released orphans, adopted, aligned. */
async function reconcilerRepairs(
  temporal: Client,
  sku: string,
  since: Date,
): Promise<{ releasedOrphans: number; adopted: number; aligned: number; runs: number }> {
  const totals = { releasedOrphans: 0, adopted: 0, aligned: 0, runs: 0 };
  for await (const run of temporal.workflow.list({
    query: `WorkflowType = '${RECONCILE_WORKFLOW_TYPE}' AND StartTime >= '${since.toISOString()}' AND ExecutionStatus = 'Completed'`,
  })) {
    const report = (await temporal.workflow.getHandle(run.workflowId, run.runId).result()) as ReconcileReport;
    totals.runs++;
    for (const sale of report.sales.filter((s) => s.sku === sku)) {
      totals.releasedOrphans += sale.releasedOrphans + sale.releasedAbandoned;
      totals.adopted += sale.adopted;
      totals.aligned += sale.alignedReleased + sale.alignedConfirmed;
    }
  }
  return totals;
}

export interface ChaosVerdict {
  checks: Record<ChaosCheck, boolean>;
  figures: Record<string, unknown>;
}

export async function checkAfterFault(deps: CheckDeps, sku: string, perUserLimit: number, traffic: TrafficResult, since: Date): Promise<ChaosVerdict> {
  const { store, redis, temporal } = deps;
  const inventory = new RedisInventory(redis);
  const accepted = traffic.intents.flatMap((intent) => (intent.answer.kind === 'accepted' ? [intent.answer.orderNo] : []));
  const report = await checkSaleInvariants({ store, inventory }, { sku, perUserLimit, acceptedOrderNos: accepted });
  const rows = [...(await store.getOrders([...(await store.orderNumbersOfSale(sku))])).values()];
  const sale = await inventory.getSale(sku);
  const running = await runningOrders(temporal, sku);

  // Payments: every event the provider delivered, and every one the store knows of, is settled.
  const payments = (await Promise.all(rows.map((row) => store.paymentsOfOrder(row.orderNo)))).flat();
  // Recorded: judged at once (200) or later (202 RECEIVED); either way the store must have it.
  const delivered = traffic.events.filter((event) => event.answer.status === 200 || event.answer.status === 202);
  const stored = new Map(payments.map((payment) => [payment.eventId, payment]));
  const unsettled = payments.filter((payment) => payment.outcome === 'RECEIVED');
  const deliveredMissing = delivered.filter((event) => !stored.has(event.eventId));
  const paidRows = rows.filter((row) => row.status === 'PAID');
  const applied = payments.filter((payment) => payment.outcome === 'APPLIED');
  const appliedByOrder = new Map<string, number>();
  for (const payment of applied) appliedByOrder.set(payment.orderNo, (appliedByOrder.get(payment.orderNo) ?? 0) + 1);

  // Shoppers: whoever Redis counts as holding units holds them through an order MySQL has.
  const holders = await redis.hgetall(saleKeys(sku).users);
  const heldInMysql = new Map<string, number>();
  for (const row of rows)
    if (row.status === 'AWAITING_PAYMENT' || row.status === 'PAID') heldInMysql.set(row.userId, (heldInMysql.get(row.userId) ?? 0) + row.quantity);
  const lockedOut = Object.entries(holders).filter(([userId, units]) => Number(units) !== (heldInMysql.get(userId) ?? 0));

  const byStatus = (status: string) => rows.filter((row) => row.status === status).length;
  const repairs = await reconcilerRepairs(temporal, sku, since);
  const checks: Record<ChaosCheck, boolean> = {
    noOversell: report.checks.noOversell,
    conservation: report.checks.conservation,
    storesAgree: report.checks.storesAgree,
    reservedEqualsLiveOrders: sale !== null && sale.reserved === report.figures.mysql.awaitingPayment && running === byStatus('AWAITING_PAYMENT'),
    every202HasAnOrderRow: report.checks.noLostOrder,
    everyPaymentSettled: unsettled.length === 0 && deliveredMissing.length === 0,
    paidOrdersHaveOnePayment:
      paidRows.every((row) => appliedByOrder.get(row.orderNo) === 1) && applied.every((payment) => paidRows.some((row) => row.orderNo === payment.orderNo)),
    noShopperLockedOut: lockedOut.length === 0,
    perUserLimit: report.checks.perUserLimit,
  };
  const intents = traffic.intents;
  return {
    checks,
    figures: {
      shoppers: intents.length,
      accepted: accepted.length,
      acceptedByStatus: countBy(intents.flatMap((i) => (i.answer.kind === 'accepted' ? [`${i.answer.status}${i.waited ? ' waiting' : ''}`] : []))),
      refused: countBy(intents.flatMap((i) => (i.answer.kind === 'refused' ? [`${i.answer.status} ${i.answer.code}`] : []))),
      gaveUp: intents.filter((i) => i.answer.kind === 'gave-up').length,
      retriedRequests: intents.reduce((n, i) => n + i.attempts - 1, 0),
      orders: { paid: byStatus('PAID'), cancelled: byStatus('CANCELLED'), failed: byStatus('FAILED'), awaitingPayment: byStatus('AWAITING_PAYMENT') },
      orphansReleased: rows.filter((row) => row.failureReason?.startsWith('ReservationOrphaned')).length,
      failureReasons: countBy(rows.flatMap((row) => (row.status === 'FAILED' ? [row.failureReason?.split(':')[0] ?? 'unknown'] : []))),
      repairs,
      paymentEvents: {
        delivered: delivered.length,
        gaveUp: traffic.events.filter((e) => e.answer.status === 'gave-up').length,
        applied: applied.length,
        refundRequired: payments.filter((p) => p.outcome === 'REFUND_REQUIRED').length,
        unsettled: unsettled.length,
      },
      cancels: traffic.cancels.length,
      // Every HTTP attempt of the round by kind and answer (status, timeout or error).
      answers: Object.fromEntries(
        [...new Set(traffic.requests.map((r) => r.kind))].map((kind) => [
          kind,
          countBy(traffic.requests.filter((r) => r.kind === kind).map((r) => String(r.outcome))),
        ]),
      ),
      redis: report.figures.redis,
      mysql: report.figures.mysql,
      runningWorkflows: running,
      lockedOut: lockedOut.length,
    },
  };
}

function countBy(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}
