/**
 * A payment's path (docs/fault-tolerance.md): recorded once (its event id is the key) whatever any breaker says, within
 * MYSQL_TIMEOUT, and decided by its order's row in the same transaction; then its workflow gets the paymentApplied
 * Signal, unawaited. Not recorded: 503, the only answer to retry. No order row yet: 202 RECEIVED, decided as the row is
 * written. The provider retries until a 2xx, so every step is idempotent (DUPLICATE).
 */
import type { AppConfig } from '../config/index.js';
import type { PaymentStore, RecordedPaymentEvent } from '../db/payments.js';
import type { PaymentRow } from '../db/rows.js';
import { Deadline, boundBy, type DependencyGuard, type DependencyGuards } from '../infra/dependency-guard.js';
import { Refusal } from '../infra/refusal.js';
import type { RefundReason, WebhookOutcome, PaymentReceived } from '../model/order-workflow.js';
import type { Logger } from '../infra/logger.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';

/** The webhook's answer: what became of the event, and why when it must be refunded. */
export interface WebhookAnswer {
  outcome: WebhookOutcome;
  refundReason?: RefundReason;
}

/** A payment event as a webhook hands it over: the generic one's, or a provider adapter's (with its ids). */
export type PaymentEvent = RecordedPaymentEvent;

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
  async handle(event: PaymentEvent): Promise<WebhookAnswer> {
    const { stores, guards, signals, config } = this.deps;
    // Record first, asking nothing else before: once the row exists the payment cannot be lost.
    const { row, judged } = await guards.mysql.call(
      Deadline.in(config.deadlines.mysqlMs),
      () => stores.payments.recordPayment(event, this.deps.source ?? 'webhook'),
      { evenWhenOpen: true },
    );
    if (row.orderNo !== event.orderNo)
      throw new Refusal('INVALID_REQUEST', `event ${event.eventId} was already used for another order`);
    if (judged) return signals.decided(row);
    return { outcome: row.outcome === 'RECEIVED' ? 'RECEIVED' : 'DUPLICATE' };
  }
}

// ---- the card's payment Signal: sent once after the webhook's commit, then by the reconciler (a Temporal Schedule)
// for rows still marked tell_workflow. A repeat changes nothing: the workflow knows the payment by its id.

/** The payload every signal carries: the stored event, with the time MySQL recorded it. */
export function storedPayment(row: PaymentRow): PaymentReceived {
  return { eventId: row.eventId, amountCents: row.amountCents, receivedAt: row.receivedAt.toISOString() };
}

export interface PaymentSignalDeps {
  orders: Pick<OrderWorkflowClient, 'signalPaymentApplied'>;
  payments: Pick<PaymentStore, 'markTold'>;
  /** Runs a MySQL call within the caller's bounds (the API's guard); the call itself by default. */
  onMysql?: <T>(call: () => Promise<T>) => Promise<T>;
}

/** Signals, then marks the row told (a closed workflow read it in its close); throws: the reconciler sends it again. */
export async function signalAppliedPayment(
  deps: PaymentSignalDeps,
  row: PaymentRow,
  deadline: Deadline,
): Promise<'SIGNALLED' | 'NOT_RUNNING'> {
  const sent = await deps.orders.signalPaymentApplied(row.orderNo, storedPayment(row), deadline);
  const markTold = () => deps.payments.markTold(row.eventId);
  await (deps.onMysql ? deps.onMysql(markTold) : markTold());
  return sent;
}

/** An API process's payment Signals: sent after the webhook's commit, without holding its answer. */
export class PaymentSignals {
  /** Signals sent and not answered yet: stop() waits for them. */
  private readonly sending = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(
    private readonly deps: {
      /** Null where no Temporal client is at hand: the reconciler sends the Signal. */
      orders: Pick<OrderWorkflowClient, 'signalPaymentApplied'> | null;
      stores: { payments: Pick<PaymentStore, 'markTold'> };
      /** The API's MySQL guard: the mark goes through it whatever its breaker says, bounded by its timeout. */
      mysql?: DependencyGuard;
      /** Told of every order a payment was decided for, so this process's status reads see it at once. */
      changed?: (orderNo: string) => void;
      logger?: Pick<Logger, 'debug'>;
      /** The bound of one Signal and its mark. */
      attemptMs?: number;
    },
  ) {}

  /** Tells the order's readers, sends an applied payment's Signal unawaited (the reconciler resends); the verdict. */
  decided(row: PaymentRow): WebhookAnswer {
    this.deps.changed?.(row.orderNo);
    const { orders, stores, mysql } = this.deps;
    if (row.tellWorkflow && orders && !this.stopped) {
      const deadline = Deadline.in(this.deps.attemptMs ?? 5_000);
      const onMysql = <T>(call: () => Promise<T>) =>
        mysql ? mysql.call(deadline, call, { evenWhenOpen: true }) : boundBy(deadline, call);
      const sending = signalAppliedPayment({ orders, payments: stores.payments, onMysql }, row, deadline);
      this.sending.add(sending);
      sending
        .catch((err: unknown) =>
          this.deps.logger?.debug(
            { eventId: row.eventId, orderNo: row.orderNo, err: err instanceof Error ? err.message : String(err) },
            'payment signal not sent; the reconciler sends it',
          ),
        )
        .finally(() => this.sending.delete(sending));
    }
    if (row.outcome === 'APPLIED') return { outcome: 'APPLIED' };
    return {
      outcome: 'REFUND_REQUIRED',
      refundReason: (row.refundReason ?? 'ORDER_NOT_AWAITING_PAYMENT') as RefundReason,
    };
  }

  /** Sends no more, and waits for the Signals under way (each bounded by attemptMs). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.sending]);
  }
}
