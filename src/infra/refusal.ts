/**
 * A use case saying no: a stable code (one of the API's documented error codes) and a message for
 * people. The use cases (src/order, src/sales) throw it and know
 * nothing of HTTP; src/api/errors.ts gives each code its status, in one place.
 */
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
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/**
 * An error that is an answer, not a bug, so it carries no stack trace: capturing one costs about
 * 20 µs, which was the largest single cost of a sold-out answer under a burst (docs/performance.md).
 */
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
    /** Machine-readable facts for the caller (a failed order's number and reason). */
    readonly details?: Record<string, unknown>,
    /** When to try again, for UNAVAILABLE and OUTCOME_UNKNOWN: a dependency's breaker knows it. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'Refusal';
  }
}

/**
 * A value from the request (a path parameter, a path) as it may appear in an error message: at
 * most 64 characters, so an error never echoes a 15 KB parameter back (nor fills the logs with it).
 */
export function echo(value: string): string {
  const printable = JSON.stringify(value).slice(1, -1);
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable;
}
