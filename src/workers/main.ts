/**
 * Worker process (`npm run worker`). SIGTERM/SIGINT start a graceful shutdown: polling stops,
 * in-flight activities finish (up to shutdownGraceTime), then connections close.
 */
import { Connection } from '@temporalio/client';
import { Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { loadConfig } from '../config/index.js';
import { createMysqlPool } from '../db/pool.js';
import { Store } from '../db/store.js';
import { createLogger } from '../infra/logger.js';
import { createRedis } from '../infra/redis.js';
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
const operator = await Connection.connect({ address: config.temporal.address });
await ensureSearchAttributes(operator, config.temporal.namespace)
  .catch((err: unknown) => logger.warn({ err }, 'could not register OrderSku, OrderUserId, OrderStatus (Keyword); register them by hand'))
  .finally(() => operator.close());
const worker = await createOrderWorker({ config, connection, store, redis, workflowBundlePath: process.env.WORKFLOW_BUNDLE_PATH || undefined });

// The SDK's Runtime already turns SIGINT/SIGTERM into worker.shutdown(); run() resolves when done.
logger.info({ taskQueue: config.temporal.taskQueue, address: config.temporal.address }, 'worker polling');
try {
  await worker.run();
} finally {
  await Promise.allSettled([connection.close(), store.close(), redis.quit()]);
  logger.info('worker stopped');
}
