/**
 * Baseline "ceiling": the product's Koa shell (same middleware, same JSON body parsing, same error
 * shape) answering a constant: 202 to a checkout, an order to a status read, APPLIED to a webhook.
 * No auth, no validation, no I/O: whatever req/s this reaches is what the machine allows at all
 * for this HTTP stack, the upper bound every real design is read against.
 */
import Router from '@koa/router';
import type Koa from 'koa';
import { createKoaApp, jsonBody } from '../../src/api/http.js';
import type { Logger } from '../../src/infra/logger.js';

/** A syntactically valid order number (ORDER_NO_PATTERN), so the reply has the real shape and size. */
const CONSTANT_ORDER_NO = '00000000000000000000000000';

/** An order as GET /api/orders/:orderNo answers it, of the real shape and size. */
const CONSTANT_ORDER = {
  orderNo: CONSTANT_ORDER_NO,
  sku: 'CEILING-SKU',
  quantity: 1,
  totalCents: 1_000,
  status: 'AWAITING_PAYMENT',
  paymentDeadline: '2026-01-01T00:30:00.000Z',
  createdAt: '2026-01-01T00:00:00.000Z',
  source: 'database',
};

export function createCeilingApp(logger: Logger): Koa {
  const router = new Router();
  router.post('/api/checkout', (ctx) => {
    // Touch the parsed body as the real handler does: parsing is part of the HTTP cost measured.
    jsonBody(ctx);
    ctx.status = 202;
    ctx.set('Location', `/api/orders/${CONSTANT_ORDER_NO}`);
    ctx.body = { orderNo: CONSTANT_ORDER_NO, status: 'PENDING', statusUrl: `/api/orders/${CONSTANT_ORDER_NO}` };
  });
  // The other request classes' floors (bench/front-door.ts): a status read and a webhook, answered alike.
  router.get('/api/orders/:orderNo', (ctx) => {
    ctx.body = { ...CONSTANT_ORDER, orderNo: ctx.params.orderNo };
  });
  router.post('/api/payments/webhook', (ctx) => {
    jsonBody(ctx);
    ctx.body = { received: true, outcome: 'APPLIED' };
  });
  return createKoaApp([router], logger);
}
