/**
 * Temporal's codec server, so the Web UI and CLI show encrypted payloads. It decrypts for whoever reaches it, so it
 * listens apart from the API, for the configured origins and token only (docs/operations.md, "The codec server").
 */
import { createServer, type Server } from 'node:http';
import Router from '@koa/router';
import type { Payload, PayloadCodec } from '@temporalio/common';
import coBody from 'co-body';
import Koa, { type Context, type Next } from 'koa';
import { ConfigError, type AppConfig, type RateLimit } from '../config/index.js';
import { CredentialFailures, requireToken } from './auth.js';
import { AesGcmPayloadCodec } from '../infra/payload-codec.js';
import type { Logger } from '../infra/logger.js';
import { echo } from '../infra/refusal.js';
import { ApiError, errorMiddleware, invalidRequest, notAllowed } from './errors.js';
import { refuseAllButJson } from './http.js';

/** A history event's payloads, up to Temporal's 2 MB blob limit each, in base64 (4/3) and JSON. */
const BODY_LIMIT_BYTES = 4 * 1024 * 1024;
// Receiving a request takes at most this long (the work itself is a few ms per MB).
const REQUEST_DEADLINE_MS = 15_000;
const HEADERS_DEADLINE_MS = 5_000;

const ALLOWED_METHODS = 'POST, OPTIONS';
const ALLOWED_HEADERS = 'Content-Type, X-Namespace, Authorization';
const PREFLIGHT_MAX_AGE_SECONDS = 600;

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Browser origins answered (Access-Control-Allow-Origin, with credentials): the Web UI's, as its pages send it. */
  allowedOrigins: readonly string[];
  /** The namespaces served; a request naming another (path or X-Namespace) is refused. */
  namespaces: readonly string[];
  /** When set, every POST must carry `Authorization: Bearer <token>`; production requires one. */
  token?: string | null;
  /** Wrong tokens per address before 429 (RATE_LIMIT_AUTH_FAILURES); null: not counted. */
  credentialFailureLimit?: RateLimit | null;
  logger: Logger;
}

export function createCodecServerApp(options: CodecServerOptions): Koa {
  const { logger } = options;
  const origins = new Set(options.allowedOrigins);
  const namespaces = new Set(options.namespaces);
  const app = new Koa();
  app.proxy = false;
  // CORS first, so that refusals carry it too and the UI can read why.
  app.use(cors(origins));
  app.use(accessLog(logger));
  app.use(errorMiddleware(logger));
  app.use(refuseOtherOrigins(origins));
  if (options.token)
    app.use(tokenRequired(options.token, new CredentialFailures(options.credentialFailureLimit ?? null)));

  const router = new Router();
  for (const operation of ['encode', 'decode'] as const) {
    const handler = async (ctx: Context) => {
      if (ctx.method !== 'POST') throw notAllowed(ctx, ALLOWED_METHODS);
      const namespace = servedNamespace(ctx, namespaces);
      const payloads = parsePayloads(await readBody(ctx));
      const converted = await convert(options.codec, operation, payloads);
      Object.assign(ctx.state as CodecState, { namespace, payloads: payloads.length });
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { payloads: converted.map(toJson) };
    };
    router.all(`/${operation}`, handler);
    router.all(`/:namespace/${operation}`, handler);
  }
  app.use(router.routes());
  return app;
}

