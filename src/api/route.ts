/** Checks what a route's doc declares and keeps it for openapi.ts, lazily: check order is contract (401 before 400). */
import Router, { type RouterContext } from '@koa/router';
import type { z } from 'zod';
import type { ErrorCode } from '../infra/error-codes.js';
import { jsonBody } from './http.js';
import type { WebhookSignature } from '../payments/providers/definition.js';

/** Who may call a route; each maps to an OpenAPI security scheme (a provider's: its webhook signature). */
export type RouteAuth = 'shopper' | 'admin' | 'eventsReader' | WebhookSignature;

/** A success answer: its description, and its body (default application/json) unless it has none. */
interface SuccessAnswer {
  description: string;
  schema?: z.ZodType;
  contentType?: string;
  headers?: z.ZodObject;
}

type Schema = z.ZodType | undefined;
type ObjectSchema = z.ZodObject | undefined;

export interface RouteDoc<
  P extends ObjectSchema = ObjectSchema,
  Q extends ObjectSchema = ObjectSchema,
  H extends ObjectSchema = ObjectSchema,
  B extends Schema = Schema,
> {
  /** The method and the path in Koa syntax (`GET /api/orders/:orderNo`); the spec shows `/api/orders/{orderNo}`. */
  at: `${'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'} ${string}`;
  /** Unique across the API, camelCase: what generated clients name the call. */
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  auth?: RouteAuth;
  params?: P;
  query?: Q;
  /** Each checked on its own; auth headers come from `auth`. */
  headers?: H;
  body?: B;
  responses: Partial<Record<number, SuccessAnswer>>;
  /** The error codes it may answer, each documented under its own status (src/infra/error-codes.ts). */
  errors?: ErrorCode[];
  /** By status: a description other than each code and when it is answered. */
  errorDescriptions?: Partial<Record<number, string>>;
  /** By status: a body other than the shared ApiError (e.g. /healthz's 503 with its checks). */
  errorSchemas?: Partial<Record<number, z.ZodType>>;
  /** Runs first: the caller's check that `auth` declares (OperatorTokens). */
  guard?(ctx: RouterContext): void | Promise<void>;
  handler(ctx: RouterContext, input: RouteInput<P, Q, H, B>): unknown;
}

/** The declared parts of a request, each validated (and then typed) when the handler asks for it. */
interface RouteInput<P extends ObjectSchema, Q extends ObjectSchema, H extends ObjectSchema, B extends Schema> {
  /** Null when the path does not match: it names nothing, so the handler answers its own 404, never 400. */
  params(): P extends z.ZodType ? z.output<P> | null : never;
  /** 400 INVALID_REQUEST when it does not match. */
  query(): Q extends z.ZodType ? z.output<Q> : never;
  /** An absent header is undefined, an empty one ''; 400 INVALID_REQUEST when one does not match. */
  headers(): H extends z.ZodType ? z.output<H> : never;
  /** 400 INVALID_REQUEST when there is none or it does not match. */
  body(): B extends z.ZodType ? z.output<B> : never;
}

const docsByRouter = new WeakMap<Router, RouteDoc[]>();

export function route<
  P extends ObjectSchema = undefined,
  Q extends ObjectSchema = undefined,
  H extends ObjectSchema = undefined,
  B extends Schema = undefined,
>(router: Router, doc: RouteDoc<P, Q, H, B>): void {
  const { method, path } = methodAndPath(doc);
  const { guard } = doc;
  // A route without a guard (a shopper's) goes straight to its handler: no tick added to the checkout's path.
  router.register(
    path,
    [method.toUpperCase()],
    guard
      ? async (ctx) => {
          await guard(ctx);
          return doc.handler(ctx, inputOf(ctx, doc));
        }
      : (ctx) => doc.handler(ctx, inputOf(ctx, doc)),
  );
  docsByRouter.set(router, [...documentedRoutes(router), doc]);
}

function inputOf<P extends ObjectSchema, Q extends ObjectSchema, H extends ObjectSchema, B extends Schema>(
  ctx: RouterContext,
  doc: RouteDoc<P, Q, H, B>,
): RouteInput<P, Q, H, B> {
  const once = <T>(parse: () => T): (() => T) => {
    let parsed: { value: T } | undefined;
    return () => (parsed ??= { value: parse() }).value;
  };
  return {
    params: once(() => {
      const parsed = declared(doc.params, 'params').safeParse(ctx.params);
      return parsed.success ? parsed.data : null;
    }),
    query: once(() => declared(doc.query, 'query').parse(ctx.query)),
    headers: once(() => {
      const shape = (declared(doc.headers, 'headers') as z.ZodObject).shape as Record<string, z.ZodType>;
      // One header at a time, so an error names the header; sent empty is not absent (an empty key is no key).
      const value = (name: string) => (ctx.headers[name.toLowerCase()] === undefined ? undefined : ctx.get(name));
      return Object.fromEntries(Object.entries(shape).map(([name, schema]) => [name, schema.parse(value(name))]));
    }),
    body: once(() => declared(doc.body, 'body').parse(jsonBody(ctx))),
  } as RouteInput<P, Q, H, B>;
}

function declared<S extends z.ZodType>(schema: S | undefined, part: string): S {
  if (!schema) throw new Error(`the route asked for its ${part}, which it does not declare`);
  return schema;
}

export function documentedRoutes(router: Router): readonly RouteDoc[] {
  return docsByRouter.get(router) ?? [];
}

/** One router holding every route of `routers`, with their docs: a request is matched once, not once per router. */
export function mergeRouters(routers: readonly Router[]): Router {
  const merged = new Router();
  for (const router of routers) merged.use(router.routes());
  docsByRouter.set(
    merged,
    routers.flatMap((router) => documentedRoutes(router)),
  );
  return merged;
}

export function methodAndPath(doc: Pick<RouteDoc, 'at'>) {
  const [method, path] = doc.at.split(' ') as [string, string];
  return { method: method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete', path };
}

/** `/api/orders/:orderNo` → `/api/orders/{orderNo}`. */
export function openApiPath(koaPath: string): string {
  return koaPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}
