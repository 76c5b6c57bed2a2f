/**
 * Order events delivered to a merchant's endpoint by its EndpointDeliveryWorkflow (docs/api.md, "Webhook endpoints"):
 * real worker, MariaDB, Temporal, and a receiver on loopback that verifies every request with the `standardwebhooks`
 * library, as a merchant's would. The shared database's other files write events too: each check looks at this
 * file's orders only.
 */
import { ENDPOINT_DELIVERY_WORKFLOW_TYPE } from '../src/model/workflow-types.js';
import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect } from 'vitest';
import { ROUND_MS } from '../src/activities/webhooks.js';
import { endpointDeliveryWorkflowId } from '../src/model/delivery-workflow.js';
import { EndpointDeliveryClient } from '../src/order-events/endpoint-delivery-client.js';
import { EndpointSecretBox, generateEndpointSecret } from '../src/order-events/endpoint-secrets.js';
import { CustomerReferences, OrderEventFeed } from '../src/order-events/order-events.js';
import { deliveryTaskQueue, type OrderEventType } from '../src/model/order-workflow.js';
import { ShopperAuth } from '../src/api/auth.js';
import { httpRequest } from './helpers/http.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { waitFor } from '../stack/wait-for.js';
import { putOnSale } from './helpers/fixtures.js';
import {
  startEventReceiver,
  type EventReceiver,
  type ReceivedEvent,
  type ReceiverAnswer,
} from '../stack/event-receiver.js';
import { openPerQueueTestbed, type PerQueueTestbed } from './helpers/per-queue.js';
import { testbedTest } from './helpers/stack-test.js';
import { closeRow } from './helpers/orders.js';

const ENV = {
  LOG_LEVEL: 'silent',
  EVENTS_ALLOWED_RANGES: '127.0.0.0/8,::1/128',
  EVENTS_ATTEMPT_TIMEOUT_MS: '1000',
  EVENTS_RETRY_FIRST: '200ms',
  EVENTS_POLL_INTERVAL: '200ms',
};
const queue = `deliveries-${randomUUID()}`;

/** The file's worker on `queue`, and what its tests subscribe, start and must leave behind them. */
interface Deliveries {
  testbed: PerQueueTestbed;
  box: EndpointSecretBox;
  client: EndpointDeliveryClient;
  receivers: EventReceiver[];
  endpoints: string[];
}

const it = testbedTest({ ...ENV, TEMPORAL_TASK_QUEUE: `deliveries-${randomUUID()}` }).extend(
  'deliveries',
  { scope: 'file' },
  async ({ testbed }, { onCleanup }): Promise<Deliveries> => {
    await testbed.startWorker(queue);
    const { config, stores, temporal } = testbed;
    const deliveries: Deliveries = {
      testbed,
      box: new EndpointSecretBox(config.webhookDelivery.secretKeys),
      client: new EndpointDeliveryClient(temporal, { ...config, temporal: { ...config.temporal, taskQueue: queue } }),
      receivers: [],
      endpoints: [],
    };
    onCleanup(async () => {
      // Disabled, so no other file's reconciler starts their deliveries again.
      for (const endpointId of deliveries.endpoints)
        await stores.webhooks.updateEndpoint(endpointId, { enabled: false });
      await Promise.all(deliveries.receivers.map((receiver) => receiver.close()));
    });
    return deliveries;
  },
);

/** A receiver verifying with `secrets()` (read at each request), answering as `answer` says. */
async function startReceiver(
  { receivers }: Deliveries,
  secrets: () => string[],
  answer: (id: string, seen: number) => ReceiverAnswer = () => ({ status: 204 }),
) {
  const receiver = await startEventReceiver({ secrets, answer });
  receivers.push(receiver);
  return receiver;
}

