/** A use case saying no: a stable, documented error code and a message; src/api/errors.ts maps codes to HTTP. */
export const REFUSAL_CODES = [
  'INVALID_REQUEST',
  'INVALID_SIGNATURE',
  'FORBIDDEN',
  'SKU_NOT_FOUND',
  'ORDER_NOT_FOUND',
  'SALE_EXISTS',
  'SOLD_OUT',
  'SALE_NOT_ACTIVE',
  'PURCHASE_LIMIT_EXCEEDED',
  'TOO_MANY_CANCELLATIONS',
  'NOT_CANCELLABLE',
  'ORDER_FAILED',
  'IDEMPOTENCY_KEY_REUSED',
  'UNAVAILABLE',
  'OUTCOME_UNKNOWN',
  'NO_LINE',
  'LINE_NOT_OPEN',
  'NOT_IN_LINE',
  'CHALLENGE_REQUIRED',
  'NOT_ADMITTED',
  'ADMISSION_INVALID',
  'ADMISSION_NOT_YOURS',
  'ADMISSION_EXPIRED',
  'ADMISSION_USED',
  'NOT_VERSIONED',
  'SMOKE_ORDER_FAILED',
  'CURSOR_EXPIRED',
  'ROTATION_IN_OVERLAP',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

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
