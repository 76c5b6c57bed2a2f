/**
 * Where an order's state is read from: the running workflow's `status` query while it is open
 * (it knows PENDING orders MySQL has not seen yet), MySQL once the workflow is closed or gone.
 */
import { QueryRejectedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { orderWorkflowId, statusQuery, type CancelReason, type OrderState, type OrderStatus } from '../workflows/definitions.js';

/** The order as the API shows it to its shopper (PRODUCT.md §3). */
export interface OrderView {
  orderNo: string;
  sku: string;
  quantity: number;
  totalCents: number;
  status: OrderStatus;
  cancelReason?: CancelReason;
  paymentDeadline: string;
  createdAt: string;
  paidAt?: string;
}

export interface FoundOrder {
  view: OrderView;
  userId: string;
  /** The live workflow state when the order was read from its workflow, else undefined. */
  live?: OrderState;
}

export class OrderReader {
  constructor(
    private readonly temporal: Client,
    private readonly pool: Pool,
  ) {}

  async find(orderNo: string): Promise<FoundOrder | null> {
    const live = await this.queryWorkflow(orderNo);
    if (live) return { view: viewOfState(live), userId: live.userId, live };
    return this.fromDatabase(orderNo);
  }

  /** The open workflow's state; null when it is closed or does not exist. */
  async queryWorkflow(orderNo: string): Promise<OrderState | null> {
    try {
      // The client rejects queries to closed workflows (queryRejectCondition NOT_OPEN), which
      // saves a worker from replaying a finished history; MySQL has the final state then.
      return await this.temporal.workflow.getHandle(orderWorkflowId(orderNo)).query(statusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || err instanceof QueryRejectedError) return null;
      throw err;
    }
  }

  async fromDatabase(orderNo: string): Promise<FoundOrder | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT order_no, sku, user_id, quantity, total_cents, status, cancel_reason, payment_deadline, created_at, paid_at
       FROM orders WHERE order_no = ?`,
      [orderNo],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      userId: String(row.user_id),
      view: {
        orderNo: String(row.order_no),
        sku: String(row.sku),
        quantity: Number(row.quantity),
        totalCents: Number(row.total_cents),
        status: row.status as OrderStatus,
        ...(row.cancel_reason ? { cancelReason: row.cancel_reason as CancelReason } : {}),
        paymentDeadline: (row.payment_deadline as Date).toISOString(),
        createdAt: (row.created_at as Date).toISOString(),
        ...(row.paid_at ? { paidAt: (row.paid_at as Date).toISOString() } : {}),
      },
    };
  }
}

export function viewOfState(state: OrderState): OrderView {
  return {
    orderNo: state.orderNo,
    sku: state.sku,
    quantity: state.quantity,
    totalCents: state.totalCents,
    status: state.status,
    ...(state.cancelReason ? { cancelReason: state.cancelReason } : {}),
    paymentDeadline: state.paymentDeadline,
    createdAt: state.createdAt,
    ...(state.paidAt ? { paidAt: state.paidAt } : {}),
  };
}
