/**
 * Payment webhook → the order's workflow. The provider retries until it gets a 2xx, so this must
 * be idempotent: the event id is a primary key in MySQL, and the workflow dedupes it too.
 */
import type { AppConfig } from '../config/index.js';
import type { Store } from '../db/store.js';
import { Deadline } from '../infra/dependency-guard.js';
import type { OrderClient } from '../orders/order-client.js';
import type { OrderStatusReader } from '../orders/order-status-reader.js';
import { Refusal } from '../refusal.js';
import type { RefundReason, WebhookOutcome } from '../workflows/definitions.js';
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
  /**
   * `store`: seen through the MySQL guard (each query bounded by MYSQL_TIMEOUT); `statusReader`:
   * told of each delivered payment, so this process's readers see it at once.
   */
  constructor(
    private readonly deps: {
      config: Pick<AppConfig, 'webhookSecret' | 'deadlines'>;
      store: Store;
      orders: OrderClient;
      statusReader?: OrderStatusReader;
    },
  ) {}

  /** Refuses (INVALID_SIGNATURE) an event that the provider did not sign over exactly these bytes. */
  verify(rawBody: string, header: string | undefined): void {
    const check = verifyWebhookSignature(this.deps.config.webhookSecret, rawBody, header);
    if (!check.ok) throw new Refusal('INVALID_SIGNATURE', check.reason);
  }

  /** Answered within WRITE_DEADLINE while one dependency hangs; a 503 leaves the event to the provider's retry. */
  async handle(event: PaymentEvent): Promise<WebhookAnswer> {
    const { store, orders } = this.deps;
    const deadline = Deadline.in(this.deps.config.deadlines.writeMs);
    // Asked of Temporal's frontend (no worker needed, so a slow worker cannot refuse a payment),
    // then MySQL for an order whose workflow is gone.
    const known = (await orders.workflowState(event.orderNo, deadline)) !== 'NOT_FOUND' || (await orders.fromDatabase(event.orderNo, deadline)) !== null;
    if (!known) {
      throw new Refusal('ORDER_NOT_FOUND', `no order ${event.orderNo}`);
    }
    // Record first: once the row exists the payment can never be lost, whatever happens next.
    const recorded = await store.recordPaymentReceived(event);
    if (recorded.outcome === 'SEEN') {
      if (recorded.orderNo !== event.orderNo) throw new Refusal('INVALID_REQUEST', `event ${event.eventId} was already used for another order`);
      // Still RECEIVED means an earlier delivery died before the workflow got it: deliver it now.
      if (recorded.paymentOutcome !== 'RECEIVED') return { outcome: 'DUPLICATE' };
    }
    let verdict;
    try {
      // Not answered in time: kept as RECEIVED, the provider's retry (or the reconciler) delivers it again.
      verdict = await orders.pay(event.orderNo, { eventId: event.eventId, amountCents: event.amountCents }, deadline);
    } finally {
      this.deps.statusReader?.changed(event.orderNo);
    }
    // The workflow's own verdict, written at once (a refund reason included), unless the workflow
    // has already recorded this event itself.
    await store.settleReceivedPayment(event.eventId, verdict);
    return verdict;
  }
}
