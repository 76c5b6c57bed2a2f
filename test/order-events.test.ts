/**
 * Order events (docs/api.md, "Order events"): each fact the order's row decides writes its event once, in the same
 * transaction (the outbox), with the order as it stood; the feed gives them page by page to the events token or the
 * admin's. Its order under every interleaving of commits, and its retention: order-event-feed.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import type { OrderEventType } from '../src/model/order-workflow.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { waitFor } from '../stack/wait-for.js';
import { openDispute, putOnSale } from './helpers/fixtures.js';
import { API_TEST_ENV, TEST_ADMIN_TOKEN, type TestApp } from './helpers/app.js';
import { replyOf, type Reply } from './helpers/http.js';
import { closeRow } from './helpers/orders.js';
import { appTest } from './helpers/stack-test.js';

const EVENTS_TOKEN = 'events-reader-token-0123456789';
const it = appTest('order-events', { ...API_TEST_ENV, EVENTS_READ_TOKEN: EVENTS_TOKEN });

const feed = (app: TestApp, query: string, token = EVENTS_TOKEN): Promise<Reply> =>
  replyOf(app.api.url, 'GET', `/api/admin/events${query}`, { token });

/** An order row AWAITING_PAYMENT on a fresh sale, as its workflow's persist writes it. */
async function persistedOrder(
  { stores, redis }: TestApp,
  window = 30 * 60_000,
  shopper?: string,
): Promise<{ orderNo: string; sku: string; totalCents: number }> {
  const sale = await putOnSale(stores, redis, { stock: 2 });
  const orderNo = newOrderNo();
  const result = await stores.orders.insertAwaitingOrder({
    orderNo,
    sku: sale.sku,
    userId: shopper ?? `events-${orderNo.slice(-6)}`,
    quantity: 1,
    unitPriceCents: sale.priceCents,
    paymentDeadline: new Date(Date.now() + window),
    createdAt: new Date(),
  });
  expect(result.outcome).toBe('INSERTED');
  return { orderNo, sku: sale.sku, totalCents: sale.priceCents };
}

const typesOf = async ({ stores }: TestApp, orderNo: string): Promise<OrderEventType[]> =>
  (await stores.events.eventsOf(orderNo)).map((event) => event.type);

/** Every event the feed gives from `after` on, page by page (`limit` each), once the feed has caught up. */
async function readAll(app: TestApp, after: string | undefined, limit: number, until: (ids: string[]) => boolean) {
  return waitFor(
    async () => {
      const ids: string[] = [];
      let cursor = after;
      for (;;) {
        const reply = await feed(app, `?limit=${limit}${cursor ? `&after=${cursor}` : ''}`);
        expect(reply.status).toBe(200);
        ids.push(...(reply.body.items as Array<{ id: string }>).map((event) => event.id));
        cursor = reply.body.nextCursor as string;
        if (reply.body.items.length < limit) break;
      }
      return until(ids) && { ids, cursor };
    },
    { what: 'the feed to give the events written', timeoutMs: 15_000, intervalMs: 250 },
  );
}

