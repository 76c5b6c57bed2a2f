/**
 * The waiting line's demo page (/line-demo) in a real headless Chromium (Debian's, driven by playwright-core) against
 * the real API and worker on the test stack, with dev login on: a shopper joins a line with others ahead, the page
 * reads the place again when Retry-After says and shows the position, the people ahead and the wait counting down,
 * reaches ADMITTED, checks out with the admission and follows the order to PAID; a reload shows the same place. A sale
 * without a line is named as such.
 */
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/browser.js';
import { afterEach, describe, expect } from 'vitest';
import { waitFor } from '../stack/wait-for.js';
import { saleThroughApi, uniqueSku } from './helpers/fixtures.js';
import { httpRequest } from './helpers/http.js';
import type { TestApp } from './helpers/app.js';
import { appTest } from './helpers/stack-test.js';

const ADMIN = 'line-page-admin-token';

/** The pages' uncaught errors: none is expected. */
const pageErrors: string[] = [];

const it = appTest('line-page', {
  AUTH_DEV_LOGIN: 'true',
  ADMIN_TOKEN: ADMIN,
  LOG_LEVEL: 'warn',
  RATE_LIMIT_LOGIN: 'off',
}).extend('browser', { scope: 'file' }, async ({}, { onCleanup }) => {
  const browser = await launchChromium();
  onCleanup(() => browser.close());
  return browser;
});

afterEach(() => {
  expect(pageErrors.splice(0)).toEqual([]);
});

async function call(app: TestApp, method: string, path: string, init: { token?: string; body?: unknown } = {}) {
  const response = await httpRequest(app.api.url, method, path, {
    ...(init.token ? { token: init.token } : {}),
    ...(init.body === undefined ? {} : { json: init.body }),
  });
  return { status: response.status, json: response.body };
}

const createSale = (app: TestApp, sku: string, stock: number, line?: { admissionsPerSecond: number }) =>
  saleThroughApi(app.api.url, ADMIN, {
    sku,
    name: 'Line demo sale',
    priceCents: 1500,
    stock,
    ...(line ? { line } : {}),
  });

