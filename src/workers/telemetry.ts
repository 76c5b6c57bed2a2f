/**
 * The worker's side of "one log stream, one metrics port": the SDK's Runtime logger onto pino, and the app's activity
 * metrics through the SDK's meter, served by the Runtime's Prometheus exporter beside its `temporal_…` metrics.
 */
import type { LogLevel, LogMetadata, Logger as TemporalLogger, MetricCounter, MetricMeter } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { ClockWatch } from '../infra/clocks.js';
import type { Logger } from '../infra/logger.js';

const PINO_LEVEL = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
} as const satisfies Record<LogLevel, string>;

/** A Temporal Logger writing to pino; metadata (workflowId, sdkComponent, …) becomes JSON fields. */
export function pinoRuntimeLogger(logger: Logger): TemporalLogger {
  const log = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    const method = PINO_LEVEL[level] ?? 'info';
    if (meta) logger[method](meta, message);
    else logger[method](message);
  };
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}

/** Names of the app's activity metrics, as the Runtime's Prometheus exporter serves them. */
export const ACTIVITY_METRICS = {
  outcomes: 'flash_activity_outcomes',
  retries: 'flash_activity_retries',
} as const;

/** Counts activity executions by type and outcome, and retries (attempt > 1), leaving the activities unchanged. */
export function activityMetricsInterceptor(meter: MetricMeter): ActivityInterceptorsFactory {
  const outcomes: MetricCounter = meter.createCounter(
    ACTIVITY_METRICS.outcomes,
    '',
    'Activity executions by activity_type and outcome (completed, failed)',
  );
  const retries: MetricCounter = meter.createCounter(
    ACTIVITY_METRICS.retries,
    '',
    'Activity executions that were retries (attempt > 1), by activity_type',
  );
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const tags = { activity_type: ctx.info.activityType, task_queue: ctx.info.taskQueue };
        if (ctx.info.attempt > 1) retries.add(1, tags);
        try {
          const result = await next(input);
          outcomes.add(1, { ...tags, outcome: 'completed' });
          return result;
        } catch (err) {
          outcomes.add(1, { ...tags, outcome: 'failed' });
          throw err;
        }
      },
    },
  });
}

/**
 * Temporal's clock seen from here: a task's scheduled time (Temporal's clock) minus its start here (ours) is at most
 * their offset, so the largest sample bounds it from below. Temporal has no call that reads its clock.
 */
export function temporalClockInterceptor(clocks: Pick<ClockWatch, 'observeAtLeast'>): ActivityInterceptorsFactory {
  return (ctx) => {
    // A local activity is scheduled by this process itself.
    if (!ctx.info.isLocal) clocks.observeAtLeast('temporal', ctx.info.currentAttemptScheduledTimestampMs - Date.now());
    return {};
  };
}
