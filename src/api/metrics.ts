/** Prometheus labels from small fixed sets (never an order or a shopper); children cached: a Map lookup, not a hash. */
import { performance } from 'node:perf_hooks';
import type { CheckoutObserver } from '../order/checkout.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  DEPENDENCY_NAMES,
  type BreakerState,
  type DependencyName,
  type DependencyObserver,
} from '../infra/dependency-guard.js';
import type { ReserveResult } from '../redis/inventory.js';
import { STATUS_READ_SOURCES, type StatusReadObserver, type StatusReadSource } from '../order/status-reads.js';
import type { ErrorCode } from '../infra/error-codes.js';
import type { LineSnapshot } from '../redis/line.js';
import type { LineObserver, PlaceState } from '../line/line-service.js';
import type { StripeWebhookOutcome } from '../model/order-workflow.js';
import type { PaymentSignalObserver, PaymentSignalOutcome } from '../order/workflow-client.js';

/** The route label of a request no router matched. */
export const UNMATCHED_ROUTE = 'unmatched';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

// Seconds. HTTP answers range from sub-millisecond (sold-out flag) to seconds (a slow dependency).
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REDIS_BUCKETS = [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const WORKFLOW_START_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// A payment Signal is one call to Temporal (no worker in it), bounded by its 5 s deadline.
const PAYMENT_SIGNAL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const ETA_ERROR_BUCKETS = [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
const PAYMENT_SIGNAL_OUTCOMES: readonly PaymentSignalOutcome[] = ['signalled', 'no_workflow', 'timeout', 'error'];

const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

const LINE_FIGURES = {
  length: 'Places taken in the line (before the start: in the pre-queue)',
  served: 'Every position up to this one has been admitted',
  admitted: 'Admissions given',
  consumed: 'Admissions spent by a checkout',
  given_back: 'Admissions that expired unspent and gave their slot back',
  admissions_per_second: 'The admission rate set',
};

const HELP = {
  flash_line_joins_total:
    'Joins of a waiting line by outcome: JOINED (a new place), ALREADY (the same place again), or why not',
  flash_line_reads_total: 'Places read (and joins answered) by the state told: WAITING, ADMITTED, SOLD_OUT, …',
  flash_line_sold_out_after_seconds: "Seconds from the sale's start to the first admission tick that saw it sold out",
  flash_line_eta_error_seconds:
    'How far off the first wait told to a place was from when it was admitted (absolute), by SKU',
  flash_payload_encryptions:
    'Payloads and texts encrypted, by key id; summed over every process, rotate a key long before 2^32 (docs/operations.md)',
  http_requests_total: 'HTTP requests answered, by method, route template and status',
  http_request_duration_seconds:
    'Time from the request reaching the app to its answer, by method, route template and status',
  flash_checkout_outcomes_total:
    'POST /api/checkout answers by code: ACCEPTED or the error code (SOLD_OUT, PURCHASE_LIMIT_EXCEEDED, …)',
  flash_redis_reserve_duration_seconds:
    'Latency of the reserve.lua call in Redis, by its outcome (ERROR: Redis did not answer)',
  flash_workflow_start_duration_seconds:
    "Latency of a waiting checkout's Update-with-Start (Prefer: wait=N; start and wait together), by result (ok, error)",
  flash_payment_signal_seconds:
    "A payment Signal to its order's workflow after the order's row applied the payment, by outcome: signalled, no_workflow (none running: its close read the row), timeout (no answer by its deadline), error",
  flash_sold_out_flag_hits_total:
    'Checkouts answered SOLD_OUT from the per-process sold-out flag, without asking Redis',
  flash_webhook_outcomes_total:
    'Payment webhook answers (generic and Stripe): APPLIED, DUPLICATE, REFUND_REQUIRED, RECEIVED (recorded before its order row, decided as it is written), RECORDED and IGNORED (Stripe events other than payments), or the error code (INVALID_SIGNATURE, UNAVAILABLE, …)',
  flash_money_taken_back_total:
    'Refunds made at the provider without us and disputes, recorded against a paid order (kind: REFUND, DISPUTE); each change of one counts',
  flash_order_status_reads_total:
    "Order status reads (GET /api/orders/:orderNo and its long-poll) by source: cache, coalesced (shared another read's query), else the answer's own source: workflow (the running order, or a closed one's result), database (MySQL's row; none found), stores (MySQL or Redis while the workflow did not answer)",
  flash_order_status_waiters: 'Long-polls (GET /api/orders/:orderNo?waitForChange=) this process holds now',
  flash_dependency_breaker_state:
    "Each dependency's circuit breaker: 0 closed, 1 half-open (one probe call under way), 2 open (requests that need it fail fast)",
  flash_dependency_breaker_transitions_total: 'Circuit breaker state changes by dependency and the state entered',
  flash_dependency_deadline_hits_total:
    'Dependency calls of a request that ran past their deadline (answered 503 UNAVAILABLE)',
  flash_dependency_failures_total:
    'Dependency calls of a request that failed as an unwell dependency fails (refused connection, error status; answered 503 UNAVAILABLE)',
  flash_dependency_breaker_refusals_total:
    'Requests failed fast (503 UNAVAILABLE, no call made) because the dependency they need had an open breaker',
  flash_requests_shed_total:
    'Requests answered 503 at once, before any dependency, because MAX_IN_FLIGHT_REQUESTS were in flight',
  flash_requests_in_flight:
    'Requests this process is working on now (those load shedding counts; long-polls and probes are not)',
};
type MetricName = keyof typeof HELP;

export class ApiMetrics
  implements StatusReadObserver, DependencyObserver, CheckoutObserver, LineObserver, PaymentSignalObserver
{
  readonly registry = new Registry();
  private readonly lineJoins = this.counter('flash_line_joins_total', ['outcome']);
  private readonly lineReads = this.counter('flash_line_reads_total', ['state']);
  private readonly lineFigures = Object.fromEntries(
    Object.entries(LINE_FIGURES).map(([name, help]) => [
      name,
      new Gauge({ name: `flash_line_${name}`, help, labelNames: ['sku'] as const, registers: [this.registry] }),
    ]),
  ) as Record<keyof typeof LINE_FIGURES, Gauge<'sku'>>;
  private readonly lineSoldOutAfter = this.gauge('flash_line_sold_out_after_seconds', ['sku']);
  private readonly lineEtaError = this.histogram('flash_line_eta_error_seconds', ['sku'], ETA_ERROR_BUCKETS);
  private readonly payloadEncryptions = new Counter({
    ...this.named('flash_payload_encryptions'),
    labelNames: ['key'] as const,
    collect: () => {
      for (const [key, count] of this.encryptionsAdded()) this.payloadEncryptions.inc({ key }, count);
    },
  });
  private encryptionsAdded: () => Map<string, number> = () => new Map();
  private readonly httpRequests = this.counter('http_requests_total', ['method', 'route', 'status']);
  private readonly httpDuration = this.histogram(
    'http_request_duration_seconds',
    ['method', 'route', 'status'],
    HTTP_BUCKETS,
  );
  private readonly checkoutOutcomes = this.counter('flash_checkout_outcomes_total', ['code']);
  private readonly reserveDuration = this.histogram('flash_redis_reserve_duration_seconds', ['outcome'], REDIS_BUCKETS);
  private readonly workflowStartDuration = this.histogram(
    'flash_workflow_start_duration_seconds',
    ['result'],
    WORKFLOW_START_BUCKETS,
  );
  private readonly paymentSignalDuration = this.histogram(
    'flash_payment_signal_seconds',
    ['outcome'],
    PAYMENT_SIGNAL_BUCKETS,
  );
  private readonly soldOutFlagHits = this.counter('flash_sold_out_flag_hits_total');
  private readonly webhookOutcomes = this.counter('flash_webhook_outcomes_total', ['outcome']);
  private readonly takenBack = this.counter('flash_money_taken_back_total', ['kind']);

  private readonly statusReads = this.counter('flash_order_status_reads_total', ['source']);
  private readonly statusWaitersGauge = this.gauge('flash_order_status_waiters');
  private readonly statusReadChildren = new Map<StatusReadSource, Counter.Internal>(
    // Exported at 0 from the start, so a rate over it is defined before the first read.
    STATUS_READ_SOURCES.map((source) => {
      const child = this.statusReads.labels(source);
      child.inc(0);
      return [source, child];
    }),
  );

  private readonly breakerState = this.gauge('flash_dependency_breaker_state', ['dependency']);
  private readonly breakerTransitions = this.counter('flash_dependency_breaker_transitions_total', [
    'dependency',
    'state',
  ]);
  private readonly deadlineHits = this.counter('flash_dependency_deadline_hits_total', ['dependency']);
  private readonly dependencyFailures = this.counter('flash_dependency_failures_total', ['dependency']);
  private readonly breakerRefusals = this.counter('flash_dependency_breaker_refusals_total', ['dependency']);
  private readonly shedRequests = this.counter('flash_requests_shed_total');
  private inFlight = 0;
  private readonly inFlightGauge = new Gauge({
    ...this.named('flash_requests_in_flight'),
    collect: () => {
      this.inFlightGauge.set(this.inFlight);
    },
  });

  private readonly children = new Map<string, unknown>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    // Every dependency exported from the start, so a dashboard sees closed breakers and zero counts.
    for (const dependency of DEPENDENCY_NAMES) {
      this.breakerState.labels(dependency).set(0);
      this.deadlineHits.labels(dependency).inc(0);
      this.dependencyFailures.labels(dependency).inc(0);
      this.breakerRefusals.labels(dependency).inc(0);
    }
    // Every outcome at 0 from the start, so the dashboard reads 0 rather than nothing.
    for (const outcome of PAYMENT_SIGNAL_OUTCOMES) this.paymentSignalDuration.zero({ outcome });
  }

  private named(name: MetricName) {
    return { name, help: HELP[name], registers: [this.registry] };
  }

  private counter<L extends string = never>(name: MetricName, labelNames: readonly L[] = []) {
    return new Counter<L>({ ...this.named(name), labelNames });
  }

  private gauge<L extends string = never>(name: MetricName, labelNames: readonly L[] = []) {
    return new Gauge<L>({ ...this.named(name), labelNames });
  }

  private histogram<L extends string>(name: MetricName, labelNames: readonly L[], buckets: number[]) {
    return new Histogram<L>({ ...this.named(name), labelNames, buckets });
  }

  breakerStateChanged(dependency: DependencyName, state: BreakerState): void {
    this.breakerState.labels(dependency).set(BREAKER_STATE_VALUE[state]);
    this.breakerTransitions.labels(dependency, state).inc();
  }

  deadlineHit(dependency: DependencyName): void {
    this.deadlineHits.labels(dependency).inc();
  }

  failed(dependency: DependencyName): void {
    this.dependencyFailures.labels(dependency).inc();
  }

  refusedByBreaker(dependency: DependencyName): void {
    this.breakerRefusals.labels(dependency).inc();
  }

  requestShed(): void {
    this.shedRequests.inc();
  }

  /** Requests counted by load shedding now (read at scrape time). */
  setInFlight(count: number): void {
    this.inFlight = count;
  }

  /** One answered request; `route` is the router's template or UNMATCHED_ROUTE. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const methodLabel = KNOWN_METHODS.has(method) ? method : 'OTHER';
    const child = this.child(`http ${methodLabel} ${status} ${route}`, () => {
      const labels = { method: methodLabel, route, status: String(status) };
      return { requests: this.httpRequests.labels(labels), duration: this.httpDuration.labels(labels) };
    });
    child.requests.inc();
    child.duration.observe(seconds);
  }

  checkoutOutcome(code: 'ACCEPTED' | ErrorCode): void {
    this.child(`checkout ${code}`, () => this.checkoutOutcomes.labels(code)).inc();
  }

  /** `startedAt` from `now()`; call once the script answered or failed. */
  reserveDone(outcome: ReserveResult['outcome'] | 'ERROR', startedAt: number): void {
    this.child(`reserve ${outcome}`, () => this.reserveDuration.labels(outcome)).observe(secondsSince(startedAt));
  }

  /** The label child cached under `key` (made by `make` the first time): a Map lookup instead of a label hash. */
  private child<C>(key: string, make: () => C): C {
    let child = this.children.get(key) as C | undefined;
    if (!child) {
      child = make();
      this.children.set(key, child);
    }
    return child;
  }

  paymentSignalDone(outcome: PaymentSignalOutcome, seconds: number): void {
    this.paymentSignalDuration.labels(outcome).observe(seconds);
  }

  workflowStartDone(ok: boolean, startedAt: number): void {
    this.workflowStartDuration.labels(ok ? 'ok' : 'error').observe(secondsSince(startedAt));
  }

  joined(outcome: string): void {
    this.lineJoins.inc({ outcome });
  }

  read(state: PlaceState): void {
    this.lineReads.inc({ state });
  }

  line(sku: string, snapshot: LineSnapshot, soldOutAfterSeconds: number | null): void {
    const f = this.lineFigures;
    f.length.set({ sku }, snapshot.length);
    f.served.set({ sku }, snapshot.served);
    f.admitted.set({ sku }, snapshot.admitted);
    f.consumed.set({ sku }, snapshot.consumed);
    f.given_back.set({ sku }, snapshot.givenBack);
    f.admissions_per_second.set({ sku }, snapshot.admissionsPerSecond);
    if (soldOutAfterSeconds !== null) this.lineSoldOutAfter.set({ sku }, soldOutAfterSeconds);
  }

  etaError(sku: string, seconds: number): void {
    this.lineEtaError.observe({ sku }, seconds);
  }

  soldOutFlagHit(): void {
    this.soldOutFlagHits.inc();
  }

  moneyTakenBack(kind: 'REFUND' | 'DISPUTE'): void {
    this.takenBack.labels(kind).inc();
  }

  webhookOutcome(outcome: StripeWebhookOutcome | ErrorCode): void {
    this.webhookOutcomes.labels(outcome).inc();
  }

  statusRead(source: StatusReadSource): void {
    this.statusReadChildren.get(source)?.inc();
  }

  statusWaiters(count: number): void {
    this.statusWaitersGauge.set(count);
  }

  /** A monotonic clock in milliseconds, for the `startedAt` of the timers above. */
  now(): number {
    return performance.now();
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** What the payload codec encrypted per key since the last reading (encryptionsSince); read on each scrape. */
  countEncryptions(added: () => Map<string, number>): void {
    this.encryptionsAdded = added;
  }
}

function secondsSince(startedAt: number): number {
  return (performance.now() - startedAt) / 1000;
}
