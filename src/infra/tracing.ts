/**
 * OpenTelemetry tracing from the standard OTEL_* variables, off (no SDK, no cost) unless asked (operations.md#tracing).
 * Stays on OpenTelemetry 1.x as @temporalio/interceptors-opentelemetry does: a second SDK starts traces none joins.
 */
import { createRequire } from 'node:module';
import { context as otelContext, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { MySQL2Instrumentation } from '@opentelemetry/instrumentation-mysql2';
import { Resource, envDetectorSync } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { ClientInterceptors } from '@temporalio/client';
import {
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
  makeWorkflowExporter,
  type OpenTelemetrySinks,
} from '@temporalio/interceptors-opentelemetry';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';
import { carriesSampledTrace } from './trace-header.js';

const require = createRequire(import.meta.url);

/** OTEL_TRACES_EXPORTER's values besides `none`; zipkin's endpoint: OTEL_EXPORTER_ZIPKIN_ENDPOINT. */
const EXPORTERS = {
  zipkin: () => new ZipkinExporter(),
  otlp: () => new OTLPTraceExporter(),
  console: () => new ConsoleSpanExporter(),
} satisfies Record<string, () => SpanExporter>;
export type TraceExporterName = keyof typeof EXPORTERS;

/** Undefined when tracing is off; throws on an unknown name. */
export function traceExporterFromEnv(env: NodeJS.ProcessEnv = process.env): TraceExporterName | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const name = (env.OTEL_TRACES_EXPORTER ?? '').trim().toLowerCase();
  if (name === '' || name === 'none') return undefined;
  if (!Object.hasOwn(EXPORTERS, name)) {
    throw new Error(`OTEL_TRACES_EXPORTER=${name} is not one of ${Object.keys(EXPORTERS).join(', ')}, none`);
  }
  return name as TraceExporterName;
}

/** This process's tracing: what the worker needs for workflow spans, and how to flush. */
export interface Tracing {
  readonly exporter: TraceExporterName;
  readonly resource: Resource;
  readonly spanProcessor: SpanProcessor;
  /** Exports what is buffered, then stops. */
  shutdown(): Promise<void>;
}

let active: Tracing | undefined;

/** Undefined while tracing is off. */
export function activeTracing(): Tracing | undefined {
  return active;
}

/** Polled all day: they would bury the checkouts' traces. */
const UNTRACED_PATHS = /^\/(healthz|livez|readyz|metrics|openapi\.json|docs)(\/|\?|$)/;

/** Call it before the app opens any connection: the instrumentations patch ioredis, mysql2 and http. */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Tracing | undefined {
  if (active) return active;
  const exporterName = traceExporterFromEnv(env);
  if (!exporterName) return undefined;
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the process's own name.
  const resource = Resource.default()
    .merge(new Resource({ [ATTR_SERVICE_NAME]: serviceName }))
    .merge(envDetectorSync.detect());
  const spanProcessor = new BatchSpanProcessor(EXPORTERS[exporterName]());
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor], sampler: samplerFromEnv(env) });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (request) => UNTRACED_PATHS.test(request.url ?? ''),
        // The only outgoing HTTP is the exporter's: tracing it would trace the traces.
        ignoreOutgoingRequestHook: () => true,
      }),
      // Only within a trace: background commands would each be a one-span trace.
      new IORedisInstrumentation({ requireParentSpan: true }),
      new MySQL2Instrumentation(),
    ],
  });
  // The instrumentations hook CommonJS `require`, which ESM imports bypass: requiring here patches what they share.
  for (const name of ['http', 'https', 'ioredis', 'mysql2', 'mysql2/promise']) require(name);
  active = {
    exporter: exporterName,
    resource,
    spanProcessor,
    shutdown: async () => {
      active = undefined;
      await provider.shutdown();
    },
  };
  return active;
}

// OTEL_TRACES_SAMPLER(_ARG) as the SDK reads them, with NoStoreRootsSampler deciding new traces.
function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase() || 'parentbased_always_on';
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim() ? Number(env.OTEL_TRACES_SAMPLER_ARG) : 1;
  const ratios = new Map([
    ['always_on', 1],
    ['always_off', 0],
    ['traceidratio', arg],
  ]);
  const ratio = ratios.get(name.replace(/^parentbased_/, ''));
  if (ratio === undefined)
    throw new Error(
      `OTEL_TRACES_SAMPLER=${name} is not one of always_on, always_off, traceidratio (each also parentbased_)`,
    );
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1)
    throw new Error(`OTEL_TRACES_SAMPLER_ARG=${env.OTEL_TRACES_SAMPLER_ARG} is not a ratio between 0 and 1`);
  const root = new NoStoreRootsSampler(new TraceIdRatioBasedSampler(ratio));
  return name.startsWith('parentbased_') ? new ParentBasedSampler({ root }) : root;
}

/** Background work's lone Redis or MySQL commands would each be a one-span trace: traces start at requests. */
class NoStoreRootsSampler implements Sampler {
  constructor(private readonly ratio: Sampler) {}
  shouldSample(...args: Parameters<Sampler['shouldSample']>): SamplingResult {
    const [, , , , attributes] = args;
    // Both store instrumentations set db.system when they start a span.
    if (attributes['db.system'] !== undefined) return { decision: SamplingDecision.NOT_RECORD };
    return this.ratio.shouldSample(...args);
  }
  toString(): string {
    return `NoStoreRoots{${this.ratio.toString()}}`;
  }
}

/** The current sampled trace as W3C headers, carried through a store to a later step (a checkout's pending start). */
export function traceCarrier(): Record<string, string> | undefined {
  if (!active) return undefined;
  const span = trace.getSpan(otelContext.active());
  if (!span || (span.spanContext().traceFlags & 1) === 0) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(otelContext.active(), carrier);
  return carrier.traceparent ? carrier : undefined;
}

/** Runs `fn` inside traceCarrier's trace, so its spans and Temporal calls join it. */
export function inTrace<T>(carrier: Record<string, string> | undefined, fn: () => T): T {
  if (!active || !carrier) return fn();
  return otelContext.with(propagation.extract(otelContext.active(), carrier), fn);
}

/** Puts the trace context into every start, signal, query and Update. */
export function temporalClientInterceptors(): ClientInterceptors | undefined {
  return active ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : undefined;
}

/** Opens a span only for an activity whose headers carry a sampled trace, never a trace of its own. */
export function tracingActivityInterceptors(): ActivityInterceptorsFactory[] {
  if (!active) return [];
  return [
    (ctx) => {
      const traced = new OpenTelemetryActivityInboundInterceptor(ctx);
      return {
        inbound: {
          execute: (input, next) => (carriesSampledTrace(input.headers) ? traced.execute(input, next) : next(input)),
        },
        outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
      };
    },
  ];
}

/** Workflow spans go to the exporter, or are dropped so that an untraced worker logs no unregistered sink. */
export function workflowSpanSinks(): InjectedSinks<OpenTelemetrySinks> {
  if (active) return { exporter: makeWorkflowExporter(active.spanProcessor, active.resource) };
  return { exporter: { export: { fn: () => undefined, callDuringReplay: false } } };
}