async function openPage(app: TestApp, browser: Browser, path: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${app.api.url}${path}`);
  await page.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
  return page;
}

interface Reading {
  atMs: number;
  state: string;
  position: number | null;
  ahead: number | null;
  etaMin: number | null;
  etaMax: number | null;
  etaEpoch: number;
  retryAfter: number | null;
}
const readingsOf = (page: Page) =>
  page.evaluate(() => (window as unknown as { lineDemo?: { reads: Reading[] } }).lineDemo?.reads ?? []);

describe('the waiting line demo page in headless Chromium', () => {
  it(
    "shows a shopper's place counting down at Retry-After, reaches ADMITTED, checks out with the admission and follows the order",
    { timeout: 120_000 },
    async ({ app, browser }) => {
      const sku = uniqueSku('LINEDEMO');
      // Two admissions a second and sixteen shoppers ahead: about eight seconds of wait to watch once the line runs.
      await createSale(app, sku, 30, { admissionsPerSecond: 2 });
      const control = (change: object) =>
        call(app, 'POST', `/api/admin/sales/${sku}/line`, { token: ADMIN, body: change }).then((r) => r.status);
      // Paused while everyone joins, so that the place and the people ahead do not depend on how fast this machine is.
      expect(await control({ paused: true })).toBe(200);
      const page = await openPage(app, browser, `/line-demo?sku=${sku}`);
      try {
        const shopper = `demo-${sku}`;
        expect(await page.inputValue('#sku')).toBe(sku);
        await page.fill('#user-id', shopper);

        const others = await Promise.all(Array.from({ length: 16 }, (_, i) => app.auth.issue(`ahead-${i}-${sku}`)));
        for (const token of others)
          expect((await call(app, 'POST', `/api/sales/${sku}/line`, { token })).status).toBe(200);
        await page.click('#join');
        await page
          .locator('#place[data-state="PAUSED"][data-position="17"][data-ahead="16"]')
          .waitFor({ timeout: 10_000 });
        expect(await page.locator('#place-message').innerText()).toContain('paused');
        // A paused line is asked again in 20 s (its longest Retry-After).
        expect((await readingsOf(page)).at(-1)).toMatchObject({ state: 'PAUSED', retryAfter: 20 });

        // Resumed; the shopper reloads the page, which reads the place they hold at once (the address names them).
        expect(await control({ paused: false })).toBe(200);
        expect(new URL(page.url()).searchParams.get('user')).toBe(shopper);
        await page.reload();
        await page.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });

        // The page shows the place (position 17, people ahead) and its wait; the people ahead only go down and the wait
        // shown counts down until the place is admitted: followed on screen as it happens.
        const seen: Array<{ state: string; ahead: number | null; etaMax: number | null }> = [];
        await waitFor(
          async () => {
            const shown = await page.locator('#place').evaluate((el) => ({
              state: (el as HTMLElement).dataset.state ?? '',
              ahead: (el as HTMLElement).dataset.ahead ? Number((el as HTMLElement).dataset.ahead) : null,
              etaMax: el.querySelector<HTMLElement>('#place-eta')?.dataset.maxSeconds
                ? Number(el.querySelector<HTMLElement>('#place-eta')?.dataset.maxSeconds)
                : null,
            }));
            if (shown.state) seen.push(shown);
            return shown.state === 'ADMITTED';
          },
          { what: 'the page to show the place admitted', timeoutMs: 30_000, intervalMs: 100 },
        );
        const waiting = seen.filter((s) => s.state === 'WAITING');
        expect(waiting.length, JSON.stringify(seen)).toBeGreaterThan(0);
        expect(waiting[0]!.ahead).toBeGreaterThan(0);
        for (let i = 1; i < waiting.length; i++)
          expect(waiting[i]!.ahead!, JSON.stringify(seen)).toBeLessThanOrEqual(waiting[i - 1]!.ahead!);
        // Counting down: the wait shown went down while the shopper waited (between reads, the page counts it down
        // itself; each read's band never rises, below).
        expect(waiting.at(-1)!.etaMax!, JSON.stringify(seen)).toBeLessThan(waiting[0]!.etaMax!);

        // What the line told the page since the reload: position 17 throughout, several reads while waiting with fewer
        // and fewer ahead, each asked when the previous answer's Retry-After said (never sooner).
        const reads = await readingsOf(page);
        expect(new Set(reads.map((r) => r.position))).toEqual(new Set([17]));
        const waitingReads = reads.filter((r) => r.state === 'WAITING');
        expect(waitingReads.length, JSON.stringify(reads)).toBeGreaterThanOrEqual(2);
        expect(waitingReads.at(-1)!.ahead!).toBeLessThan(waitingReads[0]!.ahead!);
        for (let i = 1; i < waitingReads.length; i++)
          expect(waitingReads[i]!.etaMax!).toBeLessThanOrEqual(waitingReads[i - 1]!.etaMax!);
        for (let i = 1; i < reads.length; i++) {
          const asked = reads[i - 1]!.retryAfter;
          expect(asked).not.toBeNull();
          expect(reads[i]!.atMs - reads[i - 1]!.atMs).toBeGreaterThanOrEqual(asked! * 1_000 - 50);
        }
        expect(reads.at(-1)!.state).toBe('ADMITTED');
        expect(await page.locator('#admission-expires').innerText()).toMatch(/^within \d+:\d\d$/);

        // Check out with the admission: the order is placed and awaits payment, the place says CHECKED_OUT.
        await page.click('#checkout');
        let orderShown = '';
        await waitFor(
          async () => {
            const status = (await page.locator('#order').getAttribute('data-status')) ?? '';
            const notice = (await page.locator('#notice').isVisible()) ? await page.locator('#notice').innerText() : '';
            orderShown = `order ${status || 'not shown'}${notice ? `, notice: ${notice}` : ''}`;
            if (!status && notice) throw new Error(`the checkout was refused: ${notice}`);
            return status === 'AWAITING_PAYMENT';
          },
          // A loaded machine may take a while to persist the order (the dashboard's test allows as long).
          { what: 'the order to await payment on the page', timeoutMs: 45_000, intervalMs: 200 },
        ).catch((err: unknown) => {
          throw new Error(`${err instanceof Error ? err.message : String(err)} (last seen: ${orderShown})`);
        });
        await page.locator('#place[data-state="CHECKED_OUT"]').waitFor({ timeout: 10_000 });
        const orderNo = await page.locator('#order-no').innerText();
        const order = await call(app, 'GET', `/api/orders/${orderNo}`, { token: await app.auth.issue(shopper) });
        expect(order.json).toMatchObject({ orderNo, sku, quantity: 1, status: 'AWAITING_PAYMENT' });
        // The line's view is the API's last admission tick (4 a second), not a read of Redis: it counts it next tick.
        await waitFor(async () => (await call(app, 'GET', `/api/sales/${sku}/line`)).json.consumed === 1, {
          what: "the line's view to count the admission spent",
          timeoutMs: 5_000,
          intervalMs: 100,
        });
        // Nothing changes for a checked-out place: the page stops asking.
        expect(await page.locator('#place-next').innerText()).toContain('not asking again');

        // The dev payment pays it; the page follows the order by long-polling it.
        await page.click('#pay');
        await page.locator('#order[data-status="PAID"]').waitFor({ timeout: 30_000 });

        // A reload (or another device) shows the place the shopper holds.
        const again = await openPage(app, browser, `/line-demo?sku=${sku}&user=${shopper}`);
        try {
          await again.locator('#place[data-state="CHECKED_OUT"][data-position="17"]').waitFor({ timeout: 10_000 });
        } finally {
          await again.close();
        }
      } finally {
        await page.close();
      }
    },
  );

  it('names a sale without a line, and a shopper not in a line yet', async ({ app, browser }) => {
    const plain = uniqueSku('NOLINE');
    await createSale(app, plain, 3);
    const page = await openPage(app, browser, `/line-demo?sku=${plain}`);
    try {
      await page.click('#join');
      await page.locator('#notice', { hasText: 'This sale has no waiting line' }).waitFor({ timeout: 10_000 });
      expect(await page.locator('#place').getAttribute('data-state')).toBe('');

      const lined = uniqueSku('LINED');
      await createSale(app, lined, 3, { admissionsPerSecond: 100 });
      await page.goto(`${app.api.url}/line-demo?sku=${lined}&user=newcomer-${lined}`);
      await page.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
      await page.locator('#notice', { hasText: 'You have no place in this line yet' }).waitFor({ timeout: 10_000 });
      await page.click('#join');
      await page.locator('#place[data-state="ADMITTED"][data-position="1"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('#notice').isHidden()).toBe(true);
    } finally {
      await page.close();
    }
  });
});
