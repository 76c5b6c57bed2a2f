/**
 * One HTTP call to the API under test, as the API test files make it: through the support code's one client
 * (toolkit/http-client.ts), its answer seen as a test reads it (headers as fetch's Headers, the body parsed).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import { clientFor } from '../../toolkit/http-client.js';

/** A call's deadline unless it names one: past the longest wait a test asks for, inside a test's own timeout. */
const CALL_TIMEOUT_MS = 90_000;

export interface HttpOptions {
  /** Sent as JSON (Content-Type: application/json unless the headers name another). */
  json?: unknown;
  /** Sent as it is (same Content-Type rule). */
  raw?: string;
  /** A shopper or admin bearer token. */
  token?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface HttpReply {
  status: number;
  headers: Headers;
  contentType: string;
  /** Parsed JSON for a JSON answer; the text otherwise (undefined when empty). */
  // Tests read arbitrary JSON answers; a schema per answer would restate the API.
  body: any;
}

/** One call; it rejects when no answer came (refused, dropped, or none within its deadline), as fetch did. */
export async function httpRequest(
  baseUrl: string,
  method: string,
  path: string,
  options: HttpOptions = {},
): Promise<HttpReply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const body = options.raw ?? (options.json === undefined ? undefined : JSON.stringify(options.json));
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
    headers['content-type'] = 'application/json';
  // Parsed as fetch parsed it: the path normalised and escaped as a URL's.
  const url = new URL(`${baseUrl}${path}`);
  const answer = await clientFor(url.origin).request(method, `${url.pathname}${url.search}`, {
    headers,
    ...(body === undefined ? {} : { body }),
    timeoutMs: options.timeoutMs ?? CALL_TIMEOUT_MS,
  });
  if (answer.failure) throw new Error(`${method} ${baseUrl}${path}: no answer (${answer.failure.message})`);
  const replyHeaders = new Headers();
  for (const [name, value] of Object.entries(answer.headers))
    for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) replyHeaders.append(name, one);
  const contentType = replyHeaders.get('content-type') ?? '';
  return {
    status: answer.status,
    headers: replyHeaders,
    contentType,
    body: answer.body === '' ? undefined : contentType.includes('json') ? JSON.parse(answer.body) : answer.body,
  };
}

/** One call to an absolute URL (any server a test stands up: the API, a worker's health port, a double), as above. */
export function httpAt(method: string, url: string, options: HttpOptions = {}): Promise<HttpReply> {
  const { origin, pathname, search } = new URL(url);
  return httpRequest(origin, method, `${pathname}${search}`, options);
}

/** The status and body of an answer: what most assertions compare. */
export type Reply = Pick<HttpReply, 'status' | 'body'>;

/** One call with only its status and body kept; `base` overrides the API's address (another app). */
export async function replyOf(
  apiUrl: string,
  method: string,
  path: string,
  options: HttpOptions & { base?: string } = {},
): Promise<Reply> {
  const { status, body } = await httpRequest(options.base ?? apiUrl, method, path, options);
  return { status, body };
}

/** Serves `app` on a free loopback port; `servers` collects the server for the file's afterAll to close. */
export async function listen(app: Koa, servers: Server[]): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * A request repeated as a client that honours `503 UNAVAILABLE` does: after its Retry-After (at most
 * `capMs`), up to `attempts` times. Only for requests that are safe to repeat (a checkout with an
 * Idempotency-Key): under load a bounded API answers 503 by design, and the contract is the retry.
 */
export async function retryingUnavailable(
  send: () => Promise<HttpReply>,
  attempts = 10,
  capMs = 1_000,
): Promise<HttpReply> {
  for (let attempt = 1; ; attempt++) {
    const reply = await send();
    if (reply.status !== 503 || attempt >= attempts) return reply;
    const retryAfterMs = Number(reply.headers.get('retry-after') ?? '1') * 1_000;
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(capMs, Number.isFinite(retryAfterMs) ? retryAfterMs : capMs)),
    );
  }
}
