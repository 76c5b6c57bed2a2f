/**
 * The sold-out door: once a sale is gone, nearly every request is a late shopper's checkout for a
 * SKU this process has flagged sold out (SoldOutCache). Such a checkout gets the app's own answer,
 * 409 SOLD_OUT with the same headers and body, counted and access-logged alike (AccessLog), without
 * Koa's context, middleware chain and router (docs/performance.md has what that saves).
 *
 * It answers only what it can judge exactly: POST /api/checkout with no Idempotency-Key or Prefer
 * header, a JSON body naming a flagged SKU, a valid shopper token, a body the checkout schema
 * accepts. The cheap looks come first (headers, then the flag), so a checkout for a SKU still on
 * sale costs one map lookup more than before, its token and schema checked once, by the app. Every
 * other request goes to the app unchanged; a body read here is handed on (readJsonBody), failure
 * included, never read twice, and the app answers it in its own order of checks. Off while tracing
 * is on: every request then gets its span from the app.
 */
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

export interface SoldOutDoorDeps {
  auth: ShopperAuth;
  checkout: CheckoutService;
  accessLog: AccessLog;
  metrics: ApiMetrics;
}

type RequestHandler = ReturnType<Koa['callback']>;

/** The app's request handler (Koa's callback()) behind the sold-out door: what the HTTP server is given instead. */
export function soldOutDoor(app: RequestHandler, deps: SoldOutDoorDeps): RequestHandler {
  const { auth, checkout, accessLog, metrics } = deps;
  return async (req, res) => {
    const startedAt = metrics.now();
    // HTTP/2 requests (none today: the API listens on HTTP/1.1) are the app's alone.
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
    const requestId = requestIdOf(headerOf(req, 'x-request-id'));
    const body = JSON.stringify(errorBody(answer));
    // Koa's headers for a JSON answer, and the request id the app's outermost middleware sets.
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

/** A checkout this door may judge by its headers: no idempotency key or wait preference, a plain JSON body. */
function isPlainCheckout(req: IncomingMessage): boolean {
  if (req.method !== 'POST' || req.url !== CHECKOUT_PATH) return false;
  const { headers } = req;
  if (headers['idempotency-key'] !== undefined || headers.prefer !== undefined) return false;
  if (!JSON_CONTENT_TYPE.test(headers['content-type'] ?? '')) return false;
  const encoding = headers['content-encoding'];
  return encoding === undefined || encoding.trim().toLowerCase() === 'identity';
}

/** A valid shopper token: without one the app answers 401. */
function hasShopperToken(req: IncomingMessage, auth: ShopperAuth): boolean {
  try {
    auth.shopperOf(req.headers.authorization ?? '');
    return true;
  } catch {
    return false;
  }
}

function headerOf(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return typeof value === 'string' ? value : '';
}
