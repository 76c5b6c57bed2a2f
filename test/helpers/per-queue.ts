/**
 * For a test file whose tests each run on a task queue of their own: the app's clients once, then
 * per test an API (optionally with an OrderWorkflowClient that injects a fault) and, when the test wants
 * one, a worker on that queue. A test that withholds its worker, or wraps its activities, so never
 * changes what another test's orders meet.
 */
import type { Server } from 'node:http';
import { composeApi, createApp, type ApiSubstitutes } from '../../src/api/app.js';
import type { AppConfig } from '../../src/config/index.js';
import type { OwedPayment } from '../../src/db/refunds.js';
import { createLogger } from '../../src/infra/logger.js';
import { testConfig } from './env.js';
import { openStackClients, type StackClients } from './stack-clients.js';
import { listen } from './http.js';
import { startTestWorker, type TestWorker, type WrapActivities } from './worker.js';
import type { PaymentSignals } from '../../src/payments/receiver.js';

export interface PerQueueTestbed extends StackClients {
  /** The variables it was opened with (over testConfig's): another process on the same stack starts from them. */
  env: Record<string, string>;
  /**
   * A production worker on `taskQueue`, running until close(), with the starter of pending orders
   * beside it unless `starter: false` (a test that shows what happens before anything starts them).
   */
  startWorker(
    taskQueue: string,
    options?: {
      wrapActivities?: WrapActivities;
      starter?: boolean;
      /** The reconciler's start of owed refunds on a short period, kept to `scope`'s rows (startTestWorker). */
      refunds?: { everyMs?: number; scope?: (row: OwedPayment) => boolean };
    },
  ): Promise<void>;
  /** The API on `taskQueue` (with `substitutes` in place of its own parts when given); its base URL. */
  serve(
    taskQueue: string,
    substitutes?: ApiSubstitutes,
    /** `env`: variables of this API's own that differ from the testbed's (another build's settings). */
    options?: { env?: Record<string, string> },
  ): Promise<string>;
  /** Closes every server and worker it started, then the clients. */
  close(): Promise<void>;
}

export async function openPerQueueTestbed(env: Record<string, string>): Promise<PerQueueTestbed> {
  const clients = await openStackClients(testConfig(env));
  const { config, stores, redis, temporal } = clients;
  const servers: Server[] = [];
  const workers: TestWorker[] = [];
  const owners: PaymentSignals[] = [];
  const onQueue = (taskQueue: string): AppConfig => ({ ...config, temporal: { ...config.temporal, taskQueue } });
  return {
    ...clients,
    env,
    async startWorker(taskQueue, { wrapActivities, starter, refunds } = {}) {
      workers.push(
        await startTestWorker({
          config: onQueue(taskQueue),
          stores,
          redis,
          // As the worker process runs: its reconciler and catch-up call Temporal (the catch-up's payment Signals).
          temporal,
          ...(wrapActivities ? { wrapActivities } : {}),
          ...(starter === false ? { starter } : {}),
          ...(refunds ? { refunds } : {}),
        }),
      );
    },
    async serve(taskQueue, substitutes = {}, { env: own } = {}) {
      const apiConfig = own ? testConfig({ ...env, ...own }) : config;
      const clients = {
        config: { ...apiConfig, temporal: { ...apiConfig.temporal, taskQueue } },
        redis,
        stores,
        temporal,
        logger: createLogger(config, 'test'),
      };
      const parts = composeApi(clients, substitutes);
      owners.push(parts.payments);
      return listen(createApp(parts), servers);
    },
    async close() {
      await Promise.all(owners.map((owner) => owner.stop()));
      for (const server of servers) server.close();
      await Promise.all(workers.map((worker) => worker.close()));
      await clients.close();
    },
  };
}
