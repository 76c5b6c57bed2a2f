/**
 * The live sale dashboard at / in a real headless Chromium (Debian's, driven by playwright-core)
 * against the real API and worker on the test stack, with dev login on: a sale is created through
 * the page, a double click on Buy buys once, a burst of shoppers sells the rest out, one order is
 * paid and one cancelled through the page, and once quiet the figures on screen are the API's.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisClient } from '../src/infra/redis.js';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi } from '../src/api/server.js';
import type { AppConfig } from '../src/config/index.js';
import { type Store } from '../src/db/store.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { waitFor } from '../stack/wait-for.js';
import { expectInvariants, saleReport, uniqueSku } from './helpers/fixtures.js';
import { startTestApp, type TestApp } from './helpers/app.js';

/** Debian's chromium package; scripts/install-tools.sh --test-server installs it. */
const CHROMIUM = '/usr/bin/chromium';
const ADMIN = 'dashboard-admin-token';
/** Any Web UI address will do: the test checks that the page's links point at it. */
const WEB_UI = 'http://127.0.0.1:18233';

let app: TestApp;
let config: AppConfig;
let api: RunningApi;
let store: Store;
let redis: RedisClient;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: run 'bash scripts/install-tools.sh --test-server' (npm test does; it installs Debian's chromium)`,
    );
  }
  app = await startTestApp('dashboard', {
    AUTH_DEV_LOGIN: 'true',
    ADMIN_TOKEN: ADMIN,
    TEMPORAL_UI_URL: WEB_UI,
    LOG_LEVEL: 'warn',
    // The page's burst logs N shoppers in from one browser, so from one IP; other test files log in
    // from 127.0.0.1 at the same time. Rate limits have their own suite (test/rate-limit.test.ts).
    RATE_LIMIT_LOGIN: 'off',
  });
  ({ config, store, redis, api } = app);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

