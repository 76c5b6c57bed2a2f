/**
 * Hostile input against the real API (real Redis, MariaDB, Temporal dev server and worker): every
 * route is sent malformed, oversize, compressed, mistyped, unknown-field, hostile-string,
 * wrong-identity and wrong-method requests. Each must answer a 4xx with its stable code in the
 * error shape, echo no more than a short excerpt of what it was sent, and change nothing in Redis,
 * MySQL or Temporal. Then the defects an adversarial probe found, one test each.
 */
import { randomUUID } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import { createSigner } from 'fast-jwt';
import { describe, expect } from 'vitest';
import { signWebhook } from '../toolkit/sign-webhook.js';
import type { AppConfig } from '../src/config/index.js';
import { saleKeys } from '../src/redis/layout.js';
import { waitFor } from '../stack/wait-for.js';
import { requestSale, uniqueSku, type SaleRequest } from './helpers/fixtures.js';
import { API_TEST_ENV, type TestApp } from './helpers/app.js';
import { appTest } from './helpers/stack-test.js';

const ADMIN = 'hostile-admin-token';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: unknown;
}

async function send(
  app: TestApp,
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: string | Uint8Array } = {},
): Promise<Reply> {
  const payload =
    init.body === undefined || typeof init.body === 'string' ? init.body : new Blob([new Uint8Array(init.body)]);
  // fetch, not the test client: a body may be bytes that are no UTF-8 text.
  const response = await fetch(`${app.api.url}${path}`, { method, headers: init.headers, body: payload });
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, text, body };
}

const json = (value: unknown) => JSON.stringify(value);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const jsonHeaders = (extra: Record<string, string> = {}) => ({ 'content-type': 'application/json', ...extra });

/** A shopper token as a stranger would make it: any claims, any key. */
function craftToken(
  config: AppConfig,
  claims: Record<string, unknown>,
  options: { key?: string; expiresIn?: number } = {},
): string {
  const sign = createSigner({
    key: options.key ?? config.jwtSecret,
    algorithm: 'HS256',
    ...(options.expiresIn ? { expiresIn: options.expiresIn } : {}),
  });
  return sign(claims);
}

/** Everything a request could change for the test's sale and order. */
async function snapshot({ app: { stores, redis, temporal }, sku, orderNo }: Target) {
  const keys = saleKeys(sku);
  const [sale, users, reservations, idempotency, cancels] = await Promise.all([
    redis.hgetall(keys.sale),
    redis.hgetall(keys.users),
    redis.hgetall(keys.reservations),
    redis.hgetall(keys.idempotency),
    redis.hgetall(keys.cancels),
  ]);
  const orders = [...(await stores.orders.getOrders([...(await stores.reports.orderNumbersOfSale(sku))])).values()];
  const payments = await stores.payments.paymentsOfOrder(orderNo);
  const { count: workflows } = await temporal.workflow.count(`OrderSku = '${sku}'`);
  return {
    redis: { sale, users, reservations, idempotency, cancels },
    mysql: { sale: await stores.sales.getSale(sku), orders, payments },
    workflows,
  };
}

/** What every hostile request is sent to and aims at. */
interface Target {
  app: TestApp;
  sku: string;
  orderNo: string;
  victim: string;
}

const it = appTest('hostile', {
  ...API_TEST_ENV,
  ADMIN_TOKEN: ADMIN,
  LOG_LEVEL: 'silent',
  // Dozens of dev logins and webhooks from 127.0.0.1 in a few seconds: what is judged here is each
  // answer to bad input, not the per-IP budgets (test/rate-limit.test.ts has those).
  RATE_LIMIT_LOGIN: 'off',
  RATE_LIMIT_WEBHOOK: 'off',
}).extend('target', { scope: 'file' }, async ({ app }): Promise<Target> => {
  // One sale with one order awaiting payment: what every hostile request must leave untouched.
  const sku = uniqueSku('HOSTILE');
  expect(
    (
      await send(app, 'POST', '/api/sales', {
        headers: jsonHeaders(bearer(ADMIN)),
        body: json({ sku, name: 'Hostile', priceCents: 900, stock: 5, perUserLimit: 2 }),
      })
    ).status,
  ).toBe(201);
  const victim = `victim-${randomUUID().slice(0, 8)}`;
  const checkout = await send(app, 'POST', '/api/checkout', {
    headers: jsonHeaders({ ...bearer(await app.auth.issue(victim)), 'idempotency-key': 'victim-key' }),
    body: json({ sku, quantity: 1 }),
  });
  expect(checkout.status).toBe(202);
  const orderNo = (checkout.body as { orderNo: string }).orderNo;
  await waitFor(async () => (await app.stores.orders.getOrder(orderNo))?.status === 'AWAITING_PAYMENT', {
    what: 'the victim order to be persisted',
    timeoutMs: 15_000,
  });
  return { app, sku, orderNo, victim };
});

