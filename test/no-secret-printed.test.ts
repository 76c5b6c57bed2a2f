/**
 * No secret in any error, log line or answer (issue 77, item 2). Every secret of the configuration holds one marker
 * (the payload codec's key, random, is searched for as base64, hex and bytes): the API, the worker and the codec
 * server run as processes on a stack of this file's own, whose MariaDB and Redis are given marker passwords; a sale
 * goes through to PAID and its order event to a merchant's endpoint, every refusal we can reach is asked for, and a
 * bad configuration is refused by loadConfig and by each process, as are wrong MySQL and Redis passwords. No answer
 * (status, headers, body), no log line and no refusal holds a marker; the endpoint's whsec_ secret is in its
 * creation's answer only.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { ConfigError, loadConfig, type AppConfig } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';
import { createRedis } from '../src/infra/redis.js';
import { ENCRYPTED_ENCODING } from '../src/infra/payload-codec.js';
import { paymentProviders } from '../src/payments/providers/registry.js';
import { spawnAppProcess, startAppProcess, type AppRole } from '../stack/app-processes.js';
import { startEventReceiver, type EventReceiver } from '../stack/event-receiver.js';
import { setMysqlPassword, type RunningStack } from '../stack/index.js';
import { freePort, waitUntilReady, type ManagedProcess } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { answersOk } from '../toolkit/http-client.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { testConfig } from './helpers/env.js';
import { uniqueSku } from './helpers/fixtures.js';
import { httpRequest, type HttpOptions, type HttpReply } from './helpers/http.js';
import { startOwnStack } from './helpers/own-stack.js';
import { tempOutDir } from './helpers/run-script.js';
import { signedStripeEvent, startStripeApi, type StripeApi } from './helpers/stripe-api.js';

const MARKER = 'S3cr3tMarker';
/** Each secret a value of its own, each holding MARKER: wherever MARKER shows, a secret leaked. */
const SECRETS = {
  WEBHOOK_SECRET: `${MARKER}-webhook-secret`,
  JWT_SECRET: `${MARKER}-jwt-secret-01`,
  ADMIN_TOKEN: `${MARKER}-admin-token`,
  EVENTS_SECRET_KEY: `${MARKER}-events-secret-key`,
  EVENTS_CUSTOMER_SECRET: `${MARKER}-events-customer`,
  EVENTS_READ_TOKEN: `${MARKER}-events-read`,
  CODEC_SERVER_TOKEN: `${MARKER}-codec-token`,
  LINE_CHALLENGE_SECRET: `${MARKER}-line-pass`,
  // Stripe's keys allow letters and digits only after their prefix.
  STRIPE_SECRET_KEY: `sk_test_${MARKER}StripeKey`,
  STRIPE_WEBHOOK_SECRET: `whsec_${MARKER}StripeHook`,
};
const MYSQL_PASSWORD = `${MARKER}-mysql`;
const REDIS_PASSWORD = `${MARKER}-redis`;
// Not set: it turns TLS on (config.temporal.tls), and the dev server speaks plain gRPC; a process is run with it below.
const TEMPORAL_API_KEY = `${MARKER}-temporal-api-key`;
/** The codec's key cannot hold a marker (32 random bytes); its id is public (each payload names it). */
const codecKey = { id: `nsp-${randomBytes(3).toString('hex')}`, secret: randomBytes(32) };
const CODEC_KEYS = `${codecKey.id}=${codecKey.secret.toString('base64')}`;

const NEEDLES: Record<string, string> = {
  marker: MARKER,
  'codec key (base64)': codecKey.secret.toString('base64'),
  'codec key (hex)': codecKey.secret.toString('hex'),
  // A Buffer as JSON.stringify writes it: {"type":"Buffer","data":[145,133,…]}.
  'codec key (bytes)': codecKey.secret.join(','),
};
/** The names of the secrets `text` holds; [] when none. */
const secretsIn = (text: string): string[] =>
  Object.entries(NEEDLES)
    .filter(([, needle]) => text.includes(needle))
    .map(([name]) => name);

