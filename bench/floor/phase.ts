/**
 * One floor phase of the pipeline benchmark: fresh floor workers (as many as ours get) on their own
 * task queue, the same warm-up as ours (that many workflows started and done, not measured), then N
 * floor workflows started C at a time through the same client as ours and measured as ours are
 * (bench/phase.ts).
 *
 * "Done" is the floor's local activity having run, counted by each floor worker itself in a file of
 * its own (bench/floor/done-count.ts) and summed: the point where ours' persistOrder has written its
 * row, and a signal that costs the measured processes nothing beyond a counter. The workflows are
 * left waiting, as ours' orders are: the stack is thrown away, and on external servers nothing
 * polls the queue.
 */
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { ManagedProcess } from '../../stack/process.js';
import {
  measuredWorkers,
  measurePhase,
  startUntilDone,
  type MeasuredProcess,
  type PhaseMeasurement,
} from '../phase.js';
import { startFloorWorker, startWorkers, stopAll, type WorkerLaunch } from '../processes.js';
import { timedStarts } from '../starts.js';
import { readPublishedCount } from './done-count.js';
import { FLOOR_WORKFLOW_TYPE, type FloorWorkflow } from './workflows.js';

export interface FloorPhaseOptions extends WorkerLaunch {
  temporal: Client;
  /** Built once per run (bench/floor/bundle.ts). */
  bundlePath: string;
  /** The stack's servers whose CPU is measured beside the workers'. */
  servers: MeasuredProcess[];
  /** Floor workers on the phase's task queue. */
  workers: number;
  orders: number;
  concurrency: number;
  warmupOrders: number;
  /** Told of the phase's workers while they run, so an interrupted run can stop them. */
  running: (workers: ManagedProcess[]) => void;
}

export async function runFloorPhase(taskQueue: string, options: FloorPhaseOptions): Promise<PhaseMeasurement> {
  const { temporal, concurrency } = options;
  const doneFiles = Array.from({ length: options.workers }, (_, i) =>
    join(options.workDir, `${taskQueue}-${i + 1}.done`),
  );
  const workers = await startWorkers(options.workers, (i) =>
    startFloorWorker({ ...options, name: `floor-worker-${i}`, taskQueue, doneFile: doneFiles[i - 1]! }),
  );
  options.running(workers);
  try {
    const done = async () =>
      (await Promise.all(doneFiles.map(readPublishedCount))).reduce((sum, count) => sum + count, 0);
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
      processes: [...options.servers, ...measuredWorkers(workers)],
      done: async () => (await done()) - base,
      start: () => start(options.orders, `${taskQueue}-m`),
      doneMeans: 'floor workflows ran their local activity',
    });
    return measurement;
  } finally {
    await stopAll(workers);
    options.running([]);
  }
}
