/** The reconciler's contract: workflow type, schedule id, input and report (types and constants only). */
export const RECONCILE_WORKFLOW_TYPE = 'ReconcileWorkflow';
/** One Schedule per task queue: deployments sharing a namespace (staging beside production) reconcile their own. */
export function reconcileScheduleId(taskQueue: string): string {
  return `flash-checkout-reconcile-${taskQueue}`;
}

export interface ReconcileInput {
  /** Reservations younger than this are left alone: their workflow is on its way. */
  reservationGraceMs: number;
  /** Reservation records read per activity (one HSCAN page): bounds each activity's work. */
  pageSize?: number;
  /** Reconcile only these sales (an operator's targeted run); all sales when omitted. */
  skus?: string[];
  /** A promise not started this long is given up (PromiseExpired, a FAILED row); default PROMISE_MAX_AGE_MS. */
  promiseMaxAgeMs?: number;
}

/** How long a promised order may wait for its start before the reconciler gives it up. */
export const PROMISE_MAX_AGE_MS = 15 * 60_000;

/** One page of the survey; the run's first page also names the sales Redis has and MySQL lacks. */
export interface SurveyPage {
  surveys: SaleSurvey[];
  next: string | null;
  onlyInRedis?: string[];
}

export interface RedisCountersView {
  stock: number;
  available: number;
  reserved: number;
  sold: number;
}

/** One sale's counters in Redis and MySQL, as the reconciler found them. */
export interface SaleSurvey {
  sku: string;
  redis: RedisCountersView | null;
  mysql: { stock: number; available: number; awaitingPayment: number; paid: number };
  /** Live reservations or disagreement: the sale's reservations are scanned. */
  needsScan: boolean;
  /** Keyed MySQL orders beyond the keys Redis maps (lost with Redis's writes): each missing key is set again. */
  keysMissing: number;
}

export interface ReservationPageResult {
  /** The next HSCAN cursor; '0' when the scan is complete. */
  cursor: string;
  scanned: number;
  /** Reservations still holding units (reserved or claimed). */
  live: number;
  /** Units of live reservations whose order has no MySQL row yet (PENDING orders, orphans). */
  pendingUnits: number;
  /** Promised orders older than the grace period whose workflow had not started: started now. */
  startedPromises: number;
  /** Unclaimed reservations that cannot start (no recorded input, or past the promise's maximum age): released. */
  releasedOrphans: number;
  /** Reservations whose workflow closed without persisting the order (terminated): released. */
  releasedAbandoned: number;
  /** Reservations left behind by a final MySQL order (Redis lost the order's last write): aligned. */
  alignedReleased: number;
  alignedConfirmed: number;
}

export interface AdoptionPageResult {
  /** The last order number of this page; null when MySQL has no more. */
  next: string | null;
  adopted: number;
  /** Orders MySQL holds units for that Redis lacks and cannot take back yet (no units available). */
  notAdopted: number;
  /** Of those adopted, orders cancelled or failed meanwhile (their row no longer holds units): given back. */
  undone: number;
}

export interface SaleDrift {
  sku: string;
  redis: RedisCountersView | null;
  mysql: { available: number; awaitingPayment: number; paid: number };
  pendingUnits: number;
  /** Redis reserved − (MySQL awaiting payment + pending units): 0 when the stores agree. */
  reserved: number;
  /** Redis sold − MySQL paid. */
  sold: number;
  /** Redis available − (MySQL available − pending units). */
  available: number;
  agrees: boolean;
}

/** A page's counts, all zero: where a page's result and a sale's totals start. */
export function noReservationWork(): Omit<ReservationPageResult, 'cursor'> {
  return {
    scanned: 0,
    live: 0,
    pendingUnits: 0,
    startedPromises: 0,
    releasedOrphans: 0,
    releasedAbandoned: 0,
    alignedReleased: 0,
    alignedConfirmed: 0,
  };
}

export interface SaleReconciliation extends Omit<ReservationPageResult, 'cursor'> {
  sku: string;
  adopted: number;
  notAdopted: number;
  /** Checkout keys Redis had lost, set again to name their orders. */
  keysRestored: number;
  drift: SaleDrift;
}

export interface ReconcileReport {
  salesSurveyed: number;
  sales: SaleReconciliation[];
  /** Sales whose stores still disagree after the repairs (logged). */
  drifting: string[];
  /** Sales defined in Redis with no MySQL row (a create whose commit was lost; logged): POST it again. */
  salesOnlyInRedis: string[];
  /** Payments applied as they were recorded whose workflow got its paymentApplied Signal from this run. */
  paymentsSignalled: number;
  /** Payments left RECEIVED that this run decided: by their order's row, or refunded ORDER_NOT_FOUND. */
  paymentsDecided: number;
  /** Refunds owed through a provider's API whose RefundWorkflow this run started (asked, or read again). */
  refundsStarted: number;
  /** Enabled webhook endpoints, each with its delivery workflow running after this run. */
  endpoints: number;
  /** Order events older than EVENTS_RETENTION deleted from the feed by this run. */
  eventsPruned: number;
}

/** A page of refunds due (startDueRefunds); a failed start is due again at once. */
export interface RefundStartPage {
  read: number;
  started: number;
  failed: number;
}

/** A page of payments left waiting (decideWaitingPayments). */
export interface WaitingPaymentPage {
  read: number;
  decided: number;
  orderNotFound: number;
}

/** A page of payments to signal (signalAppliedPayments); `signalled` counts those found closed too. */
export interface PaymentSignalPage {
  read: number;
  signalled: number;
  failed: number;
}
