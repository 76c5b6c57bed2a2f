/**
 * Payment webhook → `paymentReceived` signal. The provider retries until it gets a 2xx, so this
 * must be idempotent: the event id is a primary key in MySQL, and the workflow dedupes it too.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { AppConfig } from '../config/index.js';
import { orderWorkflowId, paymentReceivedSignal, type PaymentOutcome } from '../workflows/definitions.js';
import { ApiError } from './errors.js';
import type { OrderReader } from './orders.js';
import { verifyWebhookSignature } from './webhook-signature.js';

export type WebhookOutcome = PaymentOutcome | 'DUPLICATE';

export interface PaymentEvent {
  eventId: string;
  orderNo: string;
  amountCents: number;
}

export class PaymentWebhook {
  constructor(private readonly deps: { config: AppConfig; pool: Pool; temporal: Client; orders: OrderReader }) {}

  verify(rawBody: string, header: string | undefined): void {
    const check = verifyWebhookSignature(this.deps.config.webhookSecret, rawBody, header);
    if (!check.ok) throw new ApiError(400, 'INVALID_SIGNATURE', check.reason);
  }

  async handle(event: PaymentEvent): Promise<WebhookOutcome> {
    const { pool, temporal, orders } = this.deps;
    if (!(await orders.queryWorkflow(event.orderNo)) && !(await orders.fromDatabase(event.orderNo))) {
      throw new ApiError(404, 'ORDER_NOT_FOUND', `no order ${event.orderNo}`);
    }
    // Record first: once the row exists the payment can never be lost, whatever happens next.
    const [inserted] = await pool.query<ResultSetHeader>(
      `INSERT IGNORE INTO payments (event_id, order_no, amount_cents, outcome) VALUES (?, ?, ?, 'RECEIVED')`,
      [event.eventId, event.orderNo, event.amountCents],
    );
    if (inserted.affectedRows === 0) {
      const [rows] = await pool.query<RowDataPacket[]>('SELECT order_no, outcome FROM payments WHERE event_id = ?', [event.eventId]);
      if (rows[0]?.order_no !== event.orderNo) throw new ApiError(400, 'INVALID_REQUEST', `event ${event.eventId} was already used for another order`);
      // Still RECEIVED means an earlier delivery died before the signal: carry on and deliver it.
      if (rows[0]?.outcome !== 'RECEIVED') return 'DUPLICATE';
    }

    const handle = temporal.workflow.getHandle(orderWorkflowId(event.orderNo));
    let outcome: PaymentOutcome;
    try {
      await handle.signal(paymentReceivedSignal, { eventId: event.eventId, amountCents: event.amountCents });
      // A query after a signal observes it (queries are strongly consistent), so this is the
      // workflow's own verdict on this event. A workflow that closed meanwhile recorded it itself.
      const state = await orders.queryWorkflow(event.orderNo);
      const verdict = state?.payments.find((p) => p.eventId === event.eventId)?.outcome;
      outcome = verdict ?? (await this.recordedOutcome(event.eventId)) ?? 'REFUND_REQUIRED';
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      outcome = 'REFUND_REQUIRED'; // the order is closed: the money has to go back
    }
    await pool.query(
      `UPDATE payments SET outcome = ?, refund_reason = IF(? = 'REFUND_REQUIRED', COALESCE(refund_reason, 'ORDER_NOT_AWAITING_PAYMENT'), NULL)
       WHERE event_id = ? AND outcome = 'RECEIVED'`,
      [outcome, outcome, event.eventId],
    );
    return outcome;
  }

  private async recordedOutcome(eventId: string): Promise<PaymentOutcome | null> {
    const [rows] = await this.deps.pool.query<RowDataPacket[]>('SELECT outcome FROM payments WHERE event_id = ?', [eventId]);
    const outcome = rows[0]?.outcome;
    return outcome === 'APPLIED' || outcome === 'REFUND_REQUIRED' ? outcome : null;
  }
}
