/**
 * OpenTelemetry tracing, off unless asked for: one trace per request, from the API's HTTP span
 * through Redis, MySQL and the Temporal client call into the workflow and each of its activities
 * (Temporal carries the context in its headers). docs/operations.md#tracing says how to turn it on.
 *
 * Configured by the standard variables only:
 *  - OTEL_TRACES_EXPORTER: `zipkin` (OTEL_EXPORTER_ZIPKIN_ENDPOINT), `otlp` (HTTP/protobuf to
 *    OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or `console`. Unset or `none`:
 *    no SDK, no interceptors, no cost. OTEL_SDK_DISABLED=true turns it off too.
 *  - OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (read here as the SDK reads them: samplerFromEnv),
 *    e.g. `parentbased_traceidratio` and `0.01` so a sale traces one checkout in a hundred.
 *  - OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
 *
 * Everything stays on OpenTelemetry's 1.x line, the one @temporalio/interceptors-opentelemetry
 * depends on: a second SDK copy would start traces the other never joins.
 */
import { createRequire } from 'node:module';
import {
  context as otelContext,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Link,
  type SpanKind,
} from '@opentelemetry/api';
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

/** The exporters this app can send spans to (OTEL_TRACES_EXPORTER). */
export const TRACE_EXPORTERS = ['zipkin', 'otlp', 'console'] as const;
export type TraceExporterName = (typeof TRACE_EXPORTERS)[number];

/** Which exporter the environment asks for; undefined when tracing is off. Throws on a name it does not know. */
export function traceExporterFromEnv(env: NodeJS.ProcessEnv = process.env): TraceExporterName | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const name = (env.OTEL_TRACES_EXPORTER ?? '').trim().toLowerCase();
  if (name === '' || name === 'none') return undefined;
  if (!(TRACE_EXPORTERS as readonly string[]).includes(name)) {
    throw new Error(`OTEL_TRACES_EXPORTER=${name} is not one of ${TRACE_EXPORTERS.join(', ')}, none`);
  }
  return name as TraceExporterName;
}

/** This process's tracing, once started: what the worker needs for the workflow spans, and how to flush. */
export interface Tracing {
  readonly exporter: TraceExporterName;
  readonly resource: Resource;
  readonly spanProcessor: SpanProcessor;
  /** Exports what is buffered, then stops. */
  shutdown(): Promise<void>;
}

let active: Tracing | undefined;

/** The tracing this process started, if any. */
export function activeTracing(): Tracing | undefined {
  return active;
}

/** Health checks, metrics scrapes and the docs are polled all day: they would bury the checkouts' traces. */
const UNTRACED_PATHS = /^\/(healthz|livez|readyz|metrics|openapi\.json|docs)(\/|\?|$)/;

/**
 * Starts tracing for this process when OTEL_TRACES_EXPORTER asks for it; does nothing otherwise.
 * Call it before the app opens any connection: the instrumentations patch ioredis, mysql2 and http
 * as they are loaded (see loadInstrumentedModules).
 */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Tracing | undefined {
  if (active) return active;
  const exporterName = traceExporterFromEnv(env);
  if (!exporterName) return undefined;
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the process's own name.
  const resource = Resource.default()
    .merge(new Resource({ [ATTR_SERVICE_NAME]: serviceName }))
    .merge(envDetectorSync.detect());
  const spanProcessor = new BatchSpanProcessor(createExporter(exporterName));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor], sampler: samplerFromEnv(env) });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (request) => UNTRACED_PATHS.test(request.url ?? ''),
        // The app's own outgoing HTTP is the exporter's: tracing it would trace the traces.
        ignoreOutgoingRequestHook: () => true,
      }),
      // A span per command, but only within a trace: the reconciler's and starter's background
      // commands would otherwise each be a trace of one span.
      new IORedisInstrumentation({ requireParentSpan: true }),
      new MySQL2Instrumentation(),
    ],
  });
  loadInstrumentedModules();
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

/**
 * OTEL_TRACES_SAMPLER(_ARG) as the SDK reads them (default `parentbased_always_on`), with one
 * change: a trace never starts at a lone Redis or MySQL command. Background work (the payment
 * owner, the starter's lease, the reconciler's reads) would otherwise each make a trace of one span
 * at the sampling ratio. Traces start at a request or a Temporal call.
 */
