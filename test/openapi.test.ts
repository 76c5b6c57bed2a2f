/**
 * The OpenAPI document against the code it describes, on the real stack (Temporal dev server with
 * the production worker, Redis, MariaDB):
 *  - every route mounted on the app is an operation of the spec, and every operation a route;
 *  - the document is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator);
 *  - the one docs.test.ts builds in-process without a stack is the served one, byte for byte;
 *  - real answers of the running API, successes and errors, match the schema the spec declares for
 *    their operation and status (ajv, JSON Schema 2020-12, formats checked), with a documented code;
 *  - /docs and every file it loads answer 200 with the right content type, from the API itself.
 */
import { readFileSync } from 'node:fs';
import Router from '@koa/router';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import Koa from 'koa';
import { describe, expect } from 'vitest';
import { composeApi, createApp } from '../src/api/app.js';
import { openApiJsonWithoutStack } from '../toolkit/openapi-document.js';
import { ShopperAuth } from '../src/api/auth.js';
import { openApiPath } from '../src/api/route.js';
import { buildOpenApiDocument, routersOf, type OpenApiDocument } from '../src/api/openapi.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import type { AppConfig } from '../src/config/index.js';
import { openStores } from '../src/db/stores.js';
import { createLogger } from '../src/infra/logger.js';
import { createRedis } from '../src/infra/redis.js';
import { waitFor } from '../stack/wait-for.js';
import { saleThroughApi, uniqueSku, type SaleRequest } from './helpers/fixtures.js';
import { API_TEST_ENV, TEST_ADMIN_TOKEN as ADMIN, type TestApp } from './helpers/app.js';
import { httpAt, httpRequest, type HttpOptions } from './helpers/http.js';
import { httpCall } from '../toolkit/http-client.js';
import { appTest } from './helpers/stack-test.js';

// ajv-formats is CommonJS with a default export; under NodeNext its callable is `.default`.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const it = appTest('openapi', API_TEST_ENV)
  // The same app as the running API's, built from the same code, to walk its routers.
  .extend('koa', { scope: 'file' }, ({ app: { config, redis, pool, temporal } }) =>
    createApp(composeApi({ config, redis, stores: openStores(pool), temporal, logger: createLogger(config, 'api') })),
  )
  .extend('spec', { scope: 'file' }, ({ koa }) => buildOpenApiDocument(routersOf(koa)));

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** "GET /api/orders/{orderNo}" for every route mounted on the app's routers (HEAD is Koa's automatic twin of GET). */
function mountedRoutes(koa: Koa): string[] {
  return routersOf(koa).flatMap((router) =>
    router.stack.flatMap((layer) =>
      layer.methods
        .filter((method) => method !== 'HEAD')
        .map((method) => `${method} ${openApiPath(String(layer.path))}`),
    ),
  );
}

/** "GET /api/orders/{orderNo}" for every operation of the document. */
function specOperations(document: OpenApiDocument): string[] {
  return Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
    HTTP_METHODS.filter((method) => item?.[method]).map((method) => `${method.toUpperCase()} ${path}`),
  );
}

function coverage(koa: Koa, document: OpenApiDocument) {
  const mounted = mountedRoutes(koa);
  const documented = specOperations(document);
  return {
    undocumented: mounted.filter((route) => !documented.includes(route)),
    unmounted: documented.filter((operation) => !mounted.includes(operation)),
    mounted,
  };
}

