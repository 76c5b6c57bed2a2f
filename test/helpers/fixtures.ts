/**
 * Test fixtures built from the app's own code against the real test stack: a fresh SKU on sale in
 * MySQL and Redis, and the shared invariant checker (src/invariants) turned into assertions.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../../src/infra/redis.js';
import { expect } from 'vitest';
import { SalesService } from '../../src/sales/sales-service.js';
import type { Stores } from '../../src/db/stores.js';
import type { Takeback } from '../../src/db/rows.js';
import {
  checkSaleInvariants,
  type InvariantReport,
  type RedisCounters,
  type SaleInvariantOptions,
} from '../../src/invariants/check.js';
import { RedisInventory } from '../../src/redis/inventory.js';
import type { OrderInput } from '../../src/model/order-workflow.js';
import { testConfig } from './env.js';
import { waitFor, WaitTimeoutError } from '../../stack/wait-for.js';
import { replyOf, type Reply } from './http.js';

export const uniqueSku = (prefix = 'SKU') => `${prefix}-${randomBytes(5).toString('hex')}`;

/** A sale as POST /api/sales takes it; each field left out is that of a small plain sale of a fresh SKU. */
export type SaleRequest = {
  sku?: string;
  name?: string;
  priceCents?: number;
  stock?: number;
  perUserLimit?: number;
} & Record<string, unknown>;

/** Asks the admin API to put a sale on (POST /api/sales), as an operator does; the reply as it came. */
export function requestSale(apiUrl: string, adminToken: string, sale: SaleRequest = {}): Promise<Reply> {
  const body = { sku: uniqueSku(), name: 'Test sale', priceCents: 2_500, stock: 10, perUserLimit: 1, ...sale };
  return replyOf(apiUrl, 'POST', '/api/sales', { token: adminToken, json: body });
}

/** Puts a sale on through the admin API and answers the sale it created (a reply other than 201 fails the test). */
export async function saleThroughApi(
  apiUrl: string,
  adminToken: string,
  sale: SaleRequest = {},
): Promise<{ sku: string; priceCents: number; stock: number; perUserLimit: number }> {
  const reply = await requestSale(apiUrl, adminToken, sale);
  expect(reply.status, `POST /api/sales: ${JSON.stringify(reply.body)}`).toBe(201);
  return reply.body as { sku: string; priceCents: number; stock: number; perUserLimit: number };
}

export async function putOnSale(
  stores: Stores,
  redis: RedisClient,
  sale: { sku?: string; stock: number; perUserLimit?: number; priceCents?: number },
): Promise<{ sku: string; priceCents: number }> {
  const sku = sale.sku ?? uniqueSku();
  const priceCents = sale.priceCents ?? 1_999;
  await SalesService.onClients(stores, redis, testConfig().temporal.taskQueue).create({
    sku,
    name: `Test ${sku}`,
    priceCents,
    stock: sale.stock,
    perUserLimit: sale.perUserLimit ?? 1,
  });
  return { sku, priceCents };
}

/** The invariant report of one SKU (both stores), with its figures for further assertions. */
export function saleReport(
  stores: Stores,
  redis: RedisClient,
  sku: string,
  options: Omit<SaleInvariantOptions, 'sku'> = {},
): Promise<InvariantReport> {
  return checkSaleInvariants(
    { stores, inventory: new RedisInventory(redis, testConfig().temporal.taskQueue) },
    { sku, ...options },
  );
}

/** Every invariant holds; on failure the message shows the figures behind the checks. */
export function expectInvariants(report: InvariantReport): void {
  expect(report.checks, JSON.stringify(report.figures)).toEqual(
    Object.fromEntries(Object.keys(report.checks).map((name) => [name, true])),
  );
}

/**
 * Where a test ends: Redis's counters of the sale become `redisCounters` and every invariant holds. The order's row
 * changes one workflow step before the release or confirm reaches Redis, so this waits (bounded) for the stores to
 * agree, then asserts on the last report so a timeout shows the figures. The report, for more.
 */
export async function expectSaleSettled(
  stores: Stores,
  redis: RedisClient,
  sku: string,
  redisCounters: Partial<RedisCounters>,
): Promise<InvariantReport> {
  const matches = (report: InvariantReport) =>
    Object.entries(redisCounters).every(
      ([name, value]) => report.figures.redis?.[name as keyof RedisCounters] === value,
    );
  const settled = async () => {
    const report = await saleReport(stores, redis, sku);
    return report.ok && matches(report) && report;
  };
  const last = await waitFor(settled, { what: `${sku} to settle`, timeoutMs: 20_000, intervalMs: 100 }).catch(
    (err: unknown) => {
      if (err instanceof WaitTimeoutError) return saleReport(stores, redis, sku);
      throw err;
    },
  );
  expect(last.figures.redis).toMatchObject(redisCounters);
  expectInvariants(last);
  return last;
}

/** The input the API starts an order of one unit with: its number, shopper, reservation time and payment window. */
export function oneUnitOrder(
  sale: { sku: string; priceCents: number },
  order: { orderNo: string; userId: string; createdAtMs: number; paymentWindow: string },
): OrderInput {
  return {
    orderNo: order.orderNo,
    sku: sale.sku,
    userId: order.userId,
    quantity: 1,
    unitPriceCents: sale.priceCents,
    createdAt: new Date(order.createdAtMs).toISOString(),
    paymentWindow: order.paymentWindow,
  };
}

/** A card holder's chargeback of a Stripe payment as Stripe first reports it (open, needs a response). */
export function openDispute(dispute: { id: string; intentId: string; orderNo: string; amountCents: number }): Takeback {
  return {
    ...dispute,
    kind: 'DISPUTE',
    provider: 'stripe',
    status: 'OPEN',
    providerStatus: 'needs_response',
    stage: 1,
    reason: 'fraudulent',
    dueBy: null,
    createdAt: new Date(),
  };
}
