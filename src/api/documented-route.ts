/**
 * One declaration per route: `route(router, doc, handler)` mounts the handler on the Koa router and
 * keeps `doc` (method, path, schemas, answers) beside it, from which src/api/openapi.ts builds the
 * route's OpenAPI operation. A route mounted without it is still found by the coverage test
 * (test/openapi.test.ts walks the routers' stacks), which names it.
 *
 * Handlers keep validating with the same schemas they declare here (src/api/schemas.ts); the spec
 * describes them, it does not replace the handler's own order of checks (auth before body, etc.).
 */
import type Router from '@koa/router';
import type { RouterMiddleware } from '@koa/router';
import type { z } from 'zod';
import type { ErrorCode } from './errors.js';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** Who may call a route; each maps to an OpenAPI security scheme (src/api/openapi.ts). */
export type RouteAuth = 'shopper' | 'admin' | 'webhook';

/** A success answer: its description, and its body unless it has none. */
export interface SuccessAnswer {
  description: string;
  /** The body's schema (JSON unless contentType says otherwise). */
  schema?: z.ZodType;
  /** Default application/json. */
  contentType?: string;
  /** Response headers worth documenting (e.g. Location). */
  headers?: z.ZodObject;
}

/** An error answer: the error codes it may carry; its body is the shared ApiError unless `schema` says otherwise. */
export interface ErrorAnswer {
  codes: ErrorCode[];
  /** Overrides the default description (the codes and when each is answered). */
  description?: string;
  /** A body other than the shared error shape (e.g. /healthz's 503 with its checks). */
  schema?: z.ZodType;
}

export interface RouteDoc {
  method: HttpMethod;
  /** Koa syntax (`/api/orders/:orderNo`); the spec shows it as `/api/orders/{orderNo}`. */
  path: string;
  /** Unique across the API, camelCase: what generated clients name the call. */
  operationId: string;
  summary: string;
  description?: string;
  /** Groups routes in the docs page. */
  tag: string;
  auth?: RouteAuth;
  /** One schema per `:param` of the path. */
  params?: z.ZodObject;
  /** Query parameters (admin lists: filters, cursor, limit). */
  query?: z.ZodObject;
  /** Request headers that matter (Idempotency-Key, Prefer, …); auth headers come from `auth`. */
  headers?: z.ZodObject;
  /** The JSON body's schema, from src/api/schemas.ts. */
  body?: z.ZodType;
  /** Success answers by status. */
  responses: Partial<Record<number, SuccessAnswer>>;
  /** Error answers by status. */
  errors?: Partial<Record<number, ErrorAnswer>>;
}

const docsByRouter = new WeakMap<Router, RouteDoc[]>();

/** Mounts `handler` at `doc.method doc.path` on `router` and records `doc` for the OpenAPI document. */
export function route(router: Router, doc: RouteDoc, handler: RouterMiddleware): void {
  router.register(doc.path, [doc.method.toUpperCase()], handler);
  const docs = docsByRouter.get(router) ?? [];
  docs.push(doc);
  docsByRouter.set(router, docs);
}

/** The route docs declared on `router` through `route`. */
export function documentedRoutes(router: Router): readonly RouteDoc[] {
  return docsByRouter.get(router) ?? [];
}

/** `/api/orders/:orderNo` → `/api/orders/{orderNo}`. */
export function openApiPath(koaPath: string): string {
  return koaPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}
