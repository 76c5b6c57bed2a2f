/**
 * Orders paid through Stripe in the stack tests: a shopper's checkout of one unit, and its PaymentIntent once the
 * order view shows it (a moment after the order is persisted).
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { ShopperAuth } from '../../src/api/auth.js';
import type { Stores } from '../../src/db/stores.js';
import type { RedisClient } from '../../src/infra/redis.js';
import { waitFor } from '../../stack/wait-for.js';
import { putOnSale } from './fixtures.js';
import { httpRequest } from './http.js';

export interface OrderWithIntent {
  orderNo: string;
  sku: string;
  token: string;
  intent: { id: string; clientSecret: string };
  totalCents: number;
}

export async function checkoutWithIntent(deps: {
  api: string;
  auth: ShopperAuth;
  stores: Stores;
  redis: RedisClient;
}): Promise<OrderWithIntent> {
  const sale = await putOnSale(deps.stores, deps.redis, { stock: 5 });
  const token = await deps.auth.issue(`stripe-${randomUUID().slice(0, 8)}`);
  const accepted = await httpRequest(deps.api, 'POST', '/api/checkout', {
    json: { sku: sale.sku, quantity: 1 },
    token,
  });
  expect(accepted.status).toBe(202);
  const orderNo: string = accepted.body.orderNo;
  const order = await waitFor(
    async () => {
      const read = await httpRequest(deps.api, 'GET', `/api/orders/${orderNo}`, { token });
      return read.body?.paymentIntent ? read.body : false;
    },
    { what: `the PaymentIntent of ${orderNo} in its order view`, timeoutMs: 20_000 },
  );
  expect(order).toMatchObject({ status: 'AWAITING_PAYMENT', paymentProvider: 'stripe', totalCents: sale.priceCents });
  return { orderNo, sku: sale.sku, token, intent: order.paymentIntent, totalCents: sale.priceCents };
}
