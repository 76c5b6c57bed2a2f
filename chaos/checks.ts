/**
 * What the fault suite checks once the system is quiet again after a fault: the invariants of
 * docs/fault-tolerance.md held against what the API told its clients during the fault.
 */
import { RECONCILE_WORKFLOW_TYPE } from '../src/model/workflow-types.js';
import type { Client } from '@temporalio/client';
import type { RedisClient } from '../src/infra/redis.js';
import type { OrderRow, PaymentRow } from '../src/db/rows.js';
import type { Stores } from '../src/db/stores.js';
import { checkSaleInvariants } from '../src/invariants/check.js';
import { parseReservation, type RedisInventory } from '../src/redis/inventory.js';
import { saleKeys } from '../src/redis/layout.js';
import type { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { orderNoTime, orderWorkflowId } from '../src/model/order-workflow.js';
import { waitFor } from '../stack/wait-for.js';
import type { ReconcileReport } from '../src/model/reconcile-workflow.js';
import { ANSWER_SLACK_MS } from './gray.js';
import type { TrafficResult } from '../toolkit/shoppers.js';
import type { RequestKind, RequestRecord, SameKeyAnswers } from '../toolkit/traffic-records.js';

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
  'sameKeySameOrder',
] as const;
export type ChaosCheck = (typeof CHAOS_CHECKS)[number];

export interface CheckDeps {
  stores: Stores;
  redis: RedisClient;
  /**
   * On the round's pipeline (its task queue): the same stock whatever the pipeline, but its promises are the
   * pipeline's.
   */
  inventory: RedisInventory;
  temporal: Client;
}

/** Running OrderWorkflows of the SKU, from Temporal's visibility store. */
async function runningOrders(temporal: Client, sku: string): Promise<number> {
  const { count } = await temporal.workflow.count(`OrderSku = '${sku}' AND ExecutionStatus = 'Running'`);
  return count;
}

/**
 * The 202s a Redis that lost writes it had acknowledged took with it (the redis-aof-tail-lost
 * round: a disk that drops its last second): ordered before `lostAt`, and yet no order row, no
 * reservation record and no workflow. A checkout answers from Redis alone, so such a promise
 * was only in the lost writes, unless the owner of starts had started it first
 * (docs/fault-tolerance.md, "A reservation's owners"). Nothing else may be missing.
 */
export async function ordersLostWithRedisWrites(
  deps: Pick<CheckDeps, 'stores' | 'inventory'>,
  sku: string,
  accepted: readonly string[],
  lostAt: number,
  orders: OrderWorkflowClient,
): Promise<Set<string>> {
  const rows = await deps.stores.orders.getOrders(accepted);
  const lost = new Set<string>();
  for (const orderNo of accepted) {
    if (rows.has(orderNo) || (orderNoTime(orderNo) ?? Infinity) >= lostAt) continue;
    if ((await deps.inventory.getReservation(sku, orderNo)) !== null) continue;
    if ((await orders.workflowState(orderNo)) === 'NOT_FOUND') lost.add(orderNo);
  }
  return lost;
}

/**
 * Quiet means: every accepted order is final (or lost with Redis's writes: `lost`), no reservation
 * holds a unit, no payment is still RECEIVED, no order's workflow runs, and that stays so for a few
 * seconds (a reconcile run has then passed too).
 */
