/**
 * The invariants of PRODUCT.md §2, checked per SKU after a burst, as booleans with the numbers
 * behind them (a benchmark reports; it must not stop at the first failed expectation).
 */
import type { Redis } from 'ioredis';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { RedisInventory } from '../src/inventory/redis-inventory.js';

export interface InvariantReport {
  noOversell: boolean;
  conservation: boolean;
  noLostOrder: boolean;
  perUserLimit: boolean;
  details: Record<string, unknown>;
}

export async function checkInvariants(opts: {
  pool: Pool;
  redis: Redis;
  sku: string;
  perUserLimit: number;
  /** Order numbers the variant answered 202 for. */
  acceptedOrderNos: string[];
  /** Whether the variant keeps Redis counters (ours, queue) or only MySQL (sync). */
  usesRedis: boolean;
  /** For ours: how many OrderWorkflow executions exist for the SKU (exactly one per order). */
  workflowCount?: number;
}): Promise<InvariantReport> {
  const { pool, redis, sku } = opts;
  const [[sale]] = await pool.query<RowDataPacket[]>('SELECT stock, available FROM sales WHERE sku = ?', [sku]);
  const [byStatus] = await pool.query<RowDataPacket[]>('SELECT status, COUNT(*) AS orders, SUM(quantity) AS units FROM orders WHERE sku = ? GROUP BY status', [sku]);
  const units = (status: string) => Number(byStatus.find((r) => r.status === status)?.units ?? 0);
  const [[maxHeld]] = await pool.query<RowDataPacket[]>(
    `SELECT COALESCE(MAX(held), 0) AS m FROM (SELECT SUM(quantity) AS held FROM orders WHERE sku = ? AND status IN ('AWAITING_PAYMENT','PAID') GROUP BY user_id) t`,
    [sku],
  );
  const [rows] = await pool.query<RowDataPacket[]>('SELECT order_no FROM orders WHERE sku = ?', [sku]);
  const stored = new Set(rows.map((r) => String(r.order_no)));
  const missing = opts.acceptedOrderNos.filter((orderNo) => !stored.has(orderNo));

  const stock = Number(sale?.stock);
  const mysqlAvailable = Number(sale?.available);
  const holding = units('AWAITING_PAYMENT') + units('PAID');
  const redisSale = opts.usesRedis ? await new RedisInventory(redis).getSale(sku) : null;

  const noOversell = holding <= stock && mysqlAvailable >= 0 && (!redisSale || redisSale.available >= 0);
  const conservation =
    stock === mysqlAvailable + holding &&
    (!redisSale ||
      (redisSale.stock === redisSale.available + redisSale.reserved + redisSale.sold &&
        redisSale.reserved === units('AWAITING_PAYMENT') &&
        redisSale.sold === units('PAID')));
  const noLostOrder = missing.length === 0 && (opts.workflowCount === undefined || opts.workflowCount === opts.acceptedOrderNos.length);
  const perUserLimit = Number(maxHeld?.m) <= opts.perUserLimit;
  return {
    noOversell,
    conservation,
    noLostOrder,
    perUserLimit,
    details: {
      stock,
      mysql: { available: mysqlAvailable, awaitingPayment: units('AWAITING_PAYMENT'), paid: units('PAID') },
      redis: redisSale && { available: redisSale.available, reserved: redisSale.reserved, sold: redisSale.sold },
      accepted: opts.acceptedOrderNos.length,
      missingOrders: missing.length,
      workflows: opts.workflowCount,
      maxUnitsHeldByOneUser: Number(maxHeld?.m),
    },
  };
}
