/**
 * The admin API of merchants' webhook endpoints (docs/api.md, "Webhook endpoints") over real HTTP against the real
 * stack (MariaDB, Redis, Temporal dev server): the signing secret is shown by a create and a rotation only, and MySQL
 * holds it sealed; every bad input is refused with its code and changes nothing; the events-read token manages
 * nothing; a rotation keeps the old secret signing for its overlap; an endpoint disabled and enabled again; deliveries
 * paged, attempts read and events resent; Temporal not answering a wake does not fail the request.
 */
import { ENDPOINT_DELIVERY_WORKFLOW_TYPE } from '../src/model/workflow-types.js';
import { randomBytes } from 'node:crypto';
import type { RowDataPacket } from 'mysql2/promise';
import { describe, expect } from 'vitest';
import { endpointDeliveryWorkflowId } from '../src/model/delivery-workflow.js';
import { resealEndpointSecrets } from '../src/activities/reconcile.js';
import { EndpointSecretBox } from '../src/order-events/endpoint-secrets.js';
import { WebhookEndpoints } from '../src/order-events/endpoints.js';
import { ORDER_EVENT_TYPES } from '../src/model/order-workflow.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { putOnSale } from './helpers/fixtures.js';
import { API_TEST_ENV, TEST_ADMIN_TOKEN, type TestApp } from './helpers/app.js';
import { httpRequest, replyOf, type Reply } from './helpers/http.js';
import { appTest } from './helpers/stack-test.js';

const EVENTS_TOKEN = 'events-reader-token-webhook-endpoints';
const PATH = '/api/admin/webhook-endpoints';
/** `.invalid` never resolves (RFC 6761): whatever delivery runs on this stack reaches no one. */
const URL_A = 'https://hooks.merchant-a.invalid/orders';
const URL_B = 'http://hooks.merchant-b.invalid:8443/v2/orders?source=flash';
const UNKNOWN_ID = 'ep_01ARZ3NDEKTSV4RRFFQ69G5FAV';

const it = appTest('webhook-endpoints', { ...API_TEST_ENV, EVENTS_READ_TOKEN: EVENTS_TOKEN }).extend(
  'box',
  { scope: 'file' },
  ({ app }) => new EndpointSecretBox(app.config.webhookDelivery.secretKeys),
);

const call = (app: TestApp, method: string, path: string, json?: unknown, token = TEST_ADMIN_TOKEN): Promise<Reply> =>
  replyOf(app.api.url, method, path, { token, ...(json === undefined ? {} : { json }) });

const expectError = (reply: Reply, status: number, code: string, what?: string) =>
  expect(reply, what).toEqual({ status, body: { error: { code, message: expect.any(String) } } });

/** The bytes a `whsec_` secret stands for. */
const secretBytes = (secret: string) => Buffer.from(secret.slice('whsec_'.length), 'base64');

interface SecretColumns {
  secretBox: Buffer;
  oldSecretBox: Buffer | null;
}

/** The endpoint's secret columns as MySQL holds them, read past every API. */
async function secretColumns({ pool }: TestApp, endpointId: string): Promise<SecretColumns> {
  const [[row]] = await pool.query<RowDataPacket[]>(
    'SELECT secret_box, old_secret_box FROM webhook_endpoints WHERE endpoint_id = ?',
    [endpointId],
  );
  expect(row, `endpoint ${endpointId} in MySQL`).toBeDefined();
  return { secretBox: row!.secret_box as Buffer, oldSecretBox: (row!.old_secret_box as Buffer | null) ?? null };
}

async function endpointCount({ pool }: TestApp): Promise<number> {
  const [[row]] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM webhook_endpoints');
  return Number(row!.n);
}

async function createEndpoint(app: TestApp, json: Record<string, unknown> = { url: URL_A }) {
  const reply = await call(app, 'POST', PATH, json);
  expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  return reply.body as { endpoint: { endpointId: string } & Record<string, unknown>; secret: string };
}

