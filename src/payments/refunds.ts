/**
 * The owner of refunds through a provider's API (docs/fault-tolerance.md, "Refunds"), one per
 * worker process. Every REFUND_REQUIRED payment of such a provider, whoever recorded it (the order's
 * workflow, or the webhook's owner for an order that never existed), is refunded:
 *
 *   take     the row is due (MySQL's clock): claimRefund leases it to one owner for LEASE_MS
 *   ask      provider.refund, with an idempotency key per payment event: a retry after a lost
 *            answer, or by another owner after this one died, returns the same refund; after a
 *            5xx (which the key replays) the next key, once the provider's refunds of the
 *            payment were looked through for one the 5xx hid
 *   record   the provider's answer: REFUND_REQUESTED (pending), REFUNDED, or REFUND_FAILED when the
 *            provider refused the request as invalid (an operator takes over); no answer (a
 *            timeout, a 5xx): due again after a backoff (2 s doubling to 5 min), asked again
 *
 * The provider's refund webhooks move REFUND_REQUESTED on (RefundStore.recordRefundProgress, forwards
 * only); the owner also reads a REFUND_REQUESTED refund again from the provider (followRefund) on a
 * backoff of 1 min doubling to 6 h until it ends, since its final event may never come. Nothing
 * here is in memory only: a killed owner leaves rows that are due again when their lease ends.
 */
import type { PaymentRow } from '../db/rows.js';
import type { RefundStore } from '../db/refunds.js';
import type { ReportStore } from '../db/reports.js';
import type { Logger } from '../infra/logger.js';
import type { ProviderWithApi } from '../model/order-workflow.js';
import {
  ProviderChargeDisputed,
  ProviderKeyReused,
  ProviderOutcomeUnknown,
  ProviderRefusal,
  type PaymentProviderApi,
} from './provider.js';

export interface RefundOwnerPacing {
  /** How often due refunds are looked for. */
  everyMs: number;
  /** How long a taken refund is this owner's (longer than a provider call may take). */
  leaseMs: number;
  /** The first retry after an unanswered request, doubling up to maxBackoffMs. */
  firstBackoffMs: number;
  maxBackoffMs: number;
  /** Refunds asked at once, and taken per look. */
  concurrency: number;
  batch: number;
  /** A refund under way (REFUND_REQUESTED) is read again after followFirstMs, doubling up to followMaxMs. */
  followFirstMs: number;
  followMaxMs: number;
}

export const DEFAULT_REFUND_PACING: RefundOwnerPacing = {
  everyMs: 2_000,
  leaseMs: 30_000,
  firstBackoffMs: 2_000,
  maxBackoffMs: 300_000,
  concurrency: 4,
  batch: 50,
  followFirstMs: 60_000,
  followMaxMs: 6 * 3_600_000,
};

/** Told of each refund asked (its outcome) and of the refunds waiting (the worker's metrics). */
export interface RefundObserver {
  asked(outcome: 'REFUND_REQUESTED' | 'REFUNDED' | 'REFUND_FAILED' | 'RETRY' | 'FOLLOW'): void;
  waiting(counts: Record<'REFUND_REQUIRED' | 'REFUND_REQUESTED' | 'REFUND_FAILED', number>): void;
  /** Paid orders whose money the provider took back, and open disputes due within 72 h (every 30 s). */
  takenBack?(counts: { DISPUTED: number; REFUNDED: number; disputesDueWithin72h: number }): void;
}

/** How often the taken-back gauges are read: a scan of the orders by status, so not at every look. */
const TAKEN_BACK_EVERY_MS = 30_000;

export class RefundOwner {
  private readonly pacing: RefundOwnerPacing;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<number> | undefined;
  private stopped = false;
  private takenBackReadAt = 0;

