/**
 * One floor phase of the pipeline benchmark: a fresh floor worker on its own task queue, the same
 * warm-up as ours (that many workflows started and done, not measured), then N floor workflows
 * started C at a time through the same client as ours and measured as ours are (bench/phase.ts).
 *
 * "Done" is the floor's local activity having run, counted by the floor worker itself
 * (bench/floor/done-count.ts): the point where ours' persistOrder has written its row, and a signal
 * that costs the measured processes nothing beyond a counter. The workflows are left waiting, as
 * ours' orders are: the stack is thrown away, and on external servers nothing polls the queue.
 */
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { ManagedProcess } from '../../src/stack/process.js';
import { measurePhase, startUntilDone, type PhaseMeasurement, type ServerPids } from '../phase.js';
import { startFloorWorker, type WorkerLaunch } from '../processes.js';
import { timedStarts } from '../starts.js';
import { readPublishedCount } from './done-count.js';
import { FLOOR_WORKFLOW_TYPE, type FloorWorkflow } from './workflows.js';

export interface FloorPhaseOptions extends WorkerLaunch {
  temporal: Client;
  /** Built once per run (bench/floor/bundle.ts). */
  bundlePath: string;
  servers: ServerPids;
  orders: number;
  concurrency: number;
  warmupOrders: number;
  /** Told of the phase's worker while it runs, so an interrupted run can stop it. */
  running: (worker: ManagedProcess | undefined) => void;
}

export async function runFloorPhase(taskQueue: string, options: FloorPhaseOptions): Promise<PhaseMeasurement> {
  const { temporal, concurrency } = options;
  const doneFile = join(options.workDir, `${taskQueue}.done`);
  const worker = await startFloorWorker({ ...options, taskQueue, doneFile });
  options.running(worker);
  try {
    const done = () => readPublishedCount(doneFile);
    const start = (count: number, ids: string) =>
      timedStarts(
        count,
        concurrency,
        async (i) => `${ids}-${i}`,
        async (workflowId) => {
          await temporal.workflow.start<typeof FloorWorkflow>(FLOOR_WORKFLOW_TYPE, { workflowId, taskQueue, args: [] });
        },
      );
    await startUntilDone(options.warmupOrders, done, () => start(options.warmupOrders, `${taskQueue}-w`));
    // Counted from here: the warm-up's completions are in the worker's count.
    const base = await done();
    const { measurement } = await measurePhase({
      kind: 'floor',
      taskQueue,
      orders: options.orders,
      servers: options.servers,
      workerPid: worker.pid,
      done: async () => (await done()) - base,
      start: () => start(options.orders, `${taskQueue}-m`),
      doneMeans: 'floor workflows ran their local activity',
    });
    return measurement;
  } finally {
    await worker.stop();
    options.running(undefined);
  }
}
