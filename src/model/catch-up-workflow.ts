/** The catch-up's contract (docs/fault-tolerance.md, "Catching up with Stripe"): types and constants only (bundled). */
/** The Schedule that runs the catch-up every STRIPE_CATCH_UP_INTERVAL; one per task queue, as the reconciler's. */
export function catchUpScheduleId(taskQueue: string): string {
  return `flash-checkout-payment-catch-up-${taskQueue}`;
}

export interface CatchUpInput {
  /** A registered provider with a catch-up (src/payments/providers/registry.ts): `stripe`. */
  provider: string;
  /** Events younger than this (seconds) are left to the webhook: the run reads up to now minus it. */
  settleSeconds: number;
}

/** What one run read, and what became of each event (the intake's outcomes). */
export interface CatchUpResult {
  /** The window read, in the provider's `created` seconds. */
  createdFrom: number;
  createdUpTo: number;
  events: number;
  outcomes: Record<string, number>;
}