/** An endpoint as the admin API makes it (sealed secret), its delivery started. */
async function subscribe(
  { testbed: { stores }, box, client, endpoints }: Deliveries,
  url: string,
  eventTypes: OrderEventType[] = [],
  includeShopperId = false,
) {
  const endpointId = `ep_test_${randomUUID().slice(0, 8)}`;
  const secret = generateEndpointSecret();
  await stores.webhooks.createEndpoint({
    endpointId,
    url,
    eventTypes,
    description: null,
    includeShopperId,
    secretBox: box.seal(endpointId, secret),
  });
  endpoints.push(endpointId);
  await client.wake(endpointId, 5_000);
  return { endpointId, secret };
}

/** An order AWAITING_PAYMENT, as its workflow's persist writes it; then the fact the test names. */
async function order({ stores, redis }: PerQueueTestbed, fact: 'paid' | 'cancelled' | 'failed') {
  const sale = await putOnSale(stores, redis, { stock: 1 });
  const orderNo = newOrderNo();
  const input = {
    orderNo,
    sku: sale.sku,
    userId: `deliveries-${orderNo.slice(-6)}`,
    quantity: 1,
    unitPriceCents: sale.priceCents,
    paymentDeadline: new Date(Date.now() + 30 * 60_000),
    createdAt: new Date(),
  };
  expect((await stores.orders.insertAwaitingOrder(input)).outcome).toBe('INSERTED');
  if (fact === 'paid')
    await stores.payments.recordPayment(
      { eventId: `evt-${orderNo}`, orderNo, amountCents: sale.priceCents },
      'webhook',
    );
  if (fact === 'cancelled') await closeRow(stores, orderNo, { kind: 'CANCEL', reason: 'USER_CANCELLED' });
  if (fact === 'failed') await stores.orders.close(input, { kind: 'FAIL', reason: 'PromiseExpired: test' });
  const [event] = await stores.events.eventsOf(orderNo);
  if (!event) throw new Error(`no event for ${orderNo}`);
  return { orderNo, eventId: event.eventId, createdAt: event.createdAt };
}

/** What an event says of its order (docs/api.md, "Order events"). */
const EVENT_ORDER_FIELDS = [
  'cancelReason',
  'cancelledAt',
  'createdAt',
  'customer',
  'dispute',
  'orderNo',
  'paidAt',
  'paymentDeadline',
  'quantity',
  'refundedCents',
  'sku',
  'status',
  'totalCents',
];

const mine = (received: ReceivedEvent[], orderNos: string[]) => received.filter((r) => orderNos.includes(r.orderNo));

