/** A use case saying no: a stable, documented error code (src/infra/error-codes.ts) and a message. */
import type { RefusalCode } from './error-codes.js';

/** An answer, not a bug: no stack trace, which cost ~20 µs per sold-out answer in a burst (docs/performance.md). */
export class QuietError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(message, options);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
  }
}

export class Refusal extends QuietError {
  constructor(
    readonly code: RefusalCode,
    message: string,
    /** Facts for the caller, e.g. a failed order's number and reason. */
    readonly details?: Record<string, unknown>,
    /** For UNAVAILABLE and OUTCOME_UNKNOWN, from the dependency's breaker. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'Refusal';
  }
}

/** A request value as quoted in an error message: at most 64 characters, so a huge one is never echoed. */
export function echo(value: string): string {
  const printable = JSON.stringify(value).slice(1, -1);
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable;
}