const logDir = tempOutDir('no-secret-printed-');
let stack: RunningStack;
let stripe: StripeApi;
let receiver: EventReceiver;
let env: Record<string, string | undefined>;
let config: AppConfig;
const processes: Partial<Record<AppRole, ManagedProcess>> = {};
const urls = { api: '', codec: '', workerHealth: '', workerMetrics: '' };

beforeAll(async () => {
  stack = await startOwnStack('no-secret-printed');
  stripe = await startStripeApi();
  // The stack's own servers, so their passwords are ours to set: each user may set its own.
  const redis = createRedis(testConfig(stack.env));
  await redis.config('SET', 'requirepass', REDIS_PASSWORD).finally(() => redis.quit());
  const withPassword = (url: string, password: string) => url.replace('://', `://:${password}@`);
  const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  env = {
    ...process.env,
    ...stack.env,
    ...SECRETS,
    MYSQL_URL: await setMysqlPassword(stack.env.MYSQL_URL!, MYSQL_PASSWORD),
    REDIS_URL: withPassword(stack.env.REDIS_URL!, REDIS_PASSWORD),
    PAYLOAD_CODEC_KEYS: CODEC_KEYS,
    LINE_CHALLENGE_HEADER: 'x-line-pass',
    STRIPE_API_URL: stripe.url,
    // Often, so the worker's catch-up asks the Stripe double (with the key) while the test runs.
    STRIPE_CATCH_UP_INTERVAL: '2s',
    TEMPORAL_TASK_QUEUE: `no-secret-${randomUUID()}`,
    PORT: String(port),
    WORKER_HEALTH_PORT: String(healthPort),
    WORKER_METRICS_PORT: String(metricsPort),
    WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
    // As much as the processes ever print.
    LOG_LEVEL: 'debug',
    AUTH_DEV_LOGIN: 'true',
    EVENTS_ALLOWED_RANGES: '127.0.0.0/8',
    EVENTS_POLL_INTERVAL: '200ms',
    SHUTDOWN_DRAIN: '0s',
  };
  config = loadConfig(env);
  urls.api = `http://127.0.0.1:${port}`;
  urls.codec = `http://127.0.0.1:${config.codecServer.port}`;
  urls.workerHealth = `http://127.0.0.1:${healthPort}`;
  urls.workerMetrics = `http://127.0.0.1:${metricsPort}`;
  const start = async (role: AppRole) => {
    processes[role] = await startAppProcess({
      role,
      env,
      logFile: join(logDir, `${role}.log`),
      readyTimeoutMs: 90_000,
    });
  };
  await Promise.all([start('worker'), start('api'), start('codec-server')]);
  receiver = await startEventReceiver({ secrets: () => endpointSecrets });
}, 180_000);

afterAll(async () => {
  await Promise.allSettled(Object.values(processes).map((proc) => proc.stop()));
  await Promise.allSettled([receiver?.close(), stripe?.stop()]);
  await stack?.stop();
});

/** Every answer of the file, as text: status, headers, body. */
const answers: { what: string; text: string }[] = [];
const endpointSecrets: string[] = [];

/** One HTTP call; its answer is checked for secrets at once, and kept for the whsec_ check. */
async function call(base: string, method: string, path: string, options: HttpOptions = {}): Promise<HttpReply> {
  const reply = await httpRequest(base, method, path, options);
  const what = `${method} ${base}${path} → ${reply.status}`;
  const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? '');
  const text = [String(reply.status), ...[...reply.headers].map(([name, value]) => `${name}: ${value}`), body].join(
    '\n',
  );
  expect(secretsIn(text), `${what}: ${text}`).toEqual([]);
  answers.push({ what, text });
  return reply;
}

const admin = { token: SECRETS.ADMIN_TOKEN };

