/** The reconciler's contract: workflow type, schedule id, input and report (types and constants only). */
/** One Schedule per task queue: deployments sharing a namespace (staging beside production) reconcile their own. */
export function reconcileScheduleId(taskQueue: string): string {
  return `flash-checkout-reconcile-${taskQueue}`;
}

export interface ReconcileInput {
  /** Left to an order's workflow: a reservation younger than this, a sold unit confirmed less than this ago. */
  reservationGraceMs: number;
  /** Reservation records read per activity (one HSCAN page): bounds each activity's work. */
  pageSize?: number;
  /** Reconcile only these sales (an operator's targeted run); all sales when omitted. */
  skus?: string[];
  /** A pending start left this long is given up (PromiseExpired, a FAILED row); default PROMISE_MAX_AGE_MS. */
  promiseMaxAgeMs?: number;
}

/** How long a pending start may wait (for the worker's PromiseStarter) before the reconciler gives it up. */
export const PROMISE_MAX_AGE_MS = 15 * 60_000;

/** One page of the survey; the run's first page also names the sales Redis has and MySQL lacks. */
export interface SurveyPage {
  surveys: SaleSurvey[];
  next: string | null;
  onlyInRedis?: string[];
}

/** A sale's counters in Redis (stock = available + reserved + sold). */
export type RedisCounters = Record<'stock' | 'available' | 'reserved' | 'sold', number>;

/** One sale's counters in Redis and MySQL, as the reconciler found them. */
export interface SaleSurvey {
  sku: string;
  redis: RedisCounters | null;
  mysql: { stock: number; available: number; awaitingPayment: number; paid: number };
  /** Live reservations or disagreement: the sale's reservations are scanned. */
  needsScan: boolean;
  /** Keyed MySQL orders beyond the keys Redis maps (lost with Redis's writes): each missing key is set again. */
  keysMissing: number;
}

export interface ReservationPageResult extends ReservationWork {
  /** The next HSCAN cursor; '0' when the scan is complete. */
  cursor: string;
  /** As closedForGoneWorkflows, paid through a provider: its intents are closed first (by the reconciling workflow). */
  toSettleAtProvider: ProviderOrderToSettle[];
}

/** An order awaiting payment through a provider whose workflow is gone: its intents to close before its row. */
export interface ProviderOrderToSettle {
  orderNo: string;
  sku: string;
  provider: string;
  amountCents: number;
  paymentDeadline: string;
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
  redis: RedisCounters | null;
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

/** A page's counts, all zero: where a page's result and a sale's totals (what they add up) start. */
export function noReservationWork() {
  return {
    scanned: 0,
    /** Reservations still holding units (reserved or claimed). */
    live: 0,
    /** Units of live reservations whose order has no MySQL row yet (PENDING orders, orphans). */
    pendingUnits: 0,
    /** Unclaimed reservations that cannot start (no recorded input, or a pending start too old): given up. */
    releasedOrphans: 0,
    /** Reservations whose workflow closed without persisting the order (terminated): failed, released. */
    releasedAbandoned: 0,
    /** Reservations of a final MySQL order (CANCELLED or FAILED) its workflow did not carry out: released. */
    alignedReleased: 0,
    /** Reservations of a sold order its workflow did not carry out: confirmed (its workflow signalled again). */
    alignedConfirmed: 0,
    /** Orders awaiting payment past their deadline whose workflow is gone (terminated, reset): closed here. */
    closedForGoneWorkflows: 0,
  };
}
export type ReservationWork = ReturnType<typeof noReservationWork>;

export interface SaleReconciliation extends ReservationWork {
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
  /** Provider orders whose workflow is gone, closed at their provider and then by their row in this run. */
  settledAtProvider: number;
  /** Payments left RECEIVED that this run decided: by their order's row, or refunded ORDER_NOT_FOUND. */
  paymentsDecided: number;
  /** Payments owed back through a provider's API whose RefundWorkflow this run started or found running. */
  refundsStarted: number;
  /** Enabled webhook endpoints, each with its delivery workflow running after this run. */
  endpoints: number;
  /** Order events older than EVENTS_RETENTION deleted from the feed by this run. */
  eventsPruned: number;
}

/** A page of payments owed back (startOwedRefunds): each refund's workflow started, or found running. */
export interface RefundStartPage {
  read: number;
  started: number;
  failed: number;
  /** The last event id of the page: the next page reads after it. */
  next: string | null;
}

/** A page of payments left waiting (decideWaitingPayments). */
export interface WaitingPaymentPage {
  read: number;
  decided: number;
  orderNotFound: number;
}
