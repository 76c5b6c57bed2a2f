/**
 * A payment's path (docs/fault-tolerance.md): recorded once by event id whatever any breaker says, decided by its
 * order's row in the same transaction, then its Signal or refund, unawaited. Only a 503 (not recorded) is retried.
 */
import type { AppConfig } from '../config/index.js';
import type { PaymentStore, RecordedPaymentEvent } from '../db/payments.js';
import type { PaymentRow } from '../db/rows.js';
import { Deadline, type DependencyGuards } from '../infra/dependency-guard.js';
import { Refusal } from '../infra/refusal.js';
import { z } from 'zod';
import { REFUND_REASONS, WEBHOOK_OUTCOMES, type PaymentReceived, type RefundReason } from '../model/order-workflow.js';
import type { Logger } from '../infra/logger.js';
import type { RefundStarts } from '../order/close.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';

/** The webhook's answer: what became of the event, and why when it must be refunded. */
export const webhookAnswerSchema = z
  .object({
    received: z.literal(true),
    outcome: z.enum(WEBHOOK_OUTCOMES),
    refundReason: z.enum(REFUND_REASONS).optional(),
  })
  .meta({
    id: 'WebhookAnswer',
    description: "The order's own verdict on the payment event; RECEIVED (202) when it is recorded but not judged yet.",
  });

export type WebhookAnswer = Omit<z.infer<typeof webhookAnswerSchema>, 'received'>;

/** The record-first path of every payment, whichever provider's webhook brought it. */
export class PaymentReceiver {
  constructor(
    private readonly deps: {
      config: Pick<AppConfig, 'deadlines'>;
      /** The store as it is: the recording goes through `guards.mysql` whatever its breaker says. */
      stores: { payments: Pick<PaymentStore, 'recordPayment'> };
      guards: Pick<DependencyGuards, 'mysql'>;
      signals: PaymentSignals;
      /** The evidence's source: `webhook`, or `catch-up` for the events the catch-up reads. */
      source?: string;
    },
  ) {}

  /** Answered within MYSQL_TIMEOUT, whatever hangs: nothing else is awaited. */
  async handle(event: RecordedPaymentEvent): Promise<WebhookAnswer> {
    const { guards, config } = this.deps;
    // Record first, asking nothing else before: once the row exists the payment cannot be lost.
    const { row, judged } = await guards.mysql.call(Deadline.in(config.deadlines.mysqlMs), () => this.record(event), {
      evenWhenOpen: true,
    });
    if (row.orderNo !== event.orderNo)
      throw new Refusal('INVALID_REQUEST', `event ${event.eventId} was already used for another order`);
    if (judged) return answerOf(row);
    return { outcome: row.outcome === 'RECEIVED' ? 'RECEIVED' : 'DUPLICATE' };
  }

  /** Followed up by the recording, not the answer: a commit after a 503 still tells its order (a retry: DUPLICATE). */
  private record(event: RecordedPaymentEvent): ReturnType<PaymentStore['recordPayment']> {
    const recording = this.deps.stores.payments.recordPayment(event, this.deps.source ?? 'webhook');
    recording.then(
      ({ row, judged }) => {
        if (judged && row.orderNo === event.orderNo) this.deps.signals.decided(row);
      },
      // Not recorded: the answer says so (503), and the provider sends it again.
      () => undefined,
    );
    return recording;
  }
}

/** The webhook's answer to the verdict its recording reached. */
function answerOf(row: PaymentRow): WebhookAnswer {
  if (row.outcome === 'APPLIED') return { outcome: 'APPLIED' };
  return {
    outcome: 'REFUND_REQUIRED',
    refundReason: (row.refundReason ?? 'ORDER_NOT_AWAITING_PAYMENT') as RefundReason,
  };
}

// ---- after the commit: the payment Signal, sent once (a lost one is the reconciler's), or the refund the row decided.

const SIGNAL_MS = 5_000;

/** The payload every signal carries: the stored event, with the time MySQL recorded it. */
export function storedPayment(row: PaymentRow): PaymentReceived {
  return { eventId: row.eventId, amountCents: row.amountCents, receivedAt: row.receivedAt.toISOString() };
}

/** A process's follow-ups of the verdicts it took: sent after the webhook's commit, without holding its answer. */
export class PaymentSignals {
  /** Signals sent and not answered yet: stop() waits for them. */
  private readonly sending = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(
    private readonly deps: {
      /** Null where no Temporal client is at hand: the reconciler signals. */
      orders: Pick<OrderWorkflowClient, 'signalPaymentApplied'> | null;
      /** Starts the refund of a payment the row decided is owed back (a provider's with an API). */
      refunds?: RefundStarts;
      /** Told of every order a payment was decided for, so this process's status reads see it at once. */
      changed?: (orderNo: string) => void;
      logger?: Pick<Logger, 'debug' | 'error'>;
    },
  ) {}

  /** Tells the order's readers, sends an applied payment's Signal (or starts its refund), unawaited. */
  decided(row: PaymentRow): void {
    try {
      this.deps.changed?.(row.orderNo);
      if (row.outcome === 'APPLIED') this.signal(row);
      else this.deps.refunds?.start([{ eventId: row.eventId, provider: row.provider }]);
    } catch (err) {
      // Run off the answer's path: nothing above it would catch this. The reconciler follows the row up.
      this.deps.logger?.error({ eventId: row.eventId, orderNo: row.orderNo, err }, 'payment follow-up failed');
    }
  }

  private signal(row: PaymentRow): void {
    const { orders } = this.deps;
    if (!orders || this.stopped) return;
    const sending = orders.signalPaymentApplied(row.orderNo, storedPayment(row), Deadline.in(SIGNAL_MS));
    this.sending.add(sending);
    sending
      .catch((err: unknown) =>
        this.deps.logger?.debug(
          { eventId: row.eventId, orderNo: row.orderNo, err: err instanceof Error ? err.message : String(err) },
          'payment signal not sent; the reconciler closes the order',
        ),
      )
      .finally(() => this.sending.delete(sending));
  }

  /** Sends no more, and waits for the Signals under way (each bounded by SIGNAL_MS). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.sending]);
  }
}