describe('a sale with every secret a marker', () => {
  it('boots, sells, is paid and delivers the order event, answering no secret', async () => {
    for (const path of ['/livez', '/readyz', '/metrics', '/openapi.json', '/api/dev/config'])
      expect((await call(urls.api, 'GET', path)).status).toBe(200);
    for (const [base, path] of [
      [urls.workerHealth, '/livez'],
      [urls.workerHealth, '/readyz'],
      [urls.workerMetrics, '/metrics'],
    ] as const)
      expect((await call(base, 'GET', path)).status).toBe(200);

    const endpoint = await call(urls.api, 'POST', '/api/admin/webhook-endpoints', {
      ...admin,
      json: { url: `${receiver.url}`, eventTypes: ['order.paid'] },
    });
    expect(endpoint.status).toBe(201);
    const secret: string = endpoint.body.secret;
    expect(secret).toMatch(/^whsec_/);
    endpointSecrets.push(secret);

    const sku = uniqueSku('NOSECRET');
    const sale = await call(urls.api, 'POST', '/api/sales', {
      ...admin,
      json: { sku, name: 'No secret sale', priceCents: 2_500, stock: 5, perUserLimit: 1 },
    });
    expect(sale.status).toBe(201);
    const token = await new ShopperAuth(config).issue(`shopper-${randomUUID().slice(0, 8)}`);
    const checkout = await call(urls.api, 'POST', '/api/checkout', { token, json: { sku, quantity: 1 } });
    expect(checkout.status).toBe(202);
    const orderNo: string = checkout.body.orderNo;
    const untilStatus = (status: string) =>
      waitFor(async () => (await call(urls.api, 'GET', `/api/orders/${orderNo}`, { token })).body?.status === status, {
        what: `${orderNo} ${status}`,
        timeoutMs: 30_000,
        intervalMs: 200,
      });
    await untilStatus('AWAITING_PAYMENT');
    const raw = JSON.stringify({ type: 'payment.succeeded', eventId: `evt-${orderNo}`, orderNo, amountCents: 2_500 });
    const paid = await call(urls.api, 'POST', '/api/payments/webhook', {
      raw,
      headers: { 'payment-signature': signWebhook(SECRETS.WEBHOOK_SECRET, raw) },
    });
    expect(paid.status).toBe(200);
    await untilStatus('PAID');
    // Signed with the whsec_ the answer gave, sealed in MySQL under EVENTS_SECRET_KEY, verified by the receiver.
    await waitFor(() => receiver.received.some((event) => event.orderNo === orderNo && event.type === 'order.paid'), {
      what: `the order.paid event of ${orderNo} at the merchant's endpoint`,
      timeoutMs: 30_000,
    });

    for (const path of [
      '/api/admin/sales',
      '/api/admin/orders',
      '/api/admin/payments',
      `/api/admin/orders/${orderNo}/payments`,
      '/api/admin/workers',
      '/api/admin/deployment',
      '/api/admin/webhook-endpoints',
      '/api/admin/events',
    ])
      // A read bounded by READ_DEADLINE may answer 503 on a loaded machine (the deployment's visibility counts):
      // asked again, as an operator's dashboard does, until it answers.
      await waitFor(async () => (await call(urls.api, 'GET', path, admin)).status === 200, {
        what: `${path} answered 200`,
        timeoutMs: 20_000,
      });
    const feed = await call(urls.api, 'GET', '/api/admin/events', { token: SECRETS.EVENTS_READ_TOKEN });
    expect(feed.status).toBe(200);
    expect(JSON.stringify(feed.body)).toContain(orderNo);
    // The worker's catch-up asked the Stripe double with the marker key, which the double took.
    await waitFor(() => stripe.calls.some((c) => c.path.startsWith('/v1/events') && c.status === 200), {
      what: "the worker's catch-up to list Stripe's events",
      timeoutMs: 30_000,
    });
  });
});

/** A payload as the Web UI sends it to the codec server: proto3 JSON, bytes in base64. */
const asJson = (payload: Payload) => ({
  metadata: Object.fromEntries(
    Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? []).toString('base64')]),
  ),
  data: Buffer.from(payload.data ?? []).toString('base64'),
});
const base64 = (text: string) => Buffer.from(text).toString('base64');

