/**
 * Baseline "queue": the usual Redis-list queue design (the "seed" below: the common design a
 * durable workflow has to beat to be worth its cost). Checkout runs the SAME Lua reservation as the product,
 * then LPUSHes the order onto a Redis list and answers 202; a separate consumer BRPOPs the list and
 * writes each order to MySQL. The request path is as cheap as ours (RedisClient only), so the comparison
 * is about what happens after the 202: a hand-rolled list consumer instead of a durable workflow.
 *
 * Honest about the seed's limits rather than patching them: one list for every SKU, at-most-once
 * delivery (a consumer that dies between BRPOP and COMMIT loses that order), no payment timeout.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import Router from '@koa/router';
import { duplicateRedis, type RedisClient } from '../../src/infra/redis.js';
import type Koa from 'koa';
import type { Pool, ResultSetHeader } from 'mysql2/promise';
import { ShopperAuth } from '../../src/api/auth.js';
import { acceptReservation } from '../../src/order/checkout.js';
import { newOrderNo } from '../../src/order/order-numbers.js';
import { ApiError } from '../../src/api/errors.js';
import { createKoaApp, jsonBody } from '../../src/api/http.js';
import { checkoutSchema, idempotencyKeySchema } from '../../src/api/schemas.js';
import type { AppConfig } from '../../src/config/index.js';
import type { Logger } from '../../src/infra/logger.js';
import { inTransaction } from '../../src/db/rows.js';
import { RedisInventory } from '../../src/redis/inventory.js';

/**
 * The seed's design is a single list (`order_queue`) for all SKUs: one consumer drains everything.
 * (A per-SKU list `bench:orders:{SKU}` would fit the cluster hash tags, but then the consumer would
 * have to know every SKU; the seed does not, so neither do we.)
 */
export const ORDER_QUEUE_KEY = 'bench:order-queue';
/** Messages that can never be written (bad JSON, MySQL refuses the stock); kept visible, not dropped. */
export const DEAD_LETTER_KEY = 'bench:order-queue:dead';

/** What the API pushes; like the seed's orderData, it carries everything the consumer writes. */
export interface QueuedOrder {
  orderNo: string;
  sku: string;
  userId: string;
  quantity: number;
  unitPriceCents: number;
  createdAt: string;
  paymentDeadline: string;
}

export function createQueueCheckoutApp({
  config,
  redis,
  logger,
}: {
  config: AppConfig;
  redis: RedisClient;
  logger: Logger;
}): Koa {
  const auth = new ShopperAuth(config);
  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const router = new Router();
  router.post('/api/checkout', async (ctx) => {
    const userId = await auth.authenticate(ctx);
    const { sku, quantity } = checkoutSchema.parse(jsonBody(ctx));
    const idempotencyKey = idempotencyKeySchema.parse(ctx.get('idempotency-key') || undefined);
    const now = Date.now();
    // The same outcome → error mapping as the API's checkout.
    const result = acceptReservation(
      await inventory.reserve({ orderNo: newOrderNo(now), nowMs: now, sku, userId, quantity, idempotencyKey }),
      {
        sku,
        quantity,
      },
    );
    switch (result.outcome) {
      case 'DUPLICATE':
        break; // A retry: its order was queued by the first attempt.
      case 'RESERVED': {
        const order: QueuedOrder = {
          orderNo: result.orderNo,
          sku,
          userId,
          quantity,
          unitPriceCents: result.priceCents,
          createdAt: new Date(now).toISOString(),
          paymentDeadline: new Date(now + config.paymentWindowMs).toISOString(),
        };
        try {
          await redis.lpush(ORDER_QUEUE_KEY, JSON.stringify(order));
        } catch (err) {
          // As the product does when it cannot start the workflow: give the units back, answer 503.
          await inventory.release(sku, result.orderNo).catch(() => {});
          logger.error({ err, orderNo: result.orderNo }, 'could not queue the order; reservation released');
          throw new ApiError('UNAVAILABLE', 'the order could not be started; nothing was reserved, please retry');
        }
      }
    }
    ctx.status = 202;
    ctx.set('Location', `/api/orders/${result.orderNo}`);
    ctx.body = { orderNo: result.orderNo, status: 'PENDING', statusUrl: `/api/orders/${result.orderNo}` };
  });
  return createKoaApp([router], logger);
}