describe('each fact its event, once, with the order as it stood', () => {
  it('paid: one order.paid; a second payment (refunded ALREADY_PAID) writes none', async ({ app }) => {
    const { stores } = app;
    const order = await persistedOrder(app);
    const pay = (eventId: string) =>
      stores.payments.recordPayment({ eventId, orderNo: order.orderNo, amountCents: order.totalCents }, 'webhook');
    expect((await pay(`evt-a-${order.orderNo}`)).row.outcome).toBe('APPLIED');
    expect((await pay(`evt-b-${order.orderNo}`)).row.outcome).toBe('REFUND_REQUIRED');
    const [paid, ...rest] = await stores.events.eventsOf(order.orderNo);
    expect(rest).toEqual([]);
    expect(paid).toMatchObject({
      eventId: `${order.orderNo}.order.paid`,
      type: 'order.paid',
      order: { orderNo: order.orderNo, status: 'PAID', totalCents: order.totalCents },
    });
    expect(paid?.createdAt).toEqual(paid?.order.paidAt);
  });

  it('cancelled (its reason) and failed: one event each, however often the close runs', async ({ app }) => {
    const { stores } = app;
    const cancelled = await persistedOrder(app);
    for (let run = 0; run < 2; run++)
      await closeRow(stores, cancelled.orderNo, { kind: 'CANCEL', reason: 'USER_CANCELLED' });
    const [event] = await stores.events.eventsOf(cancelled.orderNo);
    expect(await typesOf(app, cancelled.orderNo)).toEqual(['order.cancelled']);
    expect(event?.order).toMatchObject({ status: 'CANCELLED', cancelReason: 'USER_CANCELLED' });

    const failed = await persistedOrder(app);
    const input = {
      orderNo: failed.orderNo,
      sku: failed.sku,
      userId: 'x',
      quantity: 1,
      unitPriceCents: failed.totalCents,
      paymentDeadline: new Date(),
      createdAt: new Date(),
    };
    await closeRow(stores, failed.orderNo, { kind: 'FAIL', reason: 'PromiseExpired: test' });
    await closeRow(stores, failed.orderNo, { kind: 'FAIL', reason: 'PromiseExpired: test' });
    expect(await typesOf(app, failed.orderNo)).toEqual(['order.failed']);

    // Given up before any row: the FAILED row and its event in one transaction.
    const givenUp = { ...input, orderNo: newOrderNo() };
    expect((await stores.orders.close(givenUp, { kind: 'FAIL', reason: 'OutOfStockInDatabase' })).outcome).toBe(
      'FAILED',
    );
    expect((await stores.orders.close(givenUp, { kind: 'FAIL', reason: 'OutOfStockInDatabase' })).outcome).toBe(
      'FAILED',
    );
    expect(await typesOf(app, givenUp.orderNo)).toEqual(['order.failed']);
  });

  it("names the shopper by an opaque reference, the same for each of their orders, and gives no failure's text", async ({
    app,
  }) => {
    const { stores } = app;
    const shopper = `events-shopper-${randomUUID()}`;
    const [failed, paid, another] = [
      await persistedOrder(app, undefined, shopper),
      await persistedOrder(app, undefined, shopper),
      await persistedOrder(app),
    ];
    await closeRow(stores, failed.orderNo, { kind: 'FAIL', reason: 'ReservationLost: an internal detail' });
    for (const order of [paid, another])
      await stores.payments.recordPayment(
        { eventId: `evt-ref-${order.orderNo}`, orderNo: order.orderNo, amountCents: order.totalCents },
        'webhook',
      );
    const wanted = [failed.orderNo, paid.orderNo, another.orderNo];
    const events = await waitFor(
      async () => {
        const found = new Map<string, { type: string; data: { order: Record<string, unknown> } }>();
        let cursor: string | undefined;
        for (;;) {
          const reply = await feed(app, `?limit=500${cursor ? `&after=${cursor}` : ''}`);
          for (const event of reply.body.items)
            if (wanted.includes(event.data.order.orderNo)) found.set(event.data.order.orderNo, event);
          cursor = reply.body.nextCursor as string;
          if (reply.body.items.length < 500) break;
        }
        return found.size === wanted.length && found;
      },
      { what: 'the three events in the feed', timeoutMs: 15_000, intervalMs: 250 },
    );
    const [ofFailed, ofPaid, ofAnother] = wanted.map((orderNo) => events.get(orderNo)!.data.order) as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    expect(ofFailed).toMatchObject({ status: 'FAILED' });
    expect(JSON.stringify(ofFailed)).not.toContain('ReservationLost');
    for (const order of [ofFailed, ofPaid, ofAnother]) {
      expect(order.customer).toMatch(/^cus_[A-Za-z0-9_-]{24}$/);
      expect(Object.keys(order)).not.toContain('userId');
      expect(Object.keys(order)).not.toContain('failureReason');
      expect(JSON.stringify(order)).not.toContain('events-');
    }
    expect(ofFailed.customer).toBe(ofPaid.customer);
    expect(ofAnother.customer).not.toBe(ofPaid.customer);
  });

  it('money taken back: a dispute opened and lost, a refund that went through; our own refund executed', async ({
    app,
  }) => {
    const { stores } = app;
    const order = await persistedOrder(app);
    const intentId = `pi_${order.orderNo}`;
    await stores.payments.recordPayment(
      { eventId: `evt-${order.orderNo}`, orderNo: order.orderNo, amountCents: order.totalCents },
      'webhook',
    );
    const dispute = openDispute({ id: `dp_${order.orderNo}`, intentId, orderNo: order.orderNo, amountCents: 1 });
    await stores.refunds.recordTakeback(dispute);
    await stores.refunds.recordTakeback({ ...dispute, status: 'LOST', providerStatus: 'lost', stage: 3 });
    await stores.refunds.recordTakeback({
      ...dispute,
      id: `re_${order.orderNo}`,
      kind: 'REFUND',
      status: 'SUCCEEDED',
      providerStatus: 'succeeded',
      stage: 2,
    });
    expect(await typesOf(app, order.orderNo)).toEqual([
      'order.paid',
      'order.disputed',
      'order.dispute_closed',
      'order.refunded',
    ]);
    const closed = (await stores.events.eventsOf(order.orderNo))[2];
    expect(closed?.order.dispute).toMatchObject({ standing: 'LOST' });

    // A second payment refunded by us: its refund executed is an event of the order too.
    const again = `evt-again-${order.orderNo}`;
    await stores.payments.recordPayment({ eventId: again, orderNo: order.orderNo, amountCents: 5 }, 'webhook');
    await stores.refunds.recordRefundProgress({ eventId: again }, { state: 'REFUNDED', refundId: `re_${again}` });
    await stores.refunds.recordRefundProgress({ eventId: again }, { state: 'REFUNDED', refundId: `re_${again}` });
    expect((await stores.events.eventsOf(order.orderNo)).map((event) => event.eventId).slice(4)).toEqual([
      `${order.orderNo}.order.refunded.${again}`,
    ]);
  });
});