describe('every refusal we can reach', () => {
  it('answers each wrong or missing credential, bad signature and bad body without a secret', async () => {
    const sku = uniqueSku('NOSECRET');
    const otherAuth = new ShopperAuth({ ...config, jwtSecret: 'another-secret-of-32-characters!' });
    const wrongJwt = await otherAuth.issue('mallory');
    const refusals: [HttpReply, number][] = [
      [await call(urls.api, 'POST', '/api/sales', { json: { sku, name: 'x', priceCents: 1, stock: 1 } }), 401],
      [await call(urls.api, 'POST', '/api/sales', { token: 'wrong-admin-token', json: {} }), 401],
      [await call(urls.api, 'POST', '/api/sales', { ...admin, raw: '{"sku":' }), 400],
      [await call(urls.api, 'POST', '/api/sales', { ...admin, json: { sku, stock: -1 } }), 400],
      [await call(urls.api, 'GET', '/api/admin/events', { token: 'wrong-events-token-0001' }), 401],
      [await call(urls.api, 'GET', '/api/admin/events'), 401],
      [await call(urls.api, 'GET', '/api/admin/events?after=not-a-cursor', { token: SECRETS.EVENTS_READ_TOKEN }), 400],
      // The events token reads the feed only: never an endpoint, whose answers hold secrets.
      [await call(urls.api, 'GET', '/api/admin/webhook-endpoints', { token: SECRETS.EVENTS_READ_TOKEN }), 401],
      [await call(urls.api, 'POST', '/api/admin/webhook-endpoints', { ...admin, json: { url: 'ftp://x' } }), 400],
      [await call(urls.api, 'POST', '/api/checkout', { token: wrongJwt, json: { sku, quantity: 1 } }), 401],
      [await call(urls.api, 'POST', '/api/checkout', { token: 'not.a.jwt', json: { sku, quantity: 1 } }), 401],
      [await call(urls.api, 'POST', '/api/checkout', { json: { sku, quantity: 1 } }), 401],
      [await call(urls.api, 'GET', '/api/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV', { token: wrongJwt }), 401],
      [await call(urls.api, 'POST', '/api/auth/dev-login', { json: { userId: '' } }), 400],
    ];
    const signed = await new ShopperAuth(config).issue('shopper-bad-body');
    refusals.push([await call(urls.api, 'POST', '/api/checkout', { token: signed, raw: '{"sku":' }), 400]);
    refusals.push([await call(urls.api, 'GET', '/api/no/such/route'), 404]);

    const raw = JSON.stringify({
      type: 'payment.succeeded',
      eventId: 'evt-bad',
      orderNo: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
      amountCents: 1,
    });
    const webhook = (body: string, signature?: string) =>
      call(urls.api, 'POST', '/api/payments/webhook', {
        raw: body,
        ...(signature ? { headers: { 'payment-signature': signature } } : {}),
      });
    refusals.push([await webhook(raw, signWebhook('a-wrong-webhook-secret', raw)), 400]);
    refusals.push([await webhook(raw), 400]);
    refusals.push([await webhook('{"type":', signWebhook(SECRETS.WEBHOOK_SECRET, '{"type":')), 400]);
    const stripeEvent = (secret: string) => signedStripeEvent(secret, 'payment_intent.succeeded', { id: 'pi_unknown' });
    const stripeCall = ({ payload, signature }: { payload: string; signature: string }) =>
      call(urls.api, 'POST', '/api/payments/stripe', { raw: payload, headers: { 'stripe-signature': signature } });
    refusals.push([await stripeCall(stripeEvent('whsec_another0secret')), 400]);
    // Signed right, about an intent that is not ours: taken, and answered.
    expect((await stripeCall(stripeEvent(SECRETS.STRIPE_WEBHOOK_SECRET))).status).toBeLessThan(300);

    // The line's challenge: the header the proxy in front sets to LINE_CHALLENGE_SECRET.
    const lined = uniqueSku('NOSECRET-LINE');
    const created = await call(urls.api, 'POST', '/api/sales', {
      ...admin,
      json: { sku: lined, name: 'Lined sale', priceCents: 100, stock: 2, perUserLimit: 1, line: {} },
    });
    expect(created.status).toBe(201);
    const join = (headers: Record<string, string>) =>
      call(urls.api, 'POST', `/api/sales/${lined}/line`, { token: signed, headers });
    refusals.push([await join({}), 403]);
    refusals.push([await join({ 'x-line-pass': 'a-wrong-line-pass' }), 403]);
    expect((await join({ 'x-line-pass': SECRETS.LINE_CHALLENGE_SECRET })).status).toBe(200);

    const codec = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      call(urls.codec, 'POST', path, typeof body === 'string' ? { raw: body, headers } : { json: body, headers });
    const bearer = { authorization: `Bearer ${SECRETS.CODEC_SERVER_TOKEN}` };
    const plain = asJson(defaultPayloadConverter.toPayload({ sku, note: 'decoded by the codec server' }));
    const encoded = await codec('/encode', { payloads: [plain] }, bearer);
    expect(encoded.status).toBe(200);
    expect((await codec('/decode', encoded.body, bearer)).body).toEqual({ payloads: [plain] });
    const unknownKey = {
      metadata: {
        encoding: base64(ENCRYPTED_ENCODING),
        'encryption-key-id': base64('no-such-key'),
        'encryption-original-encoding': base64('json/plain'),
      },
      data: randomBytes(48).toString('base64'),
    };
    refusals.push([await codec('/decode', encoded.body, { authorization: 'Bearer a-wrong-codec-token' }), 401]);
    refusals.push([await codec('/decode', encoded.body), 401]);
    refusals.push([await codec('/decode', { payloads: [unknownKey] }, bearer), 400]);
    refusals.push([await codec('/decode', '{"payloads":', bearer), 400]);
    refusals.push([await codec('/decode', { payloads: 'none' }, bearer), 400]);
    refusals.push([await codec('/decode', encoded.body, { ...bearer, origin: 'http://evil.example.test' }), 403]);

    expect(refusals.map(([reply]) => reply.status)).toEqual(refusals.map(([, status]) => status));
    // The refusals say what was wrong: they are real answers, not empty ones.
    for (const [reply] of refusals) expect(reply.body?.error?.code).toBeTruthy();
  });
});

