/**
 * Checkout: reserve in Redis (one Lua step), start the order's workflow, answer. No database on
 * this path: MySQL is written by the workflow at its own pace, so a burst cannot knock it over.
 */
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { AppConfig } from '../config/index.js';
import type { Logger } from '../infra/logger.js';
import type { RedisInventory, Reservation } from '../inventory/redis-inventory.js';
import {
  cancelOrderSignal,
  ORDER_SKU_SEARCH_ATTRIBUTE,
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  ORDER_USER_SEARCH_ATTRIBUTE,
  orderWorkflowId,
  type OrderInput,
  type OrderStatus,
} from '../workflows/definitions.js';
import type { OrderWorkflow } from '../workflows/order.js';
import { ApiError } from './errors.js';
import { newOrderNo } from './order-number.js';
import type { FoundOrder } from './orders.js';
import type { SoldOutCache } from './sold-out-cache.js';

export interface CheckoutRequest {
  userId: string;
  sku: string;
  quantity: number;
  idempotencyKey?: string;
}

export class CheckoutService {
  constructor(
    private readonly deps: { config: AppConfig; inventory: RedisInventory; temporal: Client; logger: Logger; soldOut: SoldOutCache },
  ) {}

  async checkout(request: CheckoutRequest): Promise<{ orderNo: string; status: OrderStatus }> {
    const { inventory, logger, soldOut } = this.deps;
    const now = Date.now();
    // A retry with an Idempotency-Key must reach Redis: it may own an order even after sell-out.
    if (!request.idempotencyKey && soldOut.isSoldOut(request.sku, now)) throw soldOutError(request.sku);
    const result = await inventory.reserve({ orderNo: newOrderNo(now), nowMs: now, ...request });
    switch (result.outcome) {
      case 'NO_SALE':
        throw new ApiError(404, 'SKU_NOT_FOUND', `no sale for sku ${request.sku}`);
      case 'NOT_ACTIVE':
        throw new ApiError(409, 'SALE_NOT_ACTIVE', `the sale for ${request.sku} is not open now`);
      case 'LIMIT_EXCEEDED':
        throw new ApiError(409, 'PURCHASE_LIMIT_EXCEEDED', `buying ${request.quantity} would exceed the per-user limit for ${request.sku}`);
      case 'SOLD_OUT':
        soldOut.markSoldOut(request.sku, result.generation, now);
        throw soldOutError(request.sku);
      case 'DUPLICATE':
        return this.replay(request, result.orderNo, result.priceCents, result.reservation);
      case 'RESERVED':
        break;
    }
    const input = this.orderInput(request, result.orderNo, result.priceCents, now);
    try {
      await this.startWorkflow(input);
    } catch (err) {
      // Without a workflow nobody would ever persist or release this reservation: give it back now.
      const released = await inventory.release(request.sku, result.orderNo).catch((releaseErr: unknown) => releaseErr);
      logger.error({ err, orderNo: result.orderNo, released }, 'could not start OrderWorkflow; reservation released');
      throw new ApiError(503, 'UNAVAILABLE', 'the order could not be started; nothing was reserved, please retry');
    }
    return { orderNo: result.orderNo, status: 'PENDING' };
  }

  /**
   * A retried checkout with a known Idempotency-Key answers the same order. If the first attempt
   * reserved but died before starting the workflow, this starts it (USE_EXISTING makes that safe).
   */
  private async replay(request: CheckoutRequest, orderNo: string, priceCents: number, reservation: Reservation | null) {
    if (reservation?.state === 'RESERVED') {
      const input = this.orderInput({ ...request, quantity: reservation.quantity }, orderNo, priceCents, reservation.reservedAtMs);
      try {
        await this.startWorkflow(input);
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw new ApiError(503, 'UNAVAILABLE', 'could not confirm the order, please retry');
      }
      return { orderNo, status: 'PENDING' as const };
    }
    // Sold or released: the order exists and is past the point a retry could change.
    return { orderNo, status: reservation?.state === 'SOLD' ? ('PAID' as const) : ('CANCELLED' as const) };
  }

  private orderInput(request: CheckoutRequest, orderNo: string, unitPriceCents: number, createdAtMs: number): OrderInput {
    return {
      orderNo,
      sku: request.sku,
      userId: request.userId,
      quantity: request.quantity,
      unitPriceCents,
      ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}),
      createdAt: new Date(createdAtMs).toISOString(),
      paymentWindow: this.deps.config.paymentWindow,
    };
  }

  private async startWorkflow(input: OrderInput): Promise<void> {
    await this.deps.temporal.workflow.start<typeof OrderWorkflow>('OrderWorkflow', {
      workflowId: orderWorkflowId(input.orderNo),
      taskQueue: this.deps.config.temporal.taskQueue,
      args: [input],
      // A second start of the same order (an idempotent retry) attaches to the running workflow;
      // an order number is never reused for a new workflow once one has closed.
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: ORDER_SKU_SEARCH_ATTRIBUTE, value: input.sku },
        { key: ORDER_USER_SEARCH_ATTRIBUTE, value: input.userId },
        { key: ORDER_STATUS_SEARCH_ATTRIBUTE, value: 'PENDING' },
      ],
    });
  }

  /** Shopper's cancel: only while the order still waits for payment. */
  async cancel(order: FoundOrder): Promise<void> {
    const live = order.live;
    const cancellable =
      live && (live.status === 'PENDING' || live.status === 'AWAITING_PAYMENT') && !live.payments.some((p) => p.outcome === 'APPLIED');
    if (!cancellable) throw new ApiError(409, 'NOT_CANCELLABLE', `order ${order.view.orderNo} is ${order.view.status} and can no longer be cancelled`);
    await this.deps.temporal.workflow.getHandle(orderWorkflowId(order.view.orderNo)).signal(cancelOrderSignal);
  }
}

const soldOutError = (sku: string) => new ApiError(409, 'SOLD_OUT', `${sku} is sold out`);