describe('a sale’s events reach the merchant', () => {
  it('every fact once per event id, verified by standardwebhooks; only the types subscribed', async ({
    testbed,
    deliveries,
  }) => {
    let secret = '';
    const receiver = await startReceiver(deliveries, () => [secret]);
    ({ secret } = await subscribe(deliveries, receiver.url));
    let paidSecret = '';
    const paidOnly = await startReceiver(deliveries, () => [paidSecret]);
    ({ secret: paidSecret } = await subscribe(deliveries, paidOnly.url, ['order.paid']));

    const orders = await Promise.all(
      (['paid', 'paid', 'paid', 'cancelled', 'failed'] as const).map(async (fact) => ({
        fact,
        ...(await order(testbed, fact)),
      })),
    );
    const orderNos = orders.map((o) => o.orderNo);
    await waitFor(
      async () => mine(receiver.received, orderNos).length >= 5 && mine(paidOnly.received, orderNos).length >= 3,
      {
        what: 'every event of the sale received',
        timeoutMs: 20_000,
      },
    );
    const got = mine(receiver.received, orderNos);
    expect(new Set(got.map((r) => r.id)).size).toBe(got.length); // each id once: no failure, no resend
    expect(got.map((r) => r.type).sort()).toEqual([
      'order.cancelled',
      'order.failed',
      'order.paid',
      'order.paid',
      'order.paid',
    ]);
    for (const o of orders) expect(got.find((r) => r.orderNo === o.orderNo)?.id).toBe(o.eventId);
    expect(mine(paidOnly.received, orderNos).map((r) => r.type)).toEqual(['order.paid', 'order.paid', 'order.paid']);
    // The headers the standard names; the id is the feed's.
    expect(got[0]?.headers).toMatchObject({ 'webhook-id': got[0]?.id, 'content-type': 'application/json' });
    // What fulfilment needs, no more: the shopper as an opaque reference, no internal failure text.
    const orderOf = (received: ReceivedEvent) => (JSON.parse(received.body) as { data: { order: object } }).data.order;
    for (const received of got) {
      expect(Object.keys(orderOf(received)).sort()).toEqual(EVENT_ORDER_FIELDS);
      expect(received.body).not.toContain('deliveries-');
      expect(received.body).not.toContain('PromiseExpired');
    }
    const worstMs = Math.max(
      ...orders.map((o) => (got.find((r) => r.orderNo === o.orderNo)?.receivedMs ?? 0) - o.createdAt.getTime()),
    );
    console.info(`[deliveries] 5 events, worst delay from the fact to the receiver: ${worstMs} ms`);
  });

  it("an endpoint that asked for it gets the shopper's own id beside the reference; the others never do", async ({
    testbed,
    deliveries,
  }) => {
    let secret = '';
    const receiver = await startReceiver(deliveries, () => [secret]);
    ({ secret } = await subscribe(deliveries, receiver.url, ['order.paid'], true));
    let plainSecret = '';
    const plain = await startReceiver(deliveries, () => [plainSecret]);
    ({ secret: plainSecret } = await subscribe(deliveries, plain.url, ['order.paid']));
    const paid = await order(testbed, 'paid');
    await waitFor(
      async () => mine(receiver.received, [paid.orderNo]).length > 0 && mine(plain.received, [paid.orderNo]).length > 0,
      { what: 'the paid event at both endpoints', timeoutMs: 20_000 },
    );
    const [withId] = mine(receiver.received, [paid.orderNo]).map((r) => JSON.parse(r.body).data.order);
    const [without] = mine(plain.received, [paid.orderNo]).map((r) => JSON.parse(r.body).data.order);
    expect(withId).toMatchObject({ userId: `deliveries-${paid.orderNo.slice(-6)}`, customer: without.customer });
    expect(Object.keys(withId).sort()).toEqual([...EVENT_ORDER_FIELDS, 'userId'].sort());
    expect(without.userId).toBeUndefined();
  });

  it('500, 500, then no answer within the attempt timeout, then 2xx: delivered on the 4th attempt, each attempt listed', async ({
    testbed,
    deliveries,
  }) => {
    const { stores } = testbed;
    let secret = '';
    const receiver = await startReceiver(
      deliveries,
      () => [secret],
      (_id, seen) => (seen <= 2 ? { status: 500 } : seen === 3 ? { hangMs: 2_000 } : { status: 200 }),
    );
    const endpoint = await subscribe(deliveries, receiver.url);
    secret = endpoint.secret;
    const paid = await order(testbed, 'paid');
    await waitFor(async () => receiver.received.some((r) => r.id === paid.eventId), {
      what: 'the event after its retries',
      timeoutMs: 20_000,
    });
    // The receiver has it before the worker records the 2xx: wait for the row.
    const delivery = await waitFor(
      async () => {
        const row = await stores.webhooks.deliveryOf(endpoint.endpointId, paid.eventId);
        return row?.status === 'DELIVERED' && row;
      },
      { what: 'the delivery recorded', timeoutMs: 10_000 },
    );
    expect(delivery).toMatchObject({ status: 'DELIVERED', attempts: 4 });
    const attempts = await stores.webhooks.attemptsOf(endpoint.endpointId, delivery!.seq);
    expect(attempts.map((a) => [a.outcome, a.httpStatus])).toEqual([
      ['failed', 500],
      ['failed', 500],
      ['failed', null],
      ['delivered', 200],
    ]);
    expect(attempts[2]?.error).toMatch(/time/i);
  });

  it('a 429 with Retry-After: nothing more is sent to the endpoint before it', async ({ testbed, deliveries }) => {
    let secret = '';
    const arrivals: number[] = [];
    // The endpoint's first request of all is refused for 5 s; sends already under way beside it (other files' events
    // share the feed) arrive with it: no new one may start before Retry-After has passed, not even of an event
    // written after the refusal, which the feed gives out (2 s after its commit) while the endpoint still waits.
    const receiver = await startReceiver(
      deliveries,
      () => [secret],
      () => {
        arrivals.push(Date.now());
        return arrivals.length === 1 ? { status: 429, headers: { 'retry-after': '5' } } : { status: 200 };
      },
    );
    const endpoint = await subscribe(deliveries, receiver.url);
    secret = endpoint.secret;
    const paid = await order(testbed, 'paid');
    await waitFor(async () => arrivals.length > 0, { what: 'the first send, refused', timeoutMs: 20_000 });
    const paidDuringPause = await order(testbed, 'paid');
    // The refused event is sent again once Retry-After has passed: wait for that send and both paid events.
    await waitFor(
      async () =>
        [paid, paidDuringPause].every(({ eventId }) => receiver.received.some((r) => r.id === eventId)) &&
        arrivals.some((at) => at - arrivals[0]! >= 4_900),
      { what: 'a send after the pause, and both paid events', timeoutMs: 30_000 },
    );
    const first = arrivals[0]!;
    const offsets = arrivals.map((at) => at - first);
    expect(
      offsets.filter((ms) => ms > 500 && ms < 4_900),
      JSON.stringify(offsets),
    ).toEqual([]);
  });

  it('410 Gone disables the endpoint and ends its delivery workflow', async ({ testbed, deliveries }) => {
    const { stores, temporal } = testbed;
    let secret = '';
    const receiver = await startReceiver(
      deliveries,
      () => [secret],
      () => ({ status: 410 }),
    );
    const endpoint = await subscribe(deliveries, receiver.url);
    secret = endpoint.secret;
    await order(testbed, 'paid');
    await waitFor(async () => (await stores.webhooks.getEndpoint(endpoint.endpointId))?.enabled === false, {
      what: 'the endpoint disabled',
      timeoutMs: 20_000,
    });
    expect((await stores.webhooks.getEndpoint(endpoint.endpointId))?.disabledReason).toMatch(/410/);
    const handle = temporal.workflow.getHandle(endpointDeliveryWorkflowId(endpoint.endpointId));
    await waitFor(async () => (await handle.describe()).status.name === 'COMPLETED', {
      what: 'its workflow ended',
      timeoutMs: 10_000,
    });
    expect((await handle.describe()).type).toBe(ENDPOINT_DELIVERY_WORKFLOW_TYPE);
  });

  it('a rotation signs with both secrets during its overlap: a receiver with either verifies', async ({
    testbed,
    deliveries,
  }) => {
    const { stores } = testbed;
    const { box } = deliveries;
    let secrets: string[] = [];
    const receiver = await startReceiver(deliveries, () => secrets);
    const endpoint = await subscribe(deliveries, receiver.url);
    const newSecret = generateEndpointSecret();
    await stores.webhooks.rotateSecret(endpoint.endpointId, box.seal(endpoint.endpointId, newSecret), {
      oldUntil: new Date(Date.now() + 3_600_000),
      replaceAll: false,
    });
    secrets = [endpoint.secret, newSecret];
    const paid = await order(testbed, 'paid');
    await waitFor(async () => receiver.received.find((r) => r.id === paid.eventId), {
      what: 'the event',
      timeoutMs: 20_000,
    });
    const got = receiver.received.find((r) => r.id === paid.eventId)!;
    const headers = got.headers as Record<string, string>;
    expect(headers['webhook-signature']?.split(' ')).toHaveLength(2);
    expect(() => new Webhook(endpoint.secret).verify(got.body, headers)).not.toThrow();
    expect(() => new Webhook(newSecret).verify(got.body, headers)).not.toThrow();
  });
});