describe('no drift between the routes and the spec', () => {
  it('every mounted route is an operation of the spec with the same method and path, and every operation a mounted route', ({
    koa,
    spec,
  }) => {
    const { undocumented, unmounted, mounted } = coverage(koa, spec);
    // Named in the failure: a route mounted without route(router, { ...doc, handler }) shows up here.
    expect(undocumented, 'routes mounted without an OpenAPI operation').toEqual([]);
    expect(unmounted, 'operations in the spec without a route').toEqual([]);
    expect(new Set(mounted).size).toBe(mounted.length);
    expect(mounted).toEqual(
      expect.arrayContaining([
        'GET /healthz',
        'POST /api/sales',
        'GET /api/sales/{sku}',
        'POST /api/auth/dev-login',
        'POST /api/checkout',
        'GET /api/orders/{orderNo}',
        'GET /api/orders',
        'POST /api/orders/{orderNo}/cancel',
        'POST /api/payments/webhook',
        'POST /api/dev/simulate-payment',
        'GET /',
        'GET /openapi.json',
        'GET /docs',
        'GET /docs/{asset}',
      ]),
    );
  });

  it('names a route mounted without its documentation, and an operation whose route is gone', ({ koa, spec }) => {
    const plain = new Router();
    plain.get('/api/admin/undocumented/:id', (ctx) => {
      ctx.body = {};
    });
    const drifted = new Koa();
    for (const router of [...routersOf(koa), plain]) drifted.use(router.routes());
    expect(coverage(drifted, spec).undocumented).toEqual(['GET /api/admin/undocumented/{id}']);

    // The API mounts one router holding every route: drop the sales routes' layers from a copy of it.
    const withoutSales = new Koa();
    for (const router of routersOf(koa)) {
      const pruned = new Router();
      pruned.stack = router.stack.filter(
        (layer) => typeof layer.path !== 'string' || !layer.path.startsWith('/api/sales'),
      );
      withoutSales.use(pruned.routes());
    }
    expect(coverage(withoutSales, spec).unmounted.sort()).toEqual([
      'GET /api/sales/{sku}',
      'GET /api/sales/{sku}/line',
      'GET /api/sales/{sku}/line/me',
      'POST /api/sales',
      'POST /api/sales/{sku}/line',
    ]);
  });

  it('the running API serves the same document, once built', async ({ app, spec }) => {
    const { api } = app;
    const first = await httpAt('GET', `${api.url}/openapi.json`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^application\/json/);
    const served: unknown = first.body;
    expect(served).toEqual(JSON.parse(JSON.stringify(spec)));
    // The raw text (the toolkit's client): byte for byte.
    const second = await httpCall('GET', `${api.url}/openapi.json`);
    expect(second.body).toBe(JSON.stringify(served));
  });

  it('the document built in-process without a stack (what docs.test.ts reads) is byte for byte the one the running API serves', async ({
    app,
  }) => {
    const { api } = app;
    const answer = await httpCall('GET', `${api.url}/openapi.json`);
    expect(answer.status).toBe(200);
    // Another configuration (the defaults) and inert clients: neither may change a byte.
    expect(openApiJsonWithoutStack()).toBe(answer.body);
  });
});

describe('the document', () => {
  it('is valid OpenAPI 3.1', async ({ spec }) => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(JSON.stringify(spec)) as Record<string, unknown>);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    // The validator is not a rubber stamp: a response without its description is refused.
    const broken = JSON.parse(JSON.stringify(spec)) as {
      paths: Record<string, { get: { responses: Record<string, { description?: string }> } }>;
    };
    delete broken.paths['/healthz']!.get.responses['200']!.description;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('declares the three security schemes and uses each', ({ spec }) => {
    expect(spec.components?.securitySchemes).toMatchObject({
      shopperJwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      adminToken: { type: 'http', scheme: 'bearer' },
      paymentSignature: { type: 'apiKey', in: 'header', name: 'Payment-Signature' },
    });
    const security = (path: string, method: 'get' | 'post') => spec.paths?.[path]?.[method]?.security;
    expect(security('/api/sales', 'post')).toEqual([{ adminToken: [] }]);
    expect(security('/api/checkout', 'post')).toEqual([{ shopperJwt: [] }]);
    expect(security('/api/orders/{orderNo}', 'get')).toEqual([{ shopperJwt: [] }]);
    expect(security('/api/payments/webhook', 'post')).toEqual([{ paymentSignature: [] }]);
    expect(security('/api/sales/{sku}', 'get')).toBeUndefined();
  });

  it('reuses the request schemas of src/api/schemas.ts: the checkout body and its Idempotency-Key header', ({
    spec,
  }) => {
    const checkout = spec.paths?.['/api/checkout']?.post;
    expect(checkout?.parameters).toEqual([
      expect.objectContaining({
        in: 'header',
        name: 'Idempotency-Key',
        schema: expect.objectContaining({ minLength: 1, maxLength: 64, pattern: '^[\\x21-\\x7e]+$' }),
      }),
      expect.objectContaining({
        in: 'header',
        name: 'Admission-Token',
        schema: expect.objectContaining({ maxLength: 1024 }),
      }),
      expect.objectContaining({ in: 'header', name: 'Prefer' }),
    ]);
    expect(checkout?.requestBody).toMatchObject({
      required: true,
      content: {
        'application/json': {
          schema: {
            required: ['sku', 'quantity'],
            additionalProperties: false,
            properties: { quantity: { maximum: 100 } },
          },
        },
      },
    });
  });

  it("its error codes are docs/api.md's error-code table, each documented under the status the table gives it", ({
    spec,
  }) => {
    // "| 409 | `SOLD_OUT` | no units left |": the table people read, held against the document.
    // docs/api.md's "Error codes" links to the table, generated into docs/reference/errors.md (npm run docs:reference).
    const page = readFileSync(new URL('../docs/reference/errors.md', import.meta.url), 'utf8');
    const statusOfCode = new Map(
      [...page.matchAll(/^\| (\d{3}) \| `([A-Z_]+)` \|/gm)].map((row) => [row[2]!, Number(row[1])]),
    );
    const codes = (spec.components?.schemas?.ErrorCode as { enum: string[] }).enum;
    expect([...codes].sort()).toEqual([...statusOfCode.keys()].sort());
    const documented = Object.entries(spec.paths ?? {}).flatMap(([path, item]) =>
      HTTP_METHODS.flatMap((method) =>
        Object.entries(item?.[method]?.responses ?? {}).flatMap(([status, response]) =>
          Object.keys((response as DocumentedResponse).content?.['application/json']?.examples ?? {}).map((code) => ({
            at: `${method} ${path}`,
            status,
            code,
          })),
        ),
      ),
    );
    expect(documented.length).toBeGreaterThan(20);
    for (const { at, status, code } of documented)
      expect(`${at}: ${code} ${status}`).toBe(`${at}: ${code} ${statusOfCode.get(code)}`);
  });
});

