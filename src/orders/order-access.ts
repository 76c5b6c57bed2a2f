/**
 * Finds an order for the shopper who owns it: ORDER_NOT_FOUND when there is none (or the number
 * cannot be one), FORBIDDEN when it is someone else's. Through the OrderStatusReader: the API's one
 * read path (single-flight, status-aware cache).
 */
import { echo, Refusal } from '../refusal.js';
import type { FoundOrder } from './order-client.js';
import { ORDER_NO_PATTERN } from './order-number.js';
import type { OrderStatusReader } from './order-status-reader.js';

export async function findOwnOrder(orders: OrderStatusReader, orderNo: string, userId: string): Promise<FoundOrder> {
  // A running order that does not answer in time is DependencyUnavailableError: 503, retry.
  const order = ORDER_NO_PATTERN.test(orderNo) ? await orders.read(orderNo) : null;
  if (!order) throw new Refusal('ORDER_NOT_FOUND', `no order ${echo(orderNo)}`);
  if (order.userId !== userId) throw new Refusal('FORBIDDEN', 'this order belongs to another shopper');
  return order;
}
