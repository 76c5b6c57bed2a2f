/**
 * Every Stripe event's one path in, from its webhook (POST /api/payments/stripe) or the catch-up. Stripe retries any
 * answer but a 2xx for three days, so every step is idempotent. Only this deployment's intents are ours:
 * - payment_intent.succeeded: the record-first path (`payments.handle`); another deployment's: IGNORED; tagged ours
 *   but not its order's intent, or in another currency: REFUND_REQUIRED (INTENT_MISMATCH).
 * - payment_intent.payment_failed: recorded (payment_failures) for the admin view.
 * - refund.*, charge.refund.updated: ours (metadata names our payment event) move its refund forwards; a Dashboard
 *   refund is the refund of a payment being refunded, else money taken back.
 * - charge.dispute.*: money taken back (docs/fault-tolerance.md, "Money taken back"). Anything else: IGNORED.
 */
import type { RecordedPaymentEvent } from '../../../db/payments.js';
import type { RefundProgress } from '../../../model/order-workflow.js';
import { Deadline } from '../../../infra/dependency-guard.js';
import type { RefundReason, StripeWebhookOutcome } from '../../../model/order-workflow.js';
import { Refusal } from '../../../infra/refusal.js';
import type { ProviderEvent, ProviderTakeback } from '../../provider.js';
import type { IntakeDeps } from '../definition.js';
import { intentOwnership, MalformedStripeEvent, StripeEvents, StripeSignatureError } from './api.js';
import type { StripeSettings } from './settings.js';

export interface StripeWebhookAnswer {
  type: string;
  outcome: StripeWebhookOutcome;
  refundReason?: RefundReason;
}

export class StripeIntake {
  private readonly events: StripeEvents;

  constructor(
    private readonly deps: IntakeDeps & {
      settings: Pick<StripeSettings, 'webhookSecret' | 'secretKey' | 'deploymentTag' | 'currency'>;
    },
  ) {
    this.events = new StripeEvents(deps.settings);
  }

  /** The event if Stripe signed these bytes (else INVALID_SIGNATURE; INVALID_REQUEST when it lacks its object). */
  verify(raw: string, signature: string | undefined): ProviderEvent {
    try {
      return this.events.parse(raw, signature);
    } catch (err) {
      if (err instanceof StripeSignatureError) throw new Refusal('INVALID_SIGNATURE', err.message);
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
        const moved = await this.onMysql(() =>
          stores.refunds.recordRefundProgress(
            { ...(event.paymentEventId ? { eventId: event.paymentEventId } : {}), refundId: event.refundId },
            event.progress,
          ),
        );
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
  private async takeBack(
    taken: ProviderTakeback,
    refund: RefundProgress | null,
  ): Promise<{ outcome: 'RECORDED' | 'IGNORED' }> {
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

  /** Our money on another order's intent: recorded REFUND_REQUIRED in the insert, so no order row judges it. */
  private async refundMismatch(
    payment: RecordedPaymentEvent,
  ): Promise<{ outcome: 'REFUND_REQUIRED' | 'DUPLICATE'; refundReason?: RefundReason }> {
    const source = this.deps.source ?? 'webhook';
    const { row } = await this.onMysql(() =>
      this.deps.stores.payments.recordPayment(payment, source, 'INTENT_MISMATCH'),
    );
    if (row.refundReason !== 'INTENT_MISMATCH') return { outcome: 'DUPLICATE' };
    this.deps.logger?.warn(
      { intentId: payment.providerRef, orderNo: payment.orderNo },
      'a payment on an intent of ours that its order did not open; refunding it',
    );
    return { outcome: 'REFUND_REQUIRED', refundReason: 'INTENT_MISMATCH' };
  }

  private onMysql<T>(call: () => Promise<T>): Promise<T> {
    return this.deps.mysql.call(Deadline.in(this.deps.mysqlMs), call, { evenWhenOpen: true });
  }
}
