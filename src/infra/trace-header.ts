/**
 * Whether a Temporal call's headers carry a sampled W3C trace context, as OpenTelemetry's Temporal
 * interceptors write it (header `_tracer-data`). The workflow interceptors
 * (./tracing-interceptors.ts) and the activity interceptors (src/infra/tracing.ts) trace only then:
 * a workflow or activity is traced when its caller's sampler chose it, never as a root of its own.
 * Imports only @temporalio/common, so it runs in the workflow sandbox and in Node alike.
 */
import { defaultPayloadConverter, type Headers } from '@temporalio/common';

/** The header OpenTelemetry's Temporal interceptors carry the context in (TRACE_HEADER of the package). */
const TRACE_HEADER = '_tracer-data';
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-([0-9a-f]{2})$/;

export function carriesSampledTrace(headers: Headers | undefined): boolean {
  const payload = headers?.[TRACE_HEADER];
  if (!payload) return false;
  try {
    const carrier = defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload);
    // traceparent: version-traceid-parentid-flags; bit 0 of the flags is "sampled".
    const flags = typeof carrier.traceparent === 'string' ? TRACEPARENT.exec(carrier.traceparent)?.[1] : undefined;
    return flags !== undefined && (parseInt(flags, 16) & 1) === 1;
  } catch {
    return false;
  }
}
