/** The API's Koa shell (the benchmark's baselines' too, to pay the same HTTP costs): errors, JSON bodies, routers. */
import type { IncomingMessage } from 'node:http';
import type Router from '@koa/router';
import coBody from 'co-body';
import Koa, { type Context, type Middleware, type Next } from 'koa';
import type { Logger } from '../infra/logger.js';
import { errorMiddleware, invalidRequest, notAllowed } from './errors.js';

const BODY_LIMIT = '16kb';

/** `proxy`: whom to believe about the client's address; `outermost`: before the error mapping, seeing every answer. */
export function createKoaApp(
  routers: Router[],
  logger: Logger,
  options: { proxy?: { trustProxy: boolean; trustProxyHops: number }; outermost?: Middleware[] } = {},
): Koa {
  const app = new Koa();
  app.proxy = false;
  if (options.proxy?.trustProxy) {
    // ctx.ip: the X-Forwarded-For entry `trustProxyHops` from the right; those further left the client wrote.
    app.proxy = true;
    app.maxIpsCount = options.proxy.trustProxyHops;
  }
  for (const middleware of options.outermost ?? []) app.use(middleware);
  app.use(errorMiddleware(logger));
  app.use(methodNotAllowed);
  app.use(requireJsonBodies);
  app.use(parseJsonBodies);
  for (const router of routers) app.use(router.routes());
  return app;
}

/** Our 405, not allowedMethods' (501 to PURGE); mounted once before every router, so Allow spans all their methods. */
async function methodNotAllowed(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.status !== 404 || ctx.body !== undefined) return;
  const layers = ((ctx as { matched?: { methods: string[] }[] }).matched ?? []).filter(
    (layer) => layer.methods.length > 0,
  );
  if (layers.length === 0 || layers.some((layer) => layer.methods.includes(ctx.method))) return;
  // @koa/router adds HEAD to a GET route's methods.
  const allow = [...new Set([...layers.flatMap((layer) => layer.methods), 'OPTIONS'])].join(', ');
  if (ctx.method === 'OPTIONS') {
    ctx.status = 204;
    ctx.set('Allow', allow);
    return;
  }
  throw notAllowed(ctx, allow);
}

async function requireJsonBodies(ctx: Context, next: () => Promise<unknown>): Promise<void> {
  if (Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding')) refuseAllButJson(ctx);
  await next();
}

/** Uncompressed JSON only, refused before it is read: no client needs gzip, and a bomb must not reach the parser. */
export function refuseAllButJson(ctx: Context): void {
  const encoding = ctx.get('content-encoding').trim().toLowerCase();
  if (encoding && encoding !== 'identity')
    throw invalidRequest('Content-Encoding is not supported: send the body uncompressed');
  if (!ctx.is('application/json')) throw invalidRequest('send JSON with Content-Type: application/json');
}

/** A JSON body as read, with the text it was parsed from (webhook signatures are over the text). */
type ReadBody = { parsed: unknown; raw: string };

/** Bodies the front's sold-out check read, handed to the app instead of read again. */
const readBeforeApp = new WeakMap<IncomingMessage, Promise<ReadBody>>();

/** Read once (co-body's 400 and 413 map in toApiError): the first read's outcome, failure included, is the app's. */
export function readJsonBody(req: IncomingMessage): Promise<ReadBody> {
  let read = readBeforeApp.get(req);
  if (!read) {
    const options = { limit: BODY_LIMIT, encoding: 'utf-8', strict: true, returnRawBody: true } as const;
    read = coBody.json(req, options) as Promise<ReadBody>;
    readBeforeApp.set(req, read);
  }
  return read;
}

const METHODS_WITH_BODIES = new Set(['POST', 'PUT', 'PATCH']);

/** Onto ctx.request.body and rawBody; requireJsonBodies has refused any other kind. */
async function parseJsonBodies(ctx: Context, next: Next): Promise<void> {
  if (!METHODS_WITH_BODIES.has(ctx.method)) return next();
  const request = ctx.request as { body?: unknown; rawBody?: string };
  if (ctx.is('application/json')) {
    const { parsed, raw } = await readJsonBody(ctx.req);
    request.body = parsed;
    request.rawBody = raw;
  } else request.body = {};
  await next();
}

/** The parsed JSON body; 400 when there is none. */
export function jsonBody(ctx: Context): unknown {
  const { body, rawBody } = ctx.request as { body?: unknown; rawBody?: string };
  // What arrived, not its headers: a body-less PATCH may still say Content-Length: 0.
  if (body === undefined || !rawBody?.trim()) throw invalidRequest('a JSON body is required');
  return body;
}

/** The body exactly as it arrived, for signature checks. */
export function rawBody(ctx: Context): string {
  return (ctx.request as { rawBody?: string }).rawBody ?? '';
}
