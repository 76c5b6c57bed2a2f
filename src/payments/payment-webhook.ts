/**
 * Payment webhook → the order's workflow: record first, acknowledge what is recorded, judge it by
 * when it arrived (docs/fault-tolerance.md, "A payment's path").
 *
 *   1. record    the event, once (its id is the primary key), whatever any breaker says, within
 *                MYSQL_TIMEOUT; MySQL stamps its arrival time. Not recorded: 503, the only answer
 *                the provider must retry.
 *   2. deliver   the stored event to its order within half of WRITE_DEADLINE: its verdict
 *                (APPLIED / REFUND_REQUIRED), or, not judged by then, 202 RECEIVED and the
 *                process's delivery owner (PaymentDelivery) keeps delivering it until it is.
 * The provider retries until it gets a 2xx, so every step is idempotent: an event already judged
 * answers DUPLICATE, one still RECEIVED is delivered again.
 */
import type { AppConfig } from '../config/index.js';
import type { Store } from '../db/store.js';
import { Deadline, type DependencyGuards } from '../infra/dependency-guard.js';
import { Refusal } from '../refusal.js';
import type { RefundReason, WebhookOutcome } from '../workflows/definitions.js';
import type { PaymentDelivery } from './payment-delivery.js';
import { verifyWebhookSignature } from './webhook-signature.js';

/** The webhook's answer: what became of the event, and why when it must be refunded. */
export interface WebhookAnswer {
  outcome: WebhookOutcome;
  refundReason?: RefundReason;
}

export interface PaymentEvent {
  eventId: string;
  orderNo: string;
  amountCents: number;
}

export class PaymentWebhook {
  constructor(
    private readonly deps: {
      config: Pick<AppConfig, 'webhookSecret' | 'deadlines'>;
      /** The store as it is: the recording goes through `guards.mysql` whatever its breaker says. */
      store: Store;
      guards: Pick<DependencyGuards, 'mysql' | 'temporal' | 'workflows'>;
      delivery: PaymentDelivery;
    },
  ) {}

  /** Refuses (INVALID_SIGNATURE) an event that the provider did not sign over exactly these bytes. */
  verify(rawBody: string, header: string | undefined): void {
    const check = verifyWebhookSignature(this.deps.config.webhookSecret, rawBody, header);
    if (!check.ok) throw new Refusal('INVALID_SIGNATURE', check.reason);
  }

  /** Answered within MYSQL_TIMEOUT + WRITE_DEADLINE / 2, whatever hangs. */
  async handle(event: PaymentEvent): Promise<WebhookAnswer> {
    const { store, guards, delivery, config } = this.deps;
    // Record first, asking nothing else before: once the row exists the payment cannot be lost.
    const row = await guards.mysql.call(Deadline.in(config.deadlines.mysqlMs), () => store.recordPayment(event), { evenWhenOpen: true });
    if (row.orderNo !== event.orderNo) throw new Refusal('INVALID_REQUEST', `event ${event.eventId} was already used for another order`);
    if (row.outcome !== 'RECEIVED') return { outcome: 'DUPLICATE' };
    // A verdict at once where the order can answer; with Temporal's or the workers' breaker open it
    // cannot, and the owner delivers it once they are back.
    const answerable = guards.temporal.closed && guards.workflows.closed;
    const verdict = answerable ? await delivery.deliver(row, Deadline.in(config.deadlines.writeMs / 2)) : null;
    if (verdict) return verdict;
    delivery.retryLater(row);
    return { outcome: 'RECEIVED' };
  }
}
