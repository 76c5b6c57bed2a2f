/**
 * Temporal's history read as an attacker with the server's database, an export or List access would read it: every
 * payload's bytes (inputs, results, Signals, failures, memos, search attributes, headers) as text, searched for a
 * Stripe client secret, the shopper's id and the shopper's JWT. With the payload codec (src/infra/payload-codec.ts)
 * none is found; the same search over a deployment writing plain payloads (PAYLOAD_CODEC_MODE=decrypt-only, the release
 * before encryption) finds the shopper's id, so the search itself reads what it should. Through the codec, the same
 * history decodes to the order's values; a tampered payload fails the workflow task, and nothing is decided on it.
 */
import { randomUUID } from 'node:crypto';
import type { temporal as proto } from '@temporalio/proto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { describe, expect } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { payloadCodecOf } from '../src/infra/data-converter.js';
import { decodeHistoryPayloads, eachPayload } from '../toolkit/history-payloads.js';
import { ENCRYPTED_ENCODING } from '../src/infra/payload-codec.js';
import { orderWorkflowId, type OrderInput } from '../src/model/order-workflow.js';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { waitFor } from '../stack/wait-for.js';
import { putOnSale } from './helpers/fixtures.js';
import { httpRequest } from './helpers/http.js';
import { openPerQueueTestbed, type PerQueueTestbed } from './helpers/per-queue.js';
import { stripeTest } from './helpers/stack-test.js';
import type { StripeApi } from './helpers/stripe-api.js';
import { checkoutWithIntent } from './helpers/stripe-orders.js';

const STRIPE_WEBHOOK_SECRET = 'whsec_historysecrets';
const stripeQueue = `secrets-stripe-${randomUUID()}`;
const genericQueue = `secrets-generic-${randomUUID()}`;
const plainQueue = `secrets-plain-${randomUUID()}`;
const requireQueue = `secrets-require-${randomUUID()}`;

/** This file's Stripe deployment at the double: each testbed below starts from it. */
const stripeEnv = (stripeApi: StripeApi) => ({
  PAYMENT_PROVIDER: 'stripe',
  STRIPE_SECRET_KEY: 'sk_test_historysecrets',
  STRIPE_WEBHOOK_SECRET,
  STRIPE_API_URL: stripeApi.url,
  STRIPE_DEPLOYMENT_TAG: 'history-secrets',
  LOG_LEVEL: 'silent',
  RATE_LIMIT_CHECKOUT: 'off',
  RATE_LIMIT_WEBHOOK: 'off',
});

/** The APIs on the testbeds' queues, each with its worker. */
interface Apis {
  stripe: string;
  generic: string;
  plain: string;
  requiring: string;
}

const it = stripeTest()
  /** Encrypting (the default): a Stripe API and a generic one, each on its own queue. */
  .extend('encrypting', { scope: 'file' }, async ({ stripeApi }, { onCleanup }) => {
    const bed = await openPerQueueTestbed(stripeEnv(stripeApi));
    onCleanup(() => bed.close());
    return bed;
  })
  /** Writing plain payloads, as the release before encryption does. */
  .extend('plain', { scope: 'file' }, async ({ stripeApi }, { onCleanup }) => {
    // Its own deployment: the codec's mode is part of the build id, and a worker promotes its version on start.
    const bed = await openPerQueueTestbed({
      ...stripeEnv(stripeApi),
      PAYLOAD_CODEC_MODE: 'decrypt-only',
      WORKER_DEPLOYMENT_NAME: `history-secrets-plain-${randomUUID().slice(0, 8)}`,
    });
    onCleanup(() => bed.close());
    return bed;
  })
  /** Refusing plain payloads, the last step of turning encryption on. */
  .extend('requiring', { scope: 'file' }, async ({ stripeApi }, { onCleanup }) => {
    const bed = await openPerQueueTestbed({
      ...stripeEnv(stripeApi),
      PAYLOAD_CODEC_MODE: 'require',
      WORKER_DEPLOYMENT_NAME: `history-secrets-require-${randomUUID().slice(0, 8)}`,
    });
    onCleanup(() => bed.close());
    return bed;
  })
  /** Each testbed's workers and APIs, and Stripe's webhook at the encrypting Stripe API. */
  .extend('apis', { scope: 'file' }, async ({ stripeApi, encrypting, plain, requiring }): Promise<Apis> => {
    await encrypting.startWorker(stripeQueue, { refunds: { scope: () => false } });
    await requiring.startWorker(requireQueue, { refunds: { scope: () => false } });
    await encrypting.startWorker(genericQueue, { refunds: { scope: () => false } });
    await plain.startWorker(plainQueue, { refunds: { scope: () => false } });
    const apis: Apis = {
      stripe: await encrypting.serve(stripeQueue),
      generic: await encrypting.serve(genericQueue, {}, { env: { PAYMENT_PROVIDER: 'generic' } }),
      plain: await plain.serve(plainQueue, {}, { env: { PAYMENT_PROVIDER: 'generic' } }),
      requiring: await requiring.serve(requireQueue, {}, { env: { PAYMENT_PROVIDER: 'generic' } }),
    };
    stripeApi.setWebhook(`${apis.stripe}/api/payments/stripe`, STRIPE_WEBHOOK_SECRET);
    return apis;
  });

