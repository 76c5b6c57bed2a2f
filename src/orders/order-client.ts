/**
 * The order client: the only code that reaches an order's workflow. It starts orders, reads them
 * (the running workflow's `status` query while it is open, MySQL once it has closed), delivers
 * payments and cancels. The API, the reconciler and the tools use it instead of workflow handles.
 */
import { QueryRejectedError, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Store } from '../db/store.js';
import {
  cancelOrderSignal,
  isCancellable,
  ORDER_SKU_SEARCH_ATTRIBUTE,
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  ORDER_USER_SEARCH_ATTRIBUTE,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentReceivedSignal,
  statusQuery,
  type CancelReason,
  type OrderInput,
  type OrderState,
  type OrderStatus,
  type PaymentOutcome,
  type PaymentReceived,
} from '../workflows/definitions.js';
import type { OrderWorkflow } from '../workflows/order.js';

/** The order as the API shows it to its shopper (docs/contract.md). */
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

/** The order exists but its state no longer allows a cancel. */
export class OrderNotCancellableError extends Error {
  constructor(readonly order: FoundOrder) {
    super(`order ${order.view.orderNo} is ${order.view.status} and can no longer be cancelled`);
    this.name = 'OrderNotCancellableError';
  }
}

export class OrderClient {
  constructor(
    private readonly temporal: Client,
    private readonly store: Store,
    private readonly taskQueue: string,
  ) {}

  /**
   * Starts the order's workflow. A second start of the same order (an idempotent retry) attaches to
   * the running workflow; an order number is never reused for a new workflow once one has closed
   * (ALREADY_CLOSED: the order exists and has ended).
   */
  async start(input: OrderInput): Promise<'STARTED' | 'ALREADY_CLOSED'> {
    try {
      await this.startWorkflow(input);
      return 'STARTED';
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return 'ALREADY_CLOSED';
      throw err;
    }
  }

  private async startWorkflow(input: OrderInput): Promise<void> {
    await this.temporal.workflow.start<typeof OrderWorkflow>(ORDER_WORKFLOW_TYPE, {
      workflowId: orderWorkflowId(input.orderNo),
      taskQueue: this.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: ORDER_SKU_SEARCH_ATTRIBUTE, value: input.sku },
        { key: ORDER_USER_SEARCH_ATTRIBUTE, value: input.userId },
        { key: ORDER_STATUS_SEARCH_ATTRIBUTE, value: 'PENDING' },
      ],
    });
  }

  /** The order from its running workflow, else from MySQL; null when neither knows it. */
  async find(orderNo: string): Promise<FoundOrder | null> {
    const live = await this.queryLive(orderNo);
    if (live) return { view: viewOfState(live), userId: live.userId, live };
    return this.fromDatabase(orderNo);
  }

  /** The open workflow's state; null when it is closed or does not exist. */
  async queryLive(orderNo: string): Promise<OrderState | null> {
    try {
      // The client rejects queries to closed workflows (queryRejectCondition NOT_OPEN), which
      // saves a worker from replaying a finished history; MySQL has the final state then.
      return await this.handle(orderNo).query(statusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || err instanceof QueryRejectedError) return null;
      throw err;
    }
  }

  async fromDatabase(orderNo: string): Promise<FoundOrder | null> {
    const row = await this.store.getOrder(orderNo);
    if (!row) return null;
    return {
      userId: row.userId,
      view: {
        orderNo: row.orderNo,
        sku: row.sku,
        quantity: row.quantity,
        totalCents: row.totalCents,
        status: row.status,
        ...(row.cancelReason ? { cancelReason: row.cancelReason } : {}),
        paymentDeadline: row.paymentDeadline.toISOString(),
        createdAt: row.createdAt.toISOString(),
        ...(row.paidAt ? { paidAt: row.paidAt.toISOString() } : {}),
      },
    };
  }

  /**
   * Delivers a payment event to the order and answers the workflow's verdict on it. A workflow
   * that has closed can no longer apply it: REFUND_REQUIRED.
   */
  async pay(orderNo: string, payment: PaymentReceived): Promise<PaymentOutcome> {
    try {
      await this.handle(orderNo).signal(paymentReceivedSignal, payment);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'REFUND_REQUIRED'; // the order is closed: the money has to go back
      throw err;
    }
    // A query after a signal observes it (queries are strongly consistent), so this is the
    // workflow's own verdict on this event. A workflow that closed meanwhile recorded it itself.
    const state = await this.queryLive(orderNo);
    const verdict = state?.payments.find((p) => p.eventId === payment.eventId)?.outcome;
    if (verdict) return verdict;
    const recorded = (await this.store.getPayment(payment.eventId))?.outcome;
    return recorded === 'APPLIED' || recorded === 'REFUND_REQUIRED' ? recorded : 'REFUND_REQUIRED';
  }

  /** The shopper's cancel; throws OrderNotCancellableError when the rule (isCancellable) says no. */
  async cancel(order: FoundOrder): Promise<void> {
    if (!order.live || !isCancellable(order.live)) throw new OrderNotCancellableError(order);
    await this.handle(order.view.orderNo).signal(cancelOrderSignal);
  }

  /** Resolves once the order's workflow has closed, however it ended (completed, failed, cancelled). */
  async awaitClosed(orderNo: string): Promise<void> {
    await this.handle(orderNo)
      .result()
      .catch(() => undefined);
  }

  private handle(orderNo: string): WorkflowHandle<typeof OrderWorkflow> {
    return this.temporal.workflow.getHandle<typeof OrderWorkflow>(orderWorkflowId(orderNo));
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