/**
 * The seed's order processor: BRPOP one message, write it in one MySQL transaction, repeat, until
 * `signal` aborts. BRPOP blocks its connection, hence a dedicated duplicate of `redis`.
 */
export async function runQueueConsumer({
  redis,
  pool,
  logger,
  signal,
}: {
  redis: RedisClient;
  pool: Pool;
  logger: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const conn = duplicateRedis(redis, { maxRetriesPerRequest: null, enableAutoPipelining: false });
  conn.on('error', (err: Error) => logger.warn({ err: err.message }, 'consumer redis connection error'));
  try {
    while (!signal.aborted) {
      let message: string | undefined;
      try {
        // 1 s timeout as in the seed, so an abort is noticed within a second.
        message = (await conn.brpop(ORDER_QUEUE_KEY, 1))?.[1];
      } catch (err) {
        if (signal.aborted) break;
        logger.error({ err }, 'BRPOP failed');
        await sleep(1_000);
        continue;
      }
      if (message === undefined) continue;
      const outcome = await writeOrder(pool, message).catch((err: unknown) => err);
      if (outcome === 'written' || outcome === 'duplicate') continue;
      // The seed's answer to a MySQL failure is to roll Redis back; keep it simple and honest:
      // put the message back at the consuming end so it is retried next, after a pause.
      const [key, why] =
        outcome === 'dead'
          ? [DEAD_LETTER_KEY, 'cannot be written; dead-lettered']
          : [ORDER_QUEUE_KEY, 'not written; will retry'];
      logger.error({ err: outcome === 'dead' ? undefined : outcome, message }, `order ${why}`);
      // If Redis is gone too, the message is lost: the seed's at-most-once weakness, logged as such.
      await (key === DEAD_LETTER_KEY ? conn.lpush(key, message) : conn.rpush(key, message)).catch((err: unknown) =>
        logger.error({ err, message }, 'order LOST: could not put it back on the list'),
      );
      if (outcome !== 'dead') await sleep(200);
    }
  } finally {
    await conn.quit().catch(() => conn.disconnect());
  }
}

/** Thrown inside the transaction to roll it back when an order can never be written. */
class DeadLetter extends Error {}

/** One order → one transaction. Idempotent on the order number (INSERT IGNORE), so a retry is safe. */
async function writeOrder(pool: Pool, message: string): Promise<'written' | 'duplicate' | 'dead'> {
  let order: QueuedOrder;
  try {
    order = JSON.parse(message) as QueuedOrder;
  } catch {
    return 'dead';
  }
  return inTransaction(pool, async (conn) => {
    const [inserted] = await conn.query<ResultSetHeader>(
      `INSERT IGNORE INTO orders (order_no, sku, user_id, quantity, unit_price_cents, total_cents, status, payment_deadline, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 'AWAITING_PAYMENT', ?, ?)`,
      [
        order.orderNo,
        order.sku,
        order.userId,
        order.quantity,
        order.unitPriceCents,
        order.unitPriceCents * order.quantity,
        new Date(order.paymentDeadline),
        new Date(order.createdAt),
      ],
    );
    if (inserted.affectedRows === 0) return 'duplicate';
    const [taken] = await conn.query<ResultSetHeader>(
      'UPDATE sales SET available = available - ? WHERE sku = ? AND available >= ?',
      [order.quantity, order.sku, order.quantity],
    );
    // MySQL lacks the units Redis reserved (or the sale row is gone): no retry can fix that. The
    // insert is undone by rolling the transaction back.
    if (taken.affectedRows !== 1) throw new DeadLetter();
    return 'written';
  }).catch((err: unknown) => {
    if (err instanceof DeadLetter) return 'dead' as const;
    throw err;
  });
}