/** An order paid on a fresh sale: its order.paid event is in the feed. */
async function paidOrderEvent({ stores, redis }: TestApp): Promise<string> {
  const sale = await putOnSale(stores, redis, { stock: 2 });
  const orderNo = newOrderNo();
  await stores.orders.insertAwaitingOrder({
    orderNo,
    sku: sale.sku,
    userId: `hooks-${orderNo.slice(-6)}`,
    quantity: 1,
    unitPriceCents: sale.priceCents,
    paymentDeadline: new Date(Date.now() + 30 * 60_000),
    createdAt: new Date(),
  });
  await stores.payments.recordPayment({ eventId: `evt-${orderNo}`, orderNo, amountCents: sale.priceCents }, 'webhook');
  return `${orderNo}.order.paid`;
}

describe('the secret', () => {
  it('is answered by the create only, decodes to at least 24 bytes, is sealed in MySQL and never read back', async ({
    app,
    box,
  }) => {
    const { api, pool } = app;
    const reply = await httpRequest(api.url, 'POST', PATH, {
      token: TEST_ADMIN_TOKEN,
      json: { url: URL_A, eventTypes: ['order.paid', 'order.cancelled'], description: 'Fulfilment' },
    });
    expect(reply.status).toBe(201);
    const { endpoint, secret } = reply.body as { endpoint: Record<string, unknown>; secret: string };
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(secretBytes(secret).length).toBeGreaterThanOrEqual(24);
    expect(endpoint).toEqual({
      endpointId: expect.stringMatching(/^ep_[0-9A-HJKMNP-TV-Z]{26}$/),
      url: URL_A,
      eventTypes: ['order.paid', 'order.cancelled'],
      description: 'Fulfilment',
      includeShopperId: false,
      enabled: true,
      disabledReason: null,
      oldSecretUntil: null,
      pausedUntil: null,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    const endpointId = endpoint.endpointId as string;
    expect(reply.headers.get('location')).toBe(`${PATH}/${endpointId}`);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    // Its delivery was started (signal-with-start) before the answer.
    const delivery = await app.temporal.workflow.getHandle(endpointDeliveryWorkflowId(endpointId)).describe();
    expect(delivery.type).toBe(ENDPOINT_DELIVERY_WORKFLOW_TYPE);

    // MySQL holds the sealed secret: neither its text nor its bytes, and it opens to it for this endpoint only.
    const { secretBox } = await secretColumns(app, endpointId);
    expect(secretBox.includes(Buffer.from(secret))).toBe(false);
    expect(secretBox.includes(secretBytes(secret))).toBe(false);
    expect(box.open(endpointId, secretBox)).toBe(secret);
    const [[asText]] = await pool.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM webhook_endpoints WHERE INSTR(secret_box, ?) > 0 OR INSTR(url, ?) > 0',
      [secret, secret],
    );
    expect(Number(asText!.n)).toBe(0);

    // No read shows it, sealed or not.
    const one = await call(app, 'GET', `${PATH}/${endpointId}`);
    const list = await call(app, 'GET', PATH);
    expect(one.status).toBe(200);
    expect(list.status).toBe(200);
    for (const read of [one.body, list.body]) {
      const text = JSON.stringify(read);
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice('whsec_'.length, 30));
      expect(text).not.toMatch(/secret"|secretBox|secret_box/i);
    }
    const deliveries = { pending: 0, failing: 0, delivered: 0, gaveUp: 0, oldestPendingQueuedAt: null };
    expect(one.body).toEqual({ ...endpoint, deliveries });
    expect(list.body.items).toContainEqual({ ...endpoint, deliveries });
  });

  it('the events-read token, a wrong token or none manage nothing', async ({ app }) => {
    const { api } = app;
    const { endpoint } = await createEndpoint(app);
    const before = await endpointCount(app);
    for (const token of [EVENTS_TOKEN, 'not-the-token', undefined]) {
      const as = (method: string, path: string, json?: unknown) =>
        replyOf(api.url, method, path, { ...(token ? { token } : {}), ...(json === undefined ? {} : { json }) });
      const id = endpoint.endpointId;
      for (const [method, path, json] of [
        ['POST', PATH, { url: URL_A }],
        ['GET', PATH, undefined],
        ['GET', `${PATH}/${id}`, undefined],
        ['PATCH', `${PATH}/${id}`, { enabled: false }],
        ['POST', `${PATH}/${id}/rotate-secret`, {}],
        ['GET', `${PATH}/${id}/deliveries`, undefined],
        ['POST', `${PATH}/${id}/deliveries/x.order.paid/resend`, undefined],
      ] as const)
        expectError(await as(method, path, json), 401, 'UNAUTHORIZED', `${method} ${path} with ${token ?? 'no token'}`);
    }
    // The events token still reads the feed.
    expect((await call(app, 'GET', '/api/admin/events?limit=1', undefined, EVENTS_TOKEN)).status).toBe(200);
    expect(await endpointCount(app)).toBe(before);
    expect((await call(app, 'GET', `${PATH}/${endpoint.endpointId}`)).body).toMatchObject({ enabled: true });
  });
});

describe('bad input', () => {
  const badUrls = [
    'not a url',
    'shop.example/orders',
    '/relative/path',
    'ftp://hooks.merchant.invalid/orders',
    'HTTPS://hooks.merchant.invalid/orders',
    'https://user:pass@hooks.merchant.invalid/orders',
    'https://user@hooks.merchant.invalid/orders',
    'https://hooks.merchant.invalid\\@evil.invalid/orders',
    'https://hooks.merchant.invalid:99999/orders',
    'https:///orders',
    'https://hooks.merchant.invalid/ orders',
    `https://hooks.merchant.invalid/${'a'.repeat(2049 - 'https://hooks.merchant.invalid/'.length)}`,
    '',
  ];
  const badTypes = [['order.shipped'], ['order.paid', 'order.paid'], 'order.paid', [1], {}];
  const badDescriptions = ['d'.repeat(201), 5];

  it('a create: 400 INVALID_REQUEST, nothing written', async ({ app }) => {
    const { api } = app;
    const before = await endpointCount(app);
    // 2048 characters is the longest URL taken.
    const longest = `https://hooks.merchant.invalid/${'a'.repeat(2048 - 'https://hooks.merchant.invalid/'.length)}`;
    expect((await call(app, 'POST', PATH, { url: longest })).status).toBe(201);
    const after = before + 1;
    const bodies: unknown[] = [
      ...badUrls.map((url) => ({ url })),
      ...badTypes.map((eventTypes) => ({ url: URL_A, eventTypes })),
      ...badDescriptions.map((description) => ({ url: URL_A, description })),
      {},
      { url: URL_A, enabled: true },
      { url: URL_A, secret: 'whsec_AAAA' },
      { url: 5 },
    ];
    for (const body of bodies)
      expectError(await call(app, 'POST', PATH, body), 400, 'INVALID_REQUEST', JSON.stringify(body).slice(0, 120));
    // No body at all, and a body that is not JSON.
    expectError(await call(app, 'POST', PATH), 400, 'INVALID_REQUEST');
    expectError(
      await replyOf(api.url, 'POST', PATH, { token: TEST_ADMIN_TOKEN, raw: '{"url":', headers: {} }),
      400,
      'INVALID_REQUEST',
    );
    expect(await endpointCount(app)).toBe(after);
  });

  it('the messages say what is wrong', async ({ app }) => {
    const message = async (body: unknown) =>
      ((await call(app, 'POST', PATH, body)).body as Reply['body']).error.message;
    expect(await message({ url: 'ftp://hooks.merchant.invalid/' })).toMatch(/http:\/\/ or https:\/\//);
    expect(await message({ url: 'https://u:p@hooks.merchant.invalid/' })).toMatch(/credentials/);
    expect(await message({ url: 'https://hooks.merchant.invalid:99999/' })).toMatch(/not a URL/);
    expect(await message({ url: URL_A, eventTypes: ['order.shipped'] })).toMatch(/eventTypes/);
    expect(await message({ url: URL_A, eventTypes: ['order.paid', 'order.paid'] })).toMatch(/once/);
    expect(await message({ url: URL_A, description: 'd'.repeat(201) })).toMatch(/description/);
  });

  it('a change or a rotation: 400 INVALID_REQUEST, the endpoint and its secret as they were', async ({ app }) => {
    const { endpoint } = await createEndpoint(app, { url: URL_A, eventTypes: ['order.paid'] });
    const path = `${PATH}/${endpoint.endpointId}`;
    const before = (await call(app, 'GET', path)).body as Record<string, unknown>;
    const secretsBefore = await secretColumns(app, endpoint.endpointId);
    const changes: unknown[] = [
      ...badUrls.map((url) => ({ url })),
      ...badTypes.map((eventTypes) => ({ eventTypes })),
      ...badDescriptions.map((description) => ({ description })),
      // One bad field refuses the whole change.
      { enabled: false, url: 'ftp://hooks.merchant.invalid/' },
      { description: 'ok', eventTypes: ['order.paid', 'order.paid'] },
      { enabled: 'false' },
      { enabled: null },
      { endpointId: UNKNOWN_ID },
      [],
    ];
    for (const change of changes)
      expectError(await call(app, 'PATCH', path, change), 400, 'INVALID_REQUEST', JSON.stringify(change).slice(0, 120));
    // No body at all (fetch still says Content-Length: 0): the document requires one, so the route does.
    expectError(await call(app, 'PATCH', path), 400, 'INVALID_REQUEST', 'a PATCH without a body');
    for (const rotation of [
      { overlapSeconds: -1 },
      { overlapSeconds: 604_801 },
      { overlapSeconds: 1.5 },
      { overlapSeconds: '60' },
      { overlap: 60 },
    ])
      expectError(
        await call(app, 'POST', `${path}/rotate-secret`, rotation),
        400,
        'INVALID_REQUEST',
        JSON.stringify(rotation),
      );
    for (const query of ['?status=SENT', '?limit=0', '?limit=201', '?limit=x', '?cursor=nope', '?cursor=WyJ4Il0'])
      expectError(await call(app, 'GET', `${path}/deliveries${query}`), 400, 'INVALID_REQUEST', query);

    expect((await call(app, 'GET', path)).body).toEqual(before);
    expect(await secretColumns(app, endpoint.endpointId)).toEqual(secretsBefore);
  });

  it('an unknown or malformed endpoint id, event id: 404 NOT_FOUND, nothing written', async ({ app }) => {
    const { pool } = app;
    const before = await endpointCount(app);
    const eventId = await paidOrderEvent(app);
    for (const id of [UNKNOWN_ID, 'nope', 'ep_01arz3ndektsv4rrffq69g5fav', `${UNKNOWN_ID}0`]) {
      for (const [method, path, json] of [
        ['GET', `${PATH}/${id}`, undefined],
        ['PATCH', `${PATH}/${id}`, { enabled: true }],
        ['POST', `${PATH}/${id}/rotate-secret`, { overlapSeconds: 60 }],
        ['GET', `${PATH}/${id}/deliveries`, undefined],
        ['GET', `${PATH}/${id}/deliveries/${eventId}/attempts`, undefined],
        ['POST', `${PATH}/${id}/deliveries/${eventId}/resend`, undefined],
      ] as const)
        expectError(await call(app, method, path, json), 404, 'NOT_FOUND', `${method} ${path}`);
    }
    expect(await endpointCount(app)).toBe(before);
    const [[owed]] = await pool.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = ?',
      [UNKNOWN_ID],
    );
    expect(Number(owed!.n)).toBe(0);
  });
});

describe('rotation', () => {
  it('answers a new secret; the old one keeps signing until oldSecretUntil, about overlapSeconds ahead', async ({
    app,
    box,
  }) => {
    const created = await createEndpoint(app);
    const id = created.endpoint.endpointId;
    const started = Date.now();
    const rotated = await call(app, 'POST', `${PATH}/${id}/rotate-secret`, { overlapSeconds: 3_600 });
    expect(rotated.status).toBe(200);
    const { endpoint, secret } = rotated.body as { endpoint: Record<string, unknown>; secret: string };
    expect(secret).toMatch(/^whsec_/);
    expect(secretBytes(secret).length).toBeGreaterThanOrEqual(24);
    expect(secret).not.toBe(created.secret);
    const until = Date.parse(endpoint.oldSecretUntil as string);
    expect(until).toBeGreaterThanOrEqual(started + 3_600_000 - 1_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 3_600_000 + 1_000);

    // Both sealed in MySQL: the new one signs, the old one beside it for the overlap.
    const columns = await secretColumns(app, id);
    expect(box.open(id, columns.secretBox)).toBe(secret);
    expect(box.open(id, columns.oldSecretBox!)).toBe(created.secret);
    const read = JSON.stringify((await call(app, 'GET', `${PATH}/${id}`)).body);
    for (const shown of [secret, created.secret]) expect(read).not.toContain(shown);
    expect(JSON.parse(read)).toMatchObject({ endpointId: id, oldSecretUntil: endpoint.oldSecretUntil });

    // Another rotation inside the overlap would stop the old secret while receivers may still verify with it: 409.
    const again = await call(app, 'POST', `${PATH}/${id}/rotate-secret`, {});
    expectError(again, 409, 'ROTATION_IN_OVERLAP', 'a second rotation inside the overlap');
    expect(again.body.error.message).toContain(endpoint.oldSecretUntil as string);
    expect(await secretColumns(app, id)).toEqual(columns);
    // 0: every earlier secret stops at once (a leaked one); then, no overlap left, a default rotation (a day).
    const now = await call(app, 'POST', `${PATH}/${id}/rotate-secret`, { overlapSeconds: 0 });
    expect(Math.abs(Date.parse(now.body.endpoint.oldSecretUntil) - Date.now())).toBeLessThan(5_000);
    const byDefault = await call(app, 'POST', `${PATH}/${id}/rotate-secret`, {});
    expect(Date.parse(byDefault.body.endpoint.oldSecretUntil) - Date.now()).toBeGreaterThan(86_400_000 - 5_000);
    expect(box.open(id, (await secretColumns(app, id)).oldSecretBox!)).toBe(now.body.secret);
    expect(new Set([created.secret, secret, byDefault.body.secret, now.body.secret]).size).toBe(4);
  });
});

describe('rotating EVENTS_SECRET_KEY', () => {
  it('a key put first seals from then on; the reconciler seals every endpoint again under it, so the old can go', async ({
    app,
  }) => {
    const { stores, config } = app;
    const created = await createEndpoint(app);
    const id = created.endpoint.endpointId;
    const rotated = (await call(app, 'POST', `${PATH}/${id}/rotate-secret`, { overlapSeconds: 3_600 })).body
      .secret as string;
    // Disabled: resealed all the same (it may be enabled after the old key is gone); and no delivery runs meanwhile.
    expect((await call(app, 'PATCH', `${PATH}/${id}`, { enabled: false })).status).toBe(200);
    const before = await secretColumns(app, id);
    const stackKey = config.webhookDelivery.secretKeys[0]!.secret;
    const newKey = { id: 'k2', secret: randomBytes(24).toString('hex') };
    const both = new EndpointSecretBox([newKey, { id: 'k1', secret: stackKey }]);
    expect(both.isCurrent(before.secretBox)).toBe(false);
    expect(both.open(id, before.secretBox)).toBe(rotated);
    // This endpoint only (the other files' endpoints keep the stack's key their workers hold), after one whose box
    // opens under no key: it is left as it is, and the others are sealed again all the same.
    const unopenable = {
      endpointId: 'ep_unopenable',
      secretBox: Buffer.from('not a sealed secret'),
      oldSecretBox: null,
    };
    const thisOne = {
      endpointSecretBoxes: async () => [
        unopenable,
        ...(await stores.webhooks.endpointSecretBoxes()).filter((b) => b.endpointId === id),
      ],
      replaceSecretBoxes: stores.webhooks.replaceSecretBoxes.bind(stores.webhooks),
    };
    const unsealable: string[] = [];
    await resealEndpointSecrets(thisOne, both, (endpointId) => unsealable.push(endpointId));
    expect(unsealable).toEqual(['ep_unopenable']);
    const after = await secretColumns(app, id);
    expect([after.secretBox, after.oldSecretBox!].every((sealed) => both.isCurrent(sealed))).toBe(true);
    const newOnly = new EndpointSecretBox([newKey]);
    expect(newOnly.open(id, after.secretBox)).toBe(rotated);
    expect(newOnly.open(id, after.oldSecretBox!)).toBe(created.secret);
    expect(() => new EndpointSecretBox(stackKey).open(id, after.secretBox)).toThrow(/not one of EVENTS_SECRET_KEY/);
    await resealEndpointSecrets(thisOne, both, () => undefined);
    expect(await secretColumns(app, id)).toEqual(after);
  });
});

describe('changes', () => {
  it('disabled, then enabled again; URL, types and description changed; every other field kept', async ({ app }) => {
    const { endpoint } = await createEndpoint(app, { url: URL_A, description: 'first' });
    const path = `${PATH}/${endpoint.endpointId}`;
    const off = await call(app, 'PATCH', path, { enabled: false });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ enabled: false, disabledReason: expect.any(String), url: URL_A });
    expect((await call(app, 'GET', PATH)).body.items).toContainEqual(
      expect.objectContaining({ endpointId: endpoint.endpointId, enabled: false }),
    );
    const on = await call(app, 'PATCH', path, { enabled: true });
    expect(on.body).toMatchObject({ enabled: true, disabledReason: null });

    const changed = await call(app, 'PATCH', path, { url: URL_B, eventTypes: ['order.refunded'], description: '' });
    expect(changed.body).toEqual({
      ...on.body,
      url: URL_B,
      eventTypes: ['order.refunded'],
      description: null,
      updatedAt: expect.any(String),
    });
    // The shopper's own id in its events: asked for, then no more.
    expect((await call(app, 'PATCH', path, { includeShopperId: true })).body).toMatchObject({ includeShopperId: true });
    expect((await call(app, 'PATCH', path, { includeShopperId: false })).body).toMatchObject({
      includeShopperId: false,
    });
    const every = await call(app, 'PATCH', path, { eventTypes: [...ORDER_EVENT_TYPES] });
    expect(every.body.eventTypes).toEqual([...ORDER_EVENT_TYPES]);
    expect((await call(app, 'PATCH', path, { eventTypes: [] })).body.eventTypes).toEqual([]);
    // {} changes nothing.
    const { deliveries: _figures, ...current } = (await call(app, 'GET', path)).body as Record<string, unknown>;
    expect(await call(app, 'PATCH', path, {})).toEqual({ status: 200, body: current });
    expect(current).toMatchObject({ url: URL_B, enabled: true });
  });
});