describe('deliveries never compete with orders', () => {
  it("a refusing endpoint's deep backlog runs on the deliveries' own queue, and a sale's checkouts and cancels answer as ever", async ({
    testbed,
    deliveries,
  }) => {
    const { stores, redis, temporal, config } = testbed;
    let secret = '';
    const refusing = await startReceiver(
      deliveries,
      () => [secret],
      () => ({ status: 500 }),
    );
    ({ secret } = await subscribe(deliveries, refusing.url));
    const { endpointId } = await subscribe(deliveries, refusing.url);
    // A backlog of 300 events, each refused and retried from 200 ms, doubling.
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let i = 0; i < 50; i++) await order(testbed, 'cancelled');
      }),
    );
    await waitFor(async () => refusing.summary().requests > 200, {
      what: 'the refusing endpoint to be tried',
      timeoutMs: 30_000,
    });

    // Meanwhile, a sale: every checkout wins, every cancel is taken and closes its order.
    const api = await testbed.serve(queue);
    const sale = await putOnSale(stores, redis, { stock: 20, perUserLimit: 1 });
    const answers = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const token = await new ShopperAuth(config).issue(`backlog-shopper-${i}-${randomUUID()}`);
        const checkout = await httpRequest(api, 'POST', '/api/checkout', {
          json: { sku: sale.sku, quantity: 1 },
          token,
          headers: { Prefer: 'wait=10' },
        });
        const orderNo = String(checkout.body.orderNo);
        await waitFor(
          async () =>
            (await httpRequest(api, 'GET', `/api/orders/${orderNo}`, { token })).body.status === 'AWAITING_PAYMENT',
          { what: `${orderNo} persisted`, timeoutMs: 20_000 },
        );
        const cancel = await httpRequest(api, 'POST', `/api/orders/${orderNo}/cancel`, { token });
        return { checkout: checkout.status, cancel: cancel.status, orderNo };
      }),
    );
    for (const { checkout } of answers) expect([201, 202]).toContain(checkout);
    expect(answers.map((a) => a.cancel)).toEqual(answers.map(() => 202));
    for (const { orderNo } of answers)
      await waitFor(async () => (await stores.orders.getOrder(orderNo))?.status === 'CANCELLED', {
        what: `${orderNo} cancelled`,
        timeoutMs: 20_000,
      });

    // Every round of the endpoint's delivery was scheduled on the deliveries' queue, none on the orders'.
    const { events } = await temporal.workflow.getHandle(endpointDeliveryWorkflowId(endpointId)).fetchHistory();
    const queues = new Set(
      (events ?? []).flatMap((event) => event.activityTaskScheduledEventAttributes?.taskQueue?.name ?? []),
    );
    expect([...queues]).toEqual([deliveryTaskQueue(queue)]);
  });
});