function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase() || 'parentbased_always_on';
  const arg =
    env.OTEL_TRACES_SAMPLER_ARG === undefined || env.OTEL_TRACES_SAMPLER_ARG.trim() === ''
      ? 1
      : Number(env.OTEL_TRACES_SAMPLER_ARG);
  const base = name.replace(/^parentbased_/, '');
  let ratio: number;
  if (base === 'always_on') ratio = 1;
  else if (base === 'always_off') ratio = 0;
  else if (base === 'traceidratio') {
    if (!Number.isFinite(arg) || arg < 0 || arg > 1)
      throw new Error(`OTEL_TRACES_SAMPLER_ARG=${env.OTEL_TRACES_SAMPLER_ARG} is not a ratio between 0 and 1`);
    ratio = arg;
  } else
    throw new Error(
      `OTEL_TRACES_SAMPLER=${name} is not one of always_on, always_off, traceidratio (each also parentbased_)`,
    );
  const root = new NoStoreRootsSampler(new TraceIdRatioBasedSampler(ratio));
  return name.startsWith('parentbased_') ? new ParentBasedSampler({ root }) : root;
}

/** Samples a new trace by `ratio`, unless its first span is a database or Redis command. */
class NoStoreRootsSampler implements Sampler {
  constructor(private readonly ratio: Sampler) {}
  shouldSample(
    context: Context,
    traceId: string,
    spanName: string,
    spanKind: SpanKind,
    attributes: Attributes,
    links: Link[],
  ): SamplingResult {
    // Both instrumentations name the store in db.system ('mysql', 'redis') when they start a span.
    if (attributes['db.system'] !== undefined) return { decision: SamplingDecision.NOT_RECORD };
    return this.ratio.shouldSample(context, traceId, spanName, spanKind, attributes, links);
  }
  toString(): string {
    return `NoStoreRoots{${this.ratio.toString()}}`;
  }
}

function createExporter(name: TraceExporterName): SpanExporter {
  switch (name) {
    case 'zipkin':
      // OTEL_EXPORTER_ZIPKIN_ENDPOINT, default http://localhost:9411/api/v2/spans.
      return new ZipkinExporter();
    case 'otlp':
      return new OTLPTraceExporter();
    case 'console':
      return new ConsoleSpanExporter();
  }
}

/**
 * The instrumentations hook CommonJS `require`; this app is ESM, and Node loads a CommonJS package
 * imported from ESM without going through that hook. Requiring them once here lets the hook patch
 * them (prototypes and module objects are shared with the ESM import that comes later), without
 * the experimental ESM loader hooks.
 */
function loadInstrumentedModules(): void {
  for (const name of ['http', 'https', 'ioredis', 'mysql2', 'mysql2/promise']) require(name);
}

/**
 * The current trace as W3C headers (traceparent, tracestate), to be carried through a store to a
 * later step of the same order: a checkout's promise, which the owner of starts starts in another
 * process. Undefined when tracing is off or the request is not sampled: nothing is carried then.
 */
export function traceCarrier(): Record<string, string> | undefined {
  if (!active) return undefined;
  const span = trace.getSpan(otelContext.active());
  if (!span || (span.spanContext().traceFlags & 1) === 0) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(otelContext.active(), carrier);
  return carrier.traceparent ? carrier : undefined;
}

/** Runs `fn` inside the trace `carrier` carries (traceCarrier's), so its spans and Temporal calls join it. */
export function inTrace<T>(carrier: Record<string, string> | undefined, fn: () => T): T {
  if (!active || !carrier) return fn();
  return otelContext.with(propagation.extract(otelContext.active(), carrier), fn);
}

/** The Temporal client's interceptors: the trace context into every start, signal, query and Update. */
export function temporalClientInterceptors(): ClientInterceptors | undefined {
  return active ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : undefined;
}

/**
 * With tracing on, the activity interceptors that open each activity's span, for an activity whose
 * workflow was traced (its headers carry a sampled trace: ./trace-header.ts); none
 * without tracing. An activity of an untraced workflow is not a trace of its own.
 */
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

/**
 * The sink through which the workflow interceptors (always bundled: src/workflows/tracing-interceptors.ts) hand
 * out the workflow's spans: to this process's exporter with tracing on; dropped without, so an
 * untraced worker neither exports nor logs an unregistered sink.
 */
export function workflowSpanSinks(): InjectedSinks<OpenTelemetrySinks> {
  if (active) return { exporter: makeWorkflowExporter(active.spanProcessor, active.resource) };
  return { exporter: { export: { fn: () => undefined, callDuringReplay: false } } };
}