describe('the logs of the three processes, from boot to shutdown', () => {
  it('hold the sale and the refusals, and no secret; the whsec_ was in its creation answer only', async () => {
    // Stopped first: the shutdown's lines too, and every line flushed.
    await Promise.all(Object.values(processes).map((proc) => proc.stop()));
    const logs = Object.fromEntries(
      (['api', 'worker', 'codec-server'] as const).map((role) => [
        role,
        readFileSync(join(logDir, `${role}.log`), 'utf8'),
      ]),
    );
    for (const [role, text] of Object.entries(logs)) {
      console.info(`[no-secret-printed] ${role}: ${text.split('\n').length} lines`);
      expect(secretsIn(text), `${role}'s log`).toEqual([]);
    }
    expect(logs.api).toContain('api listening');
    expect(logs.api).toMatch(/"status":401/);
    expect(logs.worker).toContain('worker polling');
    expect(logs['codec-server']).toContain('codec server listening');
    expect(logs['codec-server']).toContain('codec request refused');

    const [secret] = endpointSecrets;
    expect(secret).toBeDefined();
    const holding = answers.filter(({ text }) => text.includes(secret!));
    expect(holding.map(({ what }) => what)).toEqual([
      expect.stringMatching(/^POST .*\/api\/admin\/webhook-endpoints → 201$/),
    ]);
    // The shape of every endpoint's secret (generateEndpointSecret); the OpenAPI document's example is shorter.
    const whsec = /whsec_[A-Za-z0-9+/]{43}=/;
    expect(answers.filter(({ text }) => text !== holding[0]!.text && whsec.test(text)).map(({ what }) => what)).toEqual(
      [],
    );
    for (const [role, text] of Object.entries(logs)) expect(whsec.test(text), `${role}'s log`).toBe(false);
  });
});