export async function waitForQuiescence(
  deps: CheckDeps,
  sku: string,
  accepted: readonly string[],
  timeoutMs: number,
  lost: () => Promise<ReadonlySet<string>> = async () => new Set(),
): Promise<number> {
  const t0 = Date.now();
  const { inventory } = deps;
  let quietSince: number | undefined;
  await waitFor(
    async () => {
      // Payments still moving: waiting for their order's row.
      const [sale, keys, rows, stuck, running, gone] = await Promise.all([
        inventory.getSale(sku),
        inventory.keyCount(sku),
        deps.stores.orders.getOrders(accepted),
        deps.stores.payments.waitingPayments(0, 1_000),
        runningOrders(deps.temporal, sku),
        lost(),
      ]);
      const ordersOfSku = new Set(accepted);
      const quiet =
        sale !== null &&
        sale.reserved === 0 &&
        running === 0 &&
        [...rows.values()].every((row) => row.status !== 'AWAITING_PAYMENT') &&
        rows.size + gone.size === accepted.length &&
        // Every key a row names is mapped in Redis again (keys Redis lost are set again by the reconciler).
        keys >= [...rows.values()].filter((row) => row.idempotencyKey).length &&
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
 * orphan left, and every promised order started), and Redis's reserved and available equal
 * MySQL's plus those in-flight units.
 * Called once the checkouts are over; payments and cancels may still be flowing.
 */
export async function waitForRepair(
  deps: CheckDeps,
  sku: string,
  faultAt: number,
  timeoutMs: number,
  orders: OrderWorkflowClient,
): Promise<number> {
  const { inventory } = deps;
  await waitFor(
    async () => {
      const [sale, mysql, records] = await Promise.all([
        inventory.getSale(sku),
        deps.stores.reports.saleStockFigures(sku),
        deps.redis.hgetall(saleKeys(sku).reservations),
      ]);
      if (!sale || !mysql) return false;
      const live = Object.entries(records).flatMap(([orderNo, record]) => {
        const reservation = parseReservation(record);
        return reservation.state === 'RESERVED' || reservation.state === 'CLAIMED' ? [{ orderNo, ...reservation }] : [];
      });
      const rows = await deps.stores.orders.getOrders(live.map((r) => r.orderNo));
      const inFlight = live.filter((r) => !rows.has(r.orderNo));
      for (const reservation of inFlight)
        if ((await orders.workflowState(reservation.orderNo)) !== 'RUNNING') return false;
      const inFlightUnits = inFlight.reduce((units, r) => units + r.quantity, 0);
      const heldInMysql = live
        .filter((r) => rows.get(r.orderNo)?.status === 'AWAITING_PAYMENT')
        .reduce((units, r) => units + r.quantity, 0);
      return sale.reserved === heldInMysql + inFlightUnits && sale.available === mysql.available - inFlightUnits;
    },
    { what: `Redis to agree with the orders of ${sku}`, timeoutMs, intervalMs: 250, retryErrors: true },
  ).catch(() => undefined);
  return (Date.now() - faultAt) / 1000;
}

/**
 * What the reconciler's runs since `since` did for the sale: orders of gone workflows closed, orphans released,
 * adopted, aligned.
 */
async function reconcilerRepairs(
  temporal: Client,
  sku: string,
  since: Date,
): Promise<{
  closedForGoneWorkflows: number;
  releasedOrphans: number;
  adopted: number;
  aligned: number;
  runs: number;
}> {
  const totals = { closedForGoneWorkflows: 0, releasedOrphans: 0, adopted: 0, aligned: 0, runs: 0 };
  for await (const run of temporal.workflow.list({
    query: `WorkflowType = '${RECONCILE_WORKFLOW_TYPE}' AND StartTime >= '${since.toISOString()}' AND ExecutionStatus = 'Completed'`,
  })) {
    const report = (await temporal.workflow.getHandle(run.workflowId, run.runId).result()) as ReconcileReport;
    totals.runs++;
    for (const sale of report.sales.filter((s) => s.sku === sku)) {
      totals.closedForGoneWorkflows += sale.closedForGoneWorkflows;
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

/**
 * The invariants after a round, and its figures. `lost`: the 202s Redis lost with writes it had
 * acknowledged (ordersLostWithRedisWrites; only the redis-aof-tail-lost round has any): their
 * missing rows are explained, and each of their payments must be refunded ORDER_NOT_FOUND.
 */
export async function checkAfterFault(
  deps: CheckDeps,
  sku: string,
  perUserLimit: number,
  traffic: TrafficResult,
  since: Date,
  /**
   * Asks each accepted shopper's key again (sameKeySameOrder in toolkit/shoppers.ts): called last,
   * once everything else is read, since a key Redis lost makes a new order.
   */
  askKeysAgain: () => Promise<SameKeyAnswers>,
  lost: ReadonlySet<string> = new Set(),
): Promise<ChaosVerdict> {
  const { stores, redis, inventory, temporal } = deps;
  const accepted = traffic.intents.flatMap((intent) =>
    intent.answer.kind === 'accepted' ? [intent.answer.orderNo] : [],
  );
  const report = await checkSaleInvariants({ stores, inventory }, { sku, perUserLimit, acceptedOrderNos: accepted });
  const rows = [...(await stores.orders.getOrders([...(await stores.reports.orderNumbersOfSale(sku))])).values()];
  const sale = await inventory.getSale(sku);
  const running = await runningOrders(temporal, sku);
  const withRow = new Set(rows.map((row) => row.orderNo));
  const missing = accepted.filter((orderNo) => !withRow.has(orderNo));

  // Payments: every event the provider delivered, and every one the store knows of, is settled.
  const payments = (
    await Promise.all([...withRow, ...lost].map((orderNo) => stores.payments.paymentsOfOrder(orderNo)))
  ).flat();
  const lostPayments = payments.filter((payment) => lost.has(payment.orderNo));
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
    if (row.status === 'AWAITING_PAYMENT' || row.status === 'PAID')
      heldInMysql.set(row.userId, (heldInMysql.get(row.userId) ?? 0) + row.quantity);
  const lockedOut = Object.entries(holders).filter(
    ([userId, units]) => Number(units) !== (heldInMysql.get(userId) ?? 0),
  );

  const byStatus = (status: string) => rows.filter((row) => row.status === status).length;
  const repairs = await reconcilerRepairs(temporal, sku, since);
  const keys = await askKeysAgain();
  const rowOf = new Map(rows.map((row) => [row.orderNo, row]));
  const keyViolations = keys.mismatches.slice(0, 20).map((m) => {
    const row = rowOf.get(m.first);
    return `key ${m.key} of ${m.userId}: ${m.first} (${row ? `${row.status}${row.failureReason ? ` ${row.failureReason.slice(0, 60)}` : ''}` : 'no row'}) first, ${m.now} now`;
  });
  const checks: Record<ChaosCheck, boolean> = {
    noOversell: report.checks.noOversell,
    conservation: report.checks.conservation,
    storesAgree: report.checks.storesAgree,
    reservedEqualsLiveOrders:
      sale !== null &&
      sale.reserved === report.figures.mysql.awaitingPayment &&
      running === byStatus('AWAITING_PAYMENT'),
    every202HasAnOrderRow: missing.every((orderNo) => lost.has(orderNo)),
    everyPaymentSettled:
      unsettled.length === 0 &&
      deliveredMissing.length === 0 &&
      lostPayments.every(
        (payment) => payment.outcome === 'REFUND_REQUIRED' && payment.refundReason === 'ORDER_NOT_FOUND',
      ),
    paidOrdersHaveOnePayment:
      paidRows.every((row) => appliedByOrder.get(row.orderNo) === 1) &&
      applied.every((payment) => paidRows.some((row) => row.orderNo === payment.orderNo)),
    noShopperLockedOut: lockedOut.length === 0,
    perUserLimit: report.checks.perUserLimit,
    sameKeySameOrder: keys.mismatches.length === 0,
  };
  const intents = traffic.intents;
  return {
    checks,
    figures: {
      shoppers: intents.length,
      accepted: accepted.length,
      // Answered 202 and still no order row once the sale was quiet: a promise lost (target 0; every202HasAnOrderRow),
      // but for those Redis lost with writes it had acknowledged (lostWithRedisWrites).
      acceptedWithoutRow: missing.length,
      lostWithRedisWrites: lost.size,
      // Each 202 without a row that Redis's lost writes do not explain: what is left of it, to tell why.
      unexplainedWithoutRow: await Promise.all(
        missing
          .filter((orderNo) => !lost.has(orderNo))
          .slice(0, 20)
          .map(async (orderNo) => ({
            orderNo,
            numberedAtMs: orderNoTime(orderNo),
            reservation: await inventory.getReservation(sku, orderNo),
            workflow: await temporal.workflow
              .getHandle(orderWorkflowId(orderNo))
              .describe()
              .then((described) => described.status.name as string)
              .catch(() => 'NOT_FOUND'),
          })),
      ),
      acceptedByStatus: countBy(
        intents.flatMap((i) =>
          i.answer.kind === 'accepted' ? [`${i.answer.status}${i.waited ? ' waiting' : ''}`] : [],
        ),
      ),
      refused: countBy(
        intents.flatMap((i) => (i.answer.kind === 'refused' ? [`${i.answer.status} ${i.answer.code}`] : [])),
      ),
      gaveUp: intents.filter((i) => i.answer.kind === 'gave-up').length,
      sameKeyAskedAgain: {
        asked: keys.asked,
        violations: keyViolations,
        // The first few violations' orders as their workflows ran them (which steps, what each answered): the why.
        histories: await Promise.all(
          keys.mismatches.slice(0, 3).map(async (m) => ({
            orderNo: m.first,
            idempotencyKeyInRow: rowOf.get(m.first)?.idempotencyKey ?? null,
            checkout: intents.flatMap((i) =>
              i.idempotencyKey === m.key ? [{ answer: i.answer, attempts: i.attempts, waited: i.waited }] : [],
            ),
            steps: await workflowSteps(temporal, m.first),
          })),
        ),
      },
      retriedRequests: intents.reduce((n, i) => n + i.attempts - 1, 0),
      orders: {
        paid: byStatus('PAID'),
        cancelled: byStatus('CANCELLED'),
        failed: byStatus('FAILED'),
        awaitingPayment: byStatus('AWAITING_PAYMENT'),
      },
      // Reservations given up by the reconciler: never started (no promise recorded), or a promise too old to keep.
      orphansReleased: rows.filter(
        (row) =>
          row.failureReason?.startsWith('ReservationOrphaned') || row.failureReason?.startsWith('PromiseExpired'),
      ).length,
      failureReasons: countBy(
        rows.flatMap((row) => (row.status === 'FAILED' ? [row.failureReason?.split(':')[0] ?? 'unknown'] : [])),
      ),
      repairs,
      paymentEvents: {
        delivered: delivered.length,
        gaveUp: traffic.events.filter((e) => e.answer.status === 'gave-up').length,
        applied: applied.length,
        // Kept for a refund, whatever became of the refund since (a provider's: REFUND_REQUESTED, REFUNDED, …).
        refundRequired: payments.filter(isRefund).length,
        refundReasons: countBy(payments.flatMap((p) => (isRefund(p) ? [p.refundReason ?? 'none'] : []))),
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

export function countBy(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/**
 * The freeze-payment rounds' own checks: every payment judged by when MySQL recorded it, however
 * late it was delivered, and every webhook recorded while MySQL was up.
 *   inTimePaymentPaysOrder       an order with a full-amount payment recorded at or before its
 *                                payment deadline is PAID by one of them (the first its workflow
 *                                received: docs/api.md, "Payments"); an order with none is not PAID
 *   otherPaymentsRefunded        every other payment of the round's orders is REFUND_REQUIRED
 *   refundReasonsByArrival       a full-amount one recorded after the deadline: RECEIVED_AFTER_DEADLINE
 *                                (ALREADY_PAID when the order was paid); a second one in time:
 *                                ALREADY_PAID; a short one: AMOUNT_MISMATCH, whenever delivered
 *   webhookVerdictsKept          every verdict a webhook answered (200 APPLIED / REFUND_REQUIRED) is the stored one
 *   noWebhook503                 no webhook attempt of the round was answered 503, timed out or failed
 *   bothSidesOfDeadlinesInFreeze the round tested what it says: payments recorded during the freeze,
 *                                some before their order's deadline and some after
 */
export const PAYMENT_FREEZE_CHECKS = [
  'inTimePaymentPaysOrder',
  'otherPaymentsRefunded',
  'refundReasonsByArrival',
  'webhookVerdictsKept',
  'noWebhook503',
  'bothSidesOfDeadlinesInFreeze',
] as const;
export type PaymentFreezeCheck = (typeof PAYMENT_FREEZE_CHECKS)[number];

export interface PaymentFreezeVerdict {
  checks: Record<PaymentFreezeCheck, boolean>;
  figures: Record<string, unknown>;
  /** The first violations found, each naming the order and the payment. */
  violations: string[];
}

export async function checkPaymentsByArrival(
  stores: Stores,
  orderNos: readonly string[],
  traffic: TrafficResult,
  freeze: { from: number; until: number },
): Promise<PaymentFreezeVerdict> {
  const rows = await stores.orders.getOrders(orderNos);
  const violations: string[] = [];
  const failed = new Set<PaymentFreezeCheck>();
  const violated = (check: PaymentFreezeCheck, what: string) => {
    failed.add(check);
    if (violations.length < 30) violations.push(`${check}: ${what}`);
  };
  const tally = {
    events: 0,
    fullAmount: 0,
    receivedBeforeDeadline: 0,
    receivedAfterDeadline: 0,
    receivedDuringFreeze: 0,
    applied: 0,
    refundRequired: 0,
    unsettled: 0,
    appliedInTime: 0,
    /** A later full payment in time applied instead of the order's first one. */
    appliedNotFirstInTime: 0,
    refundedInTime: 0,
    refundedAfterDeadline: 0,
  };
  /** The refund reasons of the payments other than each order's first in time, by when they were recorded. */
  const refundReasons: { beforeDeadline: string[]; afterDeadline: string[]; wrongAmount: string[] } = {
    beforeDeadline: [],
    afterDeadline: [],
    wrongAmount: [],
  };
  /** deadline − received_at of every payment recorded in time (how close to the deadline they came). */
  const marginsMs: number[] = [];
  const deadlinesAfterFreezeMs: number[] = [];
  const ordersBy = { paidInTime: 0, cancelledNoPaymentInTime: 0, other: 0 };
  /**
   * Per payment kind (toolkit/shoppers.ts): what became of its orders and their payments, in the order they were
   * recorded.
   */
  const kindOf = new Map(traffic.events.map((event) => [event.orderNo, event.kind]));
  const byKind: Record<string, string[]> = {};
  for (const orderNo of orderNos) {
    const order = rows.get(orderNo);
    if (!order) {
      violated('inTimePaymentPaysOrder', `${orderNo} has no order row`);
      continue;
    }
    const deadline = order.paymentDeadline.getTime();
    deadlinesAfterFreezeMs.push(deadline - freeze.from);
    const payments = (await stores.payments.paymentsOfOrder(orderNo)).sort(
      (a, b) =>
        a.receivedAt.getTime() - b.receivedAt.getTime() || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0),
    );
    const inTime = (p: PaymentRow) => p.receivedAt.getTime() <= deadline;
    const full = (p: PaymentRow) => p.amountCents === order.totalCents;
    // Any one of several full payments in time may pay the order; the one applied is the winner.
    const first =
      payments.find((p) => full(p) && inTime(p) && p.outcome === 'APPLIED') ??
      payments.find((p) => full(p) && inTime(p));
    if (first) {
      if (first.outcome !== 'APPLIED' || order.status !== 'PAID')
        violated(
          'inTimePaymentPaysOrder',
          `${orderNo} (${order.status}): no full payment recorded in time is APPLIED; ${first.eventId}, recorded ${relative(first.receivedAt.getTime(), deadline)}, is ${first.outcome} ${first.refundReason ?? ''}`.trim(),
        );
      else ordersBy.paidInTime++;
    } else if (order.status === 'PAID')
      violated('inTimePaymentPaysOrder', `${orderNo} is PAID without a full payment recorded by its deadline`);
    else if (order.status === 'CANCELLED' && order.cancelReason === 'PAYMENT_TIMEOUT')
      ordersBy.cancelledNoPaymentInTime++;
    else ordersBy.other++;
    (byKind[kindOf.get(orderNo) ?? 'none'] ??= []).push(
      [
        order.status,
        ...payments.map((p) =>
          `${inTime(p) ? 'in time' : 'late'}${full(p) ? '' : ' short'} ${p.outcome} ${p.refundReason ?? ''}`.trim(),
        ),
      ].join(' / '),
    );
    for (const payment of payments) {
      const at = payment.receivedAt.getTime();
      tally.events++;
      if (full(payment)) tally.fullAmount++;
      if (inTime(payment)) {
        tally.receivedBeforeDeadline++;
        marginsMs.push(deadline - at);
      } else tally.receivedAfterDeadline++;
      if (at >= freeze.from && at <= freeze.until) tally.receivedDuringFreeze++;
      if (payment.outcome === 'APPLIED') tally.applied++;
      else if (payment.outcome === 'REFUND_REQUIRED') tally.refundRequired++;
      else tally.unsettled++;
      if (payment === first) {
        tally.appliedInTime += payment.outcome === 'APPLIED' ? 1 : 0;
        continue;
      }
      const reason = payment.refundReason ?? 'none';
      if (payment.outcome !== 'REFUND_REQUIRED') {
        if (payment.outcome === 'APPLIED' && full(payment) && inTime(payment)) tally.appliedNotFirstInTime++;
        violated(
          'otherPaymentsRefunded',
          `${orderNo} (${order.status}): ${payment.eventId} (${payment.amountCents} of ${order.totalCents}, recorded ${relative(at, deadline)}) is ${payment.outcome}`,
        );
        continue;
      }
      if (inTime(payment)) tally.refundedInTime++;
      else tally.refundedAfterDeadline++;
      const reasons = !full(payment)
        ? refundReasons.wrongAmount
        : inTime(payment)
          ? refundReasons.beforeDeadline
          : refundReasons.afterDeadline;
      reasons.push(reason);
      const expected = !full(payment)
        ? ['AMOUNT_MISMATCH']
        : inTime(payment)
          ? ['ALREADY_PAID']
          : order.status === 'PAID'
            ? ['RECEIVED_AFTER_DEADLINE', 'ALREADY_PAID']
            : ['RECEIVED_AFTER_DEADLINE'];
      if (!expected.includes(reason))
        violated(
          'refundReasonsByArrival',
          `${orderNo} (${order.status}): ${payment.eventId} recorded ${relative(at, deadline)} is REFUND_REQUIRED ${reason}, not ${expected.join(' or ')}`,
        );
    }
  }

  // What the webhook answered is what the store keeps.
  for (const event of traffic.events) {
    const answer = event.answer;
    if (
      answer.status !== 200 ||
      !('outcome' in answer) ||
      (answer.outcome !== 'APPLIED' && answer.outcome !== 'REFUND_REQUIRED')
    )
      continue;
    const stored = await stores.payments.getPayment(event.eventId);
    if (stored?.outcome !== answer.outcome)
      violated(
        'webhookVerdictsKept',
        `${event.eventId} answered ${answer.outcome}, stored ${stored?.outcome ?? 'nothing'}`,
      );
  }

  const webhooks = traffic.requests.filter((request) => request.kind === 'webhook');
  for (const request of webhooks)
    if (request.outcome === 503 || typeof request.outcome !== 'number')
      violated(
        'noWebhook503',
        `a webhook sent ${request.sentAt - freeze.from} ms into the freeze answered ${request.outcome} after ${Math.round(request.ms)} ms`,
      );
  for (const event of traffic.events)
    if (event.answer.status === 'gave-up') violated('noWebhook503', `${event.eventId}: the provider gave up`);

  if (
    tally.receivedBeforeDeadline === 0 ||
    tally.receivedAfterDeadline === 0 ||
    tally.receivedDuringFreeze !== tally.events
  )
    violated(
      'bothSidesOfDeadlinesInFreeze',
      `${tally.receivedBeforeDeadline} recorded before their deadline, ${tally.receivedAfterDeadline} after; ${tally.receivedDuringFreeze} of ${tally.events} during the freeze`,
    );

  const during = webhooks.filter((request) => request.sentAt >= freeze.from && request.sentAt <= freeze.until);
  const seconds = (ms: number[]) =>
    ms.length === 0 ? null : { min: round1(Math.min(...ms) / 1000), max: round1(Math.max(...ms) / 1000) };
  return {
    checks: Object.fromEntries(PAYMENT_FREEZE_CHECKS.map((check) => [check, !failed.has(check)])) as Record<
      PaymentFreezeCheck,
      boolean
    >,
    violations,
    figures: {
      orders: orderNos.length,
      ordersBy,
      /** Seconds from the freeze's start to the orders' payment deadlines. */
      deadlinesIntoFreezeSeconds: seconds(deadlinesAfterFreezeMs),
      webhookAnswersDuringFreeze: countBy(during.map((request) => String(request.outcome))),
      webhookAnswersOutsideFreeze: countBy(
        webhooks.filter((request) => !during.includes(request)).map((request) => String(request.outcome)),
      ),
      /** The provider's final answer of each event: status and outcome. */
      finalAnswers: countBy(
        traffic.events.map((event) =>
          `${event.answer.status} ${'outcome' in event.answer ? event.answer.outcome : 'code' in event.answer ? event.answer.code : ''}`.trim(),
        ),
      ),
      payments: tally,
      refundReasons: Object.fromEntries(
        Object.entries(refundReasons).map(([when, reasons]) => [when, countBy(reasons)]),
      ),
      /** How long before its deadline each payment recorded in time came (seconds). */
      inTimeMarginSeconds: seconds(marginsMs),
      byKind: Object.fromEntries(Object.entries(byKind).map(([kind, outcomes]) => [kind, countBy(outcomes)])),
    },
  };
}

const round1 = (value: number) => Math.round(value * 10) / 10;

/** "1234 ms before the deadline" / "56 ms after the deadline". */
const relative = (at: number, deadline: number) =>
  at <= deadline ? `${deadline - at} ms before the deadline` : `${at - deadline} ms after the deadline`;

/**
 * The sale goes on while Temporal or the worker is away (docs/fault-tolerance.md): a reserved unit
 * is a promise, so during a freeze of either every checkout that reserves answers 202, every
 * status read answers from the workflow or the stores, and once the thaw comes every promise is
 * started and persisted with its whole payment window. The checks of the rounds that freeze one of
 * them mid-sale (temporal-freeze, worker-freeze, and the 60 s *-freeze-sale rounds):
 *   noCheckoutTurnedAway  no checkout sent during the freeze was answered 5xx, timed out or failed
 *                         while Redis had units available (at the time of the answer)
 *   noStatusRead503       every status read sent during the freeze was answered 200 (not 503, 404,
 *                         a timeout or an error): from the workflow, MySQL or the recorded promise
 *   wholePaymentWindow    every order that became payable (AWAITING_PAYMENT, PAID or CANCELLED)
 *                         has paymentDeadline ≥ its checkout + PAYMENT_WINDOW − 1 s, and one whose
 *                         checkout came during the freeze (so it could not become payable before
 *                         the thaw) has paymentDeadline ≥ the thaw + PAYMENT_WINDOW − 2 s: the row
 *                         does not record when it became payable, so the thaw stands for it
 *   noInternalError       no request of the round, during the freeze or after it, was answered
 *                         500 (the API's answer to an error it did not expect: a bug)
 * The 202s becoming rows after the thaw, the stores agreeing and no oversell are CHAOS_CHECKS.
 * Beside them the verdict reports how the recovery went: the answers from the thaw until every 202
 * was a row, the late ones, and how long each order of the freeze waited for its row.
 */
export const SALE_FREEZE_CHECKS = [
  'noCheckoutTurnedAway',
  'noStatusRead503',
  'wholePaymentWindow',
  'noInternalError',
] as const;
export type SaleFreezeCheck = (typeof SALE_FREEZE_CHECKS)[number];

/** How much shorter than PAYMENT_WINDOW from the checkout a deadline may be (clocks, DATETIME rounding). */
const WINDOW_SLACK_MS = 1_000;
/**
 * How much shorter than PAYMENT_WINDOW from the thaw an order of the freeze may be given (the thaw is timed by the
 * suite, the deadline by MySQL).
 */
const THAW_SLACK_MS = 2_000;
/**
 * Orders whose checkout came this long after the freeze began count as made during it (the signal, the request in
 * flight).
 */
const FREEZE_GUARD_MS = 1_000;

/** A figure sampled over time: Date.now() and the value. */
export interface Sample {
  at: number;
  value: number;
}

/** What watchSale saw of a sale while the round ran. */
export interface SaleWatch {
  /** Redis's units available, every interval. */
  available: Sample[];
  /** Promised orders whose workflow has not claimed the reservation yet (the sale's pending starts), every interval. */
  pending: Sample[];
  /** When each accepted order's MySQL row was first seen (the start of the poll that saw it). */
  rowSeenAt: Map<string, number>;
  stop(): void;
}

/** Promised orders of the sale whose workflow has not claimed its reservation yet (ZCARD of sale:{SKU}:pending). */
export async function promisesPending(redis: RedisClient, sku: string): Promise<number> {
  return redis.zcard(saleKeys(sku).pending);
}

/**
 * Samples the sale every `intervalMs` while the round runs: Redis's available units, the promises
 * pending, and which of the orders accepted so far (`accepted()`) have a MySQL row yet.
 */
export function watchSale(
  deps: Pick<CheckDeps, 'stores' | 'redis' | 'inventory'>,
  sku: string,
  accepted: () => readonly string[],
  intervalMs = 250,
): SaleWatch {
  const { inventory } = deps;
  const watch: SaleWatch = { available: [], pending: [], rowSeenAt: new Map(), stop: () => clearInterval(timer) };
  let busy = false;
  const sample = async () => {
    const at = Date.now();
    const unseen = accepted().filter((orderNo) => !watch.rowSeenAt.has(orderNo));
    const [sale, pending, rows] = await Promise.all([
      inventory.getSale(sku).catch(() => null),
      promisesPending(deps.redis, sku).catch(() => null),
      deps.stores.orders.getOrders(unseen).catch(() => new Map<string, OrderRow>()),
    ]);
    if (sale) watch.available.push({ at, value: sale.available });
    if (pending !== null) watch.pending.push({ at, value: pending });
    for (const orderNo of rows.keys()) watch.rowSeenAt.set(orderNo, at);
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void sample().finally(() => {
      busy = false;
    });
  }, intervalMs);
  return watch;
}

/**
 * Seconds from `since` (the thaw) until every one of `orderNos` had been seen as a MySQL row (0 if
 * they all had before), waiting until `timeoutMs` after `since`; null if some never were.
 */
export async function secondsUntilRows(
  watch: SaleWatch,
  orderNos: readonly string[],
  since: number,
  timeoutMs: number,
): Promise<number | null> {
  timeoutMs = Math.max(0, since + timeoutMs - Date.now());
  const seen = await waitFor(() => orderNos.every((orderNo) => watch.rowSeenAt.has(orderNo)), {
    what: 'every accepted order to have its row',
    timeoutMs,
    intervalMs: 250,
    maxIntervalMs: 250,
  }).catch(() => false);
  if (!seen) return null;
  const last = Math.max(since, ...orderNos.map((orderNo) => watch.rowSeenAt.get(orderNo) ?? since));
  return round1((last - since) / 1000);
}

/** The value at `fraction` (0..1) of the sorted waits, nearest rank. */
function percentile(waits: ReadonlyArray<{ seconds: number }>, fraction: number): number {
  const sorted = waits.map((w) => w.seconds).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] ?? 0;
}

/** The value of the last sample taken at or before `at` (else the first one; undefined when there is none). */
function sampledAt(samples: readonly Sample[], at: number): number | undefined {
  let value = samples[0]?.value;
  for (const sample of samples) {
    if (sample.at > at) break;
    value = sample.value;
  }
  return value;
}

export interface SaleFreezeVerdict {
  checks: Record<SaleFreezeCheck, boolean>;
  figures: Record<string, unknown>;
  /** The first violations found, each naming the request or the order. */
  violations: string[];
}

/**
 * The checks of a freeze the sale must go on through (SALE_FREEZE_CHECKS), against what the round's
 * shoppers were answered, what watchSale saw, and the accepted orders' rows once the sale is quiet.
 */
export async function checkSaleThroughFreeze(
  stores: Stores,
  round: {
    orderNos: readonly string[];
    traffic: TrafficResult;
    freeze: { from: number; until: number };
    paymentWindowMs: number;
    watch: SaleWatch;
    promisesPendingAtThaw: number;
    secondsFromThawUntilRows: number | null;
    /** The longest each kind of request may take (deadlinesByKind). */
    deadlines: Record<RequestKind, number>;
  },
): Promise<SaleFreezeVerdict> {
  const { traffic, freeze, paymentWindowMs, watch, deadlines } = round;
  const violations: string[] = [];
  const failed = new Set<SaleFreezeCheck>();
  const violated = (check: SaleFreezeCheck, what: string) => {
    failed.add(check);
    if (violations.length < 40) violations.push(`${check}: ${what}`);
  };
  const during = traffic.requests.filter((request) => request.sentAt >= freeze.from && request.sentAt <= freeze.until);
  const into = (at: number) => `${((at - freeze.from) / 1000).toFixed(1)} s into the freeze`;
  const answerOf = (request: RequestRecord) => `${request.outcome}${request.code ? ` ${request.code}` : ''}`;

  // Checkouts: none turned away while units remained.
  const checkouts = during.filter((request) => request.kind === 'checkout' || request.kind === 'checkout-wait');
  let turnedAway = 0;
  for (const request of checkouts) {
    if (typeof request.outcome === 'number' && request.outcome < 500) continue;
    const available = sampledAt(watch.available, request.sentAt + request.ms);
    if (available === 0) continue;
    turnedAway++;
    violated(
      'noCheckoutTurnedAway',
      `a ${request.kind} sent ${into(request.sentAt)} answered ${answerOf(request)} after ${Math.round(request.ms)} ms with ${available ?? 'an unknown number of'} units available${request.orderNo ? ` (order ${request.orderNo})` : ''}`,
    );
  }

  // Status reads: every one answered.
  const reads = during.filter((request) => request.kind === 'read');
  for (const request of reads)
    if (request.outcome !== 200)
      violated(
        'noStatusRead503',
        `a read of ${request.orderNo ?? 'an order'} sent ${into(request.sentAt)} answered ${answerOf(request)} after ${Math.round(request.ms)} ms`,
      );
  for (const read of traffic.reads)
    if (read.status === 'gave-up' && read.sentAt <= freeze.until)
      violated('noStatusRead503', `the shopper of ${read.orderNo} gave up reading it (${into(read.sentAt)})`);

  // 500: a bug, whenever it came.
  for (const request of traffic.requests)
    if (request.outcome === 500)
      violated(
        'noInternalError',
        `a ${request.kind}${request.orderNo ? ` of ${request.orderNo}` : ''} sent ${((request.sentAt - freeze.until) / 1000).toFixed(1)} s after the thaw answered ${answerOf(request)} after ${Math.round(request.ms)} ms`,
      );

  // The recovery: from the thaw until every 202 was a row (or, if never, the end of the round).
  const recoveredAt =
    round.secondsFromThawUntilRows === null ? Infinity : freeze.until + round.secondsFromThawUntilRows * 1000;
  const recovery = traffic.requests.filter((request) => request.sentAt > freeze.until && request.sentAt <= recoveredAt);
  const isLate = (request: RequestRecord) =>
    typeof request.outcome !== 'number' || request.ms > deadlines[request.kind] + ANSWER_SLACK_MS;
  const byKind = (requests: readonly RequestRecord[], label: (request: RequestRecord) => string) =>
    Object.fromEntries(
      [...new Set(requests.map((r) => r.kind))].map((kind) => [
        kind,
        countBy(requests.filter((r) => r.kind === kind).map(label)),
      ]),
    );

  // Payment windows: whole, from the checkout, and from the thaw for the freeze's orders.
  const rows = await stores.orders.getOrders(round.orderNos);
  const windows = { fromCheckoutMs: [] as number[], fromThawMs: [] as number[], fromRowSeenMs: [] as number[] };
  let madeDuringFreeze = 0;
  /** Per order made during the freeze: seconds from the thaw until the suite saw its row. */
  const rowWaits: Array<{ orderNo: string; seconds: number }> = [];
  for (const row of rows.values()) {
    const created = row.createdAt.getTime();
    const seenAt = watch.rowSeenAt.get(row.orderNo);
    if (created >= freeze.from && created <= freeze.until && seenAt !== undefined)
      rowWaits.push({ orderNo: row.orderNo, seconds: round1((seenAt - freeze.until) / 1000) });
    if (row.status !== 'AWAITING_PAYMENT' && row.status !== 'PAID' && row.status !== 'CANCELLED') continue;
    const deadline = row.paymentDeadline.getTime();
    windows.fromCheckoutMs.push(deadline - created);
    if (deadline - created < paymentWindowMs - WINDOW_SLACK_MS)
      violated(
        'wholePaymentWindow',
        `${row.orderNo} (${row.status}): paymentDeadline ${row.paymentDeadline.toISOString()} is ${deadline - created} ms after its checkout`,
      );
    const seen = watch.rowSeenAt.get(row.orderNo);
    if (seen !== undefined) windows.fromRowSeenMs.push(deadline - seen);
    if (created < freeze.from + FREEZE_GUARD_MS || created > freeze.until) continue;
    madeDuringFreeze++;
    windows.fromThawMs.push(deadline - freeze.until);
    if (deadline - freeze.until < paymentWindowMs - THAW_SLACK_MS)
      violated(
        'wholePaymentWindow',
        `${row.orderNo} (${row.status}), checked out ${into(created)}: paymentDeadline ${row.paymentDeadline.toISOString()} is ${deadline - freeze.until} ms after the thaw, window ${paymentWindowMs} ms`,
      );
  }

  const inFreeze = (samples: readonly Sample[]) =>
    samples.filter((s) => s.at >= freeze.from && s.at <= freeze.until).map((s) => s.value);
  const range = (values: number[]) =>
    values.length === 0 ? null : { min: Math.min(...values), max: Math.max(...values) };
  const seconds = (ms: number[]) =>
    ms.length === 0 ? null : { min: round1(Math.min(...ms) / 1000), max: round1(Math.max(...ms) / 1000) };
  const readsDuring = traffic.reads.filter((read) => read.sentAt >= freeze.from && read.sentAt <= freeze.until);
  return {
    checks: Object.fromEntries(SALE_FREEZE_CHECKS.map((check) => [check, !failed.has(check)])) as Record<
      SaleFreezeCheck,
      boolean
    >,
    violations,
    figures: {
      /** Every attempt sent during the freeze, by kind, by answer (status and error code, timeout or error). */
      answersDuringFreeze: Object.fromEntries(
        [...new Set(during.map((request) => request.kind))].map((kind) => [
          kind,
          countBy(during.filter((r) => r.kind === kind).map(answerOf)),
        ]),
      ),
      checkoutsTurnedAway: turnedAway,
      /** The status reads sent during the freeze, by the order's status and where the API read it. */
      readsDuringFreeze: countBy(
        readsDuring.map((read) =>
          read.status === 200 ? `${read.orderStatus ?? '?'} from ${read.source ?? '?'}` : String(read.status),
        ),
      ),
      availableDuringFreeze: range(inFreeze(watch.available)),
      promisesPending: {
        atThaw: round.promisesPendingAtThaw,
        maxDuringFreeze: range(inFreeze(watch.pending))?.max ?? null,
      },
      /** From the thaw until every accepted order had its MySQL row (null: not within the wait). */
      secondsFromThawUntilEvery202IsARow: round.secondsFromThawUntilRows,
      /** How long after the thaw the orders made during the freeze got their rows (seconds), and the slowest five. */
      rowAfterThawSeconds:
        rowWaits.length === 0
          ? null
          : { p50: percentile(rowWaits, 0.5), p90: percentile(rowWaits, 0.9), max: percentile(rowWaits, 1) },
      slowestRows: [...rowWaits].sort((a, b) => b.seconds - a.seconds).slice(0, 5),
      /**
       * The recovery (requests sent from the thaw until every 202 was a row): answers by kind, and those later than
       * deadline + 1 s.
       */
      answersAfterThaw: byKind(recovery, answerOf),
      lateAfterThaw: byKind(recovery.filter(isLate), (request) => String(request.outcome)),
      slowestAfterThawMs: Object.fromEntries(
        [...new Set(recovery.map((r) => r.kind))].map((kind) => [
          kind,
          Math.round(Math.max(...recovery.filter((r) => r.kind === kind).map((r) => r.ms))),
        ]),
      ),
      ordersMadeDuringFreeze: madeDuringFreeze,
      /**
       * paymentDeadline − the checkout, − the thaw (orders made during the freeze), − when the suite first saw the row
       * (seconds).
       */
      paymentWindowSeconds: {
        window: paymentWindowMs / 1000,
        fromCheckout: seconds(windows.fromCheckoutMs),
        fromThaw: seconds(windows.fromThawMs),
        fromRowSeen: seconds(windows.fromRowSeenMs),
      },
    },
  };
}

/** A payment judged not to be applied: REFUND_REQUIRED, or further on its refund. */
function isRefund(payment: { outcome: string }): boolean {
  return payment.outcome !== 'APPLIED' && payment.outcome !== 'RECEIVED';
}

/**
 * An order's workflow history as steps: each activity (local ones from their markers) with what it answered, each
 * Signal and Update by name. For a violation's figures; never thrown: what cannot be read says so.
 */
async function workflowSteps(temporal: Client, orderNo: string): Promise<string[]> {
  const decode = (data: Uint8Array | null | undefined) =>
    data ? Buffer.from(data).toString('utf8').slice(0, 160) : '';
  try {
    const history = await temporal.workflow.getHandle(orderWorkflowId(orderNo)).fetchHistory();
    const scheduled = new Map<string, string>();
    const steps: string[] = [];
    for (const event of history.events ?? []) {
      const id = String(event.eventId ?? '');
      if (event.activityTaskScheduledEventAttributes)
        scheduled.set(id, event.activityTaskScheduledEventAttributes.activityType?.name ?? '?');
      const done = event.activityTaskCompletedEventAttributes;
      if (done)
        steps.push(
          `${scheduled.get(String(done.scheduledEventId ?? '')) ?? '?'} -> ${decode(done.result?.payloads?.[0]?.data)}`,
        );
      const failed = event.activityTaskFailedEventAttributes;
      if (failed)
        steps.push(`${scheduled.get(String(failed.scheduledEventId ?? '')) ?? '?'} failed ${failed.failure?.message}`);
      const marker = event.markerRecordedEventAttributes;
      if (marker?.details)
        steps.push(
          `local ${Object.entries(marker.details)
            .map(([key, value]) => `${key}=${decode(value.payloads?.[0]?.data)}`)
            .join(' ')}`,
        );
      if (event.workflowExecutionSignaledEventAttributes)
        steps.push(`signal ${event.workflowExecutionSignaledEventAttributes.signalName}`);
      if (event.workflowExecutionUpdateAcceptedEventAttributes)
        steps.push(`update ${event.workflowExecutionUpdateAcceptedEventAttributes.acceptedRequest?.input?.name}`);
    }
    return steps;
  } catch (err) {
    return [`history not read: ${err instanceof Error ? err.message : String(err)}`];
  }
}
