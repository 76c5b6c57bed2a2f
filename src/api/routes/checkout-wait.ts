/**
 * The answer of a waiting checkout (`Prefer: wait=N` on POST /api/checkout; README, "Two checkout
 * models"): 201 with the persisted order, 409 ORDER_FAILED with the reason, or 202 as the polling
 * checkout answers when the order was not decided within the wait.
 */
import type { Context } from 'koa';
import type { CheckoutRequest, CheckoutService } from '../checkout.js';
import { ApiError } from '../errors.js';

export async function answerWaitingCheckout(ctx: Context, checkout: CheckoutService, request: CheckoutRequest, waitSeconds: number): Promise<void> {
  const waited = await checkout.checkoutAndWait(request, waitSeconds * 1000);
  const statusUrl = `/api/orders/${waited.orderNo}`;
  ctx.set('Location', statusUrl);
  if (!waited.order) {
    ctx.status = 202;
    ctx.body = { orderNo: waited.orderNo, status: waited.status, statusUrl };
    return;
  }
  // Decided within the wait: the preference was honoured.
  ctx.set('Preference-Applied', `wait=${waitSeconds}`);
  if (waited.status === 'FAILED') {
    throw new ApiError(409, 'ORDER_FAILED', `the order ${waited.orderNo} failed and holds no stock: ${waited.failureReason ?? 'unknown reason'}`, {
      orderNo: waited.orderNo,
      status: 'FAILED',
      failureReason: waited.failureReason ?? null,
      statusUrl,
    });
  }
  ctx.status = 201;
  ctx.body = { ...waited.order, statusUrl };
}
