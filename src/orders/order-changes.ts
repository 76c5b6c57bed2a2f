/**
 * "This order is changing": a Redis pub/sub notification that lets every API process keep an
 * order's AWAITING_PAYMENT answer in its status cache for long (STATUS_CACHE_NOTIFIED_MS) instead
 * of re-asking the workflow every STATUS_CACHE_MS. Sent by whatever changes an open order: the
 * worker's closing activities (markPaid, cancelOrder, recordOrderFailure, so a timeout, an
 * operator's cancel from the Web UI and the reconciler are covered) and the API process that
 * delivered a payment or a cancel. The workflow stays the truth: a notification only makes the
 * readers ask it again.
 */
import type { RedisClient } from '../infra/redis.js';

/** Where an order's change is announced; the message is the order number. */
export const ORDER_CHANGED_CHANNEL = 'flash:order-changed';

export class OrderChangeNotifier {
  constructor(private readonly redis: RedisClient) {}

  async publish(orderNo: string): Promise<void> {
    await this.redis.publish(ORDER_CHANGED_CHANNEL, orderNo);
  }
}
