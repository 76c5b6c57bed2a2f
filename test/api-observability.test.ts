/**
 * The API's observability against the real stack (Temporal dev server with the production worker,
 * Redis, MariaDB): GET /metrics counts what the HTTP answers were, X-Request-Id is honoured or
 * generated and returned on every answer, and one access-log line is written per request (read
 * from the pino stream the API writes to), 409 SOLD_OUT lines sampled.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect } from 'vitest';
import { startApi } from '../src/api/server.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { createLogger } from '../src/infra/logger.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { putOnSale } from './helpers/fixtures.js';
import { parseExposition, total, type Sample } from './helpers/prometheus.js';
import type { TestApp } from './helpers/app.js';
import { httpAt, httpRequest, type HttpOptions } from './helpers/http.js';
import { appTest } from './helpers/stack-test.js';

/** A pino destination that keeps every line it is given, parsed. */
class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n'))
      if (line) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }
  requests(): Record<string, unknown>[] {
    return this.lines.filter((line) => line.msg === 'request');
  }
}

const log = new LogCapture();
const env = { LOG_LEVEL: 'info', ACCESS_LOG_SOLD_OUT_SAMPLE: '1' };
const it = appTest('obs-api', env, { apiLogger: createLogger(testConfig(env), 'api', log) });

interface Reply {
  status: number;
  code: string | undefined;
  body: Record<string, unknown> | undefined;
  requestId: string | null;
  headers: Headers;
}

async function http(
  app: TestApp,
  method: string,
  path: string,
  { base, ...options }: HttpOptions & { base?: string } = {},
): Promise<Reply> {
  const response = await httpRequest(base ?? app.api.url, method, path, options);
  const parsed = response.contentType.includes('json') ? (response.body as Record<string, unknown>) : undefined;
  const error = parsed?.error as { code?: string } | undefined;
  return {
    status: response.status,
    code: response.status === 202 ? 'ACCEPTED' : error?.code,
    body: parsed,
    requestId: response.headers.get('x-request-id'),
    headers: response.headers,
  };
}

