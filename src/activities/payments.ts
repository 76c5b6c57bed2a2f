/** A payment at its provider (on the provider's task queue), and the catch-up of events it did not deliver. */
import { asyncLocalStorage, Context, heartbeat, log } from '@temporalio/activity';
import { clientSecretContext, type PaymentStore } from '../db/payments.js';
import type { PaymentIntentRef, PaymentReceived, ProviderWithApi } from '../model/order-workflow.js';
import type { TextSealer } from '../infra/payload-codec.js';
import {
  ProviderKeyReused,
  ProviderOutcomeUnknown,
  ProviderRefusal,
  type OpenedPayment,
  type CatchUpIntake,
  type PaymentProviderApi,
} from '../payments/provider.js';
import { refused } from './order.js';
import type { CatchUpInput, CatchUpResult } from '../model/catch-up-workflow.js';
import type { RefundStarts } from '../order/close.js';

/** Read again each run: events Stripe listed late, the clocks' difference; each is taken ~OVERLAP/interval+1 times. */
export const OVERLAP_SECONDS = 60;
/** The first run reads this far back: Stripe retries an event for three days, so an older one was given up long ago. */
export const FIRST_LOOKBACK_SECONDS = 3 * 24 * 3_600;

export function createCatchUpActivities(deps: {
  stores: { payments: Pick<PaymentStore, 'eventCursor' | 'moveEventCursor'> };
  /** The provider's API, where its keys are configured. */
  api: PaymentProviderApi | null;
  /** The provider's intake, which takes each event in as its webhook would. */
  intake: CatchUpIntake | null;
}) {
  const { stores, api, intake } = deps;
  return {
    async catchUpProviderEvents(input: CatchUpInput): Promise<CatchUpResult> {
      const nowSeconds = Math.floor(Date.now() / 1000);
      const createdUpTo = nowSeconds - input.settleSeconds;
      const outcomes: Record<string, number> = {};
      if (!api || !intake) return { createdFrom: createdUpTo, createdUpTo, events: 0, outcomes };
      const cursor = (await stores.payments.eventCursor(input.provider)) ?? nowSeconds - FIRST_LOOKBACK_SECONDS;
      const createdFrom = Math.max(0, cursor - OVERLAP_SECONDS);
      let events = 0;
      for await (const event of api.undeliveredEvents({ createdFrom, createdUpTo })) {
        const { outcome } = await intake.take(event);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        events++;
        // A backlog is read page by page: heartbeats, inside an activity only (a test may call it directly).
        if (asyncLocalStorage.getStore()) heartbeat(events);
      }
      await stores.payments.moveEventCursor(input.provider, createdUpTo);
      if (events > 0)
        log.info('caught up with events Stripe did not deliver', { createdFrom, createdUpTo, events, outcomes });
      return { createdFrom, createdUpTo, events, outcomes };
    },
  };
}

export type CatchUpActivities = ReturnType<typeof createCatchUpActivities>;

/** The activities of a payment at its provider (openPayment, closePayment): on the provider's own task queue. */
export interface PaymentActivityDeps {
  stores: { payments: PaymentStore };
  /** Seals an intent's client secret before MySQL keeps it (the payload codec's keys). */
  secrets: TextSealer;
  /** The payment providers with an API this deployment has keys for (src/payments/provider.ts). */
  providers?: Partial<Record<ProviderWithApi, PaymentProviderApi>>;
  /** How long an intent may stay `processing` past its deadline before an error is logged (STRIPE_PROCESSING_ALERT). */
  processingAlertMs?: number;
  /** Starts the refund of a payment a close found and its row owed back. */
  refunds?: RefundStarts;
}

export interface ProviderPaymentInput {
  provider: ProviderWithApi;
  orderNo: string;
  amountCents: number;
}

/** The intent states after which it can no longer be paid or refunded into: nothing more to close. */
const FINAL_INTENT_STATUSES = ['canceled'];
const NO_INTENT_MADE = [ProviderOutcomeUnknown, ProviderRefusal, ProviderKeyReused];