interface HostileCase {
  name: string;
  method: string;
  path: (target: Target) => string;
  headers?: (target: Target) => Promise<Record<string, string>> | Record<string, string>;
  body?: (target: Target) => string | Uint8Array;
  status: number;
  code: string;
}

const shopper = async ({ app, victim }: Target) => bearer(await app.auth.issue(victim));
const stranger = async ({ app }: Target) => bearer(await app.auth.issue(`stranger-${randomUUID().slice(0, 8)}`));
const webhookHeaders = ({ app }: Pick<Target, 'app'>, body: string) =>
  jsonHeaders({ 'payment-signature': signWebhook(app.config.webhookSecret, body) });
const payment = ({ orderNo }: Target, extra: Record<string, unknown> = {}) =>
  json({ eventId: `evt-hostile-${randomUUID()}`, type: 'payment.succeeded', orderNo, amountCents: 900, ...extra });
/** A webhook whose body is signed as sent, so that the body's own defect is what gets refused. */
function signedWebhook(what: string, extra: Record<string, unknown>): HostileCase {
  let body = '';
  return {
    name: `webhook: ${what}, signed`,
    method: 'POST',
    path: () => '/api/payments/webhook',
    body: () => body,
    headers: (t) => {
      body = payment(t, extra);
      return webhookHeaders(t, body);
    },
    status: 400,
    code: 'INVALID_REQUEST',
  };
}

const HOSTILE_STRINGS = [
  "'; DROP TABLE orders; --",
  '../../../etc/passwd',
  '\u0000null-byte',
  '‮reversed',
  '😀'.repeat(40),
  'x'.repeat(10_000),
  '%00%0a%0d',
  '{{7*7}}',
  '<script>alert(1)</script>',
];

/** The routes that take a body, with a valid body and the headers they need. */
const BODY_ROUTES: Array<{
  route: string;
  method: string;
  path: (target: Target) => string;
  body: (target: Target) => string;
  headers: (target: Target) => Promise<Record<string, string>> | Record<string, string>;
}> = [
  {
    route: 'sales',
    method: 'POST',
    path: () => '/api/sales',
    body: () => json({ sku: uniqueSku('NEW'), name: 'x', priceCents: 1, stock: 1, perUserLimit: 1 }),
    headers: () => bearer(ADMIN),
  },
  {
    route: 'dev-login',
    method: 'POST',
    path: () => '/api/auth/dev-login',
    body: () => json({ userId: 'someone' }),
    headers: () => ({}),
  },
  {
    route: 'checkout',
    method: 'POST',
    path: () => '/api/checkout',
    body: ({ sku }) => json({ sku, quantity: 1 }),
    headers: stranger,
  },
  {
    route: 'webhook',
    method: 'POST',
    path: () => '/api/payments/webhook',
    body: (t) => payment(t),
    headers: () => ({}),
  },
  {
    route: 'simulate-payment',
    method: 'POST',
    path: () => '/api/dev/simulate-payment',
    body: ({ orderNo }) => json({ orderNo }),
    headers: shopper,
  },
];

