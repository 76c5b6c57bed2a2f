/**
 * A production worker (src/workers/worker.ts) for a test file: on the test stack's Temporal (or
 * the connection given, e.g. the time-skipping server's), with the workflow bundle the global
 * setup built once, polling until close(). One place for what every worker-running file did by hand.
 */
import { NativeConnection, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { createOrderWorker, type OrderWorkerOptions } from '../../src/workers/worker.js';

export interface TestWorker {
  worker: Worker;
  /** Stops polling, lets in-flight activities finish, closes the connection it opened. */
  close(): Promise<void>;
}

export async function startTestWorker(
  options: Omit<OrderWorkerOptions, 'connection' | 'workflowBundlePath'> & { connection?: NativeConnection },
): Promise<TestWorker> {
  const own = options.connection ? undefined : await NativeConnection.connect({ address: options.config.temporal.address });
  const connection = options.connection ?? own;
  if (!connection) throw new Error('no Temporal connection for the test worker');
  const worker = await createOrderWorker({ ...options, connection, workflowBundlePath: inject('workflowBundlePath') });
  const running = worker.run();
  return {
    worker,
    async close() {
      worker.shutdown();
      await running;
      await own?.close();
    },
  };
}
