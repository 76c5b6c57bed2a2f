/**
 * Finds an order for the shopper who owns it: 404 when there is none, 403 when it is someone else's.
 * Through the OrderStatusReader: the API's one read path (single-flight, status-aware cache).
 */
import { OrderUnavailableError, type FoundOrder } from '../orders/order-client.js';
import type { OrderStatusReader } from '../orders/order-status-reader.js';
import { ApiError, echo } from './errors.js';
import { orderNoSchema } from './schemas.js';

export async function findOwnOrder(orders: OrderStatusReader, orderNo: string, userId: string): Promise<FoundOrder> {
  const valid = orderNoSchema.safeParse(orderNo);
  const order = valid.success ? await findOrUnavailable(orders, valid.data) : null;
  if (!order) throw new ApiError(404, 'ORDER_NOT_FOUND', `no order ${echo(orderNo)}`);
  if (order.userId !== userId) throw new ApiError(403, 'FORBIDDEN', 'this order belongs to another shopper');
  return order;
}

/** A running order whose workflow did not answer in time (no worker took the query): 503, retry. */
async function findOrUnavailable(orders: OrderStatusReader, orderNo: string): Promise<FoundOrder | null> {
  try {
    return await orders.read(orderNo);
  } catch (err) {
    if (err instanceof OrderUnavailableError) throw new ApiError(503, 'UNAVAILABLE', 'the order did not answer in time; retry shortly');
    throw err;
  }
}
