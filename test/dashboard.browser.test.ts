/**
 * The live sale dashboard at / in a real headless Chromium (Debian's, driven by playwright-core)
 * against the real API and worker on the test stack, with dev login on: a sale is created through
 * the page, a double click on Buy buys once, a burst of shoppers sells the rest out, one order is
 * paid and one cancelled through the page, and once quiet the figures on screen are the API's.
 * Opened at /?sku=<sale> while a burst of checkouts runs, its charts (uPlot, read back through
 * window.dashboardCharts) show the stock draining, checkouts per second by outcome, orders by
 * state and the p99 move as it happens, with nothing loaded from another host; an unknown SKU is
 * named as such. Its Worker panel shows the workers' cache as the API relays it (the worker here
 * publishes as the worker process does, with its Core runtime's metrics on) and the pay Update's
 * latency from /metrics; a worker that stops publishing drops off it. Its Order events panel shows the endpoints'
 * deliveries (sent, failing, given up, the oldest owed, disabled endpoints) as the admin route answers them.
 */
import { STORED_ORDER_STATUSES } from '../src/model/order-rules.js';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { launchChromium } from './helpers/browser.js';
import { beforeAll, describe, expect } from 'vitest';
import { RedisInventory } from '../src/redis/inventory.js';
import { waitFor } from '../stack/wait-for.js';
import { expectInvariants, putOnSale, saleReport, uniqueSku } from './helpers/fixtures.js';
import { httpRequest } from './helpers/http.js';
import { quantile } from '../web/checkout-metrics.js';
import { parseEtaError } from '../web/line-metrics.js';
import type { TestApp } from './helpers/app.js';
import { freePort } from '../stack/process.js';
import { WorkerFiguresBoard, type WorkerCacheFigures } from '../src/redis/worker-figures.js';
import { parsePaymentSignals, workerCacheTotals } from '../web/worker-metrics.js';
import { deliveryTotals, formatAge, type EndpointReport } from '../web/delivery-metrics.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { closeRow } from './helpers/orders.js';
import { appTest } from './helpers/stack-test.js';

const ADMIN = 'dashboard-admin-token';
/** Any Web UI address will do: the test checks that the page's links point at it. */
const WEB_UI = 'http://127.0.0.1:18233';

/** Where this file's screenshots go. */
const shots = mkdtempSync(join(tmpdir(), 'dashboard-'));
/**
 * The Core runtime's Prometheus exporter, as the worker process has it (WORKER_METRICS_PORT): this file's worker
 * reads its cache counters there.
 */
const metricsPort = await freePort();

beforeAll(() => {
  // Installed before anything creates the runtime (the worker's connection): before any test asks for the app.
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${metricsPort}` } } },
  });
});

const it = appTest(
  'dashboard',
  {
    AUTH_DEV_LOGIN: 'true',
    ADMIN_TOKEN: ADMIN,
    TEMPORAL_UI_URL: WEB_UI,
    LOG_LEVEL: 'warn',
    // The page's burst logs N shoppers in from one browser, so from one IP; other test files log in
    // from 127.0.0.1 at the same time. Rate limits have their own suite (test/rate-limit.test.ts).
    RATE_LIMIT_LOGIN: 'off',
  },
  { worker: { cacheFigures: { metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` } } },
)
  .extend('browser', { scope: 'file' }, async ({}, { onCleanup }) => {
    const browser = await launchChromium();
    onCleanup(() => browser.close());
    return browser;
  })
  .extend('page', { scope: 'file' }, async ({ browser }) => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
    return page;
  })
  /** This file's endpoints: disabled as soon as made, and again at the end, so that no reconciler delivers to them. */
  .extend('endpoints', { scope: 'file' }, ({ app }, { onCleanup }) => {
    const endpoints: string[] = [];
    onCleanup(async () => {
      for (const endpointId of endpoints) await app.stores.webhooks.updateEndpoint(endpointId, { enabled: false });
    });
    return endpoints;
  });

async function getJson(app: TestApp, path: string, token?: string): Promise<any> {
  const response = await httpRequest(app.api.url, 'GET', path, token ? { token } : {});
  expect(response.status, path).toBe(200);
  return response.body;
}

const text = (page: Page, selector: string) => page.locator(selector).innerText();

/** The page's orders as shown: order number, shopper, status, link. */
async function ordersOnScreen(
  page: Page,
): Promise<Array<{ orderNo: string; user: string; status: string; href: string | null; deadline: string }>> {
  return page.locator('#orders tr').evaluateAll((rows) =>
    rows.map((row) => ({
      orderNo: (row as HTMLElement).dataset.orderNo ?? '',
      user: row.querySelector('.user')?.textContent ?? '',
      status: (row as HTMLElement).dataset.status ?? '',
      href: row.querySelector('a.wf')?.getAttribute('href') ?? null,
      deadline: row.querySelector('.deadline')?.textContent ?? '',
    })),
  );
}

/** Each chart's columns as uPlot draws them (window.dashboardCharts), by series label; the times are `t`. */
async function chartData(view: Page): Promise<Record<string, Record<string, Array<number | null>>>> {
  return view.evaluate(() => {
    const charts = (
      window as unknown as {
        dashboardCharts?: Record<
          string,
          { series: Array<{ label?: unknown }>; data: ArrayLike<number | null | undefined>[] }
        >;
      }
    ).dashboardCharts;
    return Object.fromEntries(
      Object.entries(charts ?? {}).map(([name, plot]) => [
        name,
        Object.fromEntries(
          plot.series.map((series, i) => [
            i === 0 ? 't' : String(series.label),
            Array.from(plot.data[i] ?? [], (value) => value ?? null),
          ]),
        ),
      ]),
    );
  });
}