describe('an endpoint down for longer than the retry period', () => {
  it('gives each delivery up, and the receiver catches up from the feed with the cursor it kept', async ({
    testbed,
    deliveries,
  }) => {
    const { stores, config } = testbed;
    const { box, endpoints } = deliveries;
    const short: PerQueueTestbed = await openPerQueueTestbed({
      ...ENV,
      EVENTS_RETRY_PERIOD: '2s',
      EVENTS_RETENTION: '30d',
      TEMPORAL_TASK_QUEUE: `deliveries-short-${randomUUID()}`,
    });
    try {
      const shortQueue = `deliveries-short-${randomUUID()}`;
      await short.startWorker(shortQueue);
      const feed = new OrderEventFeed(stores.events, new CustomerReferences(config.webhookDelivery.customerSecret));
      // The receiver's cursor before the outage: where its last read ended.
      let kept = (await feed.read({ limit: 500 })).nextCursor;
      for (let page = await feed.read({ after: kept, limit: 500 }); page.items.length > 0;) {
        kept = page.nextCursor;
        page = await feed.read({ after: kept, limit: 500 });
      }

      const receiver = await startReceiver(deliveries, () => []);
      await receiver.close(); // down: every attempt is refused by the closed port
      const endpointId = `ep_test_${randomUUID().slice(0, 8)}`;
      await stores.webhooks.createEndpoint({
        endpointId,
        url: receiver.url,
        eventTypes: [],
        description: null,
        secretBox: box.seal(endpointId, generateEndpointSecret()),
      });
      endpoints.push(endpointId);
      await new EndpointDeliveryClient(short.temporal, {
        ...short.config,
        temporal: { ...short.config.temporal, taskQueue: shortQueue },
      }).wake(endpointId, 5_000);
      const lost = await Promise.all([order(testbed, 'paid'), order(testbed, 'cancelled')]);
      await waitFor(
        async () => {
          const rows = await Promise.all(lost.map((o) => stores.webhooks.deliveryOf(endpointId, o.eventId)));
          return rows.every((row) => row?.status === 'GAVE_UP');
        },
        { what: 'both deliveries given up', timeoutMs: 20_000 },
      );
      // Back: the feed from the kept cursor has both.
      const ids: string[] = [];
      for (
        let page = await feed.read({ after: kept, limit: 500 });
        page.items.length > 0;
        page = await feed.read({ after: page.nextCursor, limit: 500 })
      )
        ids.push(...page.items.map((event) => event.id));
      for (const o of lost) expect(ids).toContain(o.eventId);
    } finally {
      await short.close();
    }
  });
});