/** `env` with `changes`, the bad configuration; each leaves every other secret a marker. */
const mistyped = (changes: Record<string, string>) => ({ ...env, ...changes });

describe('a bad configuration', () => {
  // ADMIN_TOKEN needs 8 characters and TEMPORAL_API_KEY one: no value holding the marker is refused.
  const MISTYPES: [mistake: string, variable: string, changes: Record<string, string>][] = [
    ['WEBHOOK_SECRET too short', 'WEBHOOK_SECRET', { WEBHOOK_SECRET: MARKER }],
    ['JWT_SECRET too short', 'JWT_SECRET', { JWT_SECRET: MARKER }],
    ['EVENTS_SECRET_KEY too short', 'EVENTS_SECRET_KEY', { EVENTS_SECRET_KEY: `${MARKER}-too-short` }],
    ['EVENTS_READ_TOKEN too short', 'EVENTS_READ_TOKEN', { EVENTS_READ_TOKEN: MARKER }],
    ['CODEC_SERVER_TOKEN too short', 'CODEC_SERVER_TOKEN', { CODEC_SERVER_TOKEN: MARKER }],
    ['LINE_CHALLENGE_SECRET too short', 'LINE_CHALLENGE_SECRET', { LINE_CHALLENGE_SECRET: MARKER }],
    // A '/' not percent-encoded: the URL no longer parses.
    ["MYSQL_URL's password unescaped", 'MYSQL_URL', { MYSQL_URL: `mysql://flash:${MARKER}/x@127.0.0.1:3306/flash` }],
    ['REDIS_URL not redis://', 'REDIS_URL', { REDIS_URL: `http://:${MARKER}@127.0.0.1:6379` }],
    ['a codec key without its id', 'PAYLOAD_CODEC_KEYS', { PAYLOAD_CODEC_KEYS: `${MARKER}${'A'.repeat(31)}=` }],
    ["a codec key after ':'", 'PAYLOAD_CODEC_KEYS', { PAYLOAD_CODEC_KEYS: `k1:${MARKER}${'A'.repeat(31)}=` }],
    ['a codec key too short', 'PAYLOAD_CODEC_KEYS', { PAYLOAD_CODEC_KEYS: `k1=${MARKER}AAAA` }],
    ['a second codec key not base64', 'PAYLOAD_CODEC_KEYS', { PAYLOAD_CODEC_KEYS: `${CODEC_KEYS},k2=${MARKER}!` }],
    ['STRIPE_SECRET_KEY with dashes', 'STRIPE_SECRET_KEY', { STRIPE_SECRET_KEY: `sk_test_${MARKER}-x` }],
    ['STRIPE_SECRET_KEY without sk_', 'STRIPE_SECRET_KEY', { STRIPE_SECRET_KEY: MARKER }],
    ['STRIPE_WEBHOOK_SECRET without whsec_', 'STRIPE_WEBHOOK_SECRET', { STRIPE_WEBHOOK_SECRET: MARKER }],
    ['STRIPE_WEBHOOK_SECRET unset', 'STRIPE_WEBHOOK_SECRET', { STRIPE_WEBHOOK_SECRET: '' }],
  ];

  it.each(MISTYPES)('%s: the ConfigError names %s and holds no secret', (_mistake, variable, changes) => {
    const thrown = (() => {
      try {
        // The providers' variables are read with the configuration, as every process does at boot.
        paymentProviders(loadConfig(mistyped(changes)));
      } catch (err) {
        return err;
      }
    })();
    expect(thrown).toBeInstanceOf(ConfigError);
    const message = thrown instanceof Error ? `${thrown.message}\n${thrown.stack}` : '';
    expect(message).toContain(variable);
    expect(secretsIn(message), message).toEqual([]);
  });

  it('each process refuses it, printing no secret; one with TEMPORAL_API_KEY fails to connect, printing none', async () => {
    const run = async (role: AppRole, changes: Record<string, string>, name: string) => {
      const logFile = join(logDir, `${name}.log`);
      const proc = spawnAppProcess({ role, name, env: mistyped(changes), logFile });
      const code = await proc.exited;
      return { code, output: readFileSync(logFile, 'utf8') };
    };
    const bad = { JWT_SECRET: MARKER, PAYLOAD_CODEC_KEYS: `k1:${MARKER}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=` };
    const refused = await Promise.all(
      (['api', 'worker', 'codec-server'] as const).map((role) => run(role, bad, `${role}-bad-config`)),
    );
    for (const { code, output } of refused) {
      expect(code).not.toBe(0);
      expect(output).toContain('JWT_SECRET');
      expect(output).toContain('PAYLOAD_CODEC_KEYS');
      expect(secretsIn(output), output).toEqual([]);
    }
    const withApiKey = await run(
      'worker',
      { TEMPORAL_API_KEY, WORKER_HEALTH_PORT: '0', WORKER_METRICS_PORT: '0' },
      'worker-api-key',
    );
    expect(withApiKey.code).not.toBe(0);
    expect(secretsIn(withApiKey.output), withApiKey.output).toEqual([]);
  });

  /** Passwords one character off, each still holding the marker. */
  const wrongPasswords = () => ({
    MYSQL_URL: env.MYSQL_URL!.replace(MYSQL_PASSWORD, `${MARKER}-wrong`),
    REDIS_URL: env.REDIS_URL!.replace(REDIS_PASSWORD, `${MARKER}-wrong`),
  });

  it('an API given wrong MySQL and Redis passwords fails its requests and logs why, printing no secret', async () => {
    const port = await freePort();
    const api = `http://127.0.0.1:${port}`;
    const logFile = join(logDir, 'api-wrong-passwords.log');
    const apiEnv = mistyped({ PORT: String(port), ...wrongPasswords() });
    const proc = spawnAppProcess({ role: 'api', name: 'api-wrong-passwords', env: apiEnv, logFile });
    try {
      // Alive, never ready: /healthz (the launcher's probe) asks the dependencies.
      await waitUntilReady(proc, () => answersOk(`${api}/livez`), 60_000);
      expect((await call(api, 'GET', '/readyz')).status).toBe(503);
      const token = await new ShopperAuth(config).issue('shopper-wrong-passwords');
      // A store that refuses our credentials is unavailable to us (503, retry once fixed), not a bug of ours (500).
      const checkout = await call(api, 'POST', '/api/checkout', { token, json: { sku: uniqueSku(), quantity: 1 } });
      expect(checkout.status, JSON.stringify(checkout.body)).toBe(503);
      const orders = await call(api, 'GET', '/api/admin/orders', admin);
      expect(orders.status, JSON.stringify(orders.body)).toBe(503);
      // A 503 is not logged per request: the breaker, opened by the refusals that go on, logs their cause once.
      await waitFor(
        async () =>
          (await call(api, 'GET', '/api/admin/orders', admin)).status === 503 &&
          readFileSync(logFile, 'utf8').includes('circuit breaker opened: requests that need mysql'),
        { what: 'the MySQL breaker to open and log its cause', timeoutMs: 30_000, intervalMs: 200 },
      );
    } finally {
      await proc.stop();
    }
    const output = readFileSync(logFile, 'utf8');
    expect(output).toContain('WRONGPASS');
    expect(output).toContain('Access denied');
    expect(secretsIn(output), output).toEqual([]);
  });

  it("Redis's refusal of the password, logged whole: the failed AUTH it names holds no password", async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const redis = createRedis({ redisUrl: wrongPasswords().REDIS_URL });
    // Each failed reconnection; the refusal is read from the command below.
    redis.on('error', () => undefined);
    // Sent while connecting: the AUTH's refusal, on which ioredis puts the AUTH command, rejects it.
    const refusal = await redis.ping().then(
      () => undefined,
      (err: unknown) => err,
    );
    redis.disconnect();
    createLogger(config, 'no-secret-printed', destination).error({ err: refusal }, 'redis refused');
    const text = lines.join('');
    expect(text).toContain('WRONGPASS');
    expect(text).toContain('"command":{"name":"auth"');
    expect(secretsIn(text), text).toEqual([]);
  });
});
