/**
 * The order events feed against MariaDB, on a database of this file's own (it prunes and positions what every other
 * file's events would share): its order is the order events committed, so a cursor never passes an event still to
 * come, whatever the interleaving of the writers' transactions; nothing but the feed's own writers holds it back; a
 * type-filtered cursor moves past what it looked at; and a pruned cursor is refused, never answered short.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEED_SCAN_WINDOW } from '../src/db/events.js';
import { recordOrderEvent } from '../src/db/events.js';
import { openStores, type Stores } from '../src/db/stores.js';
import { CustomerReferences, OrderEventFeed } from '../src/order-events/order-events.js';
import { CURSOR_POSITIONS, decodeCursor, encodeCursor } from '../src/infra/cursor.js';
import type { OrderEventType } from '../src/model/order-workflow.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { startOwnMariaDb } from './helpers/own-stack.js';

let db: Awaited<ReturnType<typeof startOwnMariaDb>>;
let pool: Pool;
let stores: Stores;
let feed: OrderEventFeed;
let orderNo: string;

beforeAll(async () => {
  db = await startOwnMariaDb('order-event-feed');
  pool = db.pool;
  stores = openStores(pool);
  feed = new OrderEventFeed(stores.events, new CustomerReferences('order-event-feed-customer-key'));
  const sku = `FEED-${randomUUID().slice(0, 8)}`;
  const sale = { sku, name: sku, priceCents: 1_000, stock: 10, perUserLimit: 1, startsAt: null, endsAt: null };
  expect(await stores.sales.createSale(sale, async () => true)).toBe(true);
  orderNo = newOrderNo();
  const inserted = await stores.orders.insertAwaitingOrder({
    orderNo,
    sku,
    userId: 'feed-shopper',
    quantity: 1,
    unitPriceCents: 1_000,
    paymentDeadline: new Date(Date.now() + 60_000),
    createdAt: new Date(),
  });
  expect(inserted.outcome).toBe('INSERTED');
}, 120_000);

afterAll(async () => {
  await db?.stop();
});

/** A writer's transaction in three steps the test orders: begin (a read opens a snapshot), write its event, commit. */
function writer(type: OrderEventType = 'order.failed') {
  const occurrence = randomUUID();
  const id = `${orderNo}.${type}.${occurrence}`;
  const gates = [gate(), gate(), gate()] as const;
  const reached = [gate(), gate(), gate()] as const;
  const done = pool.getConnection().then(async (conn) => {
    try {
      await gates[0].promise;
      await conn.beginTransaction();
      await conn.query('SELECT COUNT(*) FROM orders');
      reached[0].open();
      await gates[1].promise;
      await recordOrderEvent(conn, { orderNo, type, occurrence });
      reached[1].open();
      await gates[2].promise;
      await conn.commit();
      reached[2].open();
    } finally {
      conn.release();
    }
  });
  return {
    id,
    done,
    /** Runs step `n` (0 begin, 1 write, 2 commit) and resolves once it has. */
    async step(n: 0 | 1 | 2) {
      gates[n].open();
      await Promise.race([reached[n].promise, done]);
    },
  };
}

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A reader of the feed from where it last stopped, as a fulfilment system polls it. */
function reader(start?: string, types?: OrderEventType[]) {
  const state = { cursor: start, ids: [] as string[] };
  return {
    state,
    async poll(limit = 100) {
      for (;;) {
        const page = await feed.read({
          limit,
          ...(state.cursor ? { after: state.cursor } : {}),
          ...(types ? { types } : {}),
        });
        state.ids.push(...page.items.map((event) => event.id));
        state.cursor = page.nextCursor;
        if (page.items.length < limit) return;
      }
    },
  };
}

const positionOf = (cursor: string) => Number(decodeCursor(cursor, CURSOR_POSITIONS.events)[0]);
/** The cursor of a reader that read everything committed so far. */
async function head(): Promise<string> {
  const read = reader();
  await read.poll(500);
  return read.state.cursor!;
}

/** Every order of two writers' steps (begin, write, commit each), A's begin first: 10 of them. */
function interleavings(): Array<Array<['A' | 'B', 0 | 1 | 2]>> {
  const out: Array<Array<['A' | 'B', 0 | 1 | 2]>> = [];
  const walk = (a: number, b: number, path: Array<['A' | 'B', 0 | 1 | 2]>) => {
    if (a === 3 && b === 3) return void out.push(path);
    if (a < 3) walk(a + 1, b, [...path, ['A', a as 0 | 1 | 2]]);
    if (b < 3 && a > 0) walk(a, b + 1, [...path, ['B', b as 0 | 1 | 2]]);
  };
  walk(0, 0, []);
  return out;
}

