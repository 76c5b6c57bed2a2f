/** Finds an order for the shopper who owns it: 404 when there is none, 403 when it is someone else's. */
import type { FoundOrder, OrderClient } from '../orders/order-client.js';
import { ApiError, echo } from './errors.js';
import { orderNoSchema } from './schemas.js';

export async function findOwnOrder(orders: OrderClient, orderNo: string, userId: string): Promise<FoundOrder> {
  const valid = orderNoSchema.safeParse(orderNo);
  const order = valid.success ? await orders.find(valid.data) : null;
  if (!order) throw new ApiError(404, 'ORDER_NOT_FOUND', `no order ${echo(orderNo)}`);
  if (order.userId !== userId) throw new ApiError(403, 'FORBIDDEN', 'this order belongs to another shopper');
  return order;
}