async function scrape(base: string): Promise<Sample[]> {
  const response = await httpAt('GET', `${base}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(response.body);
}

const checkout = async (app: TestApp, userId: string, sku: string, quantity = 1) =>
  http(app, 'POST', '/api/checkout', { json: { sku, quantity }, token: await app.auth.issue(userId) });

function countCodes(replies: Reply[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const reply of replies)
    counts.set(reply.code ?? `HTTP ${reply.status}`, (counts.get(reply.code ?? `HTTP ${reply.status}`) ?? 0) + 1);
  return counts;
}

describe('GET /metrics', () => {
  it('counts checkout outcomes by code exactly as the HTTP answers were, and its histograms have the samples', async ({
    app,
  }) => {
    const { stores, redis, api } = app;
    const before = await scrape(api.url);
    const { sku } = await putOnSale(stores, redis, { stock: 5, perUserLimit: 1 });
    const limited = await putOnSale(stores, redis, { stock: 10, perUserLimit: 1 });
    const run = randomUUID().slice(0, 8);
    const replies: Reply[] = [];
    // A burst: 12 shoppers on 5 units.
    replies.push(...(await Promise.all(Array.from({ length: 12 }, (_, i) => checkout(app, `m-${run}-${i}`, sku)))));
    // Late shoppers, one after another: answered by Redis once, then by the sold-out flag.
    for (let i = 0; i < 6; i++) replies.push(await checkout(app, `late-${run}-${i}`, sku));
    // Other codes: over the limit, unknown SKU, bad quantity, no token.
    replies.push(await checkout(app, `lim-${run}`, limited.sku));
    replies.push(await checkout(app, `lim-${run}`, limited.sku));
    replies.push(await checkout(app, `x-${run}`, `NOPE-${run}`));
    replies.push(await checkout(app, `x-${run}`, sku, 0));
    replies.push(await http(app, 'POST', '/api/checkout', { json: { sku, quantity: 1 } }));
    const after = await scrape(api.url);

    const codes = countCodes(replies);
    expect(codes.get('ACCEPTED')).toBe(6);
    expect(codes.get('SOLD_OUT')).toBe(13);
    expect(codes.get('PURCHASE_LIMIT_EXCEEDED')).toBe(1);
    expect(codes.get('SKU_NOT_FOUND')).toBe(1);
    expect(codes.get('INVALID_REQUEST')).toBe(1);
    expect(codes.get('UNAUTHORIZED')).toBe(1);
    const delta = (name: string, where: Record<string, string> = {}) =>
      total(after, name, where) - total(before, name, where);
    for (const [code, count] of codes) expect(delta('flash_checkout_outcomes_total', { code }), code).toBe(count);
    expect(delta('flash_checkout_outcomes_total')).toBe(replies.length);

    // Sold-out answers given from memory never reached Redis; everything else that passed validation did.
    const flagHits = delta('flash_sold_out_flag_hits_total');
    expect(flagHits).toBeGreaterThanOrEqual(1);
    // At least the first sold-out answer came from Redis (it is what sets the flag).
    expect(flagHits).toBeLessThanOrEqual(12);
    // The unknown SKU was answered from the sale's window (read, never reserved): it did not reach reserve.lua.
    const reachedRedis = 6 + 13 + 1 - flagHits;
    expect(delta('flash_redis_reserve_duration_seconds_count')).toBe(reachedRedis);
    expect(delta('flash_redis_reserve_duration_seconds_count', { outcome: 'RESERVED' })).toBe(6);
    expect(delta('flash_redis_reserve_duration_seconds_count', { outcome: 'SOLD_OUT' })).toBe(13 - flagHits);
    expect(delta('flash_redis_reserve_duration_seconds_bucket', { outcome: 'RESERVED', le: '+Inf' })).toBe(6);
    expect(delta('flash_redis_reserve_duration_seconds_sum')).toBeGreaterThan(0);
    // A polling checkout calls no Temporal: only a waiting checkout's Update-with-Start is timed.
    expect(delta('flash_workflow_start_duration_seconds_count')).toBe(0);

    // HTTP requests by route template and status, with durations.
    const checkoutRoute = { method: 'POST', route: '/api/checkout' };
    expect(delta('http_requests_total', { ...checkoutRoute, status: '202' })).toBe(6);
    expect(delta('http_requests_total', { ...checkoutRoute, status: '409' })).toBe(14);
    expect(delta('http_request_duration_seconds_count', { ...checkoutRoute, status: '409' })).toBe(14);
    expect(delta('http_request_duration_seconds_sum', { ...checkoutRoute, status: '202' })).toBeGreaterThan(0);
    // Default process metrics are there too.
    expect(total(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(after.some((s) => s.name.startsWith('nodejs_eventloop_lag'))).toBe(true);
  });

  it('labels requests by route template, never by raw path; unmatched paths share one label', async ({ app }) => {
    const { stores, redis, api, auth } = app;
    const { sku } = await putOnSale(stores, redis, { stock: 3, perUserLimit: 1 });
    const userId = `route-${randomUUID().slice(0, 8)}`;
    const token = await auth.issue(userId);
    const accepted = await checkout(app, userId, sku);
    const orderNo = accepted.body?.orderNo as string;
    expect((await http(app, 'GET', `/api/orders/${orderNo}`, { token })).status).toBe(200);
    expect((await http(app, 'GET', `/no-such-path-${orderNo}`)).status).toBe(404);
    expect((await http(app, 'DELETE', `/api/orders/${orderNo}`, { token })).status).toBe(405);
    const text = (await httpAt('GET', `${api.url}/metrics`)).body;
    expect(text).not.toContain(orderNo);
    expect(text).not.toContain(userId);
    const samples = parseExposition(text);
    expect(
      total(samples, 'http_requests_total', { method: 'GET', route: '/api/orders/:orderNo', status: '200' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      total(samples, 'http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }),
    ).toBeGreaterThanOrEqual(1);
    // A known path with a wrong method keeps its template.
    expect(
      total(samples, 'http_requests_total', { method: 'DELETE', route: '/api/orders/:orderNo', status: '405' }),
    ).toBe(1);
  });

  it('counts webhook outcomes: APPLIED, DUPLICATE, INVALID_SIGNATURE, REFUND_REQUIRED', async ({ app }) => {
    const { config, stores, redis, api, auth } = app;
    const { sku, priceCents } = await putOnSale(stores, redis, { stock: 2, perUserLimit: 1 });
    const userId = `pay-${randomUUID().slice(0, 8)}`;
    const token = await auth.issue(userId);
    const orderNo = (await checkout(app, userId, sku)).body?.orderNo as string;
    await waitFor(
      async () => (await http(app, 'GET', `/api/orders/${orderNo}`, { token })).body?.status === 'AWAITING_PAYMENT',
      {
        what: `${orderNo} awaiting payment`,
        timeoutMs: 20_000,
      },
    );
    const before = await scrape(api.url);
    const send = (event: Record<string, unknown>, secret = config.webhookSecret) => {
      const raw = JSON.stringify(event);
      return http(app, 'POST', '/api/payments/webhook', {
        raw,
        headers: { 'payment-signature': signWebhook(secret, raw) },
      });
    };
    const event = { eventId: `evt-${orderNo}`, type: 'payment.succeeded', orderNo, amountCents: priceCents };
    const replies = [
      await send(event),
      await send(event),
      await send({ ...event, eventId: `evt-bad-${orderNo}` }, 'not-the-webhook-secret-at-all'),
      // A second payment of the order its row has sold: money to give back.
      await send({ ...event, eventId: `evt-second-${orderNo}` }),
    ];
    expect(replies.map((r) => r.body?.outcome ?? r.code)).toEqual([
      'APPLIED',
      'DUPLICATE',
      'INVALID_SIGNATURE',
      'REFUND_REQUIRED',
    ]);
    const after = await scrape(api.url);
    for (const outcome of ['APPLIED', 'DUPLICATE', 'INVALID_SIGNATURE', 'REFUND_REQUIRED']) {
      expect(
        total(after, 'flash_webhook_outcomes_total', { outcome }) -
          total(before, 'flash_webhook_outcomes_total', { outcome }),
        outcome,
      ).toBe(1);
    }
  });
});

describe('X-Request-Id and the access log', () => {
  it('honours a valid X-Request-Id, generates one when absent or invalid, and returns it on errors too', async ({
    app,
  }) => {
    const given = `trace-${randomUUID()}:span.1_a`;
    const honoured = await http(app, 'GET', '/healthz', { headers: { 'X-Request-Id': given } });
    expect(honoured.status).toBe(200);
    expect(honoured.requestId).toBe(given);

    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const absent = await http(app, 'GET', '/healthz');
    expect(absent.requestId).toMatch(uuid);
    for (const invalid of ['has space', 'x'.repeat(129), 'semi;colon', 'a/b', '%C3%BC', '"quoted"']) {
      const reply = await http(app, 'GET', '/healthz', { headers: { 'X-Request-Id': invalid } });
      expect(reply.requestId, invalid).toMatch(uuid);
    }
    expect((await http(app, 'GET', '/healthz', { headers: { 'X-Request-Id': 'y'.repeat(128) } })).requestId).toBe(
      'y'.repeat(128),
    );

    // Error answers carry it: an unknown route, a bad body, a missing token, a wrong method.
    const errors = [
      await http(app, 'GET', '/no-such-route', { headers: { 'X-Request-Id': 'err-1' } }),
      await http(app, 'POST', '/api/checkout', { raw: '{not json', headers: { 'X-Request-Id': 'err-2' } }),
      await http(app, 'POST', '/api/checkout', {
        json: { sku: 'A', quantity: 1 },
        headers: { 'X-Request-Id': 'err-3' },
      }),
      await http(app, 'DELETE', '/api/checkout', { headers: { 'X-Request-Id': 'err-4' } }),
    ];
    expect(errors.map((r) => [r.status, r.code, r.requestId])).toEqual([
      [404, 'NOT_FOUND', 'err-1'],
      [400, 'INVALID_REQUEST', 'err-2'],
      [401, 'UNAUTHORIZED', 'err-3'],
      [405, 'METHOD_NOT_ALLOWED', 'err-4'],
    ]);
    const generated = await http(app, 'GET', '/no-such-route');
    expect(generated.requestId).toMatch(uuid);
  });

  it('writes one access-log line per request: request id, method, route, status, code, duration', async ({ app }) => {
    const { stores, redis, auth } = app;
    const { sku } = await putOnSale(stores, redis, { stock: 1, perUserLimit: 1 });
    const id = `log-${randomUUID()}`;
    const accepted = await http(app, 'POST', '/api/checkout', {
      json: { sku, quantity: 1 },
      token: await auth.issue(`${id}-a`),
      headers: { 'X-Request-Id': `${id}-a` },
    });
    const soldOut = await http(app, 'POST', '/api/checkout', {
      json: { sku, quantity: 1 },
      token: await auth.issue(`${id}-b`),
      headers: { 'X-Request-Id': `${id}-b` },
    });
    const orderNo = accepted.body?.orderNo as string;
    await http(app, 'GET', `/api/orders/${orderNo}`, {
      token: await auth.issue(`${id}-a`),
      headers: { 'X-Request-Id': `${id}-c` },
    });
    await http(app, 'GET', `/nothing/${id}`, { headers: { 'X-Request-Id': `${id}-d` } });
    expect([accepted.status, soldOut.status]).toEqual([202, 409]);

    const lines = await waitFor(
      () => {
        const mine = log.requests().filter((line) => String(line.reqId).startsWith(id));
        return mine.length >= 4 && mine;
      },
      { what: 'four access-log lines', timeoutMs: 5_000 },
    );
    expect(lines).toHaveLength(4);
    const byId = Object.fromEntries(lines.map((line) => [line.reqId, line]));
    expect(byId[`${id}-a`]).toMatchObject({
      level: 30,
      service: 'api',
      method: 'POST',
      route: '/api/checkout',
      status: 202,
    });
    expect(byId[`${id}-a`]).not.toHaveProperty('code');
    expect(byId[`${id}-b`]).toMatchObject({
      method: 'POST',
      route: '/api/checkout',
      status: 409,
      code: 'SOLD_OUT',
      sampled: { every: 1, skipped: 0 },
    });
    expect(byId[`${id}-c`]).toMatchObject({ method: 'GET', route: '/api/orders/:orderNo', status: 200 });
    expect(byId[`${id}-d`]).toMatchObject({
      method: 'GET',
      route: 'unmatched',
      path: `/nothing/${id}`,
      status: 404,
      code: 'NOT_FOUND',
    });
    for (const line of lines) {
      expect(typeof line.ms).toBe('number');
      expect(line.ms as number).toBeGreaterThanOrEqual(0);
      expect(typeof line.time).toBe('number');
    }
  });

  it('answers a dead Redis with 503 + Retry-After, sends no reserve it cannot answer for, and logs the breaker opening once, not each request', async ({
    app,
  }) => {
    const { config, auth } = app;
    const brokenLog = new LogCapture();
    // Redis on a port where nothing listens: reserve.lua cannot run.
    const brokenConfig = testConfig({
      TEMPORAL_TASK_QUEUE: config.temporal.taskQueue,
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      BREAKER_FAILURES: '2',
      BREAKER_NO_SUCCESS_FOR: '0',
      LOG_LEVEL: 'info',
    });
    const broken = await startApi(brokenConfig, 0, { logger: createLogger(brokenConfig, 'api', brokenLog) });
    try {
      const token = await auth.issue(`broken-${randomUUID().slice(0, 8)}`);
      const replies = [];
      for (const id of ['boom-1', 'boom-2', 'boom-3', 'boom-4']) {
        replies.push(
          await http(app, 'POST', '/api/checkout', {
            base: broken.url,
            json: { sku: 'ANY-SKU', quantity: 1 },
            token,
            headers: { 'X-Request-Id': id },
          }),
        );
      }
      for (const [i, reply] of replies.entries()) {
        // The sale's window is read first: its read ran out of time, so nothing was reserved (the
        // reserve was never sent): UNAVAILABLE, as for the checkouts the open breaker refused.
        const code = 'UNAVAILABLE';
        expect(reply).toMatchObject({ status: 503, code, requestId: `boom-${i + 1}` });
        expect(reply.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
        expect(brokenLog.requests()).toContainEqual(
          expect.objectContaining({ reqId: `boom-${i + 1}`, status: 503, code }),
        );
      }
      // The first two checkouts' window reads failed and opened the breaker; the next two were
      // refused before touching Redis. One log line says so.
      expect(brokenLog.lines.filter((line) => line.msg === 'request failed')).toEqual([]);
      const opened = brokenLog.lines.filter(
        (line) => typeof line.msg === 'string' && line.msg.startsWith('circuit breaker opened'),
      );
      expect(opened).toEqual([
        expect.objectContaining({ level: 40, dependency: 'redis', state: 'open', cause: expect.any(String) }),
      ]);
      const samples = await scrape(broken.url);
      expect(total(samples, 'flash_redis_reserve_duration_seconds_count')).toBe(0);
      expect(total(samples, 'flash_checkout_outcomes_total', { code: 'UNAVAILABLE' })).toBe(4);
      expect(total(samples, 'flash_dependency_breaker_refusals_total', { dependency: 'redis' })).toBe(2);
    } finally {
      await broken.close();
    }
  });

  it('logs 409 SOLD_OUT answers 1 in ACCESS_LOG_SOLD_OUT_SAMPLE, each line with the count skipped before it', async ({
    app,
  }) => {
    const { config, stores, redis, auth } = app;
    const sampledLog = new LogCapture();
    const sampledConfig = testConfig({
      TEMPORAL_TASK_QUEUE: config.temporal.taskQueue,
      ACCESS_LOG_SOLD_OUT_SAMPLE: '4',
      LOG_LEVEL: 'info',
    });
    const sampled = await startApi(sampledConfig, 0, { logger: createLogger(sampledConfig, 'api', sampledLog) });
    try {
      const { sku } = await putOnSale(stores, redis, { stock: 1, perUserLimit: 1 });
      const run = randomUUID().slice(0, 8);
      const replies: Reply[] = [];
      for (let i = 0; i < 11; i++) {
        replies.push(
          await http(app, 'POST', '/api/checkout', {
            base: sampled.url,
            json: { sku, quantity: 1 },
            token: await auth.issue(`s-${run}-${i}`),
          }),
        );
      }
      expect(countCodes(replies)).toEqual(
        new Map([
          ['ACCEPTED', 1],
          ['SOLD_OUT', 10],
        ]),
      );
      const lines = await waitFor(() => sampledLog.requests().length >= 4 && sampledLog.requests(), {
        what: 'access-log lines',
        timeoutMs: 5_000,
      });
      const soldOutLines = lines.filter((line) => line.code === 'SOLD_OUT');
      // Sold-out answers 1, 5 and 9 are written; each says how many were skipped since the last one.
      expect(soldOutLines.map((line) => line.sampled)).toEqual([
        { every: 4, skipped: 0 },
        { every: 4, skipped: 3 },
        { every: 4, skipped: 3 },
      ]);
      expect(lines.filter((line) => line.status === 202)).toHaveLength(1);
      // The metrics still count every one.
      expect(total(await scrape(sampled.url), 'flash_checkout_outcomes_total', { code: 'SOLD_OUT' })).toBe(10);
    } finally {
      await sampled.close();
    }
  });
});
