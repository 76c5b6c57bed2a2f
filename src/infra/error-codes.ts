/**
 * Every error code the API answers, its HTTP status and when (Markdown), read by the routes' OpenAPI errors,
 * docs/reference/errors.md (`npm run docs:reference`) and the tests. Codes are stable: extended, never renamed.
 */
import { CONFIG_DEFAULTS } from '../config/index.js';

interface ErrorCodeEntry {
  status: number;
  /** Answered by the HTTP layer itself (routing, authentication, rate limits, bugs), never by a use case's Refusal. */
  transport?: true;
  when: string;
}

export const ERROR_CODES = {
  INVALID_REQUEST: {
    status: 400,
    when: 'the request does not match its schema (body, header, query, sale window, types, fields)',
  },
  INVALID_SIGNATURE: {
    status: 400,
    when: "a webhook's signature (`Payment-Signature`, Stripe's `Stripe-Signature`) is missing, wrong or more than 5 minutes off",
  },
  UNAUTHORIZED: {
    status: 401,
    transport: true,
    when: 'no token, or one that is malformed, wrongly signed, expired, without `exp`, from another issuer or for another audience, or longer-lived than `JWT_MAX_TTL`; a wrong admin token',
  },
  FORBIDDEN: {
    status: 403,
    when: 'the order belongs to another shopper',
  },
  NOT_FOUND: {
    status: 404,
    transport: true,
    when: 'no such route; a dev route that is disabled; no such webhook endpoint, or event of it',
  },
  SKU_NOT_FOUND: {
    status: 404,
    when: 'no sale for that SKU',
  },
  ORDER_NOT_FOUND: {
    status: 404,
    when: 'no such order',
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    transport: true,
    when: 'a known path with a method it does not declare, any method (`PURGE`, `PROPFIND`, …); the `Allow` header lists the right ones',
  },
  SALE_EXISTS: {
    status: 409,
    when: 'a sale for that SKU exists already',
  },
  SOLD_OUT: {
    status: 409,
    when: 'no units left',
  },
  SALE_NOT_ACTIVE: {
    status: 409,
    when: 'before `startsAt`, or from `endsAt` on (also after an admin closed the sale)',
  },
  PURCHASE_LIMIT_EXCEEDED: {
    status: 409,
    when: 'the shopper would hold more than `perUserLimit` units (pending + awaiting payment + paid); `details.heldBy` lists the orders holding them (one may be an order whose `202` never reached the shopper)',
  },
  TOO_MANY_CANCELLATIONS: {
    status: 409,
    when: `the shopper cancelled \`MAX_CANCELS_PER_SHOPPER\` orders of this sale (${CONFIG_DEFAULTS.MAX_CANCELS_PER_SHOPPER} by default)`,
  },
  NOT_CANCELLABLE: {
    status: 409,
    when: 'the order is final, or a payment was accepted for it',
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    when: 'the `Idempotency-Key` was first used for this SKU with another quantity',
  },
  INTERNAL: {
    status: 500,
    transport: true,
    when: 'a bug (logged with its stack trace and the request id)',
  },
  RATE_LIMITED: {
    status: 429,
    transport: true,
    when: 'the shopper (checkout, order list) or client IP (dev login, webhook) spent its budget; `Retry-After` says in how many seconds to retry',
  },
  ORDER_FAILED: {
    status: 409,
    when: 'a waiting checkout (`Prefer: wait=N`) whose order failed to persist within the wait; `details` has `orderNo`, `status: "FAILED"`, `failureReason`, `statusUrl`; nothing stays reserved',
  },
  UNAVAILABLE: {
    status: 503,
    when: "a dependency is down, did not answer within the request's deadline, or its circuit breaker is open; or the process is at its limit of requests in flight. With `Retry-After`. A checkout answered this reserved nothing (Temporal or the worker being away never makes a checkout 503)",
  },
  OUTCOME_UNKNOWN: {
    status: 503,
    when: "a checkout's reserve got no answer from Redis in time and may still have run, or (with `REDIS_WAIT_REPLICAS`) it reserved but no Redis replica acknowledged the reservation in time, so a failover could still lose it: `details` has the `orderNo` and its `statusUrl`. With `Retry-After`. Retry with the same `Idempotency-Key` (it answers that order if it was reserved), or read the order",
  },
  NO_LINE: {
    status: 404,
    when: 'the sale has no waiting line (check out directly)',
  },
  LINE_NOT_OPEN: {
    status: 409,
    when: "before the line's `preQueueOpensAt`; `details.opensAt` and `Retry-After` say when",
  },
  NOT_IN_LINE: {
    status: 404,
    when: 'the shopper has no place in this line (join it first)',
  },
  CHALLENGE_REQUIRED: {
    status: 403,
    when: 'a join without the challenge header the bot-protection proxy sets (only with `LINE_CHALLENGE_HEADER`)',
  },
  NOT_ADMITTED: {
    status: 403,
    when: 'a checkout for a sale with a waiting line without an admission, or before its place was admitted',
  },
  ADMISSION_INVALID: {
    status: 403,
    when: "an `Admission-Token` this service did not sign, altered, malformed, or for a place that is no longer the shopper's",
  },
  ADMISSION_NOT_YOURS: {
    status: 403,
    when: 'an `Admission-Token` given to another shopper, or for another sale',
  },
  ADMISSION_EXPIRED: {
    status: 403,
    when: 'an admission past its `expiresAt` (join the line again for a new place)',
  },
  ADMISSION_USED: {
    status: 403,
    when: 'an admission already spent on an order',
  },
  NOT_VERSIONED: {
    status: 404,
    when: 'the workers run unversioned (`WORKER_VERSIONING=false`): no deployment to show',
  },
  SMOKE_ORDER_FAILED: {
    status: 502,
    when: "the rollout's smoke order did not persist, cancel and close on the build asked for within 30 s (the message says which step): leave that build's traffic as it is",
  },
  CURSOR_EXPIRED: {
    status: 410,
    when: 'the cursor is behind what the feed keeps (`EVENTS_RETENTION`): read again without a cursor',
  },
  ROTATION_IN_OVERLAP: {
    status: 409,
    when: "an endpoint's previous rotation still has its old secret signing (`oldSecretUntil`): rotate after it, or with `overlapSeconds: 0` to replace every secret at once",
  },
} as const satisfies Record<string, ErrorCodeEntry>;

/** Every code the API answers with. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes a use case may refuse with (src/infra/refusal.ts): all but the HTTP layer's own. */
export type RefusalCode = {
  [Code in ErrorCode]: (typeof ERROR_CODES)[Code] extends { transport: true } ? never : Code;
}[ErrorCode];

export const errorStatus = (code: ErrorCode): number => ERROR_CODES[code].status;
