/**
 * What the fault suite's traffic records of each request it sends, and what asking the keys again found: written by
 * the shoppers (toolkit/shoppers.ts), judged by the checks (chaos/checks.ts) and the freeze figures (chaos/gray.ts). It
 * imports none of them, so that none of them imports another back.
 */

/** The kinds of request the traffic sends, each with its own deadline in the API. */
export type RequestKind = 'checkout' | 'checkout-wait' | 'read' | 'webhook' | 'cancel';
export const REQUEST_KINDS: readonly RequestKind[] = ['checkout', 'checkout-wait', 'read', 'webhook', 'cancel'];

/** One HTTP attempt as its client saw it: when it was sent, how long the answer took, what it was. */
export interface RequestRecord {
  kind: RequestKind;
  /** Date.now() when it was sent. */
  sentAt: number;
  ms: number;
  /** The HTTP status, 'timeout' (no answer within the client's timeout) or 'error' (no connection). */
  outcome: number | 'timeout' | 'error';
  /** The error code of a 4xx or 5xx answer (UNAVAILABLE, OUTCOME_UNKNOWN, SOLD_OUT…). */
  code?: string;
  /** The order it was about: the one read, paid or cancelled; for a checkout, the one its answer named. */
  orderNo?: string;
}

/** Every accepted shopper's Idempotency-Key asked again: the keys whose answer named another order (or none). */
export interface SameKeyAnswers {
  asked: number;
  mismatches: Array<{ key: string; userId: string; first: string; now: string }>;
}
