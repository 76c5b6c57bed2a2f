/**
 * The one way a stack test stands up: a vitest `test` whose file-scoped fixture opens what the file needs on the
 * shared test stack the first time a test asks for it, and closes it when the file ends (vitest's `test.extend`).
 */
import { test } from 'vitest';
import type { AppConfig } from '../../src/config/index.js';
import { startTestApp } from './app.js';
import { testConfig } from './env.js';
import { startOwnStack } from './own-stack.js';
import { openPerQueueTestbed } from './per-queue.js';
import { openStackClients, openStoreClients } from './stack-clients.js';
import { startStripeApi } from './stripe-api.js';

/**
 * `testbed`: the app's clients, and per test an API and a worker on a task queue of its own (per-queue.ts); on a stack
 * of the file's own when `ownStack` names it (own-stack.ts: a file whose Schedule or faults must meet no other file).
 */
export function testbedTest(env: Record<string, string>, options: { ownStack?: string } = {}) {
  return test.extend('testbed', { scope: 'file' }, async ({}, { onCleanup }) => {
    const stack = options.ownStack === undefined ? null : await startOwnStack(options.ownStack);
    const testbed = await openPerQueueTestbed({ ...stack?.env, ...env }).catch(async (err: unknown) => {
      await stack?.stop();
      throw err;
    });
    onCleanup(async () => {
      await testbed.close();
      await stack?.stop();
    });
    return testbed;
  });
}

/** `app`: the real API and a production worker on the file's own task queue, with their clients (app.ts). */
export function appTest(...args: Parameters<typeof startTestApp>) {
  return test.extend('app', { scope: 'file' }, async ({}, { onCleanup }) => {
    const app = await startTestApp(...args);
    onCleanup(() => app.close());
    return app;
  });
}

/** `clients`: MySQL, Redis and Temporal clients, for a file that runs its own worker or none (stack-clients.ts). */
export function clientsTest(config: AppConfig = testConfig(), options: Parameters<typeof openStackClients>[1] = {}) {
  return test.extend('clients', { scope: 'file' }, async ({}, { onCleanup }) => {
    const clients = await openStackClients(config, options);
    onCleanup(() => clients.close());
    return clients;
  });
}

/** `clients`: MySQL and Redis only, for a file that needs no Temporal. */
export function storeClientsTest(config: AppConfig = testConfig()) {
  return test.extend('clients', { scope: 'file' }, ({}, { onCleanup }) => {
    const clients = openStoreClients(config);
    onCleanup(() => clients.close());
    return clients;
  });
}

/** `stripeApi`: Stripe's double (stripe-mock, its events sent as Stripe sends them), for a file paying through it. */
export function stripeTest(options: Parameters<typeof startStripeApi>[0] = {}) {
  return test.extend('stripeApi', { scope: 'file' }, async ({}, { onCleanup }) => {
    const stripeApi = await startStripeApi(options);
    onCleanup(() => stripeApi.stop());
    return stripeApi;
  });
}

/** `stripeApi` and a `testbed` whose provider is Stripe at that double (its `STRIPE_*` secrets come with `env`). */
export function stripeTestbedTest(env: Record<string, string>, options: Parameters<typeof startStripeApi>[0] = {}) {
  return stripeTest(options).extend('testbed', { scope: 'file' }, async ({ stripeApi }, { onCleanup }) => {
    const testbed = await openPerQueueTestbed({ PAYMENT_PROVIDER: 'stripe', STRIPE_API_URL: stripeApi.url, ...env });
    onCleanup(() => testbed.close());
    return testbed;
  });
}
