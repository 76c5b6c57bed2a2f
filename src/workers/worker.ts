/**
 * The order worker: polls the task queue, runs OrderWorkflow and its activities.
 */
import type { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import { type NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type { RedisClient } from '../infra/redis.js';
import type { AppConfig } from '../config/index.js';
import { createActivities, type Activities } from '../activities/index.js';
import { createReconcileActivities } from '../activities/reconcile.js';
import { OrderChangeNotifier } from '../order/reads.js';
import { OrderClient } from '../order/client.js';
import { PaymentDelivery } from '../order/payments.js';
import type { Store } from '../db/store.js';
import { RedisInventory } from '../inventory/redis-inventory.js';
import { tracingActivityInterceptors, workflowSpanSinks } from '../infra/tracing.js';
import { WORKFLOW_TRACING_MODULE, WORKFLOWS_PATH } from './bundle.js';
import { activityMetricsInterceptor } from './telemetry.js';

export interface OrderWorkerOptions {
  config: Pick<AppConfig, 'temporal' | 'reservationGraceMs' | 'reconcileIntervalMs'>;
  connection: NativeConnection;
  store: Store;
  redis: RedisClient;
  /**
   * A client of the same namespace: with it the worker also runs the reconciler's activities (which
   * look up and pay orders through the order client). Without it, only orders are processed.
   */
  temporal?: Client;
  /** A bundle built by buildWorkflowBundle; without it the worker bundles src/workflows itself (dev, tests). */
  workflowBundlePath?: string;
  /** Tests wrap activities to inject faults around the real ones. */
  wrapActivities?: (activities: Activities) => Partial<Activities>;
  /** Where activity outcomes and retries are recorded; default: the Runtime's meter (its Prometheus exporter). */
  metricMeter?: MetricMeter;
  tuning?: Partial<
    Pick<WorkerOptions, 'maxConcurrentActivityTaskExecutions' | 'maxConcurrentWorkflowTaskExecutions' | 'maxCachedWorkflows' | 'shutdownGraceTime'>
  >;
}

export async function createOrderWorker(options: OrderWorkerOptions): Promise<Worker> {
  const inventory = new RedisInventory(options.redis);
  const real = createActivities({ store: options.store, inventory, changes: new OrderChangeNotifier(options.redis) });
  const orderActivities = options.wrapActivities ? { ...real, ...options.wrapActivities(real) } : real;
  // With the inventory, promised orders are found by their number (a payment for one waits for its start).
  const orders = options.temporal && new OrderClient(options.temporal, options.store, options.config.temporal.taskQueue, undefined, { inventory });
  const reconcileActivities = orders
    ? createReconcileActivities({
        store: options.store,
        inventory,
        orders,
        payments: PaymentDelivery.fromConfig(options.config, { store: options.store, orders }),
      })
    : {};
  const activities = { ...orderActivities, ...reconcileActivities };
  return Worker.create({
    connection: options.connection,
    namespace: options.config.temporal.namespace,
    taskQueue: options.config.temporal.taskQueue,
    ...(options.workflowBundlePath ? { workflowBundle: { codePath: options.workflowBundlePath } } : { workflowsPath: WORKFLOWS_PATH }),
    activities,
    interceptors: {
      // Activity outcomes and retries, into the Runtime's metrics exporter (a no-op without one);
      // with tracing on, each activity's span, joined to the trace its workflow carries.
      activity: [activityMetricsInterceptor(options.metricMeter ?? Runtime.instance().metricMeter), ...tracingActivityInterceptors()],
      // In every worker, traced or not, as in the prebuilt bundle (src/workers/bundle.ts says why);
      // a prebuilt bundle has them already, and the SDK warns when they are named again.
      ...(options.workflowBundlePath ? {} : { workflowModules: [WORKFLOW_TRACING_MODULE] }),
    },
    // Where the workflow's spans leave the sandbox: the exporter with tracing on, nowhere without.
    sinks: workflowSpanSinks(),
    // Activities are short DB/Redis calls that spend their time waiting on I/O: many fit in one process.
    maxConcurrentActivityTaskExecutions: 200,
    maxConcurrentWorkflowTaskExecutions: 100,
    // In-flight activities get this long to finish on SIGTERM before the worker gives up on them.
    shutdownGraceTime: '10s',
    ...options.tuning,
  });
}
