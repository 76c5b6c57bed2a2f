/**
 * Finds an order for the shopper who owns it: 404 when there is none, 403 when it is someone else's.
 * Through the OrderStatusReader: the API's one read path (single-flight, status-aware cache).
 */
import type { FoundOrder } from '../orders/order-client.js';
import type { OrderStatusReader } from '../orders/order-status-reader.js';
import { ApiError, echo } from './errors.js';
import { orderNoSchema } from './schemas.js';

export async function findOwnOrder(orders: OrderStatusReader, orderNo: string, userId: string): Promise<FoundOrder> {
  const valid = orderNoSchema.safeParse(orderNo);
  // A running order that does not answer in time is DependencyUnavailableError: 503, retry.
  const order = valid.success ? await orders.read(valid.data) : null;
  if (!order) throw new ApiError(404, 'ORDER_NOT_FOUND', `no order ${echo(orderNo)}`);
  if (order.userId !== userId) throw new ApiError(403, 'FORBIDDEN', 'this order belongs to another shopper');
  return order;
}
