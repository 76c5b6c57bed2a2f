/** A worker process's order pipeline: the order and provider queues' Workers, and the starter of pending starts. */
import { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import proto from '@temporalio/proto';
import { type NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type { RedisClient } from '../infra/redis.js';
import type { AppConfig } from '../config/index.js';
import { createActivities } from '../activities/order.js';
import { previousBuildActivities } from '../activities/previous-build.js';
import { createReconcileActivities, type DeliveryGauges, type RefundGauges } from '../activities/reconcile.js';
import { OrderChangeNotifier } from '../order/status-reads.js';
import { OrderWorkflowClient } from '../order/workflow-client.js';
import type { Stores } from '../db/stores.js';
import { PromiseQueue } from '../redis/promise-queue.js';
import { RedisInventory } from '../redis/inventory.js';
import { boundBy, Deadline, DependencyGuard } from '../infra/dependency-guard.js';
import { isMysqlFailure } from '../db/rows.js';
import { PaymentReceiver, PaymentSignals } from '../payments/receiver.js';
import type { Logger } from '../infra/logger.js';
import { subscribeChannels } from '../infra/redis-subscription.js';
import { temporalClientInterceptors, tracingActivityInterceptors, workflowSpanSinks } from '../infra/tracing.js';
import { payloadCodecOf, temporalDataConverter } from '../infra/data-converter.js';
import { PromiseStarter, type PromiseStarterObserver } from '../order/starter.js';
import { StartPacing } from '../order/start-pacing.js';
import { defaultWorkflowBundle } from './bundle.js';
import { deploymentOptions, workerVersionOf } from './versioning.js';
import { CurrentVersionWatch, WorkerDeployments, type WorkerVersion } from '../infra/worker-deployments.js';
import {
  activityMetricsInterceptor,
  counter,
  gauge,
  histogram,
  metricGroup,
  temporalClockInterceptor,
} from './telemetry.js';
import type { ClockWatch } from '../infra/clocks.js';
import { encryptionsSince, type AesGcmPayloadCodec } from '../infra/payload-codec.js';
import { deliveryTaskQueue, providerTaskQueue } from '../model/order-workflow.js';
import { createRefundActivities, type RefundObserver } from '../activities/refunds.js';
import { createWebhookActivities, type DeliveryObserver } from '../activities/webhooks.js';
import { EndpointSecretBox } from '../order-events/endpoint-secrets.js';
import { EndpointDeliveryClient } from '../order-events/endpoint-delivery-client.js';
import { WebhookSender } from '../order-events/webhook-sender.js';
import {
  catchUpIntakeOf,
  catchUpProvider,
  providerApis,
  refundingProviders,
} from '../payments/providers/definition.js';
import { RefundStarter } from '../payments/refund-starter.js';
import { paymentProviders } from '../payments/providers/registry.js';
import { createCatchUpActivities, createPaymentActivities } from '../activities/payments.js';

export type WorkerActivities = ReturnType<typeof workerActivities>;

/** The worker's activities over its clients; with `temporal` (same namespace) the reconciler's too. */
export function workerActivities(deps: { config: AppConfig; stores: Stores; redis: RedisClient; temporal?: Client }) {
  const { config, stores, redis, temporal } = deps;
  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const changes = new OrderChangeNotifier(redis);
  // A paid order's status is cached for good by the APIs: a payment, dispute or refund found here must reach them.
  const changed = (orderNo: string) => void changes.publish(orderNo).catch(() => undefined);
  const providers = paymentProviders(config);
  const apis = providerApis(providers);
  const alerting = providers.configured.find(({ definition }) => definition.processingAlertMs);
  const pacing = new StartPacing({ maxLimit: config.maxConcurrentStarts });
  const orders = temporal ? OrderWorkflowClient.withoutBreakers(temporal, config.temporal.taskQueue, pacing) : null;
  // Refunds a close or a payment leaves owed start after its commit; without a client the reconciler starts them.
  const refunds = orders ? new RefundStarter({ orders, providers: refundingProviders(providers) }) : undefined;
  // The provider whose undelivered events the catch-up reads (docs/fault-tolerance.md), where it is configured.
  const caughtUp = catchUpProvider(providers);
  // Endpoints' secrets: opened to sign deliveries, sealed again by the reconciler when an older key sealed them.
  const endpointSecrets = new EndpointSecretBox(config.webhookDelivery.secretKeys);
  // Never opens: the worker's MySQL calls are bounded by their timeout only.
  const mysql = () => DependencyGuard.neverOpen('mysql', isMysqlFailure);
  const intake = caughtUp?.definition.intake(caughtUp.settings, {
    // The webhook's own path: recorded, decided by the order's row, its Signal sent without waiting.
    payments: new PaymentReceiver({
      config,
      stores,
      guards: { mysql: mysql() },
      source: 'catch-up',
      signals: new PaymentSignals({ orders, refunds, changed }),
    }),
    stores,
    mysql: mysql(),
    mysqlMs: config.deadlines.mysqlMs,
    source: 'catch-up',
    changed,
  });
  return {
    ...createActivities({ stores, inventory, changes, refunds }),
    // The build before this one calls its own closing steps: its orders drain on it (docs/testing.md).
    ...previousBuildActivities({ orders: stores.orders, inventory }),
    ...createPaymentActivities({
      stores,
      secrets: payloadCodecOf(config),
      providers: apis,
      refunds,
      ...(alerting ? { processingAlertMs: alerting.definition.processingAlertMs!(alerting.settings) } : {}),
    }),
    ...createCatchUpActivities({
      stores,
      api: caughtUp ? (apis[caughtUp.definition.name] ?? null) : null,
      intake: intake ? catchUpIntakeOf(intake) : null,
    }),
    ...createRefundActivities({ stores, providers: apis, observer: refundMetricsOfProcess }),
    ...createWebhookActivities({
      stores,
      sender: new WebhookSender(config.webhookDelivery),
      box: endpointSecrets,
      settings: config.webhookDelivery,
      observer: deliveryMetricsOfProcess,
    }),
    ...(temporal && orders
      ? createReconcileActivities({
          stores,
          inventory,
          orders,
          changes,
          refunds,
          refundProviders: Object.keys(apis),
          refundGauges: refundMetricsOfProcess,
          deliveryGauges: deliveryMetricsOfProcess,
          deliveries: new EndpointDeliveryClient(temporal, config),
          endpointSecrets,
          eventRetentionMs: config.webhookDelivery.retentionMs,
        })
      : undefined),
  };
}

/** Metrics on the Runtime's meter, made once per process on first use (a test may run no Runtime). */
function onRuntimeMeter<T>(make: (meter: MetricMeter) => T): () => T {
  let made: T | undefined;
  return () => (made ??= make(Runtime.instance().metricMeter));
}
const refundMetricsOfProcess = onRuntimeMeter(refundMetrics);
const deliveryMetricsOfProcess = onRuntimeMeter(deliveryMetrics);

const DELIVERY = metricGroup({
  attempts: counter(
    'flash_order_event_attempts',
    "Attempts to send an order event to a merchant's endpoint, by outcome (delivered, failed, slow_down, gone, refused)",
  ),
  gaveUp: counter(
    'flash_order_event_deliveries_given_up',
    'Deliveries given up after EVENTS_RETRY_PERIOD without a 2xx (the feed still has the event)',
  ),
  written: counter(
    'flash_order_events_written',
    "Order events written: the feed's newest seq as this worker's reconciler last read it (rate() it)",
  ),
  deliveries: gauge(
    'flash_order_event_deliveries',
    'Deliveries kept (EVENTS_RETENTION) by endpoint and status: PENDING (owed), GAVE_UP',
  ),
  oldestPendingAge: gauge(
    'flash_order_event_oldest_pending_seconds',
    "Seconds since the endpoint's oldest PENDING delivery was queued (0: none pending)",
    '',
    'float',
  ),
  disabledEndpoints: gauge(
    'flash_order_event_endpoints_disabled',
    'Endpoints disabled (by an operator, or by a 410 Gone): nothing is sent to them',
  ),
});
export const DELIVERY_METRICS = DELIVERY.names;

/** The delivery's counters (each attempt) and gauges (each reconcile run's reading of MySQL) on `meter`. */
export function deliveryMetrics(meter: MetricMeter): DeliveryObserver & DeliveryGauges {
  const { attempts, gaveUp, written, deliveries, oldestPendingAge, disabledEndpoints } = DELIVERY.on(meter);
  // A counter only goes up: what it adds is how far the feed's position (one per event) moved since the last reading.
  let writtenThrough = 0;
  return {
    attempted: (outcome) => attempts.add(1, { outcome }),
    gaveUp: () => gaveUp.add(1),
    show: (figures) => {
      if (figures.newestPosition > writtenThrough) written.add(figures.newestPosition - writtenThrough);
      writtenThrough = Math.max(writtenThrough, figures.newestPosition);
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
  const encryptions = counter(
    'flash_payload_encryptions',
    'Payloads and texts encrypted, by key id; summed over every process, rotate a key long before 2^32 (docs/operations.md)',
  ).on(meter);
  const added = encryptionsSince(codec);
  const timer = setInterval(() => {
    for (const [key, count] of added()) encryptions.add(count, { key });
  }, 10_000).unref();
  return () => clearInterval(timer);
}

const REFUND = metricGroup({
  asked: counter(
    'flash_refunds_asked',
    'Refunds asked of a provider, by the answer (REFUND_REQUESTED, REFUNDED, REFUND_FAILED; RETRY: no answer; FOLLOW: read again, still under way)',
  ),
  waiting: gauge(
    'flash_refunds_waiting',
    "Payments through a provider's API by refund state: REFUND_REQUIRED (to ask), REFUND_REQUESTED (asked), REFUND_FAILED (an operator's)",
  ),
  takenBack: gauge(
    'flash_orders_taken_back',
    'Paid orders whose money the provider took back, by state: DISPUTED, REFUNDED, DISPUTE_DUE_72H (open disputes due within 72 h)',
  ),
});

function refundMetrics(meter: MetricMeter): RefundObserver & RefundGauges {
  const { asked, waiting, takenBack } = REFUND.on(meter);
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
  config: AppConfig;
  connection: NativeConnection;
  activities: WorkerActivities;
  /** A bundle built by buildWorkflowBundle; default: the build's, or from the sources one built on demand. */
  workflowBundlePath?: string;
  /** Where Temporal's clock, as activity tasks show it, is recorded for the worker's /readyz. */
  clocks?: ClockWatch;
  /** Where activity outcomes and retries are recorded; default: the Runtime's meter (its Prometheus exporter). */
  metricMeter?: MetricMeter;
  tuning?: Pick<WorkerOptions, 'maxCachedWorkflows'>;
}

/** The order queue's and the provider queue's Workers, run and stopped as one. */
export class OrderWorkers {
  constructor(
    readonly orders: Worker,
    readonly provider: Worker,
    readonly deliveries: Worker,
    /** The Worker Deployment Version all three poll as (null: unversioned). */
    readonly version: WorkerVersion | null,
  ) {}

  private get all(): Worker[] {
    return [this.orders, this.provider, this.deliveries];
  }

  taskQueues(): string[] {
    return this.all.map((worker) => worker.options.taskQueue);
  }

  /** Runs all until shutdown() (or one fails: then all stop). */
  async run(): Promise<void> {
    await Promise.all(this.all.map((worker) => worker.run())).catch(async (err: unknown) => {
      this.shutdown();
      throw err;
    });
  }

  shutdown(): void {
    for (const worker of this.all) if (worker.getState() === 'RUNNING') worker.shutdown();
  }
}

/** Both queues' workers as one deployment version: a pinned order's provider activities run on the order's build. */
export async function createOrderWorker(options: OrderWorkerOptions): Promise<OrderWorkers> {
  const { config, activities } = options;
  // Always a built bundle: the code a worker runs is the code its build id names (src/workers/bundle.ts).
  const bundle = options.workflowBundlePath ?? (await defaultWorkflowBundle());
  const version = workerVersionOf(config, bundle);
  const common = {
    ...deploymentOptions(version),
    connection: options.connection,
    namespace: config.temporal.namespace,
    shutdownGraceTime: '10s',
  } satisfies Partial<WorkerOptions>;
  // Outcomes and retries (no-op without an exporter); with tracing on, each activity's span in its workflow trace.
  const metrics = activityMetricsInterceptor(options.metricMeter ?? Runtime.instance().metricMeter);
  const { openPayment, closePayment, refundPayment, deliverEndpointEvents } = activities;
  // A delivery round watches the feed for seconds: it ends at its next look once these workers stop polling.
  let running: Worker[] = [];
  const stopping = () => running.some((worker) => worker.getState() !== 'RUNNING');
  const rounds = { deliverEndpointEvents: (input: { endpointId: string }) => deliverEndpointEvents(input, stopping) };
  const [orders, provider, deliveries] = await Promise.all([
    Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueue,
      // Encrypts every payload this worker writes; decodes what it reads (src/infra/payload-codec.ts).
      dataConverter: temporalDataConverter(config),
      // The tracing interceptors are in it (src/workers/bundle.ts says why).
      workflowBundle: { codePath: bundle },
      // Rounds too: a run begun before the deliveries' own queue schedules them here (src/workflows/webhooks.ts).
      activities: { ...activities, ...rounds },
      interceptors: {
        activity: [
          metrics,
          ...(options.clocks ? [temporalClockInterceptor(options.clocks)] : []),
          ...tracingActivityInterceptors(),
        ],
      },
      // Where the workflow's spans leave the sandbox: the exporter with tracing on, nowhere without.
      sinks: workflowSpanSinks(),
      // Activities are short DB/Redis calls that spend their time waiting on I/O: many fit in one process.
      maxConcurrentActivityTaskExecutions: 200,
      maxConcurrentWorkflowTaskExecutions: 100,
      ...options.tuning,
    }),
    Worker.create({
      ...common,
      taskQueue: providerTaskQueue(config.temporal.taskQueue),
      dataConverter: temporalDataConverter(config),
      activities: { openPayment, closePayment, refundPayment },
      interceptors: { activity: [metrics, ...tracingActivityInterceptors()] },
      maxTaskQueueActivitiesPerSecond: providerQueueRate(config),
      maxConcurrentActivityTaskExecutions: 50,
    }),
    Worker.create({
      ...common,
      taskQueue: deliveryTaskQueue(config.temporal.taskQueue),
      dataConverter: temporalDataConverter(config),
      activities: rounds,
      interceptors: { activity: [metrics, ...tracingActivityInterceptors()] },
      // One round per endpoint at a time; these slots (and MySQL connections) are all a merchant's backlog can take.
      maxConcurrentActivityTaskExecutions: DELIVERY_ROUNDS_AT_ONCE,
    }),
  ]);
  running = [orders, provider, deliveries];
  return new OrderWorkers(orders, provider, deliveries, version);
}

/** Rounds of endpoint deliveries one worker runs at once (each sends EVENTS_CONCURRENCY at a time). */
const DELIVERY_ROUNDS_AT_ONCE = 8;

/** The provider queue's rate over all its workers (deadlines bunch): the lowest provider API's (Stripe's), else 20. */
function providerQueueRate(config: AppConfig): number {
  const rates = paymentProviders(config).configured.flatMap(({ definition, settings }) =>
    definition.requestsPerSecond ? [definition.requestsPerSecond(settings)] : [],
  );
  return rates.length > 0 ? Math.min(...rates) : 20;
}

export type RunningPromiseStarter = ReturnType<typeof startPromiseStarter>;

/** The routing read behind eager starts (CurrentVersionWatch): often, bounded well inside the age it may be used at. */
const ROUTING_READ_EVERY_MS = 1_000;
const ROUTING_READ_DEADLINE_MS = 1_500;

/** Runs the starter (src/order/starter.ts) on the Worker's connection, for eager starts: after it polls. */
export function startPromiseStarter(options: {
  config: Pick<AppConfig, 'temporal' | 'maxConcurrentStarts' | 'payloadCodec'>;
  connection: NativeConnection;
  stores: Pick<Stores, 'orders'>;
  redis: RedisClient;
  logger: Logger;
  version?: WorkerVersion | null;
  /** Told when this worker's version becomes current (at once when unversioned): what only that build does. */
  onCurrent?: () => void;
}) {
  const { config, connection, stores, redis, logger, version, onCurrent = () => {} } = options;
  const { namespace, taskQueue } = config.temporal;
  // Eager pins an order here: under versioning only while a fresh read says this version is current, unramped.
  const watch =
    config.temporal.versioning && version
      ? new CurrentVersionWatch(
          new WorkerDeployments(connection, namespace, `starter-${process.pid}`),
          version,
          onCurrent,
        )
      : null;
  if (!watch) onCurrent();
  const readRouting = () =>
    void watch?.read((call) => connection.withDeadline(Date.now() + ROUTING_READ_DEADLINE_MS, call));
  const routingReads = watch ? setInterval(readRouting, ROUTING_READ_EVERY_MS).unref() : null;
  readRouting();
  const inventory = new RedisInventory(redis, taskQueue);
  const pacing = new StartPacing({ maxLimit: config.maxConcurrentStarts });
  const temporal = new Client({
    connection,
    namespace,
    interceptors: temporalClientInterceptors(),
    dataConverter: temporalDataConverter(config),
  });
  const starter = new PromiseStarter(
    {
      inventory,
      promises: new PromiseQueue(redis),
      orders: OrderWorkflowClient.withoutBreakers(temporal, taskQueue, pacing),
      pacing,
      // The age of the oldest workflow task no worker has picked up yet (0: none waiting).
      backlogAgeMs: async () => {
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
      },
      // Bounded: a hung MySQL must not stall the starter's look at a stale pending start's order row.
      hasOrderRow: async (orderNo) =>
        (await boundBy(Deadline.in(2_000), () => stores.orders.getOrder(orderNo))) !== null,
      logger,
      observer: starterMetrics(Runtime.instance().metricMeter),
    },
    { eager: () => (watch ? watch.isCurrent() : !config.temporal.versioning) },
  );
  const subscription = subscribeChannels(redis, { [inventory.wakeChannel]: starter.listener() }, logger);
  starter.start();
  return {
    /** Whether this worker's build is the current one, as the newest routing read said (always, unversioned). */
    isCurrent: () => (watch ? watch.isRouted() : true),
    /** Stops taking pending starts (starts under way finish) and closes its subscription. */
    async stop() {
      if (routingReads) clearInterval(routingReads);
      await starter.stop();
      await subscription.quit().catch(() => undefined);
    },
  };
}

const STARTER = metricGroup({
  starts: counter(
    'flash_starter_starts',
    'Workflow starts of pending orders by outcome (STARTED, ALREADY_CLOSED, FAILED) and eager (true: the first task came back with the start)',
  ),
  startLatency: histogram('flash_starter_start_latency', 'How long a start of a promised order took', 'ms'),
  pending: gauge(
    'flash_promises_pending',
    'Promised orders not started yet, in the sales this owner holds the lease of',
  ),
  limit: gauge('flash_starter_pacing_limit', 'Starts the owner may have in flight now (the pacing)'),
  backlogAge: gauge(
    'flash_workflow_backlog_age',
    "The age of the task queue's oldest workflow task no worker has picked up",
    'ms',
  ),
});

function starterMetrics(meter: MetricMeter): PromiseStarterObserver {
  const { starts, startLatency, pending, limit, backlogAge } = STARTER.on(meter);
  return {
    started: (outcome, ms, eager) => {
      starts.add(1, { outcome, eager: String(eager) });
      startLatency.record(ms);
    },
    pending: (count) => pending.set(count),
    pacing: (value, ageMs) => {
      limit.set(value);
      backlogAge.set(ageMs);
    },
  };
}