describe('the feed against its writers', () => {
  it('gives each event once, in the order committed, under every interleaving of two writers; a reader polling between each step never passes one still to come', async () => {
    const orders = interleavings();
    expect(orders.length).toBe(10);
    for (const order of orders) {
      const what = order.map(([who, n]) => `${who}.${['begin', 'write', 'commit'][n]}`).join(' ');
      const a = writer();
      const b = writer();
      const read = reader(await head());
      const committed: string[] = [];
      for (const [who, n] of order) {
        const w = who === 'A' ? a : b;
        await w.step(n);
        if (n === 2) committed.push(w.id);
        await read.poll(1);
        // Only what committed, and in the order it did: an event still open is never given nor passed.
        expect(read.state.ids, what).toEqual(committed);
      }
      await Promise.all([a.done, b.done]);
    }
  });

  it('is held back by nothing but its own writers: an open transaction elsewhere (a console, a dump) delays no event', async () => {
    const read = reader(await head());
    const console = await pool.getConnection();
    try {
      await console.beginTransaction();
      await console.query('SELECT COUNT(*) FROM orders');
      await console.query('UPDATE sales SET name = name');
      const w = writer();
      for (const n of [0, 1, 2] as const) await w.step(n);
      await w.done;
      await read.poll();
      // At once, while the console's transaction is still open (the feed once waited for every open transaction).
      expect(read.state.ids).toEqual([w.id]);
    } finally {
      await console.rollback();
      console.release();
    }
  });

  it('moves a type-filtered cursor past what it looked at, matching or not, a window at a time', async () => {
    const start = await head();
    const read = reader(start, ['order.paid']);
    const written = [writer(), writer(), writer()];
    for (const w of written) for (const n of [0, 1, 2] as const) await w.step(n);
    await read.poll();
    expect(read.state.ids).toEqual([]);
    expect(positionOf(read.state.cursor!)).toBe(positionOf(start) + written.length);
    // From the start, a filtered read looks one window ahead at most: it moves on without reading the whole tail.
    const fromZero = await feed.read({ limit: 10, types: ['order.paid'] });
    expect(positionOf(fromZero.nextCursor)).toBe(Math.min(FEED_SCAN_WINDOW, positionOf(read.state.cursor!)));
  });
});

describe('the feed after its retention', () => {
  const age = (sql = 'UPDATE order_events SET recorded_at = recorded_at - INTERVAL 2 DAY') => pool.query(sql);
  const dayAgo = () => new Date(Date.now() - 86_400_000);

  it('refuses a cursor behind what was pruned (410) and gives the rest from one at the mark; an event never read is positioned before it is pruned', async () => {
    const start = await head();
    const written = [writer(), writer(), writer(), writer()];
    for (const w of written) for (const n of [0, 1, 2] as const) await w.step(n);
    // Nothing read them yet: the pruner positions them first, or a cursor could not know they were deleted.
    await age();
    const pruned = await stores.webhooks.pruneEvents(dayAgo(), positionOf(start) + 2);
    expect(pruned).toBe(positionOf(start) + 2);
    await expect(feed.read({ after: start, limit: 10 })).rejects.toMatchObject({ code: 'CURSOR_EXPIRED' });
    const mark = reader(encodeCursor([String(positionOf(start) + 2)]));
    await mark.poll();
    expect(mark.state.ids).toEqual(written.slice(2).map((w) => w.id));
  });

  it('never answers a short page while a prune commits beside the read: 410 or every event after the cursor', async () => {
    for (let round = 0; round < 20; round++) {
      const start = await head();
      const written = [writer(), writer(), writer()];
      for (const w of written) for (const n of [0, 1, 2] as const) await w.step(n);
      await age();
      const [page] = await Promise.all([
        feed.read({ after: start, limit: 10 }).catch((err: unknown) => err),
        stores.webhooks.pruneEvents(dayAgo(), 1_000),
      ]);
      if (page instanceof Error) expect(page).toMatchObject({ code: 'CURSOR_EXPIRED' });
      else {
        // Those positioned when it read, from the first after the cursor on, and the cursor just past them: no gap.
        const { items, nextCursor } = page as { items: Array<{ id: string }>; nextCursor: string };
        expect(items.map((event) => event.id)).toEqual(written.slice(0, items.length).map((w) => w.id));
        expect(positionOf(nextCursor)).toBe(positionOf(start) + items.length);
      }
    }
  });
});
