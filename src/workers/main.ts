/**
 * Worker process (`npm run worker`). SIGTERM/SIGINT start a graceful shutdown: polling stops,
 * in-flight activities finish (up to shutdownGraceTime), then connections close.
 */
import { Client, Connection } from '@temporalio/client';
import { Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { loadConfig } from '../config/index.js';
import { createMysqlPool } from '../db/pool.js';
import { Store } from '../db/store.js';
import { createLogger } from '../infra/logger.js';
import { createRedis } from '../infra/redis.js';
import { ensureReconcileSchedule } from './reconcile-schedule.js';
import { createWorkerConnection, ensureSearchAttributes } from './temporal.js';
import { createOrderWorker } from './worker.js';

const config = loadConfig();
const logger = createLogger(config, 'worker');
Runtime.install({ telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } } });

const store = new Store(createMysqlPool(config, { connectionLimit: 50 }));
const redis = createRedis(config);
redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
const connection = await createWorkerConnection(config);
// The dev server of `npm start` registers these at launch; an external cluster may not have them.
const clientConnection = await Connection.connect({ address: config.temporal.address });
await ensureSearchAttributes(clientConnection, config.temporal.namespace).catch((err: unknown) =>
  logger.warn({ err }, 'could not register OrderSku, OrderUserId, OrderStatus (Keyword); register them by hand'),
);
const temporal = new Client({ connection: clientConnection, namespace: config.temporal.namespace, workflow: { queryRejectCondition: 'NOT_OPEN' } });
// Every worker makes sure the reconciler runs; the schedule is created once and kept up to date.
// A failure must not stop orders from being processed: it is logged and tried again.
const keepSchedule = (): void => {
  ensureReconcileSchedule(temporal, config).then(
    (schedule) => logger.info({ schedule, everyMs: config.reconcileIntervalMs, graceMs: config.reservationGraceMs }, 'reconcile schedule in place'),
    (err: unknown) => {
      logger.error({ err }, 'could not create or update the reconcile schedule; trying again in 30 s');
      setTimeout(keepSchedule, 30_000).unref();
    },
  );
};
keepSchedule();
const worker = await createOrderWorker({ config, connection, store, redis, temporal, workflowBundlePath: process.env.WORKFLOW_BUNDLE_PATH || undefined });

// The SDK's Runtime already turns SIGINT/SIGTERM into worker.shutdown(); run() resolves when done.
logger.info({ taskQueue: config.temporal.taskQueue, address: config.temporal.address }, 'worker polling');
try {
  await worker.run();
} finally {
  await Promise.allSettled([connection.close(), clientConnection.close(), store.close(), redis.quit()]);
  logger.info('worker stopped');
}