export interface RunningCodecServer {
  server: Server;
  /** http://<host>:<port>, the address the UI's `--ui-codec-endpoint` and the CLI's `--codec-endpoint` take. */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Serves the codec server on `host` (default loopback) and `port` (0: a free one). */
export async function startCodecServer(
  options: CodecServerOptions & { port: number; host?: string },
): Promise<RunningCodecServer> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer(createCodecServerApp(options).callback());
  server.requestTimeout = REQUEST_DEADLINE_MS;
  server.headersTimeout = HEADERS_DEADLINE_MS;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(options.port, host, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    server,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export function codecServerOptionsOf(
  config: Pick<AppConfig, 'codecServer' | 'payloadCodec' | 'temporal' | 'nodeEnv' | 'credentialFailureLimit'>,
  logger: Logger,
): CodecServerOptions & { port: number; host: string } {
  // It decrypts every history for whoever reaches it: in production, only for who holds the token.
  if (config.nodeEnv === 'production' && !config.codecServer.token)
    throw new ConfigError(
      'Refusing to start with NODE_ENV=production:\n  CODEC_SERVER_TOKEN: not set; the codec server needs a token (openssl rand -hex 32), or CODEC_SERVER_PORT=0',
    );
  return {
    // A display tool, not a reader that decides: under `require` it still shows what is plain (search attributes).
    codec: new AesGcmPayloadCodec(
      config.payloadCodec.keys,
      config.payloadCodec.mode === 'require' ? 'encrypt' : config.payloadCodec.mode,
    ),
    allowedOrigins: config.codecServer.allowedOrigins,
    namespaces: [config.temporal.namespace],
    token: config.codecServer.token,
    credentialFailureLimit: config.credentialFailureLimit,
    port: config.codecServer.port,
    host: config.codecServer.host,
    logger,
  };
}

type CodecState = { namespace?: string | null; payloads?: number };

/** With credentials (the UI may send cookies); preflights answered before the token check: they carry no token. */
function cors(origins: ReadonlySet<string>) {
  return async (ctx: Context, next: Next) => {
    const origin = ctx.get('Origin');
    const allowed = origin !== '' && origins.has(origin);
    ctx.vary('Origin');
    if (allowed) {
      ctx.set('Access-Control-Allow-Origin', origin);
      ctx.set('Access-Control-Allow-Credentials', 'true');
    }
    if (ctx.method !== 'OPTIONS') return next();
    ctx.status = 204;
    ctx.set('Allow', ALLOWED_METHODS);
    if (allowed) {
      ctx.set('Access-Control-Allow-Methods', ALLOWED_METHODS);
      ctx.set('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      ctx.set('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
    }
  };
}

/** Another origin's page (a rebound DNS name too: no preflight) is refused before decrypting; no Origin: no browser. */
function refuseOtherOrigins(origins: ReadonlySet<string>) {
  return async (ctx: Context, next: Next) => {
    const origin = ctx.get('Origin');
    if (origin !== '' && !origins.has(origin))
      throw new ApiError('FORBIDDEN', `origin ${echo(origin)} is not one of CODEC_SERVER_ORIGINS`);
    await next();
  };
}

/** Every POST carries the token; wrong ones are counted per address (RATE_LIMIT_AUTH_FAILURES), then 429. */
function tokenRequired(token: string, failures: CredentialFailures) {
  return async (ctx: Context, next: Next) => {
    await failures.guard(ctx.ip, () => requireToken(ctx.get('Authorization'), [token], 'not the codec server’s token'));
    await next();
  };
}

/** Answers logged without their payloads: refusals at warn (a wrong token, another origin), the rest at debug. */
function accessLog(logger: Logger) {
  return async (ctx: Context, next: Next) => {
    const startedAt = performance.now();
    await next();
    const state = ctx.state as CodecState;
    const entry = {
      method: ctx.method,
      path: ctx.path,
      status: ctx.status,
      ...(state.namespace ? { namespace: state.namespace } : {}),
      ...(state.payloads !== undefined ? { payloads: state.payloads } : {}),
      ...(ctx.status >= 400 ? { error: (ctx.body as { error?: { code?: string } } | undefined)?.error?.code } : {}),
      ip: ctx.ip,
      ms: Math.round(performance.now() - startedAt),
    };
    if (ctx.status >= 400 && ctx.status < 500) logger.warn(entry, 'codec request refused');
    else logger.debug(entry, 'codec request');
  };
}

/** The namespace the request names (path, else X-Namespace), checked against those served; null when it names none. */
function servedNamespace(ctx: Context, namespaces: ReadonlySet<string>): string | null {
  const fromPath = (ctx.params as { namespace?: string } | undefined)?.namespace;
  const named = [fromPath, ctx.get('X-Namespace')].filter((name): name is string => Boolean(name));
  const other = named.find((name) => !namespaces.has(name));
  if (other !== undefined)
    throw new ApiError(
      'FORBIDDEN',
      `namespace ${echo(other)} is not served here (served: ${[...namespaces].join(', ')})`,
    );
  return named[0] ?? null;
}

/** The JSON body, at most BODY_LIMIT_BYTES, uncompressed; every way it can be wrong is a 400 saying which. */
async function readBody(ctx: Context): Promise<unknown> {
  refuseAllButJson(ctx);
  try {
    return await coBody.json(ctx.req, { limit: BODY_LIMIT_BYTES, encoding: 'utf-8', strict: true });
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === 413) throw invalidRequest(`the body is larger than ${BODY_LIMIT_BYTES / 1024 / 1024} MB`);
    if (status && status >= 400 && status < 500)
      throw invalidRequest('the body is not JSON: send {"payloads": [{"metadata": {…}, "data": "<base64>"}]}');
    throw err;
  }
}

/** `{"payloads": [...]}` to Payloads, refusing the batch at its first bad payload. */
function parsePayloads(body: unknown): Payload[] {
  const payloads = (body as { payloads?: unknown } | null)?.payloads;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !Array.isArray(payloads))
    throw invalidRequest('the body must be {"payloads": [...]}: an object with a payloads array');
  return payloads.map((payload, index) => parsePayload(payload, index));
}

function parsePayload(value: unknown, index: number): Payload {
  const at = (what: string) => invalidRequest(`payloads[${index}]: ${what}`, { payload: index });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw at('must be an object');
  const { metadata, data } = value as { metadata?: unknown; data?: unknown };
  const parsed: Payload = {};
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object' || Array.isArray(metadata)) throw at('metadata must be an object');
    parsed.metadata = Object.fromEntries(
      Object.entries(metadata).map(([key, entry]) => {
        const bytes = typeof entry === 'string' ? fromBase64(entry) : undefined;
        if (!bytes) throw at(`metadata.${echo(key)} must be base64`);
        return [key, bytes];
      }),
    );
  }
  if (data !== undefined && data !== null) {
    const bytes = typeof data === 'string' ? fromBase64(data) : undefined;
    if (!bytes) throw at('data must be base64');
    parsed.data = bytes;
  }
  return parsed;
}