async function getJson(path: string, token?: string): Promise<any> {
  const response = await fetch(`${api.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect(response.status, path).toBe(200);
  return response.json();
}

const text = (selector: string) => page.locator(selector).innerText();

/** The page's orders as shown: order number, shopper, status, link. */
async function ordersOnScreen(): Promise<Array<{ orderNo: string; user: string; status: string; href: string | null; deadline: string }>> {
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

describe('the live sale dashboard in headless Chromium', () => {
  it('creates a sale, buys once on a double click, bursts, pays and cancels, shows what the API says, and closes the sale', { timeout: 90_000 }, async () => {
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
    expect(await getJson(`/api/sales/${sku}`)).toMatchObject({ sku, stock: 12, available: 12, perUserLimit: 2 });
    await page.locator('#stock-available', { hasText: '12' }).waitFor();
    // The new sale is in the picker (GET /api/admin/sales).
    expect(await page.locator(`#sale-picker option[value="${sku}"]`).count()).toBe(1);

    // A double click on Buy is one purchase intent: one Idempotency-Key, one order, although the
    // limit (2 per shopper) would allow a second one.
    const buyer = `dbl-${sku}`;
    await page.fill('#buyer', buyer);
    const key = await text('#intent-key');
    await page.dblclick('#buy');
    await waitFor(async () => (await page.locator('#log').innerText()).split(`buy ${buyer} → `).length - 1 >= 2, {
      what: 'both clicks answered',
      timeoutMs: 15_000,
    });
    expect(await new RedisInventory(redis).userHolding(sku, buyer)).toBe(1);
    const mine = (await ordersOnScreen()).filter((o) => o.user === buyer);
    expect(mine).toHaveLength(1);
    // The answer ended the intent: the next purchase gets a new key.
    expect(await text('#intent-key')).not.toBe(key);

    // A burst of 15 shoppers on the 11 units left: 11 accepted, 4 sold out.
    await page.fill('#burst-n', '15');
    await page.click('#burst');
    await page.locator('#burst-outcomes tr[data-outcome]').first().waitFor({ timeout: 30_000 });
    const outcomes = Object.fromEntries(
      await page
        .locator('#burst-outcomes tr')
        .evaluateAll((rows) => rows.map((r) => [r.querySelector('td')?.textContent ?? '', Number(r.querySelector('td.num')?.textContent)])),
    );
    const accepted = (outcomes['accepted (202)'] ?? 0) + (outcomes['accepted (201)'] ?? 0);
    expect({ accepted, soldOut: outcomes['409 SOLD_OUT'] }).toEqual({ accepted: 11, soldOut: 4 });

    // Every order of the page reaches AWAITING_PAYMENT (polled by the page) with a countdown.
    await waitFor(async () => (await ordersOnScreen()).filter((o) => o.status === 'AWAITING_PAYMENT').length === 12, {
      what: '12 orders awaiting payment on screen',
      timeoutMs: 30_000,
    });
    for (const order of await ordersOnScreen()) expect(order.deadline).toMatch(/^(29|30):\d\d$/);
    // The page long-polls open orders (a few at a time, GET ?waitForChange=) instead of re-reading them all.
    await waitFor(async () => /^flash_order_status_waiters [1-9]/m.test(await (await fetch(`${api.url}/metrics`)).text()), {
      what: 'the page to hold long-polls',
      timeoutMs: 10_000,
    });

    // Pay one order and cancel another through the page.
    const [toPay, toCancel] = (await ordersOnScreen()).filter((o) => o.user !== buyer);
    await page.click(`#orders tr[data-order-no="${toPay!.orderNo}"] button.pay`);
    await page.click(`#orders tr[data-order-no="${toCancel!.orderNo}"] button.cancel`);
    await page.locator(`#orders tr[data-order-no="${toPay!.orderNo}"][data-status="PAID"]`).waitFor({ timeout: 20_000 });
    await page.locator(`#orders tr[data-order-no="${toCancel!.orderNo}"][data-status="CANCELLED"]`).waitFor({ timeout: 20_000 });

    // Quiet: the figures on screen are the API's (public sale figures and admin stats).
    const expected = { available: 1, reserved: 10, sold: 1 };
    const shown = await waitFor(
      async () => {
        const sale = await getJson(`/api/sales/${sku}`);
        const stats = await getJson(`/api/admin/sales/${sku}/stats`, ADMIN);
        const screen = {
          stock: Number(await text('#stock-total')),
          available: Number(await text('#stock-available')),
          reserved: Number(await text('#stock-reserved')),
          sold: Number(await text('#stock-sold')),
          orders: Object.fromEntries(
            await Promise.all(['AWAITING_PAYMENT', 'PAID', 'CANCELLED', 'FAILED'].map(async (s) => [s, Number(await text(`#count-${s}`))])),
          ),
          units: Object.fromEntries(
            await Promise.all(['AWAITING_PAYMENT', 'PAID', 'CANCELLED', 'FAILED'].map(async (s) => [s, Number(await text(`#units-${s}`))])),
          ),
          runningWorkflows: Number(await text('#running-workflows')),
          drift: {
            available: Number(await text('#drift-available')),
            reserved: Number(await text('#drift-reserved')),
            sold: Number(await text('#drift-sold')),
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
          drift: stats.drift,
        };
        const quiet = sale.available === expected.available && sale.reserved === expected.reserved && stats.runningWorkflows === 10;
        return quiet && JSON.stringify(screen) === JSON.stringify(fromApi) && screen;
      },
      { what: 'the dashboard to show the API figures of a quiet sale', timeoutMs: 20_000, intervalMs: 250 },
    );
    expect(shown).toEqual({
      stock: 12,
      ...expected,
      orders: { AWAITING_PAYMENT: 10, PAID: 1, CANCELLED: 1, FAILED: 0 },
      units: { AWAITING_PAYMENT: 10, PAID: 1, CANCELLED: 1, FAILED: 0 },
      runningWorkflows: 10,
      drift: { available: 0, reserved: 0, sold: 0 },
    });
    // The page's own counters: 12 new orders, 4 sold-out answers.
    expect({ accepted: await text('#total-accepted'), soldOut: await text('#total-sold-out') }).toEqual({ accepted: '12', soldOut: '4' });

    // The page's orders are the sale's orders, each linked to its workflow in the Web UI.
    const onScreen = await ordersOnScreen();
    const listed = await getJson(`/api/admin/orders?sku=${sku}&limit=200`, ADMIN);
    expect(new Set(onScreen.map((o) => o.orderNo))).toEqual(new Set(listed.items.map((o: { orderNo: string }) => o.orderNo)));
    for (const order of onScreen) expect(order.href).toBe(`${WEB_UI}/namespaces/${config.temporal.namespace}/workflows/order-${order.orderNo}`);

    // Close the sale through the page (after its confirmation): the next Buy is refused.
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('#close-sale');
    await page.locator('#sale-info', { hasText: 'closed at' }).waitFor({ timeout: 10_000 });
    expect(Date.parse((await getJson(`/api/sales/${sku}`)).endsAt)).toBeLessThanOrEqual(Date.now());
    await page.fill('#buyer', `late-${sku}`);
    await page.click('#buy');
    await page.locator('#log', { hasText: `buy late-${sku} → 409 SALE_NOT_ACTIVE` }).waitFor({ timeout: 10_000 });

    const shots = mkdtempSync(join(tmpdir(), 'dashboard-'));
    const screenshot = join(shots, 'dashboard.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`[dashboard] screenshot: ${screenshot} (test took ${Date.now() - started} ms)`);

    expectInvariants(await saleReport(store, redis, sku, { perUserLimit: 2, acceptedOrderNos: onScreen.map((o) => o.orderNo) }));
  });
});