describe('every deployment mode', () => {
  it('an unversioned worker (WORKER_VERSIONING=false) delivers as a versioned one does, and ends its round when it stops', async ({
    testbed,
    deliveries,
  }) => {
    const { stores, temporal } = testbed;
    const { box, endpoints } = deliveries;
    const unversioned = await openPerQueueTestbed({
      ...ENV,
      WORKER_VERSIONING: 'false',
      TEMPORAL_TASK_QUEUE: `deliveries-unversioned-${randomUUID()}`,
    });
    let open = true;
    try {
      const unversionedQueue = `deliveries-unversioned-${randomUUID()}`;
      await unversioned.startWorker(unversionedQueue);
      let secret = '';
      const receiver = await startReceiver(deliveries, () => [secret]);
      const endpointId = `ep_test_${randomUUID().slice(0, 8)}`;
      secret = generateEndpointSecret();
      await stores.webhooks.createEndpoint({
        endpointId,
        url: receiver.url,
        eventTypes: ['order.paid'],
        description: null,
        secretBox: box.seal(endpointId, secret),
      });
      endpoints.push(endpointId);
      await new EndpointDeliveryClient(unversioned.temporal, {
        ...unversioned.config,
        temporal: { ...unversioned.config.temporal, taskQueue: unversionedQueue },
      }).wake(endpointId, 5_000);
      const paid = await order(testbed, 'paid');
      await waitFor(async () => mine(receiver.received, [paid.orderNo]).length > 0, {
        what: 'the event delivered by the unversioned worker',
        timeoutMs: 20_000,
      });
      const { raw } = await unversioned.temporal.workflow.getHandle(endpointDeliveryWorkflowId(endpointId)).describe();
      expect(raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion ?? null).toBeNull();

      // Its round now watches the feed (ROUND_MS). A worker shutting down ends it at its next look: the round
      // completes, rather than hold the shutdown for the rest of the round and be cancelled after the SDK's grace.
      const shutdownFrom = Date.now();
      open = false;
      await unversioned.close();
      expect(Date.now() - shutdownFrom).toBeLessThan(ROUND_MS / 2);
      const history = await temporal.workflow.getHandle(endpointDeliveryWorkflowId(endpointId)).fetchHistory();
      const rounds = (history.events ?? []).filter(
        (event) => event.activityTaskCompletedEventAttributes || event.activityTaskFailedEventAttributes,
      );
      expect(rounds.at(-1)?.activityTaskCompletedEventAttributes).toBeTruthy();
    } finally {
      if (open) await unversioned.close();
    }
  });
});
