// OpenTelemetry's workflow interceptors (in every bundle: src/workers/bundle.ts), only for calls whose headers (in the
// history: replays agree) carry a sampled trace; loaded on first need: a static import cost every order 1.34 × the CPU.
import type * as OtelWorkflow from '@temporalio/interceptors-opentelemetry/lib/workflow/index.js';
import type {
  WorkflowInboundCallsInterceptor,
  WorkflowInterceptorsFactory,
  WorkflowInternalsInterceptor,
  WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { carriesSampledTrace } from '../infra/trace-header.js';

let otelModule: typeof OtelWorkflow | undefined;

/** OpenTelemetry's workflow interceptors, evaluated in this workflow's module cache on first need. */
function otel(): typeof OtelWorkflow {
  // A synchronous require: the bundle carries the module, and evaluating it here adds no await.
  return (otelModule ??=
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@temporalio/interceptors-opentelemetry/lib/workflow/index.js') as typeof OtelWorkflow);
}

export const interceptors: WorkflowInterceptorsFactory = () => {
  // Created on first need: constructing them creates the package's tracer and context manager.
  let otelInbound: OtelWorkflow.OpenTelemetryInboundInterceptor | undefined;
  let otelOutbound: OtelWorkflow.OpenTelemetryOutboundInterceptor | undefined;
  const inboundOtel = () => (otelInbound ??= new (otel().OpenTelemetryInboundInterceptor)());
  const outboundOtel = () => (otelOutbound ??= new (otel().OpenTelemetryOutboundInterceptor)());
  /** Decided once, by the start's headers: the workflow's own outbound calls are traced with it. */
  let workflowTraced = false;

  const inbound: WorkflowInboundCallsInterceptor = {
    execute: (input, next) => {
      workflowTraced = carriesSampledTrace(input.headers);
      return workflowTraced ? inboundOtel().execute(input, next) : next(input);
    },
    handleSignal: (input, next) =>
      carriesSampledTrace(input.headers) ? inboundOtel().handleSignal(input, next) : next(input),
    handleUpdate: (input, next) =>
      carriesSampledTrace(input.headers) ? inboundOtel().handleUpdate(input, next) : next(input),
    validateUpdate: (input, next) =>
      carriesSampledTrace(input.headers) ? inboundOtel().validateUpdate(input, next) : next(input),
    handleQuery: (input, next) =>
      carriesSampledTrace(input.headers) ? inboundOtel().handleQuery(input, next) : next(input),
  };
  const outbound: WorkflowOutboundCallsInterceptor = {
    scheduleActivity: (input, next) => (workflowTraced ? outboundOtel().scheduleActivity(input, next) : next(input)),
    scheduleLocalActivity: (input, next) =>
      workflowTraced ? outboundOtel().scheduleLocalActivity(input, next) : next(input),
    startChildWorkflowExecution: (input, next) =>
      workflowTraced ? outboundOtel().startChildWorkflowExecution(input, next) : next(input),
    continueAsNew: (input, next) => (workflowTraced ? outboundOtel().continueAsNew(input, next) : next(input)),
    signalWorkflow: (input, next) => (workflowTraced ? outboundOtel().signalWorkflow(input, next) : next(input)),
    getLogAttributes: (input, next) => (workflowTraced ? outboundOtel().getLogAttributes(input, next) : next(input)),
  };
  // The package's internals interceptor only releases its context manager: none unless it was loaded.
  const internals: WorkflowInternalsInterceptor = {
    // Its dispose is async but awaits nothing: the body has run when the promise is returned.
    dispose: (input, next) => {
      if (otelModule) void new otelModule.OpenTelemetryInternalsInterceptor().dispose(input, next);
      else next(input);
    },
  };
  return { inbound: [inbound], outbound: [outbound], internals: [internals] };
};
