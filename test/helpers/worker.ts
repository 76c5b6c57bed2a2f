/**
 * A production worker (src/workers/worker.ts) for a test file: on the test stack's Temporal (or
 * the connection given, e.g. the time-skipping server's), with the workflow bundle the global
 * setup built once, polling until close(), and beside it the owner of promised orders' starts, as
 * in the worker process. One place for what every worker-running file did by hand.
 */
import { NativeConnection, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { createLogger } from '../../src/infra/logger.js';
import type { Activities } from '../../src/activities/index.js';
import {
  createOrderWorker,
  startPromiseStarter,
  workerActivities,
  type OrderWorkerOptions,
  type RunningPromiseStarter,
} from '../../src/workers/worker.js';

/** Wraps the real activities to inject faults around them (never instead of them). */
export type WrapActivities = (real: Activities) => Partial<Activities>;

export interface TestWorker {
  worker: Worker;
  /** The owner of promised orders' starts; null when the test starts orders by hand (`starter: false`). */
  starter: RunningPromiseStarter | null;
  /** Stops the owner, stops polling, lets in-flight activities finish, closes the connection it opened. */
  close(): Promise<void>;
}

export async function startTestWorker(
  options: Omit<OrderWorkerOptions, 'connection' | 'workflowBundlePath' | 'config' | 'activities'> &
    Omit<Parameters<typeof workerActivities>[0], 'config'> & {
      config: Parameters<typeof workerActivities>[0]['config'] & Parameters<typeof startPromiseStarter>[0]['config'];
      connection?: NativeConnection;
      wrapActivities?: WrapActivities;
      /** false: no owner of starts (a test that starts its orders itself, or checks that nothing else does). */
      starter?: boolean;
    },
): Promise<TestWorker> {
  const own = options.connection
    ? undefined
    : await NativeConnection.connect({ address: options.config.temporal.address });
  const connection = options.connection ?? own;
  if (!connection) throw new Error('no Temporal connection for the test worker');
  const real = workerActivities(options);
  const activities = options.wrapActivities ? { ...real, ...options.wrapActivities(real) } : real;
  const worker = await createOrderWorker({
    ...options,
    connection,
    activities,
    workflowBundlePath: inject('workflowBundlePath'),
  });
  const running = worker.run();
  const starter =
    options.starter === false
      ? null
      : startPromiseStarter({
          config: options.config,
          connection,
          store: options.store,
          redis: options.redis,
          logger: createLogger({ logLevel: 'warn' }, 'worker'),
        });
  return {
    worker,
    starter,
    async close() {
      await starter?.stop();
      worker.shutdown();
      await running;
      await own?.close();
    },
  };
}
