/**
 * The real app against the test stack, started the way the API test files need it: the app's own
 * clients (MySQL pool and store, Redis, Temporal client and order client), a production worker on
 * its own task queue with the prebuilt bundle, and the API on a free port. One place, so every
 * API test file starts and closes the app alike.
 */
import { randomUUID } from 'node:crypto';
import { ShopperAuth } from '../../src/api/auth.js';
import { startApi, type RunningApi } from '../../src/api/server.js';
import type { Logger } from '../../src/infra/logger.js';
import type { OrderWorkflowClient } from '../../src/order/workflow-client.js';
import type { OrderLookup } from '../../src/order/lookup.js';
import type { OrderWorkerOptions } from '../../src/workers/worker.js';
import { testConfig } from './env.js';
import type { OrderWorkers } from '../../src/workers/worker.js';
import { startTestWorker, type WrapActivities } from './worker.js';
import { orderAccess } from './orders.js';
import { openStackClients, type StackClients } from './stack-clients.js';

/** The admin token of the API test files (ADMIN_TOKEN). */
export const TEST_ADMIN_TOKEN = 'test-admin-token';
/** What most API test files run with: dev login on (the dashboard's helpers), a known admin token, warnings only. */
export const API_TEST_ENV = {
  AUTH_DEV_LOGIN: 'true',
  ADMIN_TOKEN: TEST_ADMIN_TOKEN,
  LOG_LEVEL: 'warn',
  // The files probe refusals by the dozen from one address; test/admin.test.ts checks the limit itself.
  RATE_LIMIT_AUTH_FAILURES: '1000/1m',
} as const;

export interface TestApp extends StackClients {
  orders: OrderWorkflowClient;
  /** Over `orders`, without breakers; finds orders pending their start in the app's own sales. */
  lookup: OrderLookup;
  worker: OrderWorkers;
  api: RunningApi;
  auth: ShopperAuth;
  /** Stops the API, drains the worker, closes every client. */
  close(): Promise<void>;
}

/**
 * Starts the app with `env` over the test stack's configuration; its task queue is
 * `<name>-<uuid>` unless `env` names one, so files running side by side never share a worker.
 */
export async function startTestApp(
  name: string,
  env: Record<string, string> = {},
  options: {
    apiLogger?: Logger;
    worker?: {
      wrapActivities?: WrapActivities;
      metricMeter?: OrderWorkerOptions['metricMeter'];
      cacheFigures?: { metricsUrl: string | null; everyMs?: number };
    };
  } = {},
): Promise<TestApp> {
  const clients = await openStackClients(testConfig({ TEMPORAL_TASK_QUEUE: `${name}-${randomUUID()}`, ...env }));
  const { config, stores, redis, temporal } = clients;
  const { orders, lookup } = orderAccess(temporal, stores, config.temporal.taskQueue, clients.inventory);
  const worker = await startTestWorker({ config, stores, redis, ...options.worker });
  const api = await startApi(config, 0, options.apiLogger ? { logger: options.apiLogger } : {});
  return {
    ...clients,
    orders,
    lookup,
    worker: worker.worker,
    api,
    auth: new ShopperAuth(config),
    async close() {
      await api.close();
      await worker.close();
      await clients.close();
    },
  };
}
