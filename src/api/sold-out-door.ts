/** A plain checkout of a SKU flagged sold out gets the app's 409 without Koa (docs/performance.md); others go on. */
import { IncomingMessage, ServerResponse } from 'node:http';
import type Koa from 'koa';
import type { CheckoutService } from '../order/checkout.js';
import type { ShopperAuth } from './auth.js';
import { errorBody, toApiError } from './errors.js';
import { readJsonBody } from './http.js';
import type { ApiMetrics } from './metrics.js';
import { REQUEST_ID_HEADER, requestIdOf, type AccessLog } from './request-log.js';
import { checkoutSchema } from './schemas.js';

const CHECKOUT_PATH = '/api/checkout';
const JSON_CONTENT_TYPE = /^application\/json\s*(;|$)/i;

type RequestHandler = ReturnType<Koa['callback']>;

/** The app's request handler (Koa's callback()) behind the front's sold-out check: given to the HTTP server instead. */
export function soldOutDoor(
  app: RequestHandler,
  {
    auth,
    checkout,
    accessLog,
    metrics,
  }: { auth: ShopperAuth; checkout: CheckoutService; accessLog: AccessLog; metrics: ApiMetrics },
): RequestHandler {
  return async (req, res) => {
    const startedAt = metrics.now();
    // HTTP/2 requests (none today) are the app's alone.
    if (
      !checkout.anySoldOut ||
      !(req instanceof IncomingMessage) ||
      !(res instanceof ServerResponse) ||
      !isPlainCheckout(req)
    )
      return app(req, res);
    let parsed: unknown;
    try {
      ({ parsed } = await readJsonBody(req));
    } catch {
      // The app reads the same failure and answers it (400, 413).
      return app(req, res);
    }
    const sku = (parsed as { sku?: unknown } | null)?.sku;
    if (typeof sku !== 'string' || !checkout.flaggedSoldOut(sku) || !hasShopperToken(req, auth)) return app(req, res);
    const request = checkoutSchema.safeParse(parsed);
    const refusal = request.success ? checkout.soldOutRefusal(request.data.sku) : null;
    if (!refusal) return app(req, res);
    const answer = toApiError(refusal);
    const incomingId = req.headers['x-request-id'];
    const requestId = requestIdOf(typeof incomingId === 'string' ? incomingId : '');
    const body = JSON.stringify(errorBody(answer));
    // The headers Koa and the request-log middleware would set.
    res.writeHead(answer.status, {
      [REQUEST_ID_HEADER]: requestId,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
    metrics.checkoutOutcome('SOLD_OUT');
    accessLog.record({
      requestId,
      method: 'POST',
      route: CHECKOUT_PATH,
      path: CHECKOUT_PATH,
      status: answer.status,
      code: answer.code,
      ms: metrics.now() - startedAt,
    });
  };
}

/** No idempotency key or wait preference, a plain JSON body. */
function isPlainCheckout(req: IncomingMessage): boolean {
  if (req.method !== 'POST' || req.url !== CHECKOUT_PATH) return false;
  const { headers } = req;
  if (headers['idempotency-key'] !== undefined || headers.prefer !== undefined) return false;
  if (!JSON_CONTENT_TYPE.test(headers['content-type'] ?? '')) return false;
  const encoding = headers['content-encoding'];
  return encoding === undefined || encoding.trim().toLowerCase() === 'identity';
}

/** Without one the app answers 401. */
function hasShopperToken(req: IncomingMessage, auth: ShopperAuth): boolean {
  try {
    auth.shopperOf(req.headers.authorization ?? '');
    return true;
  } catch {
    return false;
  }
}