export function createPaymentActivities(deps: PaymentActivityDeps) {
  const { stores, secrets, providers = {}, processingAlertMs = 3_600_000, refunds } = deps;
  const providerApi = (name: ProviderWithApi): PaymentProviderApi => {
    const api = providers[name];
    // Retried, not failed: the keys are configuration an operator can still set.
    if (!api) throw new Error(`payment provider ${name} is not configured on this worker (set its keys)`);
    return api;
  };
  return {
    // Answers the id only (no secret in the history); the key moves on only after a 5xx, which the provider replays.
    async openPayment(payment: ProviderPaymentInput): Promise<PaymentIntentRef> {
      const api = providerApi(payment.provider);
      const opened = (await stores.payments.paymentIntentsOf(payment.orderNo)).find(
        (intent) => intent.clientSecret !== null && !FINAL_INTENT_STATUSES.includes(intent.status),
      );
      if (opened) return { id: opened.intentId };
      const { keyAttempt, closed } = await stores.payments.paymentOpening(payment.orderNo);
      // The order is closing (its workflow gave up on this opening): nothing more is made.
      if (closed) throw refused(`order ${payment.orderNo} is closing`, 'orderClosed');
      try {
        const intent = await api.openPayment({ ...payment, keyAttempt });
        await recordOpened({ ...payment, keyAttempt }, intent, intent.clientSecret);
        // Answered after the order's close read its intents (a provider that hung): this intent is closed here.
        if ((await stores.payments.paymentOpening(payment.orderNo)).closed) {
          const late = await api.closeIntent({ orderNo: payment.orderNo, intentId: intent.id, attempt: 1 });
          await stores.payments.recordPaymentIntentStatus(intent.id, late.status);
          log.warn('a PaymentIntent made after its order began closing was cancelled', {
            orderNo: payment.orderNo,
            intentId: intent.id,
            status: late.status,
          });
        }
        return { id: intent.id };
      } catch (err) {
        if (err instanceof ProviderOutcomeUnknown)
          await stores.payments.nextPaymentOpeningKey(payment.orderNo, keyAttempt);
        if (err instanceof ProviderRefusal) throw refused(err.message, 'paymentRefused');
        if (err instanceof ProviderKeyReused) throw refused(err.message, 'idempotencyKeyReused');
        throw err;
      }
    },

    /** Closes the order's payments at its provider; the intents' state decides (docs/fault-tolerance.md, "Stripe"). */
    async closePayment(
      payment: ProviderPaymentInput & { paymentIntentId?: string; paymentDeadline?: string },
    ): Promise<ProviderClose> {
      const api = providerApi(payment.provider);
      // First the mark, then the read: an opening that records an intent after this read cancels it itself.
      await stores.payments.closePaymentOpening(payment.orderNo);
      const recorded = await stores.payments.paymentIntentsOf(payment.orderNo);
      const intentIds = recorded.filter((i) => !FINAL_INTENT_STATUSES.includes(i.status)).map((i) => i.intentId);
      // An order opened before intents were recorded names its one intent itself.
      if (payment.paymentIntentId && !recorded.some((i) => i.intentId === payment.paymentIntentId))
        intentIds.push(payment.paymentIntentId);
      // An opening never answered (the provider hung) may have made an intent: its key, asked again, answers it.
      const { keyAttempt } = await stores.payments.paymentOpening(payment.orderNo);
      if (!payment.paymentIntentId && !recorded.some((i) => i.keyAttempt === keyAttempt)) {
        const opening = { ...payment, keyAttempt };
        const intent = await api.openPayment(opening).catch((err: unknown) => {
          // None made: the key replays a 5xx or a refusal.
          if (NO_INTENT_MADE.some((type) => err instanceof type)) return null;
          throw err;
        });
        if (intent) {
          await recordOpened(opening, intent, null);
          intentIds.push(intent.id);
        }
      }
      const attempt = Context.current().info.attempt;
      let paid: PaymentReceived | undefined;
      let processing = false;
      for (const intentId of intentIds) {
        const closed = await api.closeIntent({ orderNo: payment.orderNo, intentId, attempt });
        await stores.payments.recordPaymentIntentStatus(intentId, closed.status);
        if (closed.status === 'succeeded') {
          // Recorded before the order is told and decided by its row: only money it applied pays.
          const { row } = await stores.payments.recordPayment(
            {
              eventId: intentId,
              orderNo: payment.orderNo,
              amountCents: closed.amountReceived,
              provider: payment.provider,
              providerRef: intentId,
              paidAtProvider: closed.paidAt,
            },
            'intent-read',
          );
          if (row.outcome === 'APPLIED')
            paid ??= { eventId: row.eventId, amountCents: row.amountCents, receivedAt: row.receivedAt.toISOString() };
          else if (row.outcome === 'REFUND_REQUIRED')
            refunds?.start([{ eventId: row.eventId, provider: row.provider }]);
        } else if (closed.status === 'processing') {
          processing = true;
          const pastDeadlineMs = payment.paymentDeadline ? Date.now() - Date.parse(payment.paymentDeadline) : 0;
          if (pastDeadlineMs > processingAlertMs)
            log.error("a PaymentIntent is still processing long past its order's deadline; its unit stays held", {
              orderNo: payment.orderNo,
              intentId,
              processingSince: closed.since.toISOString(),
              pastDeadlineMs,
            });
        }
      }
      if (paid) return { state: 'SUCCEEDED', payment: paid };
      return { state: processing ? 'PROCESSING' : 'CANCELED' };
    },
  };

  /** Records an intent an opening made; its client secret only when the shopper is to be shown it. */
  function recordOpened(
    opening: ProviderPaymentInput & { keyAttempt: number },
    intent: OpenedPayment,
    clientSecret: string | null,
  ): Promise<void> {
    return stores.payments.recordPaymentIntent({
      intentId: intent.id,
      orderNo: opening.orderNo,
      provider: opening.provider,
      keyAttempt: opening.keyAttempt,
      amountCents: intent.amountCents,
      currency: intent.currency,
      clientSecret: clientSecret === null ? null : secrets.seal(clientSecret, clientSecretContext(intent.id)),
      status: intent.status,
    });
  }
}

export type ProviderClose =
  { state: 'CANCELED' } | { state: 'SUCCEEDED'; payment: PaymentReceived } | { state: 'PROCESSING' };

export type PaymentActivities = ReturnType<typeof createPaymentActivities>;
