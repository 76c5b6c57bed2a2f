/**
 * Baseline "ceiling": the product's Koa shell (same middleware, same JSON body parsing, same error
 * shape) answering a constant 202. No auth, no validation, no I/O: whatever req/s this reaches is
 * what the machine allows at all for this HTTP stack, the upper bound every real design is read
 * against.
 */
import Router from '@koa/router';
import type Koa from 'koa';
import { createKoaApp, jsonBody } from '../../src/api/http.js';
import type { Logger } from '../../src/infra/logger.js';

/** A syntactically valid order number (ORDER_NO_PATTERN), so the reply has the real shape and size. */
const CONSTANT_ORDER_NO = '00000000000000000000000000';

export function createCeilingApp(logger: Logger): Koa {
  const router = new Router();
  router.post('/api/checkout', (ctx) => {
    // Touch the parsed body as the real handler does: parsing is part of the HTTP cost measured.
    jsonBody(ctx);
    ctx.status = 202;
    ctx.set('Location', `/api/orders/${CONSTANT_ORDER_NO}`);
    ctx.body = { orderNo: CONSTANT_ORDER_NO, status: 'PENDING', statusUrl: `/api/orders/${CONSTANT_ORDER_NO}` };
  });
  return createKoaApp([router], logger);
}
