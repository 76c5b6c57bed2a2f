/** RefundWorkflow's activity. The row guards it, not the workflow id: a run for a refund that moved on does nothing. */
import { ApplicationFailure } from '@temporalio/common';
import type { RefundStore } from '../db/refunds.js';
import type { PaymentRow } from '../db/rows.js';
import type { RefundRunOutcome } from '../model/order-workflow.js';
import {
  ProviderChargeDisputed,
  ProviderKeyReused,
  ProviderOutcomeUnknown,
  ProviderRefusal,
  type PaymentProviderApi,
} from '../payments/provider.js';

/** Told of each refund asked or read, by what came of it (the worker's metrics). */
export interface RefundObserver {
  asked(outcome: 'REFUND_REQUESTED' | 'REFUNDED' | 'REFUND_FAILED' | 'RETRY' | 'FOLLOW'): void;
}

/** Failure types of the refund activity that Temporal retries (kept apart in the Web UI). */
export const RefundFailureTypes = {
  notAnswered: 'RefundNotAnswered',
  disputeNotRecorded: 'RefundWaitsForDispute',
  providerNotConfigured: 'RefundProviderNotConfigured',
} as const;

export function createRefundActivities(deps: {
  stores: { refunds: RefundStore; payments: { getPayment(eventId: string): Promise<PaymentRow | null> } };
  providers: Partial<Record<string, PaymentProviderApi>>;
  observer?: () => RefundObserver;
}) {
  const { stores } = deps;
  const observe = (outcome: Parameters<RefundObserver['asked']>[0]) => deps.observer?.().asked(outcome);
  /** Records where a refund got (forwards only) and answers it. */
  const recorded = async (eventId: string, progress: Parameters<RefundStore['recordRefundProgress']>[1]) => {
    await stores.refunds.recordRefundProgress({ eventId }, progress);
    observe(progress.state);
    return progress.state;
  };
  return {
    /** Asks for (or reads again) the refund its payment's row says is owed; throws what Temporal should retry. */
    async refundPayment(input: { eventId: string }): Promise<RefundRunOutcome> {
      const row = await stores.payments.getPayment(input.eventId);
      if (!row) return 'NOT_FOUND';
      if (row.outcome !== 'REFUND_REQUIRED' && row.outcome !== 'REFUND_REQUESTED') return row.outcome;
      const provider = deps.providers[row.provider];
      if (!provider)
        // Its keys were removed: the row stays owed, started again by the reconciler (or refunded by hand).
        throw ApplicationFailure.nonRetryable(
          `provider ${row.provider} is not configured on this worker`,
          RefundFailureTypes.providerNotConfigured,
        );
      if (row.outcome === 'REFUND_REQUESTED') return follow(row, provider);
      // What the provider refunded of it without us (a Dashboard refund) is not asked again: it would be refused.
      const amountCents = await stores.refunds.refundableCents(row);
      try {
        const progress =
          amountCents === 0
            ? ({ state: 'REFUNDED', refundId: null, error: 'refunded at the provider already' } as const)
            : await provider.refund({ ...row, amountCents });
        return await recorded(row.eventId, progress);
      } catch (err) {
        if (err instanceof ProviderChargeDisputed) {
          // The dispute decides: now if recorded, else once its event is (RefundStore.recordTakeback); asked again.
          if (await stores.refunds.settleByDispute(row)) {
            observe('REFUNDED');
            return 'REFUNDED';
          }
          await stores.refunds.noteRefundError(row.eventId, err.message);
          observe('RETRY');
          throw ApplicationFailure.retryable(err.message, RefundFailureTypes.disputeNotRecorded);
        }
        if (err instanceof ProviderRefusal || err instanceof ProviderKeyReused)
          return recorded(row.eventId, { state: 'REFUND_FAILED', refundId: null, error: err.message });
        // A 5xx is replayed by its key: the next ask goes under the next key, after looking for what this one made.
        if (err instanceof ProviderOutcomeUnknown)
          await stores.refunds.nextRefundKey(row.eventId, row.refundKeyAttempt);
        await stores.refunds.noteRefundError(row.eventId, describe(err));
        observe('RETRY');
        throw ApplicationFailure.retryable(describe(err), RefundFailureTypes.notAnswered);
      }
    },
  };

  /** An ended refund is recorded; one under way is answered as such, read again by its workflow. */
  async function follow(row: PaymentRow, provider: PaymentProviderApi): Promise<RefundRunOutcome> {
    const progress = await provider.followRefund(row);
    if (progress.state !== 'REFUND_REQUESTED') return recorded(row.eventId, progress);
    observe('FOLLOW');
    return 'REFUND_REQUESTED';
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 300) : String(err).slice(0, 300);
}

export type RefundActivities = ReturnType<typeof createRefundActivities>;
