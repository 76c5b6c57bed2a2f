/**
 * Keeps the reconciler's Temporal Schedule in place: created at worker boot if missing, brought up
 * to date (interval, grace, task queue) if it exists. Idempotent, so every worker replica can run it.
 */
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import type { AppConfig } from '../config/index.js';
import {
  RECONCILE_WORKFLOW_TYPE,
  reconcileScheduleId,
  type ReconcileInput,
} from '../workflows/reconcile-definitions.js';
import type { ReconcileWorkflow } from '../workflows/reconcile.js';

type Settings = Pick<AppConfig, 'reconcileIntervalMs' | 'reservationGraceMs' | 'temporal'>;

export async function ensureReconcileSchedule(client: Client, config: Settings): Promise<'CREATED' | 'UPDATED'> {
  const input: ReconcileInput = { reservationGraceMs: config.reservationGraceMs };
  const action: ScheduleOptionsStartWorkflowAction<typeof ReconcileWorkflow> = {
    type: 'startWorkflow',
    workflowType: RECONCILE_WORKFLOW_TYPE,
    workflowId: `reconcile-${config.temporal.taskQueue}`,
    taskQueue: config.temporal.taskQueue,
    args: [input],
    // One run must not outlive the next: it is started again anyway.
    workflowExecutionTimeout: `${Math.max(config.reconcileIntervalMs * 4, 60_000)}ms`,
  };
  const spec = { intervals: [{ every: `${config.reconcileIntervalMs}ms` as const }] };
  // SKIP: a slow run is not stacked up behind; the next tick after it finishes does the work.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' } as const;
  const scheduleId = reconcileScheduleId(config.temporal.taskQueue);
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return 'CREATED';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
  return 'UPDATED';
}
