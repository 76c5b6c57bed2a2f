/**
 * The test stack's Temporal Web UI (the dev server's, started with --ui-codec-endpoint at the stack's
 * CODEC_SERVER_PORT: stack/index.ts) in a real headless Chromium: a workflow whose input the service's codec
 * encrypted shows its plain input while the codec server runs there, and does not once it is stopped. The UI's
 * codec calls are the browser's own, from the UI's origin: CORS (CODEC_SERVER_ORIGINS, the stack's UI) is exercised.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codecServerOptionsOf, startCodecServer, type RunningCodecServer } from '../src/api/codec-server.js';
import type { AppConfig } from '../src/config/index.js';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { createLogger } from '../src/infra/logger.js';
import { ENCRYPTED_ENCODING } from '../src/infra/payload-codec.js';
import { temporalConnectionSettings } from '../src/infra/temporal-connection.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';

let config: AppConfig;
/** The dev server's Web UI: the origin of CODEC_SERVER_ORIGINS the stack set for it. */
let uiUrl: string;
let connection: Connection;
let browser: Browser;
let codecServer: RunningCodecServer | undefined;
const shots = mkdtempSync(join(tmpdir(), 'codec-ui-'));
/** What only the decrypted input holds. */
const marker = `codec-ui-${randomUUID()}`;
const workflowId = `codec-ui-${randomUUID()}`;
/** The input's data as Temporal stores it (ciphertext, base64): what the UI shows without the codec server. */
let storedData = '';

beforeAll(async () => {
  browser = await launchChromium();
  config = testConfig({ LOG_LEVEL: 'silent' });
  const ui = config.codecServer.allowedOrigins.find((origin) => origin.startsWith('http://127.0.0.1:'));
  if (!ui || config.codecServer.port === 0)
    throw new Error('the test stack started no dev server with a codec endpoint (external TEMPORAL_ADDRESS?)');
  uiUrl = ui;
  connection = await Connection.connect(temporalConnectionSettings(config));
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: temporalDataConverter(config),
  });
  // No worker polls this queue: the workflow stays open with its first event, which holds the input.
  await client.workflow.start('OrderWorkflow', {
    taskQueue: `codec-ui-unpolled-${randomUUID()}`,
    workflowId,
    args: [{ note: marker }],
    workflowExecutionTimeout: '10 minutes',
  });
});

afterAll(async () => {
  await browser?.close();
  await codecServer?.close();
  await connection?.workflowService
    .terminateWorkflowExecution({
      namespace: config.temporal.namespace,
      workflowExecution: { workflowId },
      reason: 'codec-server browser test done',
    })
    .catch(() => undefined);
  await connection?.close();
});

/** The workflow's page in the UI, freshly opened (no decoded payload kept from an earlier page). */
async function openWorkflow(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  await page.goto(`${uiUrl}/namespaces/${config.temporal.namespace}/workflows/${workflowId}`, {
    waitUntil: 'domcontentloaded',
  });
  // The page is the workflow's once its id shows.
  await waitFor(async () => (await bodyText(page)).includes(workflowId), {
    what: `the UI to show workflow ${workflowId}`,
    timeoutMs: 30_000,
    intervalMs: 250,
  });
  return page;
}

/** What the page shows (hidden elements' text left out). */
const bodyText = (page: Page) => page.locator('body').innerText();

describe('the Web UI decodes through the codec server', () => {
  it('Temporal stores the input encrypted: without the codec, nothing shows the value', async () => {
    const history = await connection.workflowService.getWorkflowExecutionHistory({
      namespace: config.temporal.namespace,
      execution: { workflowId },
    });
    const input = history.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    expect(Buffer.from(input?.metadata?.encoding ?? []).toString()).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(input?.data ?? []).toString('latin1')).not.toContain(marker);
    storedData = Buffer.from(input?.data ?? []).toString('base64');
  });

  it('shows the decrypted input while the codec server runs on the endpoint the UI was given', async () => {
    codecServer = await startCodecServer({
      ...codecServerOptionsOf(config, createLogger({ logLevel: 'silent' }, 'codec-server')),
      port: config.codecServer.port,
    });
    const page = await openWorkflow();
    // The browser's own calls, from the UI's origin: their answers must be the codec server's 200s, CORS allowed.
    const decodes: { status: number; allowOrigin: string | null }[] = [];
    page.on('response', (response) => {
      if (response.request().method() === 'POST' && response.url().startsWith(`${codecServer!.url}/`))
        decodes.push({
          status: response.status(),
          allowOrigin: response.headers()['access-control-allow-origin'] ?? null,
        });
    });
    await page.reload({ waitUntil: 'domcontentloaded' });
    try {
      await waitFor(async () => (await bodyText(page)).includes(marker), {
        what: `the UI to show the decoded input (${marker})`,
        timeoutMs: 30_000,
        intervalMs: 250,
      });
    } finally {
      await page.screenshot({ path: join(shots, 'decoded.png'), fullPage: true });
    }
    expect(decodes.length, 'the UI called the codec server').toBeGreaterThan(0);
    for (const decode of decodes) expect(decode).toEqual({ status: 200, allowOrigin: uiUrl });
    await page.context().close();
  });

  it('does not show it once the codec server is stopped', async () => {
    await codecServer?.close();
    codecServer = undefined;
    const page = await openWorkflow();
    try {
      // Once its decode attempts failed, the UI shows the input as stored: the ciphertext.
      await waitFor(async () => (await bodyText(page)).includes(storedData.slice(0, 24)), {
        what: 'the UI to show the input as stored',
        timeoutMs: 30_000,
        intervalMs: 250,
      });
      expect(await bodyText(page)).not.toContain(marker);
    } finally {
      await page.screenshot({ path: join(shots, 'encrypted.png'), fullPage: true });
    }
    await page.context().close();
  });
});