const CASES: HostileCase[] = [
  ...BODY_ROUTES.flatMap((r): HostileCase[] => [
    {
      name: `${r.route}: malformed JSON`,
      method: r.method,
      path: r.path,
      headers: async (t) => jsonHeaders(await r.headers(t)),
      body: () => '{"sku": ',
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `${r.route}: JSON that is not an object`,
      method: r.method,
      path: r.path,
      headers: async (t) => jsonHeaders(await r.headers(t)),
      body: () => '"just a string"',
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `${r.route}: 20 KB body`,
      method: r.method,
      path: r.path,
      headers: async (t) => jsonHeaders(await r.headers(t)),
      body: () => json({ pad: 'x'.repeat(20_000) }),
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `${r.route}: form-encoded body`,
      method: r.method,
      path: r.path,
      headers: async (t) => ({ 'content-type': 'application/x-www-form-urlencoded', ...(await r.headers(t)) }),
      body: () => 'a=1',
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `${r.route}: Content-Encoding gzip on a plain body`,
      method: r.method,
      path: r.path,
      headers: async (t) => jsonHeaders({ 'content-encoding': 'gzip', ...(await r.headers(t)) }),
      body: r.body,
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `${r.route}: truncated gzip body`,
      method: r.method,
      path: r.path,
      headers: async (t) => jsonHeaders({ 'content-encoding': 'gzip', ...(await r.headers(t)) }),
      body: (t) => gzipSync(r.body(t)).subarray(0, 12),
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `${r.route}: valid deflate body`,
      method: r.method,
      path: r.path,
      headers: async (t) => jsonHeaders({ 'content-encoding': 'deflate', ...(await r.headers(t)) }),
      body: (t) => deflateSync(r.body(t)),
      status: 400,
      code: 'INVALID_REQUEST',
    },
    // Unsigned, the webhook refuses the signature before it looks at the fields.
    {
      name: `${r.route}: unknown field`,
      method: r.method,
      path: r.path,
      headers: async (t) => jsonHeaders(await r.headers(t)),
      body: (t) => json({ ...JSON.parse(r.body(t)), isAdmin: true }),
      status: 400,
      code: r.route === 'webhook' ? 'INVALID_SIGNATURE' : 'INVALID_REQUEST',
    },
    {
      name: `${r.route}: wrong method`,
      method: 'PUT',
      path: r.path,
      headers: async (t) => jsonHeaders(await r.headers(t)),
      body: r.body,
      status: 405,
      code: 'METHOD_NOT_ALLOWED',
    },
  ]),
  // The webhook's body is only judged once its signature is good: these are signed.
  signedWebhook('unknown field', { extra: 'field' }),
  signedWebhook('amount as a string', { amountCents: '900' }),
  signedWebhook('negative amount', { amountCents: -1 }),
  signedWebhook('another event type', { type: 'payment.refunded' }),
  signedWebhook('a hostile event id', { eventId: "evt'; DROP TABLE payments; --" }),
  {
    name: 'webhook: unsigned',
    method: 'POST',
    path: () => '/api/payments/webhook',
    headers: () => jsonHeaders(),
    body: (t) => payment(t),
    status: 400,
    code: 'INVALID_SIGNATURE',
  },
  ...HOSTILE_STRINGS.flatMap((hostile): HostileCase[] => [
    {
      name: `checkout: hostile sku ${JSON.stringify(hostile.slice(0, 20))}`,
      method: 'POST',
      path: () => '/api/checkout',
      headers: async (t) => jsonHeaders(await stranger(t)),
      body: () => json({ sku: hostile, quantity: 1 }),
      status: 400,
      code: 'INVALID_REQUEST',
    },
    // Header values cannot carry every byte: the hostile string URL-encoded, with a space in it.
    {
      name: `checkout: hostile Idempotency-Key ${JSON.stringify(hostile.slice(0, 20))}`,
      method: 'POST',
      path: () => '/api/checkout',
      headers: async (t) =>
        jsonHeaders({ ...(await stranger(t)), 'idempotency-key': `k ${encodeURIComponent(hostile).slice(0, 200)}` }),
      body: ({ sku }) => json({ sku, quantity: 1 }),
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `dev-login: hostile user id ${JSON.stringify(hostile.slice(0, 20))}`,
      method: 'POST',
      path: () => '/api/auth/dev-login',
      headers: () => jsonHeaders(),
      body: () => json({ userId: hostile }),
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: `sale read: hostile sku ${JSON.stringify(hostile.slice(0, 20))}`,
      method: 'GET',
      path: () => `/api/sales/${encodeURIComponent(hostile)}`,
      status: 404,
      code: 'SKU_NOT_FOUND',
    },
    {
      name: `order read: hostile order number ${JSON.stringify(hostile.slice(0, 20))}`,
      method: 'GET',
      path: () => `/api/orders/${encodeURIComponent(hostile)}`,
      headers: shopper,
      status: 404,
      code: 'ORDER_NOT_FOUND',
    },
    {
      name: `cancel: hostile order number ${JSON.stringify(hostile.slice(0, 20))}`,
      method: 'POST',
      path: () => `/api/orders/${encodeURIComponent(hostile)}/cancel`,
      headers: shopper,
      status: 404,
      code: 'ORDER_NOT_FOUND',
    },
  ]),
  {
    name: 'checkout: quantity as a string',
    method: 'POST',
    path: () => '/api/checkout',
    headers: async (t) => jsonHeaders(await stranger(t)),
    body: ({ sku }) => json({ sku, quantity: '1' }),
    status: 400,
    code: 'INVALID_REQUEST',
  },
  {
    name: 'checkout: quantity 1e308',
    method: 'POST',
    path: () => '/api/checkout',
    headers: async (t) => jsonHeaders(await stranger(t)),
    body: ({ sku }) => '{"sku":"' + sku + '","quantity":1e308}',
    status: 400,
    code: 'INVALID_REQUEST',
  },
  {
    name: 'checkout: __proto__ pollution',
    method: 'POST',
    path: () => '/api/checkout',
    headers: async (t) => jsonHeaders(await stranger(t)),
    body: ({ sku }) => `{"sku":"${sku}","quantity":1,"__proto__":{"admin":true}}`,
    status: 400,
    code: 'INVALID_REQUEST',
  },
  {
    name: 'sales: sku as an array',
    method: 'POST',
    path: () => '/api/sales',
    headers: () => jsonHeaders(bearer(ADMIN)),
    body: ({ sku }) => json({ sku: [sku], name: 'x', priceCents: 1, stock: 1, perUserLimit: 1 }),
    status: 400,
    code: 'INVALID_REQUEST',
  },
  {
    name: 'sales: the same sku again',
    method: 'POST',
    path: () => '/api/sales',
    headers: () => jsonHeaders(bearer(ADMIN)),
    body: ({ sku }) => json({ sku, name: 'x', priceCents: 1, stock: 99, perUserLimit: 1 }),
    status: 409,
    code: 'SALE_EXISTS',
  },
  // Wrong identity.
  {
    name: 'sales: no admin token',
    method: 'POST',
    path: () => '/api/sales',
    headers: () => jsonHeaders(),
    body: () => json({ sku: uniqueSku('X'), name: 'x', priceCents: 1, stock: 1, perUserLimit: 1 }),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'sales: admin token of another length',
    method: 'POST',
    path: () => '/api/sales',
    headers: () => jsonHeaders(bearer('x')),
    body: () => json({ sku: uniqueSku('X'), name: 'x', priceCents: 1, stock: 1, perUserLimit: 1 }),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'sales: admin token of the same length',
    method: 'POST',
    path: () => '/api/sales',
    headers: () => jsonHeaders(bearer('x'.repeat(ADMIN.length))),
    body: () => json({ sku: uniqueSku('X'), name: 'x', priceCents: 1, stock: 1, perUserLimit: 1 }),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  {
    name: 'sales: a shopper token as admin',
    method: 'POST',
    path: () => '/api/sales',
    headers: async (t) => jsonHeaders(await shopper(t)),
    body: () => json({ sku: uniqueSku('X'), name: 'x', priceCents: 1, stock: 1, perUserLimit: 1 }),
    status: 401,
    code: 'UNAUTHORIZED',
  },
  ...(
    [
      ['no token', () => ({})],
      ['a malformed token', () => bearer('not.a.jwt')],
      [
        'a token signed with another key',
        ({ victim, app: { config } }: Target) =>
          bearer(
            craftToken(
              config,
              { sub: victim, iss: config.jwtIssuer, aud: config.jwtAudience },
              { key: 'another-key-entirely-0123456789', expiresIn: 60_000 },
            ),
          ),
      ],
      [
        'a token without exp',
        ({ victim, app: { config } }: Target) =>
          bearer(craftToken(config, { sub: victim, iss: config.jwtIssuer, aud: config.jwtAudience })),
      ],
      [
        'a token from another issuer',
        ({ victim, app: { config } }: Target) =>
          bearer(
            craftToken(config, { sub: victim, iss: 'somebody-else', aud: config.jwtAudience }, { expiresIn: 60_000 }),
          ),
      ],
      [
        'a token for another audience',
        ({ victim, app: { config } }: Target) =>
          bearer(craftToken(config, { sub: victim, iss: config.jwtIssuer, aud: 'another-api' }, { expiresIn: 60_000 })),
      ],
      [
        'a token valid for a year',
        ({ victim, app: { config } }: Target) =>
          bearer(
            craftToken(
              config,
              { sub: victim, iss: config.jwtIssuer, aud: config.jwtAudience },
              { expiresIn: 365 * 86_400_000 },
            ),
          ),
      ],
      [
        'an alg:none token',
        ({ victim }: Target) =>
          bearer(
            `${Buffer.from(json({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(json({ sub: victim, exp: 9_999_999_999 })).toString('base64url')}.`,
          ),
      ],
      [
        'a token for a bad user id',
        ({ app: { config } }: Target) =>
          bearer(
            craftToken(
              config,
              { sub: '../admin', iss: config.jwtIssuer, aud: config.jwtAudience },
              { expiresIn: 60_000 },
            ),
          ),
      ],
    ] as const
  ).flatMap(([what, headers]): HostileCase[] => [
    {
      name: `checkout with ${what}`,
      method: 'POST',
      path: () => '/api/checkout',
      headers: (t) => jsonHeaders(headers(t)),
      body: ({ sku }) => json({ sku, quantity: 1 }),
      status: 401,
      code: 'UNAUTHORIZED',
    },
    {
      name: `order read with ${what}`,
      method: 'GET',
      path: ({ orderNo }) => `/api/orders/${orderNo}`,
      headers,
      status: 401,
      code: 'UNAUTHORIZED',
    },
    {
      name: `cancel with ${what}`,
      method: 'POST',
      path: ({ orderNo }) => `/api/orders/${orderNo}/cancel`,
      headers,
      status: 401,
      code: 'UNAUTHORIZED',
    },
  ]),
  {
    name: "order read: another shopper's order",
    method: 'GET',
    path: ({ orderNo }) => `/api/orders/${orderNo}`,
    headers: stranger,
    status: 403,
    code: 'FORBIDDEN',
  },
  {
    name: "cancel: another shopper's order",
    method: 'POST',
    path: ({ orderNo }) => `/api/orders/${orderNo}/cancel`,
    headers: stranger,
    status: 403,
    code: 'FORBIDDEN',
  },
  {
    name: "simulate-payment: another shopper's order",
    method: 'POST',
    path: () => '/api/dev/simulate-payment',
    headers: async (t) => jsonHeaders(await stranger(t)),
    body: ({ orderNo }) => json({ orderNo }),
    status: 403,
    code: 'FORBIDDEN',
  },
  // Wrong methods, in the error shape.
  {
    name: 'DELETE an order',
    method: 'DELETE',
    path: ({ orderNo }) => `/api/orders/${orderNo}`,
    headers: shopper,
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  {
    name: 'PATCH a sale',
    method: 'PATCH',
    path: ({ sku }) => `/api/sales/${sku}`,
    headers: () => jsonHeaders(bearer(ADMIN)),
    body: () => json({ stock: 1_000 }),
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  {
    name: 'GET the webhook',
    method: 'GET',
    path: () => '/api/payments/webhook',
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  { name: 'GET checkout', method: 'GET', path: () => '/api/checkout', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'an unknown route', method: 'GET', path: () => '/api/../../etc/passwd', status: 404, code: 'NOT_FOUND' },
  {
    name: 'a 15 KB path',
    method: 'GET',
    path: () => `/api/orders/${'A'.repeat(15_000)}`,
    headers: shopper,
    status: 404,
    code: 'ORDER_NOT_FOUND',
  },
  // The same Idempotency-Key with another body.
  {
    name: 'checkout: the victim key with another quantity',
    method: 'POST',
    path: () => '/api/checkout',
    headers: async (t) => jsonHeaders({ ...(await shopper(t)), 'idempotency-key': 'victim-key' }),
    body: ({ sku }) => json({ sku, quantity: 2 }),
    status: 422,
    code: 'IDEMPOTENCY_KEY_REUSED',
  },
];

describe('hostile input: 4xx, a stable code, a short message, and nothing changed', () => {
  it('has a case for every route', ({ target }) => {
    const routes = new Set(CASES.map((c) => c.path(target).split('/').slice(0, 3).join('/')));
    for (const route of ['/api/sales', '/api/auth', '/api/checkout', '/api/orders', '/api/payments', '/api/dev'])
      expect(routes).toContain(route);
  });

  it.for(CASES)('$name → $status $code', async (hostile, { target }) => {
    const before = await snapshot(target);
    const reply = await send(target.app, hostile.method, hostile.path(target), {
      headers: await hostile.headers?.(target),
      ...(hostile.body ? { body: hostile.body(target) } : {}),
    });
    expect({ status: reply.status, body: reply.body }, reply.text.slice(0, 300)).toEqual({
      status: hostile.status,
      body: { error: { code: hostile.code, message: expect.any(String) } },
    });
    expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
    // An error never echoes more than a short excerpt of what it was sent.
    expect((reply.body as { error: { message: string } }).error.message.length).toBeLessThan(300);
    if (reply.status === 405) expect(reply.headers.get('allow')).toBeTruthy();
    expect(await snapshot(target)).toEqual(before);
  });
});

/** Creates a sale through the API; its SKU as given (letter case included). */
const createSale = (app: TestApp, sale: SaleRequest) =>
  requestSale(app.api.url, ADMIN, { name: 'Case', priceCents: 500, stock: 5, ...sale });

async function buy(
  app: TestApp,
  userId: string,
  saleSku: string,
  headers: Record<string, string> = {},
  quantity = 1,
): Promise<Reply> {
  return send(app, 'POST', '/api/checkout', {
    headers: jsonHeaders({ ...bearer(await app.auth.issue(userId)), ...headers }),
    body: json({ sku: saleSku, quantity }),
  });
}

async function persisted(app: TestApp, no: string): Promise<void> {
  await waitFor(async () => (await app.stores.orders.getOrder(no))?.status === 'AWAITING_PAYMENT', {
    what: `${no} to be persisted`,
    timeoutMs: 15_000,
  });
}

async function webhook(app: TestApp, event: Record<string, unknown>): Promise<Reply> {
  const body = json({ type: 'payment.succeeded', ...event });
  return send(app, 'POST', '/api/payments/webhook', { headers: webhookHeaders({ app }, body), body });
}

describe('what an adversarial probe tries, one test each', () => {
  it('identifiers compare byte for byte: payment events, SKUs, user ids and idempotency keys that differ only in case are different', async ({
    app,
  }) => {
    const { stores, auth } = app;
    const id = randomUUID().slice(0, 8);
    // Event ids: EVT_X is not a duplicate of evt_x; taken for one, it would write no row and lose the payment.
    const buyer = `case-buyer-${id}`;
    const sale = await createSale(app, { sku: `case-${id}`, priceCents: 700 });
    expect(sale.status).toBe(201);
    const order = (await buy(app, buyer, `case-${id}`)).body as { orderNo: string };
    await persisted(app, order.orderNo);
    expect((await webhook(app, { eventId: `evt_x_${id}`, orderNo: order.orderNo, amountCents: 700 })).body).toEqual({
      received: true,
      outcome: 'APPLIED',
    });
    expect(
      (await webhook(app, { eventId: `EVT_X_${id.toUpperCase()}`, orderNo: order.orderNo, amountCents: 700 })).body,
    ).toEqual({
      received: true,
      outcome: 'REFUND_REQUIRED',
      refundReason: 'ALREADY_PAID',
    });
    expect((await stores.payments.paymentsOfOrder(order.orderNo)).map((p) => [p.eventId, p.outcome])).toEqual(
      expect.arrayContaining([
        [`evt_x_${id}`, 'APPLIED'],
        [`EVT_X_${id.toUpperCase()}`, 'REFUND_REQUIRED'],
      ]),
    );

    // SKUs: two sales.
    expect((await createSale(app, { sku: `CASE-${id.toUpperCase()}`, stock: 9 })).status).toBe(201);
    expect((await send(app, 'GET', `/api/sales/CASE-${id.toUpperCase()}`)).body).toMatchObject({ stock: 9 });
    expect((await send(app, 'GET', `/api/sales/case-${id}`)).body).toMatchObject({ stock: 5 });

    // User ids: two shoppers, each within a limit of 1.
    const shared = await createSale(app, { sku: `users-${id}` });
    expect(shared.status).toBe(201);
    const [upper, lower] = [
      await buy(app, `Shopper-${id}`, `users-${id}`),
      await buy(app, `shopper-${id}`, `users-${id}`),
    ];
    expect([upper.status, lower.status]).toEqual([202, 202]);
    await Promise.all([
      persisted(app, (upper.body as { orderNo: string }).orderNo),
      persisted(app, (lower.body as { orderNo: string }).orderNo),
    ]);
    expect((await stores.reports.saleStockFigures(`users-${id}`))?.usersHolding).toBe(2);

    // Idempotency keys: two orders.
    const keyed = await createSale(app, { sku: `keys-${id}`, perUserLimit: 2 });
    expect(keyed.status).toBe(201);
    const first = await buy(app, `keyed-${id}`, `keys-${id}`, { 'idempotency-key': 'Key-1' });
    const second = await buy(app, `keyed-${id}`, `keys-${id}`, { 'idempotency-key': 'key-1' });
    expect((first.body as { orderNo: string }).orderNo).not.toBe((second.body as { orderNo: string }).orderNo);
    // Order numbers are upper case only: a lower-case one names no order.
    expect(
      (
        await send(app, 'GET', `/api/orders/${order.orderNo.toLowerCase()}`, {
          headers: bearer(await auth.issue(buyer)),
        })
      ).status,
    ).toBe(404);
  });

  it('a payment of the wrong amount is answered, and recorded, as AMOUNT_MISMATCH at once', async ({ app }) => {
    const { stores } = app;
    const id = randomUUID().slice(0, 8);
    expect((await createSale(app, { sku: `amount-${id}`, priceCents: 1_000 })).status).toBe(201);
    const order = (await buy(app, `amount-${id}`, `amount-${id}`)).body as { orderNo: string };
    await persisted(app, order.orderNo);
    const eventId = `evt-short-${id}`;
    expect((await webhook(app, { eventId, orderNo: order.orderNo, amountCents: 999 })).body).toEqual({
      received: true,
      outcome: 'REFUND_REQUIRED',
      refundReason: 'AMOUNT_MISMATCH',
    });
    // The order still awaits its payment; the row already says why this one goes back.
    expect(await stores.orders.getOrder(order.orderNo)).toMatchObject({ status: 'AWAITING_PAYMENT' });
    expect(await stores.payments.getPayment(eventId)).toMatchObject({
      outcome: 'REFUND_REQUIRED',
      refundReason: 'AMOUNT_MISMATCH',
    });
  });

  it.for<[string, SaleRequest]>([
    ['an end at the epoch (once stored as "no end")', { endsAt: '1970-01-01T00:00:00Z' }],
    ['a start before 1970', { startsAt: '1969-12-31T23:59:59Z' }],
    ['an end before the start', { startsAt: '2031-01-02T00:00:00Z', endsAt: '2031-01-01T00:00:00Z' }],
    ['an end in the past', { endsAt: '2001-01-01T00:00:00Z' }],
    ['an end past 2100', { endsAt: '2200-01-01T00:00:00Z' }],
  ])('refuses a sale window with %s before touching any store', async ([, window], { app }) => {
    const { stores, redis } = app;
    const saleSku = `window-${randomUUID().slice(0, 8)}`;
    const reply = await createSale(app, { sku: saleSku, ...window });
    expect(reply).toMatchObject({ status: 400, body: { error: { code: 'INVALID_REQUEST' } } });
    expect((await send(app, 'GET', `/api/sales/${saleSku}`)).status).toBe(404);
    expect(await stores.sales.getSale(saleSku)).toBeNull();
    expect(await redis.exists(saleKeys(saleSku).sale)).toBe(0);
  });

  it('an Idempotency-Key reused with another body answers 422; reused with the same body, the same order', async ({
    app,
  }) => {
    const id = randomUUID().slice(0, 8);
    expect((await createSale(app, { sku: `idem-${id}`, perUserLimit: 3 })).status).toBe(201);
    const first = await buy(app, `idem-${id}`, `idem-${id}`, { 'idempotency-key': 'one' }, 1);
    expect(first.status).toBe(202);
    expect(await buy(app, `idem-${id}`, `idem-${id}`, { 'idempotency-key': 'one' }, 2)).toMatchObject({
      status: 422,
      body: { error: { code: 'IDEMPOTENCY_KEY_REUSED' } },
    });
    expect((await buy(app, `idem-${id}`, `idem-${id}`, { 'idempotency-key': 'one' }, 1)).body).toMatchObject({
      orderNo: (first.body as { orderNo: string }).orderNo,
    });
    expect((await send(app, 'GET', `/api/sales/idem-${id}`)).body).toMatchObject({ available: 4, reserved: 1 });
  });

  it('a checkout-cancel loop is bounded, and cancelled orders leave no reservation record behind', async ({ app }) => {
    const { config, stores, redis, auth } = app;
    const id = randomUUID().slice(0, 8);
    const looper = `looper-${id}`;
    expect((await createSale(app, { sku: `loop-${id}`, stock: 10 })).status).toBe(201);
    const token = bearer(await auth.issue(looper));
    const cancelled: string[] = [];
    for (let round = 0; round < config.maxCancelsPerShopper; round++) {
      const order = await buy(app, looper, `loop-${id}`, { 'idempotency-key': `round-${round}` });
      expect(order.status).toBe(202);
      const no = (order.body as { orderNo: string }).orderNo;
      await persisted(app, no);
      expect((await send(app, 'POST', `/api/orders/${no}/cancel`, { headers: token })).status).toBe(202);
      await waitFor(async () => (await stores.orders.getOrder(no))?.status === 'CANCELLED', {
        what: `${no} cancelled`,
        timeoutMs: 15_000,
      });
      // MySQL says CANCELLED before the workflow's last step gives the unit back in Redis; the next
      // round must wait for that too, or the per-user limit (still holding 1) refuses it.
      await waitFor(async () => Number((await redis.hget(saleKeys(`loop-${id}`).users, looper)) ?? 0) === 0, {
        what: `${no}'s unit back in Redis`,
        timeoutMs: 15_000,
      });
      cancelled.push(no);
    }
    expect(await buy(app, looper, `loop-${id}`)).toMatchObject({
      status: 409,
      body: { error: { code: 'TOO_MANY_CANCELLATIONS' } },
    });
    // Other shoppers are not affected.
    expect((await buy(app, `other-${id}`, `loop-${id}`)).status).toBe(202);
    // The cancelled orders' records are gone once their workflows closed; their rows answer for them.
    await waitFor(
      async () =>
        (await redis.hmget(saleKeys(`loop-${id}`).reservations, ...cancelled)).every((record) => record === null),
      {
        what: 'the cancelled orders to drop their reservation records',
        timeoutMs: 15_000,
      },
    );
    // A retry of a cancelled order's key still answers that order.
    expect((await buy(app, looper, `loop-${id}`, { 'idempotency-key': 'round-0' })).body).toMatchObject({
      orderNo: cancelled[0],
      status: 'CANCELLED',
    });
  });
});
