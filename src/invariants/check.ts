/** The invariants of docs/fault-tolerance.md per SKU, with their figures: one checker for tests, bench, fault suite. */
import type { ReportStore } from '../db/reports.js';
import type { RedisInventory, SaleStock } from '../redis/inventory.js';
import { soldUnits } from '../model/order-rules.js';
import type { RedisCounters } from '../model/reconcile-workflow.js';

export type { RedisCounters };

export const INVARIANTS = ['noOversell', 'conservation', 'storesAgree', 'noLostOrder', 'perUserLimit'] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface SaleFigures {
  stock: number;
  /** Units by status; sold = PAID + DISPUTED + REFUNDED (docs/fault-tolerance.md, "Money taken back"). */
  mysql: Record<'available' | 'awaitingPayment' | 'paid' | 'disputed' | 'refunded' | 'cancelled' | 'failed', number>;
  /** Null where the design keeps no Redis counters (the benchmark's sync baseline). */
  redis: RedisCounters | null;
  maxUnitsHeldByOneUser: number;
  usersHolding: number;
  accepted?: number;
  missingOrders?: number;
  workflows?: number;
}

export interface InvariantReport {
  ok: boolean;
  checks: Record<Invariant, boolean>;
  figures: SaleFigures;
}

/** No oversell and conservation of Redis's own counters: available ≥ 0 and stock = available + reserved + sold. */
export function checkRedisCounters(counters: RedisCounters): { noOversell: boolean; conservation: boolean } {
  return {
    noOversell: counters.available >= 0 && counters.reserved >= 0 && counters.sold >= 0,
    conservation: counters.stock === counters.available + counters.reserved + counters.sold,
  };
}

export interface SaleInvariantOptions {
  sku: string;
  /** Checked when given: nobody holds more AWAITING_PAYMENT + PAID units than this. */
  perUserLimit?: number;
  /** Order numbers answered 202: each must have a row. */
  acceptedOrderNos?: readonly string[];
  /** At least one per accepted order; more is fine: a start given up on may still run, fail, and hold nothing. */
  workflowCount?: number;
}

/** What the checker reads: the clients as they are, or the API's guarded views of them. */
export interface SaleInvariantSources {
  stores: { reports: Pick<ReportStore, 'saleStockFigures' | 'orderNumbersOfSale'> };
  inventory?: Pick<RedisInventory, 'getSale'>;
}

/** Checks one SKU at rest; `inventory` is omitted for a design without Redis. */
export async function checkSaleInvariants(
  deps: SaleInvariantSources,
  options: SaleInvariantOptions,
): Promise<InvariantReport> {
  const [mysql, redisSale, rows] = await Promise.all([
    deps.stores.reports.saleStockFigures(options.sku),
    deps.inventory ? deps.inventory.getSale(options.sku) : Promise.resolve(null),
    options.acceptedOrderNos ? deps.stores.reports.orderNumbersOfSale(options.sku) : Promise.resolve(null),
  ]);
  if (!mysql) throw new Error(`no sale ${options.sku} in MySQL`);
  if (deps.inventory && !redisSale) throw new Error(`no sale ${options.sku} in Redis`);
  const redis = redisSale ? countersOf(redisSale) : null;
  const awaiting = mysql.units.AWAITING_PAYMENT;
  const paid = soldUnits(mysql.units);
  const missing =
    options.acceptedOrderNos && rows
      ? options.acceptedOrderNos.filter((orderNo) => !rows.has(orderNo)).length
      : undefined;
  const redisChecks = redis ? checkRedisCounters(redis) : { noOversell: true, conservation: true };

  const checks: Record<Invariant, boolean> = {
    noOversell: awaiting + paid <= mysql.stock && mysql.available >= 0 && redisChecks.noOversell,
    conservation: mysql.stock === mysql.available + awaiting + paid && redisChecks.conservation,
    storesAgree: !redis || (redis.stock === mysql.stock && redis.reserved === awaiting && redis.sold === paid),
    noLostOrder:
      (missing === undefined || missing === 0) &&
      (options.workflowCount === undefined ||
        options.acceptedOrderNos === undefined ||
        options.workflowCount >= options.acceptedOrderNos.length),
    perUserLimit: options.perUserLimit === undefined || mysql.maxHeldByOneUser <= options.perUserLimit,
  };
  return {
    ok: INVARIANTS.every((name) => checks[name]),
    checks,
    figures: {
      stock: mysql.stock,
      mysql: {
        available: mysql.available,
        awaitingPayment: awaiting,
        paid: mysql.units.PAID,
        disputed: mysql.units.DISPUTED,
        refunded: mysql.units.REFUNDED,
        cancelled: mysql.units.CANCELLED,
        failed: mysql.units.FAILED,
      },
      redis,
      maxUnitsHeldByOneUser: mysql.maxHeldByOneUser,
      usersHolding: mysql.usersHolding,
      ...(options.acceptedOrderNos ? { accepted: options.acceptedOrderNos.length, missingOrders: missing } : {}),
      ...(options.workflowCount !== undefined ? { workflows: options.workflowCount } : {}),
    },
  };
}

export function countersOf(sale: SaleStock): RedisCounters {
  return { stock: sale.stock, available: sale.available, reserved: sale.reserved, sold: sale.sold };
}

/** Redis's counters less MySQL's, `pendingUnits` reserved for orders with no row yet: all 0 when the stores agree. */
export function driftOf(
  redis: RedisCounters | null,
  mysql: { available: number; awaitingPayment: number; sold: number },
  pendingUnits = 0,
): Record<'available' | 'reserved' | 'sold', number> {
  return {
    available: (redis?.available ?? 0) - (mysql.available - pendingUnits),
    reserved: (redis?.reserved ?? 0) - (mysql.awaitingPayment + pendingUnits),
    sold: (redis?.sold ?? 0) - mysql.sold,
  };
}
