/**
 * Test fixtures built from the app's own code against the real test stack: a fresh SKU on sale
 * in MySQL and Redis, and the invariant checks of PRODUCT.md §2.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { expect } from 'vitest';
import { SalesService } from '../../src/api/sales.js';
import { RedisInventory } from '../../src/inventory/redis-inventory.js';

export const uniqueSku = (prefix = 'SKU') => `${prefix}-${randomBytes(5).toString('hex')}`;

export async function putOnSale(
  pool: Pool,
  redis: Redis,
  sale: { sku?: string; stock: number; perUserLimit?: number; priceCents?: number },
): Promise<{ sku: string; priceCents: number }> {
  const sku = sale.sku ?? uniqueSku();
  const priceCents = sale.priceCents ?? 1_999;
  await new SalesService(pool, new RedisInventory(redis)).create({
    sku,
    name: `Test ${sku}`,
    priceCents,
    stock: sale.stock,
    perUserLimit: sale.perUserLimit ?? 1,
  });
  return { sku, priceCents };
}

export interface StockPicture {
  redis: { stock: number; available: number; reserved: number; sold: number };
  mysql: { stock: number; available: number; awaiting: number; paid: number; cancelled: number; failed: number; heldByUser: Map<string, number> };
}

export async function stockPicture(pool: Pool, redis: Redis, sku: string): Promise<StockPicture> {
  const sale = await new RedisInventory(redis).getSale(sku);
  if (!sale) throw new Error(`no sale ${sku} in Redis`);
  const [[row]] = await pool.query<RowDataPacket[]>('SELECT stock, available FROM sales WHERE sku = ?', [sku]);
  const [byStatus] = await pool.query<RowDataPacket[]>('SELECT status, SUM(quantity) AS units FROM orders WHERE sku = ? GROUP BY status', [sku]);
  const units = (status: string) => Number(byStatus.find((r) => r.status === status)?.units ?? 0);
  const [byUser] = await pool.query<RowDataPacket[]>(
    `SELECT user_id, SUM(quantity) AS units FROM orders WHERE sku = ? AND status IN ('AWAITING_PAYMENT','PAID') GROUP BY user_id`,
    [sku],
  );
  return {
    redis: { stock: sale.stock, available: sale.available, reserved: sale.reserved, sold: sale.sold },
    mysql: {
      stock: Number(row?.stock),
      available: Number(row?.available),
      awaiting: units('AWAITING_PAYMENT'),
      paid: units('PAID'),
      cancelled: units('CANCELLED'),
      failed: units('FAILED'),
      heldByUser: new Map(byUser.map((r) => [String(r.user_id), Number(r.units)])),
    },
  };
}

/** No oversell and conservation, in Redis and MySQL alike, for a SKU at rest. */
export function expectInvariants(picture: StockPicture, perUserLimit?: number): void {
  const { redis, mysql } = picture;
  expect(redis.available).toBeGreaterThanOrEqual(0);
  expect(redis.stock).toBe(redis.available + redis.reserved + redis.sold);
  expect(mysql.available).toBeGreaterThanOrEqual(0);
  expect(mysql.stock).toBe(mysql.available + mysql.awaiting + mysql.paid);
  // Both stores agree on what is held and what is sold.
  expect(mysql.awaiting).toBe(redis.reserved);
  expect(mysql.paid).toBe(redis.sold);
  if (perUserLimit !== undefined) for (const units of mysql.heldByUser.values()) expect(units).toBeLessThanOrEqual(perUserLimit);
}
