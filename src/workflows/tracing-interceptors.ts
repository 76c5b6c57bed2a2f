/**
 * Not a workflow: OpenTelemetry's workflow interceptors as this app bundles them into every worker
 * (src/workers/bundle.ts says why they are always there), used only where the caller traced.
 *
 * The package's interceptors trace every workflow: without a trace in the start's headers they
 * open root spans, and their context manager (an async-context store per workflow) makes every
 * promise of the workflow thread copy its state. With tracing off that cost a worker 3.3× its CPU
 * per order (docs/performance.md#what-tracing-costs). Here a workflow, signal, Update or query is
 * handed to them only when its headers carry a sampled trace, i.e. when the API's sampler
 * (OTEL_TRACES_SAMPLER) chose it; everything else runs as if they were not bundled. The headers are
 * part of the history, so a replay takes the same branch as the first run: deterministic.
 */
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow/index.js';
import type { WorkflowInboundCallsInterceptor, WorkflowInterceptorsFactory, WorkflowOutboundCallsInterceptor } from '@temporalio/workflow';
import { carriesSampledTrace } from './trace-header.js';

export const interceptors: WorkflowInterceptorsFactory = () => {
  // Created on first need: constructing them creates the package's tracer and context manager.
  let otelInbound: OpenTelemetryInboundInterceptor | undefined;
  let otelOutbound: OpenTelemetryOutboundInterceptor | undefined;
  const inboundOtel = () => (otelInbound ??= new OpenTelemetryInboundInterceptor());
  const outboundOtel = () => (otelOutbound ??= new OpenTelemetryOutboundInterceptor());
  /** Decided once, by the start's headers: the workflow's own outbound calls are traced with it. */
  let workflowTraced = false;

  const inbound: WorkflowInboundCallsInterceptor = {
    execute: (input, next) => {
      workflowTraced = carriesSampledTrace(input.headers);
      return workflowTraced ? inboundOtel().execute(input, next) : next(input);
    },
    handleSignal: (input, next) => (carriesSampledTrace(input.headers) ? inboundOtel().handleSignal(input, next) : next(input)),
    handleUpdate: (input, next) => (carriesSampledTrace(input.headers) ? inboundOtel().handleUpdate(input, next) : next(input)),
    validateUpdate: (input, next) => (carriesSampledTrace(input.headers) ? inboundOtel().validateUpdate(input, next) : next(input)),
    handleQuery: (input, next) => (carriesSampledTrace(input.headers) ? inboundOtel().handleQuery(input, next) : next(input)),
  };
  const outbound: WorkflowOutboundCallsInterceptor = {
    scheduleActivity: (input, next) => (workflowTraced ? outboundOtel().scheduleActivity(input, next) : next(input)),
    scheduleLocalActivity: (input, next) => (workflowTraced ? outboundOtel().scheduleLocalActivity(input, next) : next(input)),
    startChildWorkflowExecution: (input, next) => (workflowTraced ? outboundOtel().startChildWorkflowExecution(input, next) : next(input)),
    continueAsNew: (input, next) => (workflowTraced ? outboundOtel().continueAsNew(input, next) : next(input)),
    signalWorkflow: (input, next) => (workflowTraced ? outboundOtel().signalWorkflow(input, next) : next(input)),
    getLogAttributes: (input, next) => (workflowTraced ? outboundOtel().getLogAttributes(input, next) : next(input)),
  };
  return { inbound: [inbound], outbound: [outbound], internals: [new OpenTelemetryInternalsInterceptor()] };
};