interface Secrets {
  orderNo: string;
  userId: string;
  token: string;
  clientSecret?: string;
}

/** What a Temporal reader without the key gets: the raw history, the execution's description and its list record. */
async function rawRecords(bed: PerQueueTestbed, orderNo: string) {
  const namespace = bed.config.temporal.namespace;
  const workflowId = orderWorkflowId(orderNo);
  const events: proto.api.history.v1.IHistoryEvent[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await bed.temporal.workflowService.getWorkflowExecutionHistory({
      namespace,
      execution: { workflowId },
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    events.push(...(page.history?.events ?? []));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  const described = await bed.temporal.workflowService.describeWorkflowExecution({
    namespace,
    execution: { workflowId },
  });
  const listed = await waitFor(
    async () => {
      const page = await bed.temporal.workflowService.listWorkflowExecutions({
        namespace,
        query: `WorkflowId = '${workflowId}'`,
      });
      return page.executions.length > 0 ? page.executions : undefined;
    },
    { what: `the list record of ${workflowId}`, timeoutMs: 10_000 },
  );
  return { history: { events }, described, listed };
}

/** Every payload's bytes as text, and every other string and byte field too: what an attacker would grep. */
function attackerText(record: unknown): string {
  const parts: string[] = [];
  const visit = (value: unknown, depth: number): void => {
    if (depth > 40 || value === null || value === undefined) return;
    if (typeof value === 'string') parts.push(value);
    else if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('utf8'));
    else if (Array.isArray(value)) for (const item of value) visit(item, depth + 1);
    else if (typeof value === 'object') for (const item of Object.values(value)) visit(item, depth + 1);
  };
  visit(record, 0);
  return parts.join('\n');
}

function found(text: string, secrets: Secrets): string[] {
  const searched: [string, string | undefined][] = [
    ['client secret', secrets.clientSecret],
    ['shopper id', secrets.userId],
    ['JWT', secrets.token],
  ];
  return searched.filter(([, value]) => value !== undefined && text.includes(value)).map(([name]) => name);
}

/** A generic order paid through the signed webhook, closed PAID. */
async function paidGenericOrder(bed: PerQueueTestbed, api: string): Promise<Secrets> {
  const sale = await putOnSale(bed.stores, bed.redis, { stock: 3 });
  const userId = `shopper-${randomUUID().slice(0, 8)}`;
  const token = await new ShopperAuth(bed.config).issue(userId);
  const accepted = await httpRequest(api, 'POST', '/api/checkout', { json: { sku: sale.sku, quantity: 1 }, token });
  expect(accepted.status).toBe(202);
  const orderNo: string = accepted.body.orderNo;
  await untilStatus(api, orderNo, token, 'AWAITING_PAYMENT');
  const raw = JSON.stringify({
    type: 'payment.succeeded',
    eventId: `evt-${orderNo}`,
    orderNo,
    amountCents: sale.priceCents,
  });
  const paid = await httpRequest(api, 'POST', '/api/payments/webhook', {
    raw,
    headers: { 'payment-signature': signWebhook(bed.config.webhookSecret, raw) },
  });
  expect(paid.status).toBe(200);
  await untilStatus(api, orderNo, token, 'PAID');
  await untilClosed(bed, orderNo);
  return { orderNo, userId, token };
}

const untilStatus = (api: string, orderNo: string, token: string, status: string) =>
  waitFor(async () => (await httpRequest(api, 'GET', `/api/orders/${orderNo}`, { token })).body?.status === status, {
    what: `${orderNo} ${status}`,
    timeoutMs: 20_000,
  });

/** The workflow's history is complete once it closed: what is searched is all it will ever hold. */
const untilClosed = (bed: PerQueueTestbed, orderNo: string) =>
  waitFor(
    async () => {
      const { workflowExecutionInfo } = await bed.temporal.workflowService.describeWorkflowExecution({
        namespace: bed.config.temporal.namespace,
        execution: { workflowId: orderWorkflowId(orderNo) },
      });
      return (workflowExecutionInfo?.status ?? 1) !== 1;
    },
    { what: `the workflow of ${orderNo} to close`, timeoutMs: 30_000 },
  );

describe('an attacker reading the history', () => {
  it('finds no client secret, shopper id or JWT in a Stripe order and a generic one; it finds them without the codec', async ({
    encrypting,
    plain,
    apis,
  }) => {
    const stripeOrder = await checkoutWithIntent({
      api: apis.stripe,
      auth: new ShopperAuth(encrypting.config),
      stores: encrypting.stores,
      redis: encrypting.redis,
    });
    const stripeUser: string = JSON.parse(Buffer.from(stripeOrder.token.split('.')[1]!, 'base64url').toString()).sub;
    expect(stripeUser).toMatch(/^stripe-/);
    const stripeSecrets: Secrets = {
      orderNo: stripeOrder.orderNo,
      userId: stripeUser,
      token: stripeOrder.token,
      clientSecret: stripeOrder.intent.clientSecret,
    };
    // The shopper cancels: the intent's close and the release are in the history too.
    const cancelled = await httpRequest(apis.stripe, 'POST', `/api/orders/${stripeOrder.orderNo}/cancel`, {
      token: stripeOrder.token,
    });
    expect(cancelled.status).toBe(202);
    await untilClosed(encrypting, stripeOrder.orderNo);
    const genericSecrets = await paidGenericOrder(encrypting, apis.generic);
    const plainSecrets = await paidGenericOrder(plain, apis.plain);

    const read = async (bed: PerQueueTestbed, secrets: Secrets) => {
      const records = await rawRecords(bed, secrets.orderNo);
      const payloads = [...eachPayload(records)];
      const encrypted = payloads.filter(
        (payload) => Buffer.from(payload.metadata?.encoding ?? []).toString() === ENCRYPTED_ENCODING,
      );
      return {
        records,
        payloads: payloads.length,
        encrypted: encrypted.length,
        found: found(attackerText(records), secrets),
      };
    };
    const stripeRead = await read(encrypting, stripeSecrets);
    const genericRead = await read(encrypting, genericSecrets);
    const plainRead = await read(plain, plainSecrets);
    console.log(
      `[history-secrets] stripe: ${stripeRead.payloads} payloads, ${stripeRead.encrypted} encrypted, found [${stripeRead.found}]; ` +
        `generic: ${genericRead.payloads}/${genericRead.encrypted}, found [${genericRead.found}]; ` +
        `plain (decrypt-only): ${plainRead.payloads}/${plainRead.encrypted}, found [${plainRead.found}]`,
    );
    expect(stripeRead.found).toEqual([]);
    expect(genericRead.found).toEqual([]);
    // Without encryption the same search finds the shopper in the order's input: it reads what it should.
    expect(plainRead.found).toContain('shopper id');
    expect(plainRead.encrypted).toBe(0);
    // Payloads outside the codec's reach stay plain: search attributes (the SKU, the build) and headers (an
    // activity's attempt); none holds a secret.
    for (const { records, encrypted, payloads } of [stripeRead, genericRead]) {
      expect(encrypted).toBeGreaterThanOrEqual(3);
      const plainOnes = [...eachPayload(records)].filter(
        (payload) => Buffer.from(payload.metadata?.encoding ?? []).toString() !== ENCRYPTED_ENCODING,
      );
      expect(plainOnes.length).toBe(payloads - encrypted);
      for (const payload of plainOnes)
        expect(found(Buffer.from(payload.data ?? []).toString(), stripeSecrets)).toEqual([]);
    }

    // With the key, the same history decodes to the order's own values.
    const decoded = await decodeHistoryPayloads(genericRead.records.history, payloadCodecOf(encrypting.config));
    const started = decoded.events?.[0]?.workflowExecutionStartedEventAttributes;
    const input = defaultPayloadConverter.fromPayload<OrderInput>(started!.input!.payloads![0] as Payload);
    expect(input).toMatchObject({ orderNo: genericSecrets.orderNo, userId: genericSecrets.userId });
  });

  it('a tampered payload fails the workflow task, retried and never decided on', async ({ encrypting, apis }) => {
    const order = await checkoutWithIntent({
      api: apis.stripe,
      auth: new ShopperAuth(encrypting.config),
      stores: encrypting.stores,
      redis: encrypting.redis,
    });
    const codec = payloadCodecOf(encrypting.config);
    const [sealed] = await codec.encode([
      defaultPayloadConverter.toPayload({
        eventId: `evt-tampered-${order.orderNo}`,
        amountCents: order.totalCents,
        receivedAt: new Date().toISOString(),
      }),
    ]);
    const tampered = Buffer.from(sealed!.data!);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 0xff;
    await expectRefusedSignal(encrypting, order.orderNo, { ...sealed!, data: tampered }, /failed authentication/);
  });

  it('under PAYLOAD_CODEC_MODE=require a Signal written in clear fails the workflow task too, never decided on', async ({
    requiring,
    apis,
  }) => {
    const sale = await putOnSale(requiring.stores, requiring.redis, { stock: 1 });
    const token = await new ShopperAuth(requiring.config).issue(`shopper-${randomUUID().slice(0, 8)}`);
    const body = { json: { sku: sale.sku, quantity: 1 }, token };
    const accepted = await httpRequest(apis.requiring, 'POST', '/api/checkout', body);
    expect(accepted.status).toBe(202);
    // Everything this build writes is encrypted, so its own order goes as usual.
    await untilStatus(apis.requiring, accepted.body.orderNo, token, 'AWAITING_PAYMENT');
    const payment = { eventId: `evt-plain-${accepted.body.orderNo}`, amountCents: sale.priceCents };
    const inClear = defaultPayloadConverter.toPayload({ ...payment, receivedAt: new Date().toISOString() });
    await expectRefusedSignal(requiring, accepted.body.orderNo, inClear, /refused: PAYLOAD_CODEC_MODE=require/);
  });
});

/**
 * Sends `payload` as the payment Signal, past the codec (as anyone reaching Temporal can); expects its workflow task
 * failed and retried with `cause`, the order's row untouched, then ends the workflow.
 */
async function expectRefusedSignal(bed: PerQueueTestbed, orderNo: string, payload: Payload, cause: RegExp) {
  const workflowId = orderWorkflowId(orderNo);
  const namespace = bed.config.temporal.namespace;
  await bed.temporal.workflowService.signalWorkflowExecution({
    namespace,
    workflowExecution: { workflowId },
    signalName: 'paymentApplied',
    input: { payloads: [payload] },
    identity: 'history-secrets.test',
  });
  const failures = await waitFor(
    async () => {
      const { history } = await bed.temporal.workflowService.getWorkflowExecutionHistory({
        namespace,
        execution: { workflowId },
      });
      const failed = (history?.events ?? []).filter((event) => event.workflowTaskFailedEventAttributes);
      return failed.length >= 2 ? failed : undefined;
    },
    { what: `two failed workflow tasks of ${workflowId} (the first and its retry)`, timeoutMs: 30_000 },
  );
  // The failure's message is itself encrypted (encodeCommonAttributes): read with the key, it names the cause.
  expect(attackerText(failures)).not.toMatch(cause);
  expect(attackerText(await decodeHistoryPayloads({ events: failures }, payloadCodecOf(bed.config)))).toMatch(cause);
  expect((await bed.stores.orders.getOrder(orderNo))?.status).toBe('AWAITING_PAYMENT');
  expect(await bed.stores.payments.paymentsOfOrder(orderNo)).toEqual([]);
  // Ended here: this test's own sale, checked by nothing after (docs/runbook.md says how an operator recovers one).
  await bed.temporal.workflow.getHandle(workflowId).terminate('history-secrets.test: refused on purpose');
}
