// ReconcileWorkflow (docs/fault-tolerance.md, "The reconciler"); paged: 100k reservations never make one huge activity.
import { log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { PaymentActivities } from '../activities/payments.js';
import type { ReconcileActivities } from '../activities/reconcile.js';
import { providerTaskQueue, type ProviderWithApi } from '../model/order-workflow.js';
import {
  noReservationWork,
  type AdoptionPageResult,
  type ProviderOrderToSettle,
  type ReconcileInput,
  type RefundStartPage,
  type ReconcileReport,
  type SaleReconciliation,
  type SaleSurvey,
  type SurveyPage,
} from '../model/reconcile-workflow.js';

// The next scheduled run starts over anyway: a few attempts, then give up on this one.
const RECONCILE_ACTIVITY_OPTIONS = {
  startToCloseTimeout: '60s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumAttempts: 3 },
} as const;

const {
  surveySales,
  reconcileReservations,
  adoptMissingReservations,
  saleDrift,
  restoreLostKeys,
  decideWaitingPayments,
  startOwedRefunds,
  keepOrderEventDeliveries,
  closeSettledProviderOrder,
} = proxyActivities<ReconcileActivities>(RECONCILE_ACTIVITY_OPTIONS);

const SURVEY_PAGE = 100;
/** A payment recorded before its row is decided as the row is written; one still RECEIVED after this is the run's. */
const WAITING_PAYMENT_AFTER_MS = 10_000;
const PAGE = 200;
/** A payment no order claims waits RESERVATION_GRACE and this: by then a given-up reservation has its FAILED row. */
const NOT_FOUND_SLACK_MS = 60_000;
/** At most this many pages per run (the next run goes on): a backlog never makes one run endless. */
const MAX_PAGES = 50;
/** Old order events deleted per page (EVENTS_RETENTION). */
const PRUNE_PAGE = 1_000;
/** Provider orders of gone workflows closed per run (each a call to the provider): the next run goes on. */
const PROVIDER_SETTLES_PER_RUN = 100;

// Pinned (the worker's default): a run lasts minutes, so a rollout keeps the old build no longer than that.
export async function ReconcileWorkflow(input: ReconcileInput): Promise<ReconcileReport> {
  const pageSize = input.pageSize ?? 500;
  // Payments left waiting first: one an order's row owes back now has its refund started below in the same run.
  let paymentsDecided = 0;
  for (let pages = 0; pages < MAX_PAGES; pages++) {
    const page = await decideWaitingPayments({
      olderThanMs: WAITING_PAYMENT_AFTER_MS,
      notFoundAfterMs: input.reservationGraceMs + NOT_FOUND_SLACK_MS,
      limit: PAGE,
    });
    paymentsDecided += page.decided + page.orderNotFound;
    if (page.read < PAGE || page.decided + page.orderNotFound === 0) break;
  }
  let refundsStarted = 0;
  for (let pages = 0, after: string | null = ''; pages < MAX_PAGES && after !== null; pages++) {
    const page: RefundStartPage = await startOwedRefunds({ afterEventId: after, limit: PAGE, readGauges: pages === 0 });
    refundsStarted += page.started;
    after = page.failed > 0 ? null : page.next;
  }
  let eventsPruned = 0;
  let endpoints = 0;
  for (let pages = 0; pages < MAX_PAGES; pages++) {
    const kept = await keepOrderEventDeliveries({ prunePage: PRUNE_PAGE });
    endpoints = kept.endpoints;
    eventsPruned += kept.pruned;
    if (kept.pruned < PRUNE_PAGE) break;
  }
  const sales: SaleReconciliation[] = [];
  const toSettleAtProvider: ProviderOrderToSettle[] = [];
  let salesSurveyed = 0;
  let salesOnlyInRedis: string[] = [];
  for (let after: string | null = ''; after !== null;) {
    const page: SurveyPage = await surveySales({ afterSku: after, limit: SURVEY_PAGE, skus: input.skus });
    salesSurveyed += page.surveys.length;
    if (page.onlyInRedis) salesOnlyInRedis = page.onlyInRedis;
    for (const survey of page.surveys)
      if (survey.needsScan) sales.push(await reconcileSale(survey, input, pageSize, toSettleAtProvider));
    after = page.next;
  }
  const settledAtProvider = await settleAtProviders(toSettleAtProvider.slice(0, PROVIDER_SETTLES_PER_RUN));
  const disagreeing = sales.filter((sale) => !sale.drift.agrees);
  const drifting = disagreeing.map((sale) => sale.sku);
  if (drifting.length > 0)
    log.warn('Redis and MySQL disagree after reconciliation', { drift: disagreeing.map((sale) => sale.drift) });
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
    settledAtProvider,
    paymentsDecided,
    refundsStarted,
    endpoints,
    eventsPruned,
  };
}

/** Gone workflows' provider orders: intents closed on the provider's queue, then the row closes (unless processing). */
async function settleAtProviders(orders: readonly ProviderOrderToSettle[]): Promise<number> {
  let settled = 0;
  for (const order of orders) {
    const { closePayment } = proxyActivities<PaymentActivities>({
      ...RECONCILE_ACTIVITY_OPTIONS,
      taskQueue: providerTaskQueue(workflowInfo().taskQueue),
    });
    const closed = await closePayment({
      provider: order.provider as ProviderWithApi,
      orderNo: order.orderNo,
      amountCents: order.amountCents,
      paymentDeadline: order.paymentDeadline,
    });
    if (closed.state === 'PROCESSING') continue;
    if ((await closeSettledProviderOrder({ orderNo: order.orderNo })) === 'CLOSED') settled++;
  }
  return settled;
}

async function reconcileSale(
  { sku, keysMissing }: SaleSurvey,
  input: ReconcileInput,
  pageSize: number,
  toSettleAtProvider: ProviderOrderToSettle[],
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
    for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += page[key];
    toSettleAtProvider.push(...page.toSettleAtProvider);
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
