/** The worker process, after ./main.ts's tracing; SIGTERM drains it (docs/operations.md: logs, metrics, health). */
import { getHeapStatistics } from 'node:v8';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { loadConfig } from '../config/index.js';
import { createMysqlPool } from '../db/pool.js';
import { openStores } from '../db/stores.js';
import { createLogger } from '../infra/logger.js';
import { ClockWatch, shownClocks } from '../infra/clocks.js';
import { createRedis, redisClockMs } from '../infra/redis.js';
import { activeTracing, temporalClientInterceptors } from '../infra/tracing.js';
import { temporalConnectionSettings } from '../infra/temporal-connection.js';
import { payloadCodecOf, temporalDataConverter } from '../infra/data-converter.js';
import { WorkerFiguresBoard } from '../redis/worker-figures.js';
import { startCacheFigures } from './cache-figures.js';
import { startDeploymentFigures } from './deployment-figures.js';
import { cacheBoundForHeap } from './cache-sizing.js';
import { startWorkerHealthServer, type WorkerHealthState } from './health.js';
import { ensureCatchUpSchedule, ensureReconcileSchedule } from './schedules.js';
import { pinoRuntimeLogger } from './telemetry.js';
import { ensureSearchAttributes } from './worker-connection.js';
import { createOrderWorker, startEncryptionMetric, startPromiseStarter, workerActivities } from './worker.js';
import { promoteOnStart } from './versioning.js';
import { versionString, WorkerDeployments } from '../infra/worker-deployments.js';

const config = loadConfig();
const logger = createLogger(config, 'worker');
Runtime.install({
  logger: pinoRuntimeLogger(logger),
  telemetryOptions: {
    // Core's own logs are forwarded to the logger above (so they are JSON lines too), warnings up.
    logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }) },
    // Listens on every interface, like the API: Prometheus scrapes it from another host or container.
    ...(config.workerMetricsPort
      ? { metrics: { prometheus: { bindAddress: `0.0.0.0:${config.workerMetricsPort}` } } }
      : {}),
  },
});
const tracing = activeTracing();
if (tracing) logger.info({ exporter: tracing.exporter }, 'tracing on (OTEL_TRACES_EXPORTER)');
if (config.workerMetricsPort)
  logger.info({ url: `http://127.0.0.1:${config.workerMetricsPort}/metrics` }, 'worker metrics listening');

// Not ready until the Worker exists and runs; not ready again as soon as its drain starts.
let workerState: () => WorkerHealthState = () => 'STARTING';
const pool = createMysqlPool(config, { connectionLimit: 50 });
const stores = openStores(pool);
const redis = createRedis(config);
redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
// Shown, never gating: what this worker decides is judged by Redis's clock or MySQL's, not its own.
const clocks = new ClockWatch({ redis: () => redisClockMs(redis), mysql: () => stores.reports.clockMs() });
await clocks.start();
const health = config.workerHealthPort
  ? await startWorkerHealthServer({
      port: config.workerHealthPort,
      state: () => workerState(),
      clocks: () => shownClocks(clocks.offsets(), clocks.lowerBounds()),
    })
  : undefined;
