/**
 * Baseline "sync": the design the seeds start from. The whole checkout is one MySQL transaction
 * that locks the SKU's sales row (SELECT … FOR UPDATE), checks window, per-user limit and stock,
 * takes the units and inserts the order. Correct by construction (the row lock serialises every
 * checkout of a SKU), and for that very reason bounded by one row lock and the pool.
 *
 * Fair, not a strawman: same Koa shell, same JWT auth and zod schemas, same error codes, the pool
 * the app itself uses (createMysqlPool, same connectionLimit), the Idempotency-Key honoured, and
 * no Redis at all (it does not need any).
 */
import Router from '@koa/router';
import type Koa from 'koa';
import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { ShopperAuth } from '../../src/api/auth.js';
import { ApiError } from '../../src/api/errors.js';
import { createKoaApp, jsonBody } from '../../src/api/http.js';
import { checkoutSchema, idempotencyKeySchema } from '../../src/api/schemas.js';
import type { AppConfig } from '../../src/config/index.js';
import { inTransaction } from '../../src/db/rows.js';
import type { Logger } from '../../src/infra/logger.js';
import { newOrderNo } from '../../src/order/order-numbers.js';

export function createSyncCheckoutApp({
  config,
  pool,
  logger,
}: {
  config: AppConfig;
  pool: Pool;
  logger: Logger;
}): Koa {
  const auth = new ShopperAuth(config);
  const router = new Router();
  router.post('/api/checkout', async (ctx) => {
    const userId = await auth.authenticate(ctx);
    const { sku, quantity } = checkoutSchema.parse(jsonBody(ctx));
    const idempotencyKey = idempotencyKeySchema.parse(ctx.get('idempotency-key') || undefined);
    const orderNo = await checkout(pool, config, { userId, sku, quantity, idempotencyKey });
    ctx.status = 202;
    ctx.set('Location', `/api/orders/${orderNo}`);
    ctx.body = { orderNo, status: 'PENDING', statusUrl: `/api/orders/${orderNo}` };
  });
  return createKoaApp([router], logger);
}

interface Request {
  userId: string;
  sku: string;
  quantity: number;
  idempotencyKey: string | undefined;
}

/** One transaction; checks in the same order as reserve.lua so both answer alike. */
async function checkout(pool: Pool, config: AppConfig, req: Request): Promise<string> {
  return inTransaction(pool, async (conn) => {
    const [[sale]] = await conn.query<RowDataPacket[]>(
      'SELECT available, per_user_limit, price_cents, starts_at, ends_at FROM sales WHERE sku = ? FOR UPDATE',
      [req.sku],
    );
    if (!sale) throw new ApiError('SKU_NOT_FOUND', `no sale for sku ${req.sku}`);
    // The reads below run while this transaction holds the SKU's row lock, and InnoDB takes a
    // REPEATABLE READ snapshot at the first plain read, i.e. after the lock: they see every order
    // committed by the checkouts that held the lock before, so the limit holds under concurrency.
    if (req.idempotencyKey) {
      const [[seen]] = await conn.query<RowDataPacket[]>(
        'SELECT order_no FROM orders WHERE user_id = ? AND sku = ? AND idempotency_key = ? LIMIT 1',
        [req.userId, req.sku, req.idempotencyKey],
      );
      if (seen) return String(seen.order_no);
    }
    const now = new Date();
    const startsAt = sale.starts_at as Date | null;
    const endsAt = sale.ends_at as Date | null;
    if ((startsAt && now < startsAt) || (endsAt && now >= endsAt)) {
      throw new ApiError('SALE_NOT_ACTIVE', `the sale for ${req.sku} is not open now`);
    }
    const [[held]] = await conn.query<RowDataPacket[]>(
      `SELECT COALESCE(SUM(quantity), 0) AS units FROM orders WHERE sku = ? AND user_id = ? AND status IN ('AWAITING_PAYMENT','PAID')`,
      [req.sku, req.userId],
    );
    if (Number(held?.units) + req.quantity > Number(sale.per_user_limit)) {
      throw new ApiError(
        'PURCHASE_LIMIT_EXCEEDED',
        `buying ${req.quantity} would exceed the per-user limit for ${req.sku}`,
      );
    }
    if (Number(sale.available) < req.quantity) throw new ApiError('SOLD_OUT', `${req.sku} is sold out`);

    const orderNo = newOrderNo(now.getTime());
    const priceCents = Number(sale.price_cents);
    await conn.query<ResultSetHeader>('UPDATE sales SET available = available - ? WHERE sku = ?', [
      req.quantity,
      req.sku,
    ]);
    await conn.query<ResultSetHeader>(
      `INSERT INTO orders (order_no, sku, user_id, quantity, unit_price_cents, total_cents, status,
                           idempotency_key, payment_deadline, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 'AWAITING_PAYMENT', ?, ?, ?)`,
      [
        orderNo,
        req.sku,
        req.userId,
        req.quantity,
        priceCents,
        priceCents * req.quantity,
        req.idempotencyKey ?? null,
        new Date(now.getTime() + config.paymentWindowMs),
        now,
      ],
    );
    return orderNo;
  });
}
