/** Whether a Temporal call's headers carry a sampled trace; imports only @temporalio/common: it runs in the sandbox. */
import { defaultPayloadConverter, type Headers } from '@temporalio/common';

// TRACE_HEADER of @temporalio/interceptors-opentelemetry.
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