if (health) logger.info({ url: `http://127.0.0.1:${health.port}/readyz` }, 'worker health listening');
const connection = await NativeConnection.connect(temporalConnectionSettings(config));
const clientConnection = await Connection.connect(temporalConnectionSettings(config));
const deployments = new WorkerDeployments(clientConnection, config.temporal.namespace, `worker-${process.pid}`);
// Versioned workers on a server without the Worker Deployment APIs would poll and never get a task: refuse now.
if (config.temporal.versioning) await deployments.assertAvailable(config.temporal.versioning.deploymentName);
await ensureSearchAttributes(clientConnection, config.temporal.namespace).catch((err: unknown) =>
  logger.warn({ err }, 'could not register OrderSku (Keyword); register it by hand'),
);
const temporal = new Client({
  connection: clientConnection,
  namespace: config.temporal.namespace,
  workflow: { queryRejectCondition: 'NOT_OPEN' },
  interceptors: temporalClientInterceptors(),
  dataConverter: temporalDataConverter(config),
});
// The current build's schedules, written as it becomes current (an old build's restart reverts none); failures retry.
let buildIsCurrent = () => false;
const keepSchedule = (what: string, ensure: () => Promise<unknown>, shown: object = {}): void => {
  ensure().then(
    (schedule) => logger.info({ schedule, ...shown }, `${what} schedule in place`),
    (err: unknown) => {
      logger.error({ err }, `could not create or update the ${what} schedule; trying again in 30 s`);
      setTimeout(() => buildIsCurrent() && keepSchedule(what, ensure, shown), 30_000).unref();
    },
  );
};
const keepSchedules = () => {
  keepSchedule('payment catch-up', () => ensureCatchUpSchedule(temporal, config));
  keepSchedule('reconcile', () => ensureReconcileSchedule(temporal, config), {
    everyMs: config.reconcileIntervalMs,
    graceMs: config.reservationGraceMs,
  });
};
// The workflows' thread has the same heap limit as this one (V8's heuristics, or --max-old-space-size for both).
const heapLimit = getHeapStatistics().heap_size_limit;
const cache = cacheBoundForHeap(config.workerMaxCachedWorkflows, heapLimit);
if (cache.cut)
  logger.warn(
    { configured: config.workerMaxCachedWorkflows, bound: cache.bound, heapLimitMb: Math.round(heapLimit / 1_048_576) },
    'WORKER_MAX_CACHED_WORKFLOWS is more than the heap holds; caching fewer (raise --max-old-space-size for more)',
  );
const worker = await createOrderWorker({
  config,
  connection,
  activities: workerActivities({ config, stores, redis, temporal }),
  workflowBundlePath: process.env.WORKFLOW_BUNDLE_PATH || undefined,
  clocks,
  tuning: { maxCachedWorkflows: cache.bound },
});
workerState = () => worker.orders.getState();
startEncryptionMetric(payloadCodecOf(config), Runtime.instance().metricMeter);

// The SDK's Runtime already turns SIGINT/SIGTERM into worker.shutdown(); run() resolves when done.
logger.info(
  {
    taskQueue: config.temporal.taskQueue,
    address: config.temporal.address,
    version: worker.version ? versionString(worker.version) : 'unversioned',
  },
  'worker polling',
);
const running = worker.run();
await promoteOnStart(worker, clientConnection, config, logger);
// Once the Worker polls (for eager starts); on SIGTERM it stops at once: another worker's owner takes over in a lease.
const starter = startPromiseStarter({
  config,
  connection,
  stores,
  redis,
  logger,
  version: worker.version,
  onCurrent: keepSchedules,
});
buildIsCurrent = starter.isCurrent;
const deploymentFigures = worker.version
  ? startDeploymentFigures({
      deployments,
      version: worker.version,
      orderTaskQueue: config.temporal.taskQueue,
      meter: Runtime.instance().metricMeter,
      isCurrent: () => buildIsCurrent(),
      logger,
    })
  : undefined;
// The counters come from its own metrics port on loopback (src/workers/cache-figures.ts says why Redis).
const cacheFigures = startCacheFigures({
  board: new WorkerFiguresBoard(redis, config.temporal.taskQueue),
  worker: worker.orders,
  metricsUrl: config.workerMetricsPort ? `http://127.0.0.1:${config.workerMetricsPort}/metrics` : null,
  logger,
});
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void starter.stop();
    void cacheFigures.stop();
    deploymentFigures?.stop();
  });
try {
  await running;
} finally {
  await Promise.all([starter.stop(), cacheFigures.stop()]);
  clocks.stop();
  await Promise.allSettled([connection.close(), clientConnection.close(), pool.end(), redis.quit(), health?.close()]);
  // The last activities' and workflows' spans are still buffered.
  await tracing?.shutdown();
  logger.info('worker stopped');
}
