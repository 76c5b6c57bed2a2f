/**
 * The catch-up's activity: the provider's events not delivered (pending or given up, `delivery_success=false`),
 * created since the cursor kept in MySQL, taken in one by one through the intake every webhook event takes
 * (StripeIntake.take). A payment is recorded RECEIVED (evidence source `catch-up`) and delivered to its order by the
 * API processes' payment owners (their sweep leases it), exactly as a webhook's payment whose process died.
 *
 * The window: from the cursor minus OVERLAP_SECONDS (Stripe's clock and ours differ; an event listed late is read
 * again) up to now minus `settleSeconds` (younger events are still the webhook's). The cursor moves to the
 * window's end only once the whole window was read, so a run that fails is read again by the next. Every step is
 * idempotent: an event read twice, or read and delivered, changes nothing the second time.
 */
import { Context } from '@temporalio/activity';
import { isMysqlFailure, type Store } from '../db/store.js';
import { DependencyGuard } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import type { PaymentProviderApi } from '../payments/provider.js';
import type { StripeIntake } from '../payments/providers/stripe/intake.js';
import type { CatchUpInput, CatchUpResult } from '../payments/catch-up-definitions.js';

/**
 * Read again at every run: events Stripe listed late, and the difference between its clock and ours (seconds under
 * NTP). Each undelivered event is taken about OVERLAP / interval + 1 times, a duplicate after the first.
 */
export const OVERLAP_SECONDS = 60;
/** The first run reads this far back: Stripe retries an event for three days, so an older one was given up long ago. */
export const FIRST_LOOKBACK_SECONDS = 3 * 24 * 3_600;

export function createCatchUpActivities(deps: {
  store: Store;
  /** The provider's API, where its keys are configured. */
  stripe: PaymentProviderApi | null;
  intake: StripeIntake | null;
  logger?: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  return {
    async catchUpProviderEvents(input: CatchUpInput): Promise<CatchUpResult> {
      const { store, stripe, intake } = deps;
      const nowSeconds = Math.floor(now() / 1000);
      const createdUpTo = nowSeconds - input.settleSeconds;
      const outcomes: Record<string, number> = {};
      if (!stripe || !intake) return { createdFrom: createdUpTo, createdUpTo, events: 0, outcomes };
      const cursor = (await store.eventCursor(input.provider)) ?? nowSeconds - FIRST_LOOKBACK_SECONDS;
      const createdFrom = Math.max(0, cursor - OVERLAP_SECONDS);
      let events = 0;
      for await (const event of stripe.undeliveredEvents({ createdFrom, createdUpTo })) {
        const { outcome } = await intake.take(event);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        events++;
        heartbeat(events);
      }
      await store.moveEventCursor(input.provider, createdUpTo);
      if (events > 0)
        deps.logger?.info(
          { createdFrom, createdUpTo, events, outcomes },
          'caught up with events Stripe did not deliver',
        );
      return { createdFrom, createdUpTo, events, outcomes };
    },
  };
}

/** Heartbeats inside an activity (a backlog is read page by page); a no-op outside one (tests call it directly). */
function heartbeat(events: number): void {
  try {
    Context.current().heartbeat(events);
  } catch {
    // not in an activity
  }
}

/** A guard that never opens, for the worker's MySQL calls (bounded by their timeout only). */
export function workerMysqlGuard(): DependencyGuard {
  return DependencyGuard.neverOpen('mysql', isMysqlFailure);
}

export type CatchUpActivities = ReturnType<typeof createCatchUpActivities>;