/** A join (POST) or a read (GET) of a shopper's place in `sku`'s line. */
async function line(app: TestApp, method: 'GET' | 'POST', sku: string, token: string) {
  const response = await httpRequest(app.api.url, method, `/api/sales/${sku}/line${method === 'GET' ? '/me' : ''}`, {
    token,
  });
  return {
    status: response.status,
    retryAfter: Number(response.headers.get('retry-after')),
    place: response.body as { state: string; admission: { token: string } | null },
  };
}

/**
 * A shopper in line, as a client should: reads the place when Retry-After says, checks out with the admission once
 * admitted. BOUGHT, or the state that ended the wait (SOLD_OUT).
 */
async function waitInLine(app: TestApp, sku: string, shopper: { userId: string; token: string }): Promise<string> {
  let nextReadAt = 0;
  return waitFor(
    async () => {
      if (Date.now() < nextReadAt) return false;
      const read = await line(app, 'GET', sku, shopper.token);
      expect(read.status).toBe(200);
      nextReadAt = Date.now() + read.retryAfter * 1000;
      if (read.place.state === 'SOLD_OUT') return 'SOLD_OUT';
      if (read.place.state !== 'ADMITTED') return false;
      const reply = await httpRequest(app.api.url, 'POST', '/api/checkout', {
        token: shopper.token,
        headers: { 'idempotency-key': randomUUID(), 'admission-token': read.place.admission!.token },
        json: { sku, quantity: 1 },
      });
      expect([201, 202], `${shopper.userId}'s checkout`).toContain(reply.status);
      return 'BOUGHT';
    },
    { what: `${shopper.userId} to be admitted or told sold out`, timeoutMs: 45_000, intervalMs: 100 },
  );
}

/** The points the charts have taken since the sale was picked. */
async function samplesOf(view: Page): Promise<number> {
  return Number(await view.locator('#history-charts').getAttribute('data-samples'));
}
const present = (column: Array<number | null> | undefined) =>
  (column ?? []).filter((value): value is number => value !== null);
const first = (column: Array<number | null> | undefined) => present(column)[0] ?? null;
const last = (column: Array<number | null> | undefined) => present(column).at(-1) ?? null;
const max = (column: Array<number | null> | undefined) => Math.max(-Infinity, ...present(column));

/** Whether each line moved as the burst moves it. */
function burstShown(charts: Record<string, Record<string, Array<number | null>>>, stock: number) {
  return {
    availableFell: Math.min(...present(charts.stock?.available)) < stock,
    reservedRose: max(charts.stock?.reserved) > 0,
    acceptedPerSecond: max(charts.rates?.accepted) > 0,
    soldOutPerSecond: max(charts.rates?.['sold out']) > 0,
    limitPerSecond: max(charts.rates?.['limit reached']) > 0,
    unitsTakenPerSecond: max(charts.rates?.['units taken, net (sale-wide)']) > 0,
    awaitingPaymentRose: max(charts.orders?.AWAITING_PAYMENT) > 0,
    p99: max(charts.latency?.['p99, every answer']) > 0,
  };
}

