/** The worker's Temporal Schedules, made or updated (idempotent) by the current build's workers: reconcile, catch-up */
import { CATCH_UP_WORKFLOW_TYPE, RECONCILE_WORKFLOW_TYPE } from '../model/workflow-types.js';
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptionsAction,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import type { AppConfig } from '../config/index.js';
import { reconcileScheduleId } from '../model/reconcile-workflow.js';
import type { ReconcileWorkflow } from '../workflows/reconcile.js';
import { catchUpScheduleId } from '../model/catch-up-workflow.js';
import type { PaymentCatchUpWorkflow } from '../workflows/payments.js';
import { catchUpProvider } from '../payments/providers/definition.js';
import { paymentProviders } from '../payments/providers/registry.js';

export async function ensureReconcileSchedule(
  client: Client,
  config: Pick<AppConfig, 'reconcileIntervalMs' | 'reservationGraceMs' | 'temporal'>,
): Promise<'CREATED' | 'UPDATED'> {
  const { taskQueue } = config.temporal;
  return keepIntervalSchedule(client, reconcileScheduleId(taskQueue), config.reconcileIntervalMs, {
    type: 'startWorkflow',
    workflowType: RECONCILE_WORKFLOW_TYPE,
    workflowId: `reconcile-${taskQueue}`,
    taskQueue,
    args: [{ reservationGraceMs: config.reservationGraceMs }],
    // One run must not outlive the next: it is started again anyway.
    workflowExecutionTimeout: `${Math.max(config.reconcileIntervalMs * 4, 60_000)}ms`,
  } satisfies ScheduleOptionsStartWorkflowAction<typeof ReconcileWorkflow>);
}

export async function ensureCatchUpSchedule(
  client: Client,
  config: Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret' | 'temporal'>,
): Promise<'CREATED' | 'UPDATED' | 'NONE'> {
  const { taskQueue } = config.temporal;
  const caughtUp = catchUpProvider(paymentProviders(config));
  // Left as it is: a worker without the keys (a mixed deploy) must not turn the others' off; its runs read nothing.
  if (!caughtUp) return 'NONE';
  const everyMs = caughtUp.definition.catchUpIntervalMs!(caughtUp.settings);
  // Events younger than one interval (at most a minute) are still the webhook's.
  const settleSeconds = Math.max(1, Math.min(60, Math.round(everyMs / 1000)));
  return keepIntervalSchedule(client, catchUpScheduleId(taskQueue), everyMs, {
    type: 'startWorkflow',
    workflowType: CATCH_UP_WORKFLOW_TYPE,
    workflowId: `payment-catch-up-${taskQueue}`,
    taskQueue,
    args: [{ provider: caughtUp.definition.name, settleSeconds }],
    workflowExecutionTimeout: '30 minutes',
  } satisfies ScheduleOptionsStartWorkflowAction<typeof PaymentCatchUpWorkflow>);
}

async function keepIntervalSchedule(
  client: Client,
  scheduleId: string,
  everyMs: number,
  action: ScheduleOptionsAction,
): Promise<'CREATED' | 'UPDATED'> {
  const spec = { intervals: [{ every: `${everyMs}ms` as const }] };
  // SKIP: a slow run is not stacked up behind; the next tick after it finishes does the work.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' } as const;
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return 'CREATED';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
  return 'UPDATED';
}