describe('the feed', () => {
  it('walks every event once, in the order committed, page by page; types filter; tokens and bad input refused', async ({
    app,
  }) => {
    const { api, stores } = app;
    const start = (await feed(app, '?limit=500')).body.nextCursor as string;
    const orders = await Promise.all([persistedOrder(app), persistedOrder(app), persistedOrder(app)]);
    for (const order of orders)
      await stores.payments.recordPayment(
        { eventId: `evt-${order.orderNo}`, orderNo: order.orderNo, amountCents: order.totalCents },
        'webhook',
      );
    await closeRow(stores, orders[2]!.orderNo, { kind: 'CANCEL', reason: 'OPERATOR_CANCELLED' });
    const written = orders.map((order) => `${order.orderNo}.order.paid`);
    for (const limit of [1, 2, 100]) {
      const { ids } = await readAll(app, start, limit, (seen) => written.every((id) => seen.includes(id)));
      expect(ids.filter((id) => written.includes(id))).toEqual(written);
      expect(new Set(ids).size).toBe(ids.length);
    }
    // Other test files write events on this stack too: page on (paid only) until ours.
    const paidOnly: Array<{ id: string; type: string }> = [];
    for (let cursor = start; ;) {
      const page = await feed(app, `?after=${cursor}&types=order.paid&limit=500`);
      paidOnly.push(...(page.body.items as Array<{ id: string; type: string }>));
      cursor = page.body.nextCursor as string;
      if (page.body.items.length < 500 || paidOnly.some((event) => event.id === written[0])) break;
    }
    expect(paidOnly.every((event) => event.type === 'order.paid')).toBe(true);
    const first = paidOnly.find((event) => event.id === written[0]);
    expect(first).toMatchObject({
      id: written[0],
      type: 'order.paid',
      created: expect.any(String),
      data: { order: { orderNo: orders[0]!.orderNo, status: 'PAID' } },
    });

    expect((await feed(app, '?limit=1', TEST_ADMIN_TOKEN)).status).toBe(200);
    expect((await feed(app, '?limit=1', 'not-the-token')).body).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    for (const bad of ['?after=nope', '?types=order.shipped', '?types=order.paid,', '?limit=0', '?limit=501'])
      expect((await feed(app, bad)).body, bad).toMatchObject({ error: { code: 'INVALID_REQUEST' } });
    // The document says the same of `types`: the list as a pattern of the types, no wider.
    const documented = (await replyOf(api.url, 'GET', '/openapi.json')).body.paths['/api/admin/events'].get.parameters;
    const pattern = new RegExp(documented.find((p: { name: string }) => p.name === 'types').schema.pattern);
    expect(['order.paid', 'order.paid,order.cancelled'].every((list) => pattern.test(list))).toBe(true);
    expect(['order.shipped', 'order.paid,', ''].some((list) => pattern.test(list))).toBe(false);
  });
});
