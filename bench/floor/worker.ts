/**
 * `tsx bench/floor/worker.ts`: the floor's worker, its own process so its CPU is read from /proc
 * as ours' is. The SDK's defaults (Runtime, worker options) except maxConcurrentWorkflowTaskExecutions,
 * which is ours' value; the app's environment for the Temporal connection (address, namespace,
 * TLS), so both workers reach the same server alike. Its own task queue (FLOOR_TASK_QUEUE), the
 * bundle built by the bench (FLOOR_BUNDLE_PATH), completions published to FLOOR_DONE_FILE, whose
 * first write says the worker is ready. SIGTERM/SIGINT: the SDK's Runtime shuts the worker down.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../../src/config/index.js';
import { temporalConnectionSettings } from '../../src/infra/temporal-connection.js';
import { temporalDataConverter } from '../../src/infra/data-converter.js';
import { createFloorActivities } from './activities.js';
import { publishedCounter } from './done-count.js';

const required = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const taskQueue = required('FLOOR_TASK_QUEUE');
const codePath = required('FLOOR_BUNDLE_PATH');
const doneFile = required('FLOOR_DONE_FILE');

const config = loadConfig();
const connection = await NativeConnection.connect(temporalConnectionSettings(config));
const done = publishedCounter(doneFile);
try {
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowBundle: { codePath },
    // The bench's client (src/infra/temporal-connection.ts) encrypts, as ours does: the floor pays the codec too.
    dataConverter: temporalDataConverter(config),
    activities: createFloorActivities(() => done.increment()),
    maxConcurrentWorkflowTaskExecutions: 100,
  });
  // The file appears once the worker exists: the bench's readiness probe.
  done.flush();
  await worker.run();
} finally {
  done.flush();
  await connection.close();
}