  constructor(
    private readonly deps: {
      stores: { refunds: RefundStore; reports: ReportStore };
      providers: Partial<Record<ProviderWithApi, PaymentProviderApi>>;
      logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
      observer?: RefundObserver;
      pacing?: Partial<RefundOwnerPacing>;
    },
  ) {
    this.pacing = { ...DEFAULT_REFUND_PACING, ...deps.pacing };
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => {
      if (!this.pass) void this.runOnce();
    }, this.pacing.everyMs);
    this.timer.unref();
  }

  /** Stops looking and waits for the pass under way (each request is bounded by the provider's timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.pass;
  }

  /** One look: takes the refunds due and asks for them; how many were asked. Never throws. */
  runOnce(): Promise<number> {
    this.pass ??= this.refundDue().finally(() => (this.pass = undefined));
    return this.pass;
  }

  private async refundDue(): Promise<number> {
    let rows: PaymentRow[];
    try {
      rows = await this.deps.stores.refunds.refundsDue(this.pacing.batch);
      if (this.deps.observer) this.deps.observer.waiting(await this.deps.stores.reports.providerRefundCounts());
      if (this.deps.observer?.takenBack && Date.now() - this.takenBackReadAt >= TAKEN_BACK_EVERY_MS) {
        this.takenBackReadAt = Date.now();
        this.deps.observer.takenBack(await this.deps.stores.reports.takenBackCounts());
      }
    } catch (err) {
      // MySQL is away: the refunds are safe in their rows; the next look finds them.
      this.deps.logger?.warn({ err: describe(err) }, 'could not look for refunds due; looking again shortly');
      return 0;
    }
    let asked = 0;
    const queue = [...rows];
    const lanes = Array.from({ length: Math.min(this.pacing.concurrency, queue.length) }, async () => {
      for (let row = queue.shift(); row && !this.stopped; row = queue.shift()) if (await this.refund(row)) asked++;
    });
    await Promise.all(lanes);
    return asked;
  }

  /** Takes one refund and asks its provider; false when another owner had it. */
  private async refund(row: PaymentRow): Promise<boolean> {
    const { stores, logger, observer } = this.deps;
    try {
      if (!(await stores.refunds.claimRefund(row.eventId, this.pacing.leaseMs))) return false;
      const provider = row.provider === 'generic' ? undefined : this.deps.providers[row.provider];
      if (!provider) {
        // Its keys were removed: kept for when they are back (an operator can refund by hand meanwhile).
        await stores.refunds.deferRefund(
          row.eventId,
          this.pacing.maxBackoffMs,
          `provider ${row.provider} is not configured`,
        );
        return true;
      }
      const attempts = row.refundAttempts + 1;
      if (row.outcome === 'REFUND_REQUESTED') return await this.follow(row, provider, attempts);
      try {
        const progress = await provider.refund(row);
        await stores.refunds.recordRefundProgress({ eventId: row.eventId }, progress, this.pacing.followFirstMs);
        observer?.asked(progress.state);
        logger?.info({ eventId: row.eventId, orderNo: row.orderNo, ...progress }, 'refund asked of the provider');
      } catch (err) {
        if (err instanceof ProviderChargeDisputed) {
          // The dispute decides: recorded already (this payment judged after it arrived), now; else when its event
          // is recorded (RefundStore.recordTakeback). Asked again meanwhile, in case none comes.
          if (await stores.refunds.settleByDispute(row)) {
            observer?.asked('REFUNDED');
          } else {
            await stores.refunds.deferRefund(row.eventId, this.backoff(attempts), err.message);
            observer?.asked('RETRY');
          }
          logger?.info({ eventId: row.eventId, orderNo: row.orderNo }, 'a dispute holds the charge; it decides');
        } else if (err instanceof ProviderRefusal || err instanceof ProviderKeyReused) {
          await stores.refunds.recordRefundProgress(
            { eventId: row.eventId },
            { state: 'REFUND_FAILED', refundId: null, error: err.message },
          );
          observer?.asked('REFUND_FAILED');
          logger?.error(
            { eventId: row.eventId, orderNo: row.orderNo, err: err.message },
            'the provider refused the refund; an operator must refund this payment',
          );
        } else {
          // A 5xx is replayed by its key: the next ask goes under the next key, after looking for what this one made.
          if (err instanceof ProviderOutcomeUnknown)
            await stores.refunds.nextRefundKey(row.eventId, row.refundKeyAttempt);
          await stores.refunds.deferRefund(row.eventId, this.backoff(attempts), describe(err));
          observer?.asked('RETRY');
          logger?.warn(
            { eventId: row.eventId, attempts, err: describe(err) },
            'refund not answered; asking again later',
          );
        }
      }
      return true;
    } catch (err) {
      // MySQL failed around the request: the lease ends and the row is due again (the key dedupes the ask).
      logger?.warn(
        { eventId: row.eventId, err: describe(err) },
        'refund not recorded; it is due again after its lease',
      );
      return false;
    }
  }

  /**
   * Reads a refund under way again (its final event may never come: Stripe stops retrying after three days): an
   * ended one is recorded (forwards only), one still under way is read again later, 1 min doubling to 6 h.
   */
  private async follow(row: PaymentRow, provider: PaymentProviderApi, attempts: number): Promise<boolean> {
    const { stores, logger, observer } = this.deps;
    try {
      const progress = await provider.followRefund(row);
      if (progress.state !== 'REFUND_REQUESTED') {
        await stores.refunds.recordRefundProgress({ eventId: row.eventId }, progress);
        observer?.asked(progress.state);
        logger?.info({ eventId: row.eventId, orderNo: row.orderNo, ...progress }, 'refund followed to its end');
        return true;
      }
      await stores.refunds.deferRefund(
        row.eventId,
        this.followBackoff(attempts),
        'refund still under way at the provider',
      );
    } catch (err) {
      await stores.refunds.deferRefund(row.eventId, this.followBackoff(attempts), describe(err));
      logger?.warn({ eventId: row.eventId, err: describe(err) }, 'refund not read; reading it again later');
    }
    observer?.asked('FOLLOW');
    return true;
  }

  /** 1 min, 2 min, 4 min … up to followMaxMs (±20 %): a pending refund ends in minutes to days. */
  private followBackoff(attempts: number): number {
    const base = Math.min(this.pacing.followMaxMs, this.pacing.followFirstMs * 2 ** Math.max(0, attempts - 2));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /** 2 s, 4 s, 8 s … up to maxBackoffMs, with ±20 % jitter so one outage's retries spread out. */
  private backoff(attempts: number): number {
    const base = Math.min(this.pacing.maxBackoffMs, this.pacing.firstBackoffMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 300) : String(err).slice(0, 300);
}
