/** A worker process's order pipeline: the order and provider queues' Workers, and the owner of promised starts. */
import { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import proto from '@temporalio/proto';
import { type NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type { RedisClient } from '../infra/redis.js';
import type { AppConfig } from '../config/index.js';
import { createActivities, type Activities } from '../activities/order.js';
import { previousBuildActivities, type PreviousBuildActivities } from '../activities/previous-build.js';
import {
  createReconcileActivities,
  type DeliveryGauges,
  type ReconcileActivities,
  type RefundGauges,
} from '../activities/reconcile.js';
import { OrderChangeNotifier } from '../order/status-reads.js';
import { OrderWorkflowClient } from '../order/workflow-client.js';
import type { Stores } from '../db/stores.js';
import { PromiseQueue } from '../inventory/promise-queue.js';
import { RedisInventory } from '../inventory/redis-inventory.js';
import { boundBy, Deadline } from '../infra/dependency-guard.js';
import { PaymentReceiver, PaymentSignals } from '../payments/receiver.js';
import type { Logger } from '../infra/logger.js';
import { subscribeChannels } from '../infra/redis-subscription.js';
import { temporalClientInterceptors, tracingActivityInterceptors, workflowSpanSinks } from '../infra/tracing.js';
import { payloadCodecOf, temporalDataConverter } from '../infra/data-converter.js';
import { PromiseStarter, type PromiseStarterObserver, type PromiseStarterOptions } from '../order/starter.js';
import { StartPacing } from '../order/start-pacing.js';
import { WORKFLOW_TRACING_MODULE, WORKFLOWS_PATH } from './bundle.js';
import { deploymentOptions, workerVersionOf } from './versioning.js';
import type { WorkerVersion } from '../infra/worker-deployments.js';
import { activityMetricsInterceptor, temporalClockInterceptor } from './telemetry.js';
import type { ClockWatch } from '../infra/clocks.js';
import { encryptionsSince, textSealerOf, type AesGcmPayloadCodec } from '../infra/payload-codec.js';
import { providerTaskQueue } from '../model/order-workflow.js';
import { createRefundActivities, type RefundActivities, type RefundObserver } from '../activities/refunds.js';
import { createWebhookActivities, type DeliveryObserver, type WebhookActivities } from '../activities/webhooks.js';
import { EndpointSecretBox } from '../events/endpoint-secrets.js';
import { EndpointDeliveryClient } from '../events/endpoint-delivery-client.js';
import { WebhookSender } from '../events/webhook-sender.js';
import {
  catchUpIntakeOf,
  catchUpProvider,
  providerApis,
  refundingProviders,
} from '../payments/providers/definition.js';
import { RefundStarter } from '../payments/refund-starter.js';
import { paymentProviders } from '../payments/providers/registry.js';
import {
  createCatchUpActivities,
  createPaymentActivities,
  workerMysqlGuard,
  type CatchUpActivities,
  type PaymentActivities,
} from '../activities/payments.js';

/** What the worker runs: the order's activities, the catch-up's, and the reconciler's with a Temporal client. */
export type WorkerActivities = Activities &
  PreviousBuildActivities &
  PaymentActivities &
  CatchUpActivities &
  RefundActivities &
  WebhookActivities &
  Partial<ReconcileActivities>;

/** The worker's activities over its clients; with `temporal` (same namespace) the reconciler's too. */
export function workerActivities(deps: {
  config: Pick<
    AppConfig,
    | 'temporal'
    | 'reservationGraceMs'
    | 'reconcileIntervalMs'
    | 'maxConcurrentStarts'
    | 'payloadCodec'
    | 'payments'
    | 'nodeEnv'
    | 'webhookSecret'
    | 'deadlines'
    | 'webhookDelivery'
  >;
  stores: Stores;
  redis: RedisClient;
  temporal?: Client;
}): WorkerActivities {
  const { config, stores, redis, temporal } = deps;
  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const changes = new OrderChangeNotifier(redis);
  const providers = paymentProviders(config);
  const alerting = providers.configured.find(({ definition }) => definition.processingAlertMs);
  const orders = temporal
    ? OrderWorkflowClient.withoutBreakers(
        temporal,
        config.temporal.taskQueue,
        new StartPacing({ maxLimit: config.maxConcurrentStarts }),
      )
    : null;
  // Refunds a close or a payment leaves owed start after its commit; without a client the reconciler starts them.
  const refundStarts = orders ? new RefundStarter({ orders, providers: refundingProviders(providers) }) : undefined;
  const orderActivities = {
    ...createActivities({ stores, inventory, changes, ...(refundStarts ? { refunds: refundStarts } : {}) }),
    // The build before this one calls its own closing steps: its orders drain on it (docs/testing.md).
    ...previousBuildActivities({ orders: stores.orders, inventory }),
  };
  const paymentActivities = createPaymentActivities({
    stores,
    secrets: textSealerOf(payloadCodecOf(config)),
    providers: providerApis(providers),
    ...(refundStarts ? { refunds: refundStarts } : {}),
    ...(alerting ? { processingAlertMs: alerting.definition.processingAlertMs!(alerting.settings) } : {}),
  });
  // The provider whose undelivered events the catch-up reads (docs/fault-tolerance.md), where it is configured.
  const caughtUp = catchUpProvider(providers);
  const catchUp = createCatchUpActivities({
    stores,
    api: caughtUp ? (providerApis(providers)[caughtUp.definition.name] ?? null) : null,
    intake: caughtUp
      ? catchUpIntakeOf(
          caughtUp.definition.intake(caughtUp.settings, {
            // The webhook's own path: recorded, decided by the order's row, its Signal sent without waiting.
            payments: new PaymentReceiver({
              config,
              stores,
              guards: { mysql: workerMysqlGuard() },
              source: 'catch-up',
              signals: new PaymentSignals({
                orders,
                ...(refundStarts ? { refunds: refundStarts } : {}),
                changed: (orderNo) => void changes.publish(orderNo).catch(() => undefined),
              }),
            }),
            stores,
            mysql: workerMysqlGuard(),
            mysqlMs: config.deadlines.mysqlMs,
            source: 'catch-up',
            // A paid order's status is cached for good by the APIs: a dispute or refund found here must reach them.
            changed: (orderNo) => void changes.publish(orderNo).catch(() => undefined),
          }),
        )
      : null,
  });
  const apis = providerApis(providers);
  const refunds = createRefundActivities({ stores, providers: apis, observer: refundMetricsOfProcess });
  const webhooks = createWebhookActivities({
    stores,
    sender: new WebhookSender(config.webhookDelivery),
    box: new EndpointSecretBox(config.webhookDelivery.secretKey),
    settings: config.webhookDelivery,
    observer: deliveryMetricsOfProcess,
  });
  if (!orders) return { ...orderActivities, ...paymentActivities, ...catchUp, ...refunds, ...webhooks };
  return {
    ...orderActivities,
    ...paymentActivities,
    ...catchUp,
    ...refunds,
    ...webhooks,
    ...createReconcileActivities({
      stores,
      inventory,
      orders,
      changes,
      ...(refundStarts ? { refunds: refundStarts } : {}),
      refundProviders: Object.keys(apis),
      refundGauges: refundMetricsOfProcess,
      deliveryGauges: deliveryMetricsOfProcess,
      deliveries: temporal ? new EndpointDeliveryClient(temporal, config) : null,
      eventRetentionMs: config.webhookDelivery.retentionMs,
    }),
  };
}

/** The refunds' metrics on the Runtime's meter, made once per process on first use (a test may run no Runtime). */
let processRefundMetrics: (RefundObserver & RefundGauges) | undefined;
const refundMetricsOfProcess = (): RefundObserver & RefundGauges =>
  (processRefundMetrics ??= refundMetrics(Runtime.instance().metricMeter));

/** The order events' delivery metrics on the Runtime's meter, made once per process on first use. */
let processDeliveryMetrics: (DeliveryObserver & DeliveryGauges) | undefined;
const deliveryMetricsOfProcess = (): DeliveryObserver & DeliveryGauges =>
  (processDeliveryMetrics ??= deliveryMetrics(Runtime.instance().metricMeter));

/** Names of the order events' delivery metrics, served by the worker's Prometheus exporter. */
export const DELIVERY_METRICS = {
  attempts: 'flash_order_event_attempts',
  gaveUp: 'flash_order_event_deliveries_given_up',
  written: 'flash_order_events_written',
  deliveries: 'flash_order_event_deliveries',
  oldestPendingAge: 'flash_order_event_oldest_pending_seconds',
  disabledEndpoints: 'flash_order_event_endpoints_disabled',
} as const;

/** The delivery's counters (each attempt) and gauges (each reconcile run's reading of MySQL) on `meter`. */
export function deliveryMetrics(meter: MetricMeter): DeliveryObserver & DeliveryGauges {
  const attempts = meter.createCounter(
    DELIVERY_METRICS.attempts,
    '',
    "Attempts to send an order event to a merchant's endpoint, by outcome (delivered, failed, slow_down, gone, refused)",
  );
  const gaveUp = meter.createCounter(
    DELIVERY_METRICS.gaveUp,
    '',
    'Deliveries given up after EVENTS_RETRY_PERIOD without a 2xx (the feed still has the event)',
  );
  const written = meter.createCounter(
    DELIVERY_METRICS.written,
    '',
    "Order events written: the feed's newest seq as this worker's reconciler last read it (rate() it)",
  );
  const deliveries = meter.createGauge(
    DELIVERY_METRICS.deliveries,
    'int',
    '',
    'Deliveries kept (EVENTS_RETENTION) by endpoint and status: PENDING (owed), GAVE_UP',
  );
  const oldestPendingAge = meter.createGauge(
    DELIVERY_METRICS.oldestPendingAge,
    'float',
    '',
    "Seconds since the endpoint's oldest PENDING delivery was queued (0: none pending)",
  );
  const disabledEndpoints = meter.createGauge(
    DELIVERY_METRICS.disabledEndpoints,
    'int',
    '',
    'Endpoints disabled (by an operator, or by a 410 Gone): nothing is sent to them',
  );
  // A counter only goes up: what it adds is how far the seq moved since this process's last reading.
  let writtenThrough = 0;
  return {
    attempted: (outcome) => attempts.add(1, { outcome }),
    gaveUp: () => gaveUp.add(1),
    show: (figures) => {
      if (figures.newestSeq > writtenThrough) written.add(figures.newestSeq - writtenThrough);
      writtenThrough = Math.max(writtenThrough, figures.newestSeq);
      // Every endpoint each time (none is deleted): one whose backlog drained reads 0, not its last value.
      for (const endpoint of figures.endpoints) {
        deliveries.set(endpoint.pending, { endpoint: endpoint.endpointId, status: 'PENDING' });
        deliveries.set(endpoint.gaveUp, { endpoint: endpoint.endpointId, status: 'GAVE_UP' });
        oldestPendingAge.set(endpoint.oldestPendingAgeSeconds ?? 0, { endpoint: endpoint.endpointId });
      }
      disabledEndpoints.set(figures.endpoints.filter((endpoint) => !endpoint.enabled).length);
    },
  };
}

/** Payloads (and sealed texts) this process encrypted, by key id, added every 10 s from the codec's counts. */
export function startEncryptionMetric(codec: AesGcmPayloadCodec, meter: MetricMeter): () => void {
  const encryptions = meter.createCounter(
    'flash_payload_encryptions',
    '',
    'Payloads and texts encrypted, by key id; summed over every process, rotate a key long before 2^32 (docs/operations.md)',
  );
  const added = encryptionsSince(codec);
  const timer = setInterval(() => {
    for (const [key, count] of added()) encryptions.add(count, { key });
  }, 10_000);
  timer.unref();
  return () => clearInterval(timer);
}

/** Names of the refunds' metrics, served by the worker's Prometheus exporter (WORKER_METRICS_PORT). */
export const REFUND_METRICS = {
  asked: 'flash_refunds_asked',
  waiting: 'flash_refunds_waiting',
  takenBack: 'flash_orders_taken_back',
} as const;

function refundMetrics(meter: MetricMeter): RefundObserver & RefundGauges {
  const asked = meter.createCounter(
    REFUND_METRICS.asked,
    '',
    'Refunds asked of a provider, by the answer (REFUND_REQUESTED, REFUNDED, REFUND_FAILED; RETRY: no answer; FOLLOW: read again, still under way)',
  );
  const takenBack = meter.createGauge(
    REFUND_METRICS.takenBack,
    'int',
    '',
    'Paid orders whose money the provider took back, by state: DISPUTED, REFUNDED, DISPUTE_DUE_72H (open disputes due within 72 h)',
  );
  const waiting = meter.createGauge(
    REFUND_METRICS.waiting,
    'int',
    '',
    "Payments through a provider's API by refund state: REFUND_REQUIRED (to ask), REFUND_REQUESTED (asked), REFUND_FAILED (an operator's)",
  );
  return {
    asked: (outcome) => asked.add(1, { outcome }),
    waiting: (counts) => {
      for (const [state, count] of Object.entries(counts)) waiting.set(count, { state });
    },
    takenBack: (counts) => {
      takenBack.set(counts.DISPUTED, { state: 'DISPUTED' });
      takenBack.set(counts.REFUNDED, { state: 'REFUNDED' });
      takenBack.set(counts.disputesDueWithin72h, { state: 'DISPUTE_DUE_72H' });
    },
  };
}

export interface OrderWorkerOptions {
  config: Pick<AppConfig, 'temporal' | 'payloadCodec'> &
    Partial<Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret'>>;
  connection: NativeConnection;
  activities: WorkerActivities;
  /** A bundle built by buildWorkflowBundle; without it the worker bundles src/workflows itself (dev, tests). */
  workflowBundlePath?: string;
  /** Where Temporal's clock, as activity tasks show it, is recorded for the worker's /readyz. */
  clocks?: ClockWatch;
  /** Where activity outcomes and retries are recorded; default: the Runtime's meter (its Prometheus exporter). */
  metricMeter?: MetricMeter;
  tuning?: Partial<
    Pick<
      WorkerOptions,
      | 'maxConcurrentActivityTaskExecutions'
      | 'maxConcurrentWorkflowTaskExecutions'
      | 'maxCachedWorkflows'
      | 'shutdownGraceTime'
    >
  >;
}

/**
 * The order's workers, run and stopped as one: the order queue's and the provider queue's, whose activities Temporal
 * hands out across all workers at the provider account's rate (maxTaskQueueActivitiesPerSecond): deadlines bunch.
 */
export class OrderWorkers {
  constructor(
    readonly orders: Worker,
    readonly provider: Worker,
    /** The Worker Deployment Version both poll as (null: unversioned). */
    readonly version: WorkerVersion | null,
  ) {}

  /** The task queues this version serves: the order queue and the provider queue. */
  taskQueues(): string[] {
    return [this.orders.options.taskQueue, this.provider.options.taskQueue];
  }

  /** Runs both until shutdown() (or either fails: then both stop). */
  async run(): Promise<void> {
    await Promise.all([this.orders.run(), this.provider.run()]).catch(async (err: unknown) => {
      this.shutdown();
      throw err;
    });
  }

  async runUntil<T>(fn: () => Promise<T>): Promise<T> {
    const running = this.run();
    try {
      return await fn();
    } finally {
      this.shutdown();
      await running;
    }
  }

  shutdown(): void {
    for (const worker of [this.orders, this.provider]) if (worker.getState() === 'RUNNING') worker.shutdown();
  }

  /** The order queue's worker's state (what /readyz reports). */
  getState(): ReturnType<Worker['getState']> {
    return this.orders.getState();
  }
}

/** Both queues' workers as one deployment version: a pinned order's provider activities run on the order's build. */
export async function createOrderWorker(options: OrderWorkerOptions): Promise<OrderWorkers> {
  const version = workerVersionOf(options.config, options.workflowBundlePath);
  const [orders, provider] = await Promise.all([
    createOrderQueueWorker(options, version),
    createProviderWorker(options, version),
  ]);
  return new OrderWorkers(orders, provider, version);
}

function createProviderWorker(options: OrderWorkerOptions, version: WorkerVersion | null): Promise<Worker> {
  const { openPayment, closePayment, refundPayment } = options.activities;
  return Worker.create({
    ...deploymentOptions(version),
    connection: options.connection,
    namespace: options.config.temporal.namespace,
    taskQueue: providerTaskQueue(options.config.temporal.taskQueue),
    dataConverter: temporalDataConverter(options.config),
    activities: { openPayment, closePayment, refundPayment },
    interceptors: {
      activity: [
        activityMetricsInterceptor(options.metricMeter ?? Runtime.instance().metricMeter),
        ...tracingActivityInterceptors(),
      ],
    },
    maxTaskQueueActivitiesPerSecond: providerQueueRate(options.config),
    maxConcurrentActivityTaskExecutions: 50,
    shutdownGraceTime: '10s',
  });
}

/** Requests per second of the provider queue where no configured provider API declares its own. */
const DEFAULT_PROVIDER_QUEUE_RATE = 20;

/** The provider queue's rate: the lowest requests per second of the configured provider APIs (Stripe's). */
function providerQueueRate(config: OrderWorkerOptions['config']): number {
  const { payments, nodeEnv, webhookSecret } = config;
  const configured =
    payments && nodeEnv && webhookSecret ? paymentProviders({ payments, nodeEnv, webhookSecret }).configured : [];
  const rates = configured.flatMap(({ definition, settings }) =>
    definition.requestsPerSecond ? [definition.requestsPerSecond(settings)] : [],
  );
  return rates.length > 0 ? Math.min(...rates) : DEFAULT_PROVIDER_QUEUE_RATE;
}

function createOrderQueueWorker(options: OrderWorkerOptions, version: WorkerVersion | null): Promise<Worker> {
  return Worker.create({
    ...deploymentOptions(version),
    connection: options.connection,
    namespace: options.config.temporal.namespace,
    taskQueue: options.config.temporal.taskQueue,
    ...(options.workflowBundlePath
      ? { workflowBundle: { codePath: options.workflowBundlePath } }
      : { workflowsPath: WORKFLOWS_PATH }),
    // Encrypts every payload this worker writes; decodes what it reads (src/infra/payload-codec.ts).
    dataConverter: temporalDataConverter(options.config),
    activities: options.activities,
    interceptors: {
      // Outcomes and retries (no-op without an exporter); with tracing on, each activity's span in its workflow trace.
      activity: [
        activityMetricsInterceptor(options.metricMeter ?? Runtime.instance().metricMeter),
        ...(options.clocks ? [temporalClockInterceptor(options.clocks)] : []),
        ...tracingActivityInterceptors(),
      ],
      // In every worker, traced or not, as in the prebuilt bundle (src/workers/bundle.ts says why);
      // a prebuilt bundle has them already, and the SDK warns when they are named again.
      ...(options.workflowBundlePath ? {} : { workflowModules: [WORKFLOW_TRACING_MODULE] }),
    },
    // Where the workflow's spans leave the sandbox: the exporter with tracing on, nowhere without.
    sinks: workflowSpanSinks(),
    // Activities are short DB/Redis calls that spend their time waiting on I/O: many fit in one process.
    maxConcurrentActivityTaskExecutions: 200,
    maxConcurrentWorkflowTaskExecutions: 100,
    shutdownGraceTime: '10s',
    ...options.tuning,
  });
}

/** How long the owner's lookup of a stale promise's order row may take (a hung MySQL must not stall it). */
const ROW_LOOKUP_MS = 2_000;

export interface RunningPromiseStarter {
  starter: PromiseStarter;
  /** Stops taking promises (starts under way finish) and closes its subscription. */
  stop(): Promise<void>;
}

/** Starts the promise owner (src/order/starter.ts) on the Worker's connection, for eager starts: after it polls. */
export function startPromiseStarter(options: {
  config: Pick<AppConfig, 'temporal' | 'maxConcurrentStarts' | 'payloadCodec'>;
  connection: NativeConnection;
  stores: Pick<Stores, 'orders'>;
  redis: RedisClient;
  logger: Logger;
  meter?: MetricMeter;
  options?: Partial<PromiseStarterOptions>;
}): RunningPromiseStarter {
  const { config, connection, stores, redis, logger } = options;
  const { namespace, taskQueue } = config.temporal;
  const inventory = new RedisInventory(redis, taskQueue);
  const pacing = new StartPacing({ maxLimit: config.maxConcurrentStarts });
  const temporal = new Client({
    connection,
    namespace,
    interceptors: temporalClientInterceptors(),
    dataConverter: temporalDataConverter(config),
  });
  const orders = OrderWorkflowClient.withoutBreakers(temporal, taskQueue, pacing);
  const starter = new PromiseStarter(
    {
      inventory,
      promises: new PromiseQueue(redis),
      orders,
      pacing,
      backlogAgeMs: () => workflowBacklogAgeMs(connection, namespace, taskQueue),
      hasOrderRow: async (orderNo) =>
        (await boundBy(Deadline.in(ROW_LOOKUP_MS), () => stores.orders.getOrder(orderNo))) !== null,
      logger,
      observer: starterMetrics(options.meter ?? Runtime.instance().metricMeter),
    },
    // Versioned workers start through the task queue: the current version takes each new order (PromiseStarterOptions).
    { eager: !config.temporal.versioning, ...options.options },
  );
  const subscription = subscribeChannels(redis, { [inventory.wakeChannel]: starter.listener() }, logger);
  starter.start();
  return {
    starter,
    async stop() {
      await starter.stop();
      await subscription.quit().catch(() => undefined);
    },
  };
}

/** The age of the oldest workflow task no worker has picked up yet (0: none waiting). */
async function workflowBacklogAgeMs(
  connection: NativeConnection,
  namespace: string,
  taskQueue: string,
): Promise<number> {
  const { stats } = await connection.withDeadline(Date.now() + 2_000, () =>
    connection.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      reportStats: true,
    }),
  );
  const age = stats?.approximateBacklogAge;
  return age ? Number(age.seconds ?? 0) * 1_000 + Math.floor(Number(age.nanos ?? 0) / 1e6) : 0;
}