interface Reply {
  status: number;
  contentType: string;
  headers: Headers;
  body: any;
}

async function http(
  app: TestApp,
  method: string,
  path: string,
  options: HttpOptions & { base?: string } = {},
): Promise<Reply> {
  const { status, contentType, headers, body } = await httpRequest(options.base ?? app.api.url, method, path, options);
  return { status, contentType, headers, body: body ?? '' };
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const compiled = new Map<string, ValidateFunction>();

/** A validator for one schema of the document; its `#/components/...` references resolve inside the same root. */
function validatorFor(spec: OpenApiDocument, key: string, schema: object): ValidateFunction {
  let validate = compiled.get(key);
  if (!validate) {
    validate = ajv.compile({
      $id: `https://flash-checkout.test/${encodeURIComponent(key)}`,
      allOf: [schema],
      components: { schemas: spec.components?.schemas },
    });
    compiled.set(key, validate);
  }
  return validate;
}

interface DocumentedResponse {
  content?: Record<string, { schema?: object; examples?: Record<string, unknown> }>;
}

/**
 * The reply matches what the spec declares for this operation and status: a declared status (not the
 * catch-all `default`), its media type, its schema, and for an error a code documented for that status.
 */
function expectDocumented(spec: OpenApiDocument, method: 'get' | 'post', path: string, reply: Reply): void {
  const operation = spec.paths?.[path]?.[method];
  expect(operation, `${method} ${path} in the spec`).toBeDefined();
  const response = operation?.responses?.[String(reply.status) as `2${string}`] as DocumentedResponse | undefined;
  expect(
    response,
    `${method.toUpperCase()} ${path} declares ${reply.status} (answered ${JSON.stringify(reply.body)})`,
  ).toBeDefined();
  const [mediaType, media] = Object.entries(response?.content ?? {})[0] ?? [];
  expect(mediaType, `${method.toUpperCase()} ${path} ${reply.status} has a body`).toBeDefined();
  expect(reply.contentType.split(';')[0]).toBe(mediaType);
  const validate = validatorFor(spec, `${method} ${path} ${reply.status}`, media?.schema ?? {});
  expect(
    validate(reply.body),
    `${method.toUpperCase()} ${path} ${reply.status}: ${JSON.stringify(validate.errors)} for ${JSON.stringify(reply.body)}`,
  ).toBe(true);
  if (reply.status >= 400 && media?.examples)
    expect(Object.keys(media.examples), `${method.toUpperCase()} ${path} ${reply.status}`).toContain(
      reply.body.error.code,
    );
}

/** An answer no operation declares (405, unknown path): it matches the shared ApiError schema. */
function expectApiError(spec: OpenApiDocument, reply: Reply, status: number, code: string): void {
  expect(reply.status).toBe(status);
  const validate = validatorFor(spec, 'ApiError', { $ref: '#/components/schemas/ApiError' });
  expect(validate(reply.body), JSON.stringify(validate.errors)).toBe(true);
  expect(reply.body.error.code).toBe(code);
}

/** Puts a sale on (one unit a shopper) through the admin API, for the answers a test documents next. */
const createSale = (app: TestApp, sale: SaleRequest) => saleThroughApi(app.api.url, ADMIN, sale);

describe('real answers match the spec', () => {
  it('sale, login, checkout, order, order list, webhook, cancel, dev payment and health answers match their declared schemas', async ({
    app,
    spec,
  }) => {
    const sku = uniqueSku('OAS');
    const created = await http(app, 'POST', '/api/sales', {
      token: ADMIN,
      json: {
        sku,
        name: 'Spec sale',
        priceCents: 1_250,
        stock: 10,
        perUserLimit: 4,
        startsAt: '2020-01-01T00:00:00Z',
        endsAt: '2099-01-01T00:00:00+02:00',
      },
    });
    expect(created.status).toBe(201);
    expectDocumented(spec, 'post', '/api/sales', created);
    const openEnded = await http(app, 'POST', '/api/sales', {
      token: ADMIN,
      json: { sku: uniqueSku('OAS'), name: 'No window', priceCents: 0, stock: 1, perUserLimit: 1 },
    });
    expect(openEnded.body).toMatchObject({ startsAt: null, endsAt: null });
    expectDocumented(spec, 'post', '/api/sales', openEnded);
    expectDocumented(spec, 'get', '/api/sales/{sku}', await http(app, 'GET', `/api/sales/${sku}`));

    const login = await http(app, 'POST', '/api/auth/dev-login', { json: { userId: 'oas-alice' } });
    expect(login.status).toBe(200);
    expectDocumented(spec, 'post', '/api/auth/dev-login', login);
    const token = login.body.token as string;

    const checkout = await http(app, 'POST', '/api/checkout', {
      token,
      json: { sku, quantity: 2 },
      headers: { 'Idempotency-Key': `oas-${sku}` },
    });
    expect(checkout.status).toBe(202);
    expectDocumented(spec, 'post', '/api/checkout', checkout);
    expect(checkout.headers.get('location')).toBe(`/api/orders/${checkout.body.orderNo}`);
    const { orderNo } = checkout.body as { orderNo: string };
    expectDocumented(spec, 'get', '/api/orders/{orderNo}', await http(app, 'GET', `/api/orders/${orderNo}`, { token }));
    const awaiting = await pollOrder(app, orderNo, token, 'AWAITING_PAYMENT');
    expectDocumented(spec, 'get', '/api/orders/{orderNo}', awaiting);

    const paid = await webhook(app, {
      eventId: `evt-oas-${orderNo}`,
      type: 'payment.succeeded',
      orderNo,
      amountCents: 2_500,
    });
    expect(paid.body).toEqual({ received: true, outcome: 'APPLIED' });
    expectDocumented(spec, 'post', '/api/payments/webhook', paid);
    const duplicate = await webhook(app, {
      eventId: `evt-oas-${orderNo}`,
      type: 'payment.succeeded',
      orderNo,
      amountCents: 2_500,
    });
    expect(duplicate.body).toEqual({ received: true, outcome: 'DUPLICATE' });
    expectDocumented(spec, 'post', '/api/payments/webhook', duplicate);
    const refund = await webhook(app, {
      eventId: `evt-oas-again-${orderNo}`,
      type: 'payment.succeeded',
      orderNo,
      amountCents: 2_500,
    });
    expect(refund.body).toEqual({ received: true, outcome: 'REFUND_REQUIRED', refundReason: 'ALREADY_PAID' });
    expectDocumented(spec, 'post', '/api/payments/webhook', refund);
    const paidOrder = await pollOrder(app, orderNo, token, 'PAID');
    expect(paidOrder.body.paidAt).toEqual(expect.any(String));
    expectDocumented(spec, 'get', '/api/orders/{orderNo}', paidOrder);
    const notCancellable = await http(app, 'POST', `/api/orders/${orderNo}/cancel`, { token });
    expect(notCancellable.body.error.code).toBe('NOT_CANCELLABLE');
    expectDocumented(spec, 'post', '/api/orders/{orderNo}/cancel', notCancellable);

    const second = await http(app, 'POST', '/api/checkout', { token, json: { sku, quantity: 1 } });
    expect(second.status).toBe(202);
    await pollOrder(app, second.body.orderNo, token, 'AWAITING_PAYMENT');
    const cancel = await http(app, 'POST', `/api/orders/${second.body.orderNo}/cancel`, { token });
    expect(cancel.status).toBe(202);
    expectDocumented(spec, 'post', '/api/orders/{orderNo}/cancel', cancel);
    const cancelled = await pollOrder(app, second.body.orderNo, token, 'CANCELLED');
    expect(cancelled.body.cancelReason).toBe('USER_CANCELLED');
    expectDocumented(spec, 'get', '/api/orders/{orderNo}', cancelled);
    const listed = await http(app, 'GET', `/api/orders?sku=${sku}&limit=1`, { token });
    expect(listed.body.items).toHaveLength(1);
    expect(listed.body.nextCursor).toEqual(expect.any(String));
    expectDocumented(spec, 'get', '/api/orders', listed);
    expectDocumented(spec, 'get', '/api/orders', await http(app, 'GET', '/api/orders?limit=0', { token }));

    const third = await http(app, 'POST', '/api/checkout', { token, json: { sku, quantity: 1 } });
    await pollOrder(app, third.body.orderNo, token, 'AWAITING_PAYMENT');
    const simulated = await http(app, 'POST', '/api/dev/simulate-payment', {
      token,
      json: { orderNo: third.body.orderNo },
    });
    expect(simulated.body).toEqual({ received: true, outcome: 'APPLIED' });
    expectDocumented(spec, 'post', '/api/dev/simulate-payment', simulated);

    const health = await http(app, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expectDocumented(spec, 'get', '/healthz', health);
  });

  it("a waiting checkout's 201 (Prefer: wait) matches its declared schema", async ({ app, spec }) => {
    const { config } = app;
    const sku = uniqueSku('OASWAIT');
    await createSale(app, { sku, name: 'Waiting spec sale', priceCents: 700, stock: 3 });
    const token = await new ShopperAuth(config).issue('oas-waiter');
    const waited = await http(app, 'POST', '/api/checkout', {
      token,
      json: { sku, quantity: 1 },
      headers: { prefer: 'wait=10' },
    });
    expect(waited.status).toBe(201);
    expect(waited.headers.get('preference-applied')).toBe('wait=10');
    expect(waited.body.status).toBe('AWAITING_PAYMENT');
    expectDocumented(spec, 'post', '/api/checkout', waited);
  });

  it('admin views and the dashboard config match their declared schemas', async ({ app, spec }) => {
    const sku = uniqueSku('OASADM');
    await createSale(app, { sku, name: 'Admin spec sale', priceCents: 500, stock: 5 });
    const stats = await http(app, 'GET', `/api/admin/sales/${sku}/stats`, { token: ADMIN });
    expect(stats.status).toBe(200);
    expectDocumented(spec, 'get', '/api/admin/sales/{sku}/stats', stats);
    const sales = await http(app, 'GET', '/api/admin/sales?limit=2', { token: ADMIN });
    expect(sales.body.items.length).toBeGreaterThan(0);
    expectDocumented(spec, 'get', '/api/admin/sales', sales);
    expectDocumented(
      spec,
      'get',
      '/api/admin/orders',
      await http(app, 'GET', `/api/admin/orders?sku=${sku}`, { token: ADMIN }),
    );
    expectDocumented(
      spec,
      'get',
      '/api/admin/payments',
      await http(app, 'GET', '/api/admin/payments?outcome=APPLIED&limit=3', { token: ADMIN }),
    );
    expectDocumented(
      spec,
      'get',
      '/api/admin/payments',
      await http(app, 'GET', '/api/admin/payments?limit=bad', { token: ADMIN }),
    );
    expectDocumented(
      spec,
      'get',
      '/api/admin/sales/{sku}/stats',
      await http(app, 'GET', `/api/admin/sales/${sku}/stats`),
    );
    const closed = await http(app, 'POST', `/api/admin/sales/${sku}/close`, { token: ADMIN });
    expect(closed.status).toBe(200);
    expectDocumented(spec, 'post', '/api/admin/sales/{sku}/close', closed);
    expectDocumented(spec, 'get', '/api/dev/config', await http(app, 'GET', '/api/dev/config'));
  });

  it('error answers (400, 401, 403, 404, 405, 409, 422) match the error schema with a code documented for their status', async ({
    app,
    spec,
  }) => {
    const { config } = app;
    const sku = uniqueSku('OAS');
    const sale = { sku, name: 'Errors', priceCents: 100, stock: 1, perUserLimit: 1 };
    expect((await http(app, 'POST', '/api/sales', { token: ADMIN, json: sale })).status).toBe(201);
    const token = await new ShopperAuth(config).issue('oas-bob');
    const otherToken = await new ShopperAuth(config).issue('oas-carol');

    const badQuantity = await http(app, 'POST', '/api/checkout', { token, json: { sku, quantity: 0 } });
    expect(badQuantity.status).toBe(400);
    expectDocumented(spec, 'post', '/api/checkout', badQuantity);
    const badKey = await http(app, 'POST', '/api/checkout', {
      token,
      json: { sku, quantity: 1 },
      headers: { 'Idempotency-Key': 'x'.repeat(65) },
    });
    expect(badKey.status).toBe(400);
    expectDocumented(spec, 'post', '/api/checkout', badKey);
    const badSale = await http(app, 'POST', '/api/sales', { token: ADMIN, json: { ...sale, unknown: 1 } });
    expect(badSale.status).toBe(400);
    expectDocumented(spec, 'post', '/api/sales', badSale);
    const badSignature = await http(app, 'POST', '/api/payments/webhook', {
      raw: '{}',
      headers: { 'payment-signature': 't=1,v1=00' },
    });
    expect(badSignature.body.error.code).toBe('INVALID_SIGNATURE');
    expectDocumented(spec, 'post', '/api/payments/webhook', badSignature);

    const noToken = await http(app, 'POST', '/api/checkout', { json: { sku, quantity: 1 } });
    expect(noToken.status).toBe(401);
    expectDocumented(spec, 'post', '/api/checkout', noToken);
    const wrongAdmin = await http(app, 'POST', '/api/sales', { token: 'not-the-admin', json: sale });
    expect(wrongAdmin.status).toBe(401);
    expectDocumented(spec, 'post', '/api/sales', wrongAdmin);

    const noSale = await http(app, 'GET', `/api/sales/${uniqueSku('NONE')}`);
    expect(noSale.status).toBe(404);
    expectDocumented(spec, 'get', '/api/sales/{sku}', noSale);
    const noSaleCheckout = await http(app, 'POST', '/api/checkout', {
      token,
      json: { sku: uniqueSku('NONE'), quantity: 1 },
    });
    expect(noSaleCheckout.status).toBe(404);
    expectDocumented(spec, 'post', '/api/checkout', noSaleCheckout);
    const noOrder = await http(app, 'GET', '/api/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV', { token });
    expect(noOrder.status).toBe(404);
    expectDocumented(spec, 'get', '/api/orders/{orderNo}', noOrder);

    const exists = await http(app, 'POST', '/api/sales', { token: ADMIN, json: sale });
    expect(exists.status).toBe(409);
    expectDocumented(spec, 'post', '/api/sales', exists);
    const order = await http(app, 'POST', '/api/checkout', {
      token,
      json: { sku, quantity: 1 },
      headers: { 'Idempotency-Key': 'oas-key' },
    });
    expect(order.status).toBe(202);
    const reused = await http(app, 'POST', '/api/checkout', {
      token,
      json: { sku, quantity: 2 },
      headers: { 'Idempotency-Key': 'oas-key' },
    });
    expect(reused.status).toBe(422);
    expectDocumented(spec, 'post', '/api/checkout', reused);
    const soldOut = await http(app, 'POST', '/api/checkout', { token: otherToken, json: { sku, quantity: 1 } });
    expect(soldOut.status).toBe(409);
    expectDocumented(spec, 'post', '/api/checkout', soldOut);
    const someoneElses = await http(app, 'GET', `/api/orders/${order.body.orderNo}`, { token: otherToken });
    expect(someoneElses.status).toBe(403);
    expectDocumented(spec, 'get', '/api/orders/{orderNo}', someoneElses);

    expectApiError(spec, await http(app, 'GET', '/api/checkout'), 405, 'METHOD_NOT_ALLOWED');
    expectApiError(spec, await http(app, 'DELETE', '/openapi.json'), 405, 'METHOD_NOT_ALLOWED');
    expectApiError(spec, await http(app, 'GET', '/api/nothing-here'), 404, 'NOT_FOUND');
    const unknownAsset = await http(app, 'GET', '/docs/index.html');
    expect(unknownAsset.status).toBe(404);
    expectDocumented(spec, 'get', '/docs/{asset}', unknownAsset);
  });

  it("a dependency down and dev login disabled: /healthz's 503 and dev-login's 404 match their declared schemas; a method no router knows is 405", async ({
    app,
    spec,
  }) => {
    const { config, pool, temporal } = app;
    // The same app with Redis pointing at a port nobody listens on (the real MySQL and Temporal).
    const deadRedis = createRedis(
      { redisUrl: 'redis://127.0.0.1:1' },
      { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null },
    );
    deadRedis.on('error', () => undefined);
    const degraded = createApp(
      composeApi({
        config: { ...config, authDevLogin: false },
        redis: deadRedis,
        stores: openStores(pool),
        temporal,
        logger: createLogger({ logLevel: 'silent' }, 'api'),
      }),
    );
    const server = degraded.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const address = server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      const health = await http(app, 'GET', '/healthz', { base });
      expect(health.status).toBe(503);
      expect(health.body.checks).toEqual({ redis: 'down', mysql: 'up', temporal: 'up' });
      expectDocumented(spec, 'get', '/healthz', health);
      const login = await http(app, 'POST', '/api/auth/dev-login', { base, json: { userId: 'oas-dave' } });
      expect(login.status).toBe(404);
      expectDocumented(spec, 'post', '/api/auth/dev-login', login);
      const simulate = await http(app, 'POST', '/api/dev/simulate-payment', {
        base,
        json: { orderNo: '01ARZ3NDEKTSV4RRFFQ69G5FAV' },
      });
      expect(simulate.status).toBe(404);
      expectDocumented(spec, 'post', '/api/dev/simulate-payment', simulate);
      // A method @koa/router does not know at all is 405 like any other on a known path, not 501.
      const purge = await http(app, 'PURGE', '/api/checkout', { base });
      expectApiError(spec, purge, 405, 'METHOD_NOT_ALLOWED');
      expect(purge.headers.get('allow')).toBe('POST, OPTIONS');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      deadRedis.disconnect();
    }
  });

  it('the schemas are not rubber stamps: answers with a missing, extra or mistyped field are refused', ({ spec }) => {
    const order = validatorFor(spec, 'get /api/orders/{orderNo} 200', { $ref: '#/components/schemas/OrderRead' });
    const valid = {
      orderNo: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
      sku: 'SKU-1',
      quantity: 1,
      totalCents: 100,
      status: 'PENDING',
      paymentDeadline: '2026-01-01T00:30:00.000Z',
      createdAt: '2026-01-01T00:00:00.000Z',
      source: 'stores',
    };
    expect(order(valid)).toBe(true);
    expect(order({ ...valid, status: 'SHIPPED' })).toBe(false);
    expect(order({ ...valid, userId: 'alice' })).toBe(false);
    expect(order({ ...valid, createdAt: 'yesterday' })).toBe(false);
    const { totalCents: _omitted, ...withoutTotal } = valid;
    expect(order(withoutTotal)).toBe(false);
    // A read's answer says where it came from, as one of the three sources.
    const { source: _source, ...withoutSource } = valid;
    expect(order(withoutSource)).toBe(false);
    expect(order({ ...valid, source: 'stores' })).toBe(true);
    expect(order({ ...valid, source: 'cache' })).toBe(false);
    const error = validatorFor(spec, 'ApiError', { $ref: '#/components/schemas/ApiError' });
    expect(error({ error: { code: 'SOLD_OUT', message: 'sold out' } })).toBe(true);
    expect(error({ error: { code: 'OUT_OF_STOCK', message: 'sold out' } })).toBe(false);
  });
});

describe('the docs page', () => {
  it('GET /docs and every file it references answer 200 with the right content type, all from the API itself', async ({
    app,
  }) => {
    const page = await http(app, 'GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.contentType).toMatch(/^text\/html/);
    expect(page.body).toContain('id="swagger-ui"');
    expect(page.body, 'no CDN: the page loads nothing from another host').not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
    const references = [...(page.body as string).matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(references.sort()).toEqual([
      '/docs/favicon-32x32.png',
      '/docs/swagger-ui-bundle.js',
      '/docs/swagger-ui.css',
    ]);
    const expectedType: Record<string, RegExp> = { css: /^text\/css/, js: /^text\/javascript/, png: /^image\/png/ };
    for (const reference of references) {
      const asset = await http(app, 'GET', reference);
      expect(asset.status, reference).toBe(200);
      expect(asset.contentType, reference).toMatch(expectedType[reference.split('.').pop()!]!);
      expect(asset.body.length, reference).toBeGreaterThan(100);
    }
    const bundle = await http(app, 'GET', '/docs/swagger-ui-bundle.js');
    expect(bundle.body).toContain('SwaggerUIBundle');
    // Its own script, docs.ts, is bundled into the page (src/api/scripted-pages.ts), after Swagger UI's.
    const init = /<script>\n([^]*?)<\/script>/.exec(page.body as string)?.[1] ?? '';
    expect((page.body as string).indexOf(init)).toBeGreaterThan(
      (page.body as string).indexOf('/docs/swagger-ui-bundle.js'),
    );
    expect(init).toContain('SwaggerUIBundle({');
    expect(init).toContain('url: "/openapi.json"');
    expect(init).toContain('validatorUrl: null');
  });
});

async function pollOrder(app: TestApp, orderNo: string, token: string, status: string): Promise<Reply> {
  return waitFor(
    async () => {
      const reply = await http(app, 'GET', `/api/orders/${orderNo}`, { token });
      return reply.status === 200 && reply.body.status === status && reply;
    },
    { what: `order ${orderNo} to be ${status}`, timeoutMs: 20_000 },
  );
}

function webhook(app: TestApp, event: Record<string, unknown>): Promise<Reply> {
  const raw = JSON.stringify(event);
  return http(app, 'POST', '/api/payments/webhook', {
    raw,
    headers: { 'payment-signature': signWebhook(app.config.webhookSecret, raw) },
  });
}

describe('a payment provider the deployment does not configure', () => {
  it('is absent from the served document (and so from /docs), and its path answers 404 NOT_FOUND as the document says of any unknown path', async ({
    app,
    koa,
    spec,
  }) => {
    const { config, api } = app;
    // This stack sets no Stripe keys: Stripe is registered but not configured here.
    expect(config.payments.environment.STRIPE_SECRET_KEY).toBeUndefined();
    const served = (await httpAt('GET', `${api.url}/openapi.json`)).body as OpenApiDocument;
    expect(Object.keys(served.paths ?? {}), 'the paths of the served document').not.toContain('/api/payments/stripe');
    expect(Object.keys(served.components?.securitySchemes ?? {})).not.toContain('stripeSignature');
    expect(served.info.description).toContain('an unknown path 404 NOT_FOUND');
    expect(mountedRoutes(koa)).not.toContain('POST /api/payments/stripe');
    const posted = await http(app, 'POST', '/api/payments/stripe', {
      raw: '{"id":"evt_1","type":"payment_intent.succeeded"}',
      headers: { 'stripe-signature': `t=1700000000,v1=${'5f'.repeat(32)}` },
    });
    expectApiError(spec, posted, 404, 'NOT_FOUND');
    // Not a known path with another method (405): no path at all.
    expectApiError(spec, await http(app, 'GET', '/api/payments/stripe'), 404, 'NOT_FOUND');
  });

  it('configured, its route is mounted and its path documented, with its signature scheme', ({ app }) => {
    const { config, pool, redis, temporal } = app;
    const environment = {
      ...config.payments.environment,
      STRIPE_SECRET_KEY: 'sk_test_openapi',
      STRIPE_WEBHOOK_SECRET: 'whsec_openapi',
    };
    const withStripe: AppConfig = { ...config, payments: { ...config.payments, environment } };
    const stripeApp = createApp(
      composeApi({
        config: withStripe,
        redis,
        stores: openStores(pool),
        temporal,
        logger: createLogger({ logLevel: 'silent' }, 'api'),
      }),
    );
    const document = buildOpenApiDocument(routersOf(stripeApp));
    expect(document.paths?.['/api/payments/stripe']?.post).toMatchObject({
      operationId: 'stripeWebhook',
      security: [{ stripeSignature: [] }],
    });
    expect(document.components?.securitySchemes).toHaveProperty('stripeSignature');
    const { undocumented, unmounted, mounted } = coverage(stripeApp, document);
    expect({ undocumented, unmounted }).toEqual({ undocumented: [], unmounted: [] });
    expect(mounted).toContain('POST /api/payments/stripe');
    // The document without a stack follows the configuration the same way.
    expect(JSON.parse(openApiJsonWithoutStack(withStripe))).toEqual(JSON.parse(JSON.stringify(document)));
  });
});