describe('deliveries, attempts and resends', () => {
  it('resends events of the feed (404 for one it has not), pages the deliveries newest first, reads attempts', async ({
    app,
  }) => {
    const { endpoint } = await createEndpoint(app, { url: URL_A, eventTypes: ['order.cancelled'] });
    const id = endpoint.endpointId;
    expectError(await call(app, 'POST', `${PATH}/${id}/deliveries/no-such-event.order.paid/resend`), 404, 'NOT_FOUND');
    expectError(await call(app, 'GET', `${PATH}/${id}/deliveries/no-such-event.order.paid/attempts`), 404, 'NOT_FOUND');

    // Of a type the endpoint does not take: resent all the same (it was asked for).
    const events = [await paidOrderEvent(app), await paidOrderEvent(app), await paidOrderEvent(app)];
    for (const eventId of events)
      expect(await call(app, 'POST', `${PATH}/${id}/deliveries/${eventId}/resend`)).toEqual({
        status: 202,
        body: { endpointId: id, eventId, status: 'PENDING' },
      });
    // Resent again: still one delivery of it.
    expect((await call(app, 'POST', `${PATH}/${id}/deliveries/${events[0]}/resend`)).status).toBe(202);

    const seen: Array<{ eventId: string; type: string; status: string }> = [];
    let cursor: string | null = null;
    do {
      const page: Reply = await call(
        app,
        'GET',
        `${PATH}/${id}/deliveries?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(1);
      seen.push(...(page.body.items as typeof seen));
      cursor = page.body.nextCursor as string | null;
    } while (cursor);
    // Other files' order.cancelled events may be queued to it meanwhile: ours are the order.paid ones.
    const ours = seen.filter((delivery) => events.includes(delivery.eventId));
    expect(ours.map((delivery) => delivery.eventId)).toEqual([...events].reverse());
    expect(new Set(seen.map((delivery) => delivery.eventId)).size).toBe(seen.length);
    // Nothing resolves `.invalid`: no delivery can have been delivered.
    for (const delivery of ours) expect(delivery).toMatchObject({ type: 'order.paid', status: 'PENDING' });
    const pending = (await call(app, 'GET', `${PATH}/${id}/deliveries?status=PENDING&limit=200`)).body
      .items as typeof seen;
    expect(pending.filter((delivery) => events.includes(delivery.eventId))).toHaveLength(3);
    expect((await call(app, 'GET', `${PATH}/${id}/deliveries?status=DELIVERED`)).body).toEqual({
      items: [],
      nextCursor: null,
    });

    const attempts = await call(app, 'GET', `${PATH}/${id}/deliveries/${events[0]}/attempts`);
    expect(attempts.status).toBe(200);
    expect(Array.isArray(attempts.body.items)).toBe(true);
    for (const attempt of attempts.body.items) expect(attempt.outcome).not.toBe('delivered');

    const read = (await call(app, 'GET', `${PATH}/${id}`)).body;
    expect(read.deliveries).toMatchObject({ delivered: 0, gaveUp: 0 });
    expect(read.deliveries.pending).toBeGreaterThanOrEqual(3);
    expect(read.deliveries.oldestPendingQueuedAt).toEqual(expect.any(String));
  });
});

describe('waking the delivery', () => {
  it('a wake Temporal does not answer is logged, and the endpoint is made all the same (the reconciler starts it)', async ({
    app,
    box,
  }) => {
    const { stores, config } = app;
    const warnings: unknown[] = [];
    const endpoints = new WebhookEndpoints({
      webhooks: stores.webhooks,
      secrets: box,
      delivery: {
        wake: async () => {
          throw new Error('Temporal is away');
        },
      },
      settings: config.webhookDelivery,
      logger: { warn: (...args: unknown[]) => void warnings.push(args) },
    });
    const created = await endpoints.create({ url: URL_A });
    expect(created.secret).toMatch(/^whsec_/);
    expect(warnings).toHaveLength(1);
    const id = created.endpoint.endpointId;
    expect((await endpoints.update(id, { enabled: false })).enabled).toBe(false);
    expect(warnings).toHaveLength(1);
    expect((await endpoints.update(id, { enabled: true })).enabled).toBe(true);
    expect((await endpoints.rotateSecret(id, 60)).secret).not.toBe(created.secret);
    expect(warnings).toHaveLength(3);
    expect((await call(app, 'GET', `${PATH}/${id}`)).body).toMatchObject({ endpointId: id, enabled: true });
  });
});