describe('the live sale dashboard in headless Chromium', () => {
  it(
    'creates a sale, buys once on a double click, bursts, pays and cancels, shows what the API says, and closes the sale',
    { timeout: 90_000 },
    async ({ app, page }) => {
      const { config, stores, redis, api } = app;
      const started = Date.now();
      const sku = uniqueSku('DASH');
      await page.goto(`${api.url}/`);
      await page.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
      // The dev config names the Web UI; the admin token is not the dev default, so it is not prefilled.
      expect(await page.inputValue('#admin-token')).toBe('');
      await page.fill('#admin-token', ADMIN);
      await page.dispatchEvent('#admin-token', 'change');

      // Create the sale through the page: 12 units, at most 2 per shopper.
      await page.click('#create-box summary');
      await page.fill('#new-sku', sku);
      await page.fill('#new-stock', '12');
      await page.fill('#new-limit', '2');
      await page.click('#create-sale');
      await page.locator('#watching', { hasText: `watching ${sku}` }).waitFor();
      expect(await getJson(app, `/api/sales/${sku}`)).toMatchObject({ sku, stock: 12, available: 12, perUserLimit: 2 });
      await page.locator('#stock-available', { hasText: '12' }).waitFor();
      // The new sale is in the picker (GET /api/admin/sales).
      expect(await page.locator(`#sale-picker option[value="${sku}"]`).count()).toBe(1);

      // A double click on Buy is one purchase intent: one Idempotency-Key, one order, although the
      // limit (2 per shopper) would allow a second one.
      const buyer = `dbl-${sku}`;
      await page.fill('#buyer', buyer);
      const key = await text(page, '#intent-key');
      await page.dblclick('#buy');
      await waitFor(async () => (await page.locator('#log').innerText()).split(`buy ${buyer} → `).length - 1 >= 2, {
        what: 'both clicks answered',
        timeoutMs: 15_000,
      });
      expect(await new RedisInventory(redis, config.temporal.taskQueue).userHolding(sku, buyer)).toBe(1);
      const mine = (await ordersOnScreen(page)).filter((o) => o.user === buyer);
      expect(mine).toHaveLength(1);
      // The answer ended the intent: the next purchase gets a new key.
      expect(await text(page, '#intent-key')).not.toBe(key);

      // A burst of 15 shoppers on the 11 units left: 11 accepted, 4 sold out.
      await page.fill('#burst-n', '15');
      await page.click('#burst');
      await page.locator('#burst-outcomes tr[data-outcome]').first().waitFor({ timeout: 30_000 });
      const outcomes = Object.fromEntries(
        await page
          .locator('#burst-outcomes tr')
          .evaluateAll((rows) =>
            rows.map((r) => [r.querySelector('td')?.textContent ?? '', Number(r.querySelector('td.num')?.textContent)]),
          ),
      );
      const accepted = (outcomes['accepted (202)'] ?? 0) + (outcomes['accepted (201)'] ?? 0);
      expect({ accepted, soldOut: outcomes['409 SOLD_OUT'] }).toEqual({ accepted: 11, soldOut: 4 });

      // Every order of the page reaches AWAITING_PAYMENT (polled by the page) with a countdown.
      await waitFor(
        async () => (await ordersOnScreen(page)).filter((o) => o.status === 'AWAITING_PAYMENT').length === 12,
        {
          what: '12 orders awaiting payment on screen',
          timeoutMs: 30_000,
        },
      );
      for (const order of await ordersOnScreen(page)) expect(order.deadline).toMatch(/^(29|30):\d\d$/);
      // The page long-polls open orders (a few at a time, GET ?waitForChange=) instead of re-reading them all.
      await waitFor(
        async () => /^flash_order_status_waiters [1-9]/m.test((await httpRequest(api.url, 'GET', '/metrics')).body),
        {
          what: 'the page to hold long-polls',
          timeoutMs: 10_000,
        },
      );

      // Pay one order and cancel another through the page.
      const [toPay, toCancel] = (await ordersOnScreen(page)).filter((o) => o.user !== buyer);
      await page.click(`#orders tr[data-order-no="${toPay!.orderNo}"] button.pay`);
      await page.click(`#orders tr[data-order-no="${toCancel!.orderNo}"] button.cancel`);
      await page
        .locator(`#orders tr[data-order-no="${toPay!.orderNo}"][data-status="PAID"]`)
        .waitFor({ timeout: 20_000 });
      await page
        .locator(`#orders tr[data-order-no="${toCancel!.orderNo}"][data-status="CANCELLED"]`)
        .waitFor({ timeout: 20_000 });

      // Quiet: the figures on screen are the API's (public sale figures and admin stats).
      const expected = { available: 1, reserved: 10, sold: 1 };
      const shown = await waitFor(
        async () => {
          const sale = await getJson(app, `/api/sales/${sku}`);
          const stats = await getJson(app, `/api/admin/sales/${sku}/stats`, ADMIN);
          const screen = {
            stock: Number(await text(page, '#stock-total')),
            available: Number(await text(page, '#stock-available')),
            reserved: Number(await text(page, '#stock-reserved')),
            sold: Number(await text(page, '#stock-sold')),
            orders: Object.fromEntries(
              await Promise.all(STORED_ORDER_STATUSES.map(async (s) => [s, Number(await text(page, `#count-${s}`))])),
            ),
            units: Object.fromEntries(
              await Promise.all(STORED_ORDER_STATUSES.map(async (s) => [s, Number(await text(page, `#units-${s}`))])),
            ),
            runningWorkflows: Number(await text(page, '#running-workflows')),
            payments: {
              applied: Number(await text(page, '#payments-applied')),
              refundsWaiting: Number(await text(page, '#refunds-waiting')),
              refunded: Number(await text(page, '#refunds-done')),
              refundFailed: Number(await text(page, '#refunds-failed')),
            },
            drift: {
              available: Number(await text(page, '#drift-available')),
              reserved: Number(await text(page, '#drift-reserved')),
              sold: Number(await text(page, '#drift-sold')),
            },
          };
          const fromApi = {
            stock: sale.stock,
            available: sale.available,
            reserved: sale.reserved,
            sold: sale.sold,
            orders: stats.mysql.orders,
            units: stats.mysql.units,
            runningWorkflows: stats.runningWorkflows,
            payments: {
              applied: stats.payments.APPLIED,
              refundsWaiting: stats.payments.REFUND_REQUIRED + stats.payments.REFUND_REQUESTED,
              refunded: stats.payments.REFUNDED,
              refundFailed: stats.payments.REFUND_FAILED,
            },
            drift: stats.drift,
          };
          const quiet =
            sale.available === expected.available &&
            sale.reserved === expected.reserved &&
            stats.runningWorkflows === 10;
          return quiet && JSON.stringify(screen) === JSON.stringify(fromApi) && screen;
        },
        { what: 'the dashboard to show the API figures of a quiet sale', timeoutMs: 20_000, intervalMs: 250 },
      );
      expect(shown).toEqual({
        stock: 12,
        ...expected,
        orders: { AWAITING_PAYMENT: 10, PAID: 1, CANCELLED: 1, FAILED: 0, DISPUTED: 0, REFUNDED: 0 },
        units: { AWAITING_PAYMENT: 10, PAID: 1, CANCELLED: 1, FAILED: 0, DISPUTED: 0, REFUNDED: 0 },
        runningWorkflows: 10,
        // One order paid through the dev payment (the generic webhook): nothing to refund.
        payments: { applied: 1, refundsWaiting: 0, refunded: 0, refundFailed: 0 },
        drift: { available: 0, reserved: 0, sold: 0 },
      });
      // The page's own counters: 12 new orders, 4 sold-out answers.
      expect({ accepted: await text(page, '#total-accepted'), soldOut: await text(page, '#total-sold-out') }).toEqual({
        accepted: '12',
        soldOut: '4',
      });

      // The page's orders are the sale's orders, each linked to its workflow in the Web UI.
      const onScreen = await ordersOnScreen(page);
      const listed = await getJson(app, `/api/admin/orders?sku=${sku}&limit=200`, ADMIN);
      expect(new Set(onScreen.map((o) => o.orderNo))).toEqual(
        new Set(listed.items.map((o: { orderNo: string }) => o.orderNo)),
      );
      for (const order of onScreen)
        expect(order.href).toBe(`${WEB_UI}/namespaces/${config.temporal.namespace}/workflows/order-${order.orderNo}`);

      // Close the sale through the page (after its confirmation): the next Buy is refused.
      page.once('dialog', (dialog) => void dialog.accept());
      await page.click('#close-sale');
      await page.locator('#sale-info', { hasText: 'closed at' }).waitFor({ timeout: 10_000 });
      expect(Date.parse((await getJson(app, `/api/sales/${sku}`)).endsAt)).toBeLessThanOrEqual(Date.now());
      await page.fill('#buyer', `late-${sku}`);
      await page.click('#buy');
      await page.locator('#log', { hasText: `buy late-${sku} → 409 SALE_NOT_ACTIVE` }).waitFor({ timeout: 10_000 });

      const screenshot = join(shots, 'dashboard.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      console.log(`[dashboard] screenshot: ${screenshot} (test took ${Date.now() - started} ms)`);

      expectInvariants(
        await saleReport(stores, redis, sku, { perUserLimit: 2, acceptedOrderNos: onScreen.map((o) => o.orderNo) }),
      );
    },
  );
  it(
    'opens /?sku=<sale> and charts a burst of checkouts as it happens: stock, checkouts per second by outcome, orders by state, p99',
    { timeout: 120_000 },
    async ({ app, browser }) => {
      const { stores, redis, api } = app;
      const sku = uniqueSku('HIST');
      const stock = 40;
      const created = await httpRequest(api.url, 'POST', '/api/sales', {
        token: ADMIN,
        json: { sku, name: 'History sale', priceCents: 990, stock, perUserLimit: 1 },
      });
      expect(created.status).toBe(201);

      const view = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
      view.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
      // The page must load nothing from elsewhere (no CDN: the machine may be offline).
      const elsewhere: string[] = [];
      view.on('request', (request) => {
        if (!request.url().startsWith(`${api.url}/`)) elsewhere.push(request.url());
      });
      try {
        await view.goto(`${api.url}/?sku=${sku}`);
        await view.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
        await view.locator('#watching', { hasText: `watching ${sku}` }).waitFor();
        // Not the dev default, so not prefilled: the orders chart reads the admin stats.
        await view.fill('#admin-token', ADMIN);
        await view.dispatchEvent('#admin-token', 'change');
        // Before the burst: points from every source, the per-process rates started (two scrapes).
        await waitFor(
          async () => {
            const charts = await chartData(view);
            return (
              last(charts.orders?.AWAITING_PAYMENT) === 0 &&
              last(charts.rates?.accepted) === 0 &&
              last(charts.stock?.available) === stock
            );
          },
          { what: 'the charts to start before the burst', timeoutMs: 20_000, intervalMs: 200 },
        );

        // The burst: waves of 12 new shoppers at once, each with the previous wave's first shopper
        // again (over the limit of 1), a wave per point of the charts so that they see the burst over
        // several seconds, until the charts show what it did. The screenshot is taken during a wave.
        const answers = new Map<string, number>();
        const checkout = async (userId: string) => {
          const reply = await httpRequest(api.url, 'POST', '/api/checkout', {
            token: await app.auth.issue(userId),
            headers: { 'idempotency-key': randomUUID() },
            json: { sku, quantity: 1 },
          });
          const body = reply.body as { error?: { code: string } };
          const outcome =
            reply.status === 201 || reply.status === 202 ? 'accepted' : `${reply.status} ${body.error?.code}`;
          answers.set(outcome, (answers.get(outcome) ?? 0) + 1);
        };
        let previous: string | undefined;
        const wave = (n: number) => {
          const shoppers = Array.from({ length: 12 }, (_, i) => `hist-${n}-${i}-${sku}`);
          const again = previous;
          previous = shoppers[0];
          return Promise.all([...shoppers, ...(again ? [again] : [])].map(checkout));
        };
        const screenshot = join(shots, 'dashboard-burst.png');
        let shown: ReturnType<typeof burstShown> | undefined;
        for (let n = 0; !shown; n++) {
          const sending = wave(n);
          const charts = burstShown(await chartData(view), stock);
          if (Object.values(charts).every(Boolean)) {
            await view.screenshot({ path: screenshot, fullPage: true });
            shown = charts;
          }
          await sending;
          if (shown) break;
          if (n >= 40)
            throw new Error(`after 40 waves the charts still do not show the burst: ${JSON.stringify(charts)}`);
          const points = await samplesOf(view);
          await waitFor(async () => (await samplesOf(view)) > points, {
            what: 'the next point of the charts',
            timeoutMs: 10_000,
            intervalMs: 100,
          });
        }
        console.log(`[dashboard] screenshot during the burst: ${screenshot}`);

        // Every unit sold once; the rest sold out or over the limit.
        expect(answers.get('accepted')).toBe(stock);
        expect([...answers.keys()].filter((outcome) => outcome !== 'accepted').sort()).toEqual([
          '409 PURCHASE_LIMIT_EXCEEDED',
          '409 SOLD_OUT',
        ]);
        // Once the workflows have written every order, the charts' last points are the sale's figures.
        await waitFor(
          async () => {
            const charts = await chartData(view);
            return (
              last(charts.stock?.available) === 0 &&
              last(charts.stock?.reserved) === stock &&
              last(charts.stock?.sold) === 0 &&
              last(charts.orders?.AWAITING_PAYMENT) === stock &&
              last(charts.orders?.['PENDING (units, no row yet)']) === 0
            );
          },
          {
            what: 'the charts to end at the sold-out sale with every order written',
            timeoutMs: 60_000,
            intervalMs: 250,
          },
        );
        const charts = await chartData(view);
        expect(first(charts.stock?.available)).toBe(stock);
        expect(first(charts.stock?.reserved)).toBe(0);
        expect(first(charts.orders?.AWAITING_PAYMENT)).toBe(0);
        expect(await view.locator('#rates-source').innerText()).toContain(
          'per API process (GET /metrics), all sales; summed over 1 process',
        );
        expect(elsewhere).toEqual([]);
        expectInvariants(await saleReport(stores, redis, sku, { perUserLimit: 1 }));
      } finally {
        await view.close();
      }
    },
  );

  it(
    "shows a sale's waiting line: its length, admissions set and measured, time to sold out and ETA error; pauses, resumes and sets its rate",
    { timeout: 90_000 },
    async ({ app, browser }) => {
      const { stores, redis, api } = app;
      const view = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
      const pageErrors: string[] = [];
      view.on('pageerror', (err) => pageErrors.push(err.message));
      try {
        await view.goto(`${api.url}/`);
        await view.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
        await view.fill('#admin-token', ADMIN);
        await view.dispatchEvent('#admin-token', 'change');

        // A sale with a line, created through the page: 20 units, one per shopper, one admission a second.
        const sku = uniqueSku('LINE');
        const stock = 20;
        await view.click('#create-box summary');
        await view.fill('#new-sku', sku);
        await view.fill('#new-stock', String(stock));
        await view.fill('#new-limit', '1');
        await view.check('#new-line');
        await view.fill('#new-line-rate', '1');
        await view.click('#create-sale');
        await view.locator('#watching', { hasText: `watching ${sku}` }).waitFor();
        const panel = view.locator('#line-panel');
        await view.locator('#line-panel[data-state="OPEN"]').waitFor({ timeout: 10_000 });
        expect(await text(view, '#line-rate')).toBe('1');

        // The operator's buttons, each through POST /api/admin/sales/:sku/line: pause, a rate of 4 a second, resume.
        await view.click('#line-pause');
        await view.locator('#line-panel[data-state="PAUSED"]').waitFor({ timeout: 10_000 });
        expect((await getJson(app, `/api/sales/${sku}/line`)).paused).toBe(true);
        expect(await text(view, '#line-paused')).toContain('paused');
        expect(await view.locator('#line-pause').isDisabled()).toBe(true);
        await view.fill('#line-rate-input', '4');
        await view.click('#line-set-rate');
        await view.locator('#line-rate', { hasText: /^4$/ }).waitFor({ timeout: 10_000 });
        expect((await getJson(app, `/api/sales/${sku}/line`)).admissionsPerSecond).toBe(4);
        await view.click('#line-resume');
        await view.locator('#line-panel[data-state="OPEN"]').waitFor({ timeout: 10_000 });
        expect((await getJson(app, `/api/sales/${sku}/line`)).paused).toBe(false);

        // 30 shoppers join; each reads their place when Retry-After says, and checks out with the admission once
        // admitted. The units run out after 20.
        const shoppers = await Promise.all(
          Array.from({ length: 30 }, async (_, i) => {
            const userId = `line-${i}-${sku}`;
            return { userId, token: await app.auth.issue(userId) };
          }),
        );
        for (const { token } of shoppers) expect((await line(app, 'POST', sku, token)).status).toBe(200);
        const measured: number[] = [];
        let longest = 0;
        const outcomes = await Promise.all([
          ...shoppers.map((shopper) => waitInLine(app, sku, shopper)),
          waitFor(
            async () => {
              const rate = Number(await text(view, '#line-rate-measured'));
              if (Number.isFinite(rate)) measured.push(rate);
              longest = Math.max(longest, Number(await text(view, '#line-length')));
              return (await panel.getAttribute('data-state')) === 'SOLD_OUT';
            },
            { what: 'the panel to show the line sold out', timeoutMs: 45_000, intervalMs: 200 },
          ),
        ]);
        expect(longest).toBe(30);
        const ended = outcomes.slice(0, shoppers.length) as string[];
        expect(ended.filter((o) => o === 'BOUGHT')).toHaveLength(stock);
        expect(ended.filter((o) => o === 'SOLD_OUT')).toHaveLength(shoppers.length - stock);
        // Measured from successive readings of `admitted` while the line admitted at 4 a second.
        expect(Math.max(...measured), JSON.stringify(measured)).toBeGreaterThanOrEqual(2);
        expect(Math.max(...measured), JSON.stringify(measured)).toBeLessThanOrEqual(8);

        // Once quiet, the panel's figures are the line's as the API answers them.
        const shown = await waitFor(
          async () => {
            const lineNow = await getJson(app, `/api/sales/${sku}/line`);
            const sale = await getJson(app, `/api/sales/${sku}`);
            const screen = {
              state: await text(view, '#line-state'),
              length: Number(await text(view, '#line-length')),
              served: Number(await text(view, '#line-served')),
              rate: Number(await text(view, '#line-rate')),
              admitted: Number(await text(view, '#line-admitted')),
              consumed: Number(await text(view, '#line-consumed')),
              givenBack: Number(await text(view, '#line-given-back')),
              soldOutAfter: await text(view, '#line-sold-out-after'),
            };
            const fromApi = {
              state: lineNow.state,
              length: lineNow.length,
              served: lineNow.servedThrough,
              rate: lineNow.admissionsPerSecond,
              admitted: lineNow.admitted,
              consumed: lineNow.consumed,
              givenBack: lineNow.givenBack,
              // The sale has no startsAt: it started when it was created.
              soldOutAfter: `${((Date.parse(lineNow.soldOutAt) - Date.parse(sale.createdAt)) / 1000).toFixed(1)} s`,
            };
            return JSON.stringify(screen) === JSON.stringify(fromApi) && screen;
          },
          { what: "the panel to show the API's figures of the sold-out line", timeoutMs: 15_000, intervalMs: 250 },
        );
        expect(shown).toMatchObject({ state: 'SOLD_OUT', length: 30, rate: 4, consumed: stock, givenBack: 0 });
        expect(await text(view, '#line-sold-out-from')).toContain('no startsAt');

        // The ETA's error: every admitted shopper had been told a wait, so the API's histogram holds 20 or more
        // places, and the panel's p50 and p90 are its quantiles.
        const metrics = (await httpRequest(api.url, 'GET', '/metrics')).body;
        const count = Number(
          new RegExp(`^flash_line_eta_error_seconds_count\\{sku="${sku}"\\} (\\S+)$`, 'm').exec(metrics)?.[1],
        );
        expect(count).toBeGreaterThanOrEqual(stock);
        const buckets = parseEtaError(metrics, Date.now(), sku).buckets;
        await waitFor(
          async () => (await view.locator('#line-eta-count').getAttribute('data-count')) === String(count),
          {
            what: 'the panel to show the ETA error of every admitted place',
            timeoutMs: 10_000,
          },
        );
        expect(await text(view, '#line-eta-p50')).toBe(`${quantile(0.5, buckets)!.toFixed(1)} s`);
        expect(await text(view, '#line-eta-p90')).toBe(`${quantile(0.9, buckets)!.toFixed(1)} s`);
        const screenshot = join(shots, 'dashboard-line.png');
        await view.screenshot({ path: screenshot, fullPage: true });
        console.log(`[dashboard] line panel screenshot: ${screenshot}`);

        // A sale without a line has no panel.
        const { sku: plain } = await putOnSale(stores, redis, { stock: 3 });
        await view.fill('#sku-input', plain);
        await view.click('#watch');
        await view.locator('#watching', { hasText: `watching ${plain}` }).waitFor();
        await waitFor(async () => panel.isHidden(), { what: 'the line panel to hide', timeoutMs: 10_000 });
        expect(pageErrors).toEqual([]);
        expectInvariants(await saleReport(stores, redis, sku, { perUserLimit: 1 }));
      } finally {
        await view.close();
      }
    },
  );

  it(
    "shows the workers' cache as the API relays it and the payment Signal's p50 and p99; a worker that stops drops off",
    { timeout: 120_000 },
    async ({ app, browser }) => {
      const { config, stores, redis, api } = app;
      // Orders awaiting payment, paid one at a time below: each payment Signal is a workflow task of a workflow the
      // worker holds (a cache hit) and a Signal sent on /metrics.
      const orderCount = 40;
      const { sku } = await putOnSale(stores, redis, { stock: orderCount, perUserLimit: 1 });
      // One after another: a burst's answers are the other tests' subject, these orders only need to exist (a 503,
      // Redis slow on a loaded machine, is retried with the same Idempotency-Key, as a client does).
      const orders: Array<{ orderNo: string; token: string }> = [];
      for (let i = 0; i < orderCount; i++) {
        const token = await app.auth.issue(`wp-${i}-${sku}`);
        const key = randomUUID();
        const orderNo = await waitFor(
          async () => {
            const reply = await httpRequest(api.url, 'POST', '/api/checkout', {
              token,
              headers: { 'idempotency-key': key },
              json: { sku, quantity: 1 },
            });
            const body = reply.body as { orderNo: string };
            if (reply.status === 503) return false;
            expect(reply.status, JSON.stringify(body)).toBe(202);
            return body.orderNo;
          },
          { what: `order ${i} of ${sku} answered 202`, timeoutMs: 15_000, intervalMs: 200 },
        );
        orders.push({ orderNo, token });
      }
      await waitFor(
        async () =>
          (await getJson(app, `/api/admin/sales/${sku}/stats`, ADMIN)).mysql.orders.AWAITING_PAYMENT === orderCount,
        { what: `${orderCount} orders awaiting payment`, timeoutMs: 60_000, intervalMs: 250 },
      );
      let paid = 0;
      const payNext = async () => {
        const order = orders[paid++];
        if (!order) return;
        const reply = await httpRequest(api.url, 'POST', '/api/dev/simulate-payment', {
          token: order.token,
          json: { orderNo: order.orderNo },
        });
        expect(reply.status, order.orderNo).toBe(200);
        expect((reply.body as { outcome: string }).outcome).toBe('APPLIED');
      };
      const metricsNow = async () => String((await httpRequest(api.url, 'GET', '/metrics')).body);
      // The page counts the payment Signals from its first scrape on: those before it are these.
      const before = parsePaymentSignals(await metricsNow(), 0);

      const view = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
      const pageErrors: string[] = [];
      view.on('pageerror', (err) => pageErrors.push(err.message));
      try {
        await view.goto(`${api.url}/`);
        await view.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
        expect(await text(view, '#worker-note')).toContain('need the admin token');
        await view.fill('#admin-token', ADMIN);
        await view.dispatchEvent('#admin-token', 'change');
        // This file's worker, by host and pid, as it publishes itself every 5 s.
        const me = `${hostname()}:${process.pid}`;
        await view.locator(`#worker-rows tr[data-worker="${me}"]`).waitFor({ timeout: 20_000 });

        // One payment a round, so that each 5 s interval has workflow tasks, until the panel shows what
        // GET /api/admin/workers answers, with a hit rate.
        const percent = (value: number | null) => (value === null ? '—' : `${(value * 100).toFixed(1)} %`);
        const perSecond = (value: number | null) => (value === null ? '—' : value.toFixed(1));
        let seen: unknown;
        const shown = await waitFor(
          async () => {
            await payNext();
            const { workers } = (await getJson(app, '/api/admin/workers', ADMIN)) as { workers: WorkerCacheFigures[] };
            const totals = workerCacheTotals(workers);
            const screen = {
              workers: await text(view, '#worker-count'),
              cached: await text(view, '#worker-cached'),
              maxCached: await text(view, '#worker-max-cached'),
              hitRate: await text(view, '#worker-hit-rate'),
              evictions: await text(view, '#worker-evictions'),
            };
            const fromApi = {
              workers: String(totals.workers),
              cached: String(totals.cached),
              maxCached: String(totals.maxCached),
              hitRate: percent(totals.hitRate),
              evictions: perSecond(totals.evictionsPerSecond),
            };
            seen = { screen, fromApi, workers, paid };
            return totals.hitRate !== null && JSON.stringify(screen) === JSON.stringify(fromApi) && { screen, workers };
          },
          { what: "the Worker panel to show the API's figures with a hit rate", timeoutMs: 60_000, intervalMs: 500 },
        ).catch((err: unknown) => {
          throw new Error(`${String(err)}; last seen: ${JSON.stringify(seen)}`);
        });
        const mine = shown.workers.find((figures) => figures.worker === me);
        expect(mine?.interval?.hits).toBeGreaterThan(0);
        expect(shown.screen.workers).toBe('1');
        expect(Number(shown.screen.maxCached)).toBe(mine?.maxCached);
        expect(Number(shown.screen.cached)).toBe(mine?.cached);

        // The panel's p50 and p99 are the quantiles of the Signals sent since the page opened, as /metrics has them.
        const ms = (seconds: number | null) => (seconds === null ? '—' : `${(seconds * 1_000).toFixed(1)} ms`);
        const latency = await waitFor(
          async () => {
            const { signalled } = parsePaymentSignals(await metricsNow(), 0).buckets;
            const sent = new Map(
              [...signalled].map(([le, count]) => [le, count - (before.buckets.signalled.get(le) ?? 0)]),
            );
            const expected = {
              signalled: String(sent.get(Infinity) ?? 0),
              p50: ms(quantile(0.5, sent)),
              p99: ms(quantile(0.99, sent)),
            };
            const screen = {
              signalled: (await view.locator('#payment-signal-counts').getAttribute('data-signalled')) ?? '',
              p50: await text(view, '#payment-signal-p50'),
              p99: await text(view, '#payment-signal-p99'),
            };
            return Number(expected.signalled) >= paid && JSON.stringify(screen) === JSON.stringify(expected) && screen;
          },
          { what: "the panel to show the payment Signals' quantiles", timeoutMs: 20_000, intervalMs: 250 },
        );
        expect(latency.p50).toMatch(/^\d+\.\d ms$/);
        expect(Number.parseFloat(latency.p50)).toBeLessThanOrEqual(Number.parseFloat(latency.p99));
        expect(await text(view, '#payment-signal-counts')).toMatch(/^\(\d+ signalled, \d+ timed out/);

        // Another worker on the board, publishing as a worker does: listed beside this one and summed; once it stops
        // publishing it is absent by its entry's lifetime, and the panel goes on with the one left.
        const other: WorkerCacheFigures = {
          worker: 'another-host:4242',
          at: new Date().toISOString(),
          cached: 7,
          maxCached: 10,
          interval: { seconds: 4, hits: 9, misses: 1, forcedEvictions: 6 },
        };
        await new WorkerFiguresBoard(redis, config.temporal.taskQueue).put(other, 8_000);
        const row = view.locator(`#worker-rows tr[data-worker="${other.worker}"]`);
        await row.waitFor({ timeout: 10_000 });
        expect(await row.locator('td').allInnerTexts()).toEqual([other.worker, '7 / 10', '90.0 %', '1.5']);
        await view.locator('#worker-count', { hasText: /^2$/ }).waitFor({ timeout: 10_000 });
        await row.waitFor({ state: 'detached', timeout: 20_000 });
        await view.locator('#worker-count', { hasText: /^1$/ }).waitFor({ timeout: 10_000 });
        expect(await view.locator(`#worker-rows tr[data-worker="${me}"]`).count()).toBe(1);
        expect(await text(view, '#worker-note')).toMatch(/^hit rate and evictions over/);

        const screenshot = join(shots, 'dashboard-worker.png');
        await view.screenshot({ path: screenshot, fullPage: true });
        console.log(`[dashboard] worker panel screenshot: ${screenshot}`);
        expect(pageErrors).toEqual([]);
      } finally {
        await view.close();
      }
    },
  );

  it("shows the order events' deliveries as the admin route answers them: sent, failing, given up, the oldest owed, disabled endpoints", async ({
    app,
    browser,
    endpoints,
  }) => {
    const { stores, redis, api } = app;
    // An endpoint disabled at once (no delivery workflow runs for it), owed three events: one tried and failing, one
    // given up, one delivered; as the delivery's activity records them.
    const endpointId = `ep_dashboard_${randomUUID().slice(0, 8)}`;
    const url = `http://127.0.0.1:9/${endpointId}`;
    await stores.webhooks.createEndpoint({
      endpointId,
      url,
      eventTypes: [],
      description: null,
      secretBox: Buffer.from('not a sealed secret'),
    });
    endpoints.push(endpointId);
    await stores.webhooks.updateEndpoint(endpointId, { enabled: false });
    const sale = await putOnSale(stores, redis, { stock: 3 });
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const orderNo = newOrderNo();
      await stores.orders.insertAwaitingOrder({
        orderNo,
        sku: sale.sku,
        userId: `deliveries-${i}-${orderNo.slice(-6)}`,
        quantity: 1,
        unitPriceCents: sale.priceCents,
        paymentDeadline: new Date(Date.now() + 30 * 60_000),
        createdAt: new Date(),
      });
      await closeRow(stores, orderNo, { kind: 'CANCEL', reason: 'USER_CANCELLED' });
      const [event] = await stores.events.eventsOf(orderNo);
      expect(await stores.webhooks.resend(endpointId, event!.eventId, 3_600_000)).toBe(true);
      seqs.push((await stores.webhooks.deliveryOf(endpointId, event!.eventId))!.seq);
    }
    const attempt = { outcome: 'failed', httpStatus: 500, error: 'HTTP 500', durationMs: 12 } as const;
    await stores.webhooks.recordAttempt(endpointId, seqs[0]!, {
      ...attempt,
      next: { status: 'PENDING', inMs: 60_000 },
    });
    await stores.webhooks.recordAttempt(endpointId, seqs[1]!, { ...attempt, next: { status: 'GAVE_UP' } });
    await stores.webhooks.recordAttempt(endpointId, seqs[2]!, {
      ...attempt,
      outcome: 'delivered',
      httpStatus: 204,
      error: null,
      next: { status: 'DELIVERED' },
    });
    // Owed for 90 s, by MySQL's clock.
    await app.pool.query(
      'UPDATE webhook_deliveries SET queued_at = NOW(3) - INTERVAL 90 SECOND WHERE endpoint_id = ? AND event_seq = ?',
      [endpointId, seqs[0]],
    );

    const view = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
    const pageErrors: string[] = [];
    view.on('pageerror', (err) => pageErrors.push(err.message));
    try {
      await view.goto(`${api.url}/`);
      await view.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
      expect(await text(view, '#deliveries-note')).toContain('need the admin token');
      await view.fill('#admin-token', ADMIN);
      await view.dispatchEvent('#admin-token', 'change');
      const row = view.locator(`#endpoint-rows tr[data-endpoint="${endpointId}"]`);
      await row.waitFor({ timeout: 10_000 });
      expect(await row.locator('td').allInnerTexts()).toEqual([`${url} (disabled)`, '1', '1 / 1', '1']);

      // The panel's totals are the route's, summed over every endpoint (the shared database has other files' too).
      let seen: unknown;
      await waitFor(
        async () => {
          const { items } = (await getJson(app, '/api/admin/webhook-endpoints', ADMIN)) as { items: EndpointReport[] };
          const totals = deliveryTotals(items, Date.now());
          const fromApi = {
            sent: String(totals.sent),
            failing: String(totals.failing),
            pending: String(totals.pending),
            gaveUp: String(totals.gaveUp),
            disabled: String(totals.disabled),
            endpoints: String(totals.endpoints),
          };
          const screen = {
            sent: await text(view, '#deliveries-sent'),
            failing: await text(view, '#deliveries-failing'),
            pending: await text(view, '#deliveries-pending'),
            gaveUp: await text(view, '#deliveries-given-up'),
            disabled: await text(view, '#endpoints-disabled'),
            endpoints: await text(view, '#endpoints-count'),
          };
          seen = { screen, fromApi };
          return JSON.stringify(screen) === JSON.stringify(fromApi);
        },
        { what: "the Order events panel to show the route's totals", timeoutMs: 20_000, intervalMs: 250 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; last seen: ${JSON.stringify(seen)}`);
      });
      // At least this endpoint's: the oldest owed is no younger than its 90 s.
      expect(Number(await text(view, '#endpoints-disabled'))).toBeGreaterThanOrEqual(1);
      expect(Number(await text(view, '#deliveries-given-up'))).toBeGreaterThanOrEqual(1);
      const oldestShown = await text(view, '#deliveries-oldest');
      expect(oldestShown).not.toBe(formatAge(null));
      expect(oldestShown).toMatch(/^(\d+ (s|min)|\d+\.\d h)$/);
      if (oldestShown.endsWith(' s')) expect(Number.parseInt(oldestShown, 10)).toBeGreaterThanOrEqual(90);
      expect(await text(view, '#deliveries-note')).toMatch(/^deliveries kept for EVENTS_RETENTION/);

      const screenshot = join(shots, 'dashboard-deliveries.png');
      await view.screenshot({ path: screenshot, fullPage: true });
      console.log(`[dashboard] order events panel screenshot: ${screenshot}`);
      expect(pageErrors).toEqual([]);
    } finally {
      await view.close();
    }
  });

  it('names an unknown /?sku= as such, then opens the sale typed in', async ({ app, browser }) => {
    const { stores, redis, api } = app;
    const view = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      const unknown = uniqueSku('NOPE');
      await view.goto(`${api.url}/?sku=${unknown}`);
      await view.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
      expect(await view.locator('#notice').innerText()).toContain(`No sale has the SKU “${unknown}”`);
      expect(await view.locator('#watching').innerText()).toBe('no sale picked');
      expect(await samplesOf(view)).toBe(0);

      const { sku } = await putOnSale(stores, redis, { stock: 3 });
      await view.fill('#sku-input', sku);
      await view.click('#watch');
      await view.locator('#watching', { hasText: `watching ${sku}` }).waitFor();
      expect(await view.locator('#notice').isHidden()).toBe(true);
      // The address names the sale watched, for a reload or a link.
      expect(new URL(view.url()).searchParams.get('sku')).toBe(sku);
      await waitFor(async () => last((await chartData(view)).stock?.available) === 3, {
        what: 'a point of the sale on the stock chart',
        timeoutMs: 10_000,
      });
    } finally {
      await view.close();
    }
  });
});