/** Names of the owner's metrics, served by the worker's Prometheus exporter (WORKER_METRICS_PORT). */
export const STARTER_METRICS = {
  starts: 'flash_starter_starts',
  startLatency: 'flash_starter_start_latency',
  pending: 'flash_promises_pending',
  limit: 'flash_starter_pacing_limit',
  backlogAge: 'flash_workflow_backlog_age',
} as const;

function starterMetrics(meter: MetricMeter): PromiseStarterObserver {
  const starts = meter.createCounter(
    STARTER_METRICS.starts,
    '',
    'Workflow starts of promised orders by outcome (STARTED, ALREADY_CLOSED, FAILED) and eager (true: the first task came back with the start)',
  );
  const latency = meter.createHistogram(
    STARTER_METRICS.startLatency,
    'int',
    'ms',
    'How long a start of a promised order took',
  );
  const pending = meter.createGauge(
    STARTER_METRICS.pending,
    'int',
    '',
    'Promised orders not started yet, in the sales this owner holds the lease of',
  );
  const limit = meter.createGauge(
    STARTER_METRICS.limit,
    'int',
    '',
    'Starts the owner may have in flight now (the pacing)',
  );
  const backlogAge = meter.createGauge(
    STARTER_METRICS.backlogAge,
    'int',
    'ms',
    "The age of the task queue's oldest workflow task no worker has picked up",
  );
  return {
    started: (outcome, ms, eager) => {
      starts.add(1, { outcome, eager: String(eager) });
      latency.record(ms);
    },
    pending: (count) => pending.set(count),
    pacing: (value, ageMs) => {
      limit.set(value);
      backlogAge.set(ageMs);
    },
  };
}
