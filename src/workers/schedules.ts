/**
 * The worker's Temporal Schedules, created or brought up to date at boot (idempotent, so every replica runs it): the
 * reconciler's, and the payment catch-up's where a provider with a catch-up (Stripe) is configured.
 */
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptionsAction,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import type { AppConfig } from '../config/index.js';
import { RECONCILE_WORKFLOW_TYPE, reconcileScheduleId, type ReconcileInput } from '../reconcile/definitions.js';
import type { ReconcileWorkflow } from '../workflows/reconcile.js';
import { CATCH_UP_WORKFLOW_TYPE, catchUpScheduleId, type CatchUpInput } from '../payments/catch-up-definitions.js';
import type { PaymentCatchUpWorkflow } from '../workflows/payments.js';
import { catchUpProvider } from '../payments/providers/definition.js';
import { paymentProviders } from '../payments/providers/registry.js';

export async function ensureReconcileSchedule(
  client: Client,
  config: Pick<AppConfig, 'reconcileIntervalMs' | 'reservationGraceMs' | 'temporal'>,
): Promise<'CREATED' | 'UPDATED'> {
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
  return keepIntervalSchedule(
    client,
    reconcileScheduleId(config.temporal.taskQueue),
    config.reconcileIntervalMs,
    action,
  );
}

export async function ensureCatchUpSchedule(
  client: Client,
  config: Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret' | 'temporal'>,
): Promise<'CREATED' | 'UPDATED' | 'NONE'> {
  const scheduleId = catchUpScheduleId(config.temporal.taskQueue);
  const caughtUp = catchUpProvider(paymentProviders(config));
  // Left as it is: a worker without the provider's keys (a mixed deploy) must not turn the others' catch-up off; a run
  // on such a worker reads nothing and moves no cursor.
  if (!caughtUp) return 'NONE';
  const everyMs = caughtUp.definition.catchUpIntervalMs!(caughtUp.settings);
  // Events younger than one interval (at most a minute) are still the webhook's.
  const settleSeconds = Math.max(1, Math.min(60, Math.round(everyMs / 1000)));
  const input: CatchUpInput = { provider: caughtUp.definition.name, settleSeconds };
  const action: ScheduleOptionsStartWorkflowAction<typeof PaymentCatchUpWorkflow> = {
    type: 'startWorkflow',
    workflowType: CATCH_UP_WORKFLOW_TYPE,
    workflowId: `payment-catch-up-${config.temporal.taskQueue}`,
    taskQueue: config.temporal.taskQueue,
    args: [input],
    workflowExecutionTimeout: '30 minutes',
  };
  return keepIntervalSchedule(client, scheduleId, everyMs, action);
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
