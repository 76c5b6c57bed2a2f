/** Every Stripe event's one path in (webhook, catch-up); Stripe retries non-2xx for 3 days: each step is idempotent. */
import type { RecordedPaymentEvent } from '../../../db/payments.js';
import type { RefundProgress } from '../../../model/order-workflow.js';
import { Deadline } from '../../../infra/dependency-guard.js';
import { Refusal } from '../../../infra/refusal.js';
import type { ProviderEvent, ProviderTakeback } from '../../provider.js';
import type { IntakeAnswer, IntakeDeps } from '../definition.js';
import { intentOwnership, isLiveKey, MalformedStripeEvent, translateStripeEvent, verifiedStripeEvent } from './api.js';
import type { StripeSettings } from './settings.js';

export type StripeWebhookAnswer = IntakeAnswer & { type: string };

export class StripeIntake {
  constructor(
    private readonly deps: IntakeDeps & {
      settings: Pick<StripeSettings, 'webhookSecret' | 'secretKey' | 'deploymentTag' | 'currency'>;
    },
  ) {}

  /** The event if Stripe signed these bytes (else INVALID_SIGNATURE; INVALID_REQUEST when it lacks its object). */
  verify(raw: string, signature: string | undefined): ProviderEvent {
    const { webhookSecret, deploymentTag, secretKey } = this.deps.settings;
    const event = verifiedStripeEvent(webhookSecret, raw, signature);
    try {
      return translateStripeEvent(event, { deploymentTag, livemode: isLiveKey(secretKey) });
    } catch (err) {
      if (err instanceof MalformedStripeEvent) throw new Refusal('INVALID_REQUEST', err.message);
      throw err;
    }
  }

  /** `validate` checks the event's envelope once the signature holds (the route's schema), and answers its type. */
  async handle(event: ProviderEvent, validate: () => { type: string }): Promise<StripeWebhookAnswer> {
    const { type } = validate();
    return { type, ...(await this.take(event)) };
  }

  async take(event: ProviderEvent): Promise<Omit<StripeWebhookAnswer, 'type'>> {
    const { stores, logger } = this.deps;
    switch (event.kind) {
      case 'payment': {
        if (!event.intent) return this.deps.payments.handle(event.payment);
        const { providerRef, orderNo } = event.payment;
        const standing = await this.onMysql(() => stores.payments.intentStanding(providerRef ?? '', orderNo));
        const ownership = intentOwnership(standing, orderNo, event.intent, this.deps.settings.currency);
        if (ownership === 'FOREIGN') {
          logger?.info({ intentId: providerRef, orderNo }, 'an untagged intent naming no order of ours; ignored');
          return { outcome: 'IGNORED' };
        }
        if (ownership === 'MISMATCH') return this.refundMismatch(event.payment);
        return this.deps.payments.handle(event.payment);
      }
      case 'payment_failed':
        await this.onMysql(() => stores.payments.recordPaymentFailure(event.failure));
        logger?.info({ eventId: event.failure.eventId, orderNo: event.failure.orderNo }, 'payment attempt failed');
        return { outcome: 'RECORDED' };
      case 'refund': {
        const ref = { ...(event.paymentEventId ? { eventId: event.paymentEventId } : {}), refundId: event.refundId };
        const moved = await this.onMysql(() => stores.refunds.recordRefundProgress(ref, event.progress));
        if (moved || !event.taken) {
          // Not moved: already there or further on (a duplicate, or out of order).
          if (!moved)
            logger?.info({ refundId: event.refundId, state: event.progress.state }, 'refund event changed nothing');
          return { outcome: 'RECORDED' };
        }
        return this.takeBack(event.taken, event.progress);
      }
      case 'dispute':
        return this.takeBack(event.taken, null);
      case 'ignored':
        logger?.info({ type: event.type, reason: event.reason }, 'Stripe event ignored');
        return { outcome: 'IGNORED' };
    }
  }

  /** An unasked refund or a dispute: the refund of a payment we are refunding (all of it), else money taken back. */
  private async takeBack(taken: ProviderTakeback, refund: RefundProgress | null): Promise<IntakeAnswer> {
    const { stores, logger } = this.deps;
    const { payment, orderNo } = await this.onMysql(() => stores.payments.paymentOfIntent('stripe', taken.intentId));
    if (!orderNo) {
      logger?.info({ id: taken.id, intentId: taken.intentId }, 'a refund or dispute of an intent not ours; ignored');
      return { outcome: 'IGNORED' };
    }
    const beingRefunded = payment && (payment.outcome === 'REFUND_REQUIRED' || payment.outcome === 'REFUND_REQUESTED');
    if (refund && payment && beingRefunded && taken.amountCents >= payment.amountCents) {
      // An operator refunded in the Dashboard what we were to refund: our refund is that one.
      await this.onMysql(() => stores.refunds.recordRefundProgress({ eventId: payment.eventId }, refund));
      return { outcome: 'RECORDED' };
    }
    const { changed, status } = await this.onMysql(() =>
      stores.refunds.recordTakeback({ ...taken, provider: 'stripe', orderNo }),
    );
    if (changed) {
      this.deps.takenBack?.(taken.kind);
      this.deps.changed?.(orderNo);
      logger?.warn(
        { orderNo, kind: taken.kind, id: taken.id, status: taken.providerStatus, orderStatus: status },
        'the provider took money back from an order',
      );
    }
    return { outcome: 'RECORDED' };
  }

  /** Our money on another order's intent: recorded REFUND_REQUIRED in the insert, so no order row decides it. */
  private async refundMismatch(payment: RecordedPaymentEvent): Promise<IntakeAnswer> {
    const { stores, source = 'webhook', logger } = this.deps;
    const { row } = await this.onMysql(() => stores.payments.recordPayment(payment, source, 'INTENT_MISMATCH'));
    if (row.refundReason !== 'INTENT_MISMATCH') return { outcome: 'DUPLICATE' };
    logger?.warn(
      { intentId: payment.providerRef, orderNo: payment.orderNo },
      'a payment on an intent of ours that its order did not open; refunding it',
    );
    return { outcome: 'REFUND_REQUIRED', refundReason: 'INTENT_MISMATCH' };
  }

  private onMysql<T>(call: () => Promise<T>): Promise<T> {
    return this.deps.mysql.call(Deadline.in(this.deps.mysqlMs), call, { evenWhenOpen: true });
  }
}