/** Base64 as proto3 JSON allows it (standard or URL-safe, padded or not); undefined for anything else. */
function fromBase64(text: string): Uint8Array | undefined {
  const unpadded = text.replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/_-]*$/.test(unpadded) || unpadded.length % 4 === 1) return undefined;
  if (text.length !== unpadded.length && text.length % 4 !== 0) return undefined;
  return new Uint8Array(Buffer.from(unpadded, 'base64'));
}

/** Payload by payload, so that a refusal names the one at fault; any failure refuses the whole batch. */
async function convert(codec: PayloadCodec, operation: 'encode' | 'decode', payloads: Payload[]): Promise<Payload[]> {
  const converted: Payload[] = [];
  for (const [index, payload] of payloads.entries()) {
    try {
      converted.push(...(await codec[operation]([payload])));
    } catch (err) {
      throw invalidRequest(
        `payloads[${index}]: could not be ${operation}d: ${err instanceof Error ? err.message : String(err)}`,
        { payload: index },
      );
    }
  }
  return converted;
}

/** proto3 JSON: metadata values and data in base64. */
function toJson(payload: Payload): { metadata: Record<string, string>; data: string } {
  return {
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? []).toString('base64')]),
    ),
    data: Buffer.from(payload.data ?? []).toString('base64'),
  };
}
