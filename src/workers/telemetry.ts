/** One log stream, one metrics port: the Runtime's logger onto pino, app metrics on its Prometheus exporter. */
import type {
  LogLevel,
  LogMetadata,
  Logger as TemporalLogger,
  MetricMeter,
  NumericMetricValueType,
} from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { ClockWatch } from '../infra/clocks.js';
import type { Logger } from '../infra/logger.js';

/** A Temporal Logger writing to pino; metadata (workflowId, sdkComponent, …) becomes JSON fields. */
export function pinoRuntimeLogger(logger: Logger): TemporalLogger {
  const log: TemporalLogger['log'] = (level, message, meta) => {
    const known = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'].includes(level);
    const method = (known ? level.toLowerCase() : 'info') as Lowercase<LogLevel>;
    logger[method](meta ?? {}, message);
  };
  const at = (level: LogLevel) => (message: string, meta?: LogMetadata) => log(level, message, meta);
  return { log, trace: at('TRACE'), debug: at('DEBUG'), info: at('INFO'), warn: at('WARN'), error: at('ERROR') };
}

const metric = <I>(name: string, on: (meter: MetricMeter) => I) => ({ name, on });
export const counter = (name: string, help: string) => metric(name, (meter) => meter.createCounter(name, '', help));
export const gauge = (name: string, help: string, unit = '', type: NumericMetricValueType = 'int') =>
  metric(name, (meter) => meter.createGauge(name, type, unit, help));
export const histogram = (name: string, help: string, unit: string) =>
  metric(name, (meter) => meter.createHistogram(name, 'int', unit, help));
type Metric = { name: string; on: (meter: MetricMeter) => unknown };

/** A group of app metrics: their names (what tests and dashboards read), and the instruments on a meter. */
export function metricGroup<S extends Record<string, Metric>>(specs: S) {
  const each = <T>(value: (spec: Metric) => T) =>
    Object.fromEntries(Object.entries(specs).map(([key, spec]) => [key, value(spec)]));
  return {
    names: each((spec) => spec.name) as { [K in keyof S]: string },
    on: (meter: MetricMeter) => each((spec) => spec.on(meter)) as { [K in keyof S]: ReturnType<S[K]['on']> },
  };
}

const ACTIVITY = metricGroup({
  outcomes: counter('flash_activity_outcomes', 'Activity executions by activity_type and outcome (completed, failed)'),
  retries: counter('flash_activity_retries', 'Activity executions that were retries (attempt > 1), by activity_type'),
});
export const ACTIVITY_METRICS = ACTIVITY.names;

/** Counts activity executions by type and outcome, and retries (attempt > 1), leaving the activities unchanged. */
export function activityMetricsInterceptor(meter: MetricMeter): ActivityInterceptorsFactory {
  const { outcomes, retries } = ACTIVITY.on(meter);
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

/** Temporal has no clock read: a task's scheduled time (its clock) minus our start bounds the offset from below. */
export function temporalClockInterceptor(clocks: Pick<ClockWatch, 'observeAtLeast'>): ActivityInterceptorsFactory {
  return (ctx) => {
    // A local activity is scheduled by this process itself.
    if (!ctx.info.isLocal) clocks.observeAtLeast('temporal', ctx.info.currentAttemptScheduledTimestampMs - Date.now());
    return {};
  };
}
