/**
 * ReconcileWorkflow: run by a Schedule every RECONCILE_INTERVAL, repairs what a crash left behind where that is
 * provably safe, starts refunds due, and reports Redis/MySQL drift per sale (docs/fault-tolerance.md, "The
 * reconciler"). Work is paged, so 100k reservations never make one giant activity.
 */
import { log, proxyActivities } from '@temporalio/workflow';
import type { ReconcileActivities } from '../activities/reconcile.js';
import {
  noReservationWork,
  type AdoptionPageResult,
  type ReconcileInput,
  type ReconcileReport,
  type SaleReconciliation,
  type SaleSurvey,
  type SurveyPage,
} from '../reconcile/definitions.js';

const {
  surveySales,
  reconcileReservations,
  adoptMissingReservations,
  saleDrift,
  restoreLostKeys,
  decideWaitingPayments,
  signalAppliedPayments,
  startDueRefunds,
  keepOrderEventDeliveries,
} = proxyActivities<ReconcileActivities>({
  startToCloseTimeout: '60s',
  // The next scheduled run starts over anyway: a few attempts, then give up on this one.
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumAttempts: 3 },
});

const SURVEY_PAGE = 100;
/** A payment's own signal is sent as its webhook commits; one still marked after this is signalled by the run. */
const SIGNAL_AFTER_MS = 10_000;
const SIGNAL_PAGE = 200;
/** A payment no order claims waits RESERVATION_GRACE and this: by then a given-up reservation has its FAILED row. */
const NOT_FOUND_SLACK_MS = 60_000;
/** At most this many pages per run (the next run goes on): a backlog never makes one run endless. */
const SIGNAL_PAGES = 50;
/** Old order events deleted per page (EVENTS_RETENTION). */
const PRUNE_PAGE = 1_000;

// Pinned (the worker's default): a run lasts minutes, so a rollout keeps the old build no longer than that.
export async function ReconcileWorkflow(input: ReconcileInput): Promise<ReconcileReport> {
  const pageSize = input.pageSize ?? 500;
  // Payments left waiting first: one an order's row applies now is signalled below in the same run.
  let paymentsDecided = 0;
  for (let pages = 0; pages < SIGNAL_PAGES; pages++) {
    const page = await decideWaitingPayments({
      olderThanMs: SIGNAL_AFTER_MS,
      notFoundAfterMs: input.reservationGraceMs + NOT_FOUND_SLACK_MS,
      limit: SIGNAL_PAGE,
    });
    paymentsDecided += page.decided + page.orderNotFound;
    if (page.read < SIGNAL_PAGE || page.decided + page.orderNotFound === 0) break;
  }
  let paymentsSignalled = 0;
  for (let pages = 0; pages < SIGNAL_PAGES; pages++) {
    const page = await signalAppliedPayments({ olderThanMs: SIGNAL_AFTER_MS, limit: SIGNAL_PAGE });
    paymentsSignalled += page.signalled;
    if (page.read < SIGNAL_PAGE || page.failed > 0) break;
  }
  let refundsStarted = 0;
  for (let pages = 0; pages < SIGNAL_PAGES; pages++) {
    const page = await startDueRefunds({ limit: SIGNAL_PAGE, readGauges: pages === 0 });
    refundsStarted += page.started;
    if (page.read < SIGNAL_PAGE || page.failed > 0) break;
  }
  let eventsPruned = 0;
  let endpoints = 0;
  for (let pages = 0; pages < SIGNAL_PAGES; pages++) {
    const kept = await keepOrderEventDeliveries({ prunePage: PRUNE_PAGE });
    endpoints = kept.endpoints;
    eventsPruned += kept.pruned;
    if (kept.pruned < PRUNE_PAGE) break;
  }
  const sales: SaleReconciliation[] = [];
  let salesSurveyed = 0;
  let salesOnlyInRedis: string[] = [];
  for (let after: string | null = ''; after !== null;) {
    const page: SurveyPage = await surveySales({
      afterSku: after,
      limit: SURVEY_PAGE,
      ...(input.skus ? { skus: input.skus } : {}),
    });
    salesSurveyed += page.surveys.length;
    if (page.onlyInRedis) salesOnlyInRedis = page.onlyInRedis;
    for (const survey of page.surveys) if (survey.needsScan) sales.push(await reconcileSale(survey, input, pageSize));
    after = page.next;
  }
  const drifting = sales.filter((sale) => !sale.drift.agrees).map((sale) => sale.sku);
  if (drifting.length > 0)
    log.warn('Redis and MySQL disagree after reconciliation', {
      drift: sales.filter((sale) => !sale.drift.agrees).map((sale) => sale.drift),
    });
  // Not repaired here (MySQL's row needs the sale's name): every order of such a sale fails.
  if (salesOnlyInRedis.length > 0)
    log.warn('sales defined in Redis have no MySQL row; POST /api/sales with the same definition completes them', {
      salesOnlyInRedis,
    });
  return {
    salesSurveyed,
    sales,
    drifting,
    salesOnlyInRedis,
    paymentsSignalled,
    paymentsDecided,
    refundsStarted,
    endpoints,
    eventsPruned,
  };
}

async function reconcileSale(
  { sku, keysMissing }: SaleSurvey,
  input: ReconcileInput,
  pageSize: number,
): Promise<SaleReconciliation> {
  const { reservationGraceMs, promiseMaxAgeMs } = input;
  const totals = noReservationWork();
  let cursor = '0';
  do {
    const page = await reconcileReservations({
      sku,
      cursor,
      reservationGraceMs,
      count: pageSize,
      ...(promiseMaxAgeMs ? { promiseMaxAgeMs } : {}),
    });
    // An activity of an older worker may not count started promises yet.
    for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += page[key] ?? 0;
    cursor = page.cursor;
  } while (cursor !== '0');
  let drift = await saleDrift({ sku, pendingUnits: totals.pendingUnits });
  let adopted = 0;
  let notAdopted = 0;
  // Redis holds fewer units than MySQL only if Redis lost writes: take the missing orders back.
  const redisHeld = drift.redis ? drift.redis.reserved + drift.redis.sold : 0;
  if (drift.redis && redisHeld < drift.mysql.awaitingPayment + drift.mysql.paid) {
    for (let after: string | null = ''; after !== null;) {
      const page: AdoptionPageResult = await adoptMissingReservations({ sku, afterOrderNo: after, limit: pageSize });
      adopted += page.adopted;
      notAdopted += page.notAdopted;
      after = page.next;
    }
    drift = await saleDrift({ sku, pendingUnits: totals.pendingUnits });
  }
  let keysRestored = 0;
  if (keysMissing > 0)
    for (let after: string | null = ''; after !== null;) {
      const page: { next: string | null; restored: number } = await restoreLostKeys({
        sku,
        afterOrderNo: after,
        limit: pageSize,
      });
      keysRestored += page.restored;
      after = page.next;
    }
  return { sku, ...totals, adopted, notAdopted, keysRestored, drift };
}
