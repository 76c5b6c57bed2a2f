/**
 * Providers behind a registry (src/payments/providers/registry.ts): a provider is its definition and one line in the
 * registry. A stub provider, defined here and added to a registry of this test only, is accepted by the configuration,
 * gets its webhook route mounted (and documented in the OpenAPI document), and keeps its name in an order's promise
 * record. No stack: the app is built over inert clients and served on a loopback port.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { composeApi, createApp } from '../src/api/app.js';
import { openApiJsonWithoutStack } from '../toolkit/openapi-document.js';
import { ApiMetrics } from '../src/api/metrics.js';
import { ConfigError, loadConfig, type AppConfig } from '../src/config/index.js';
import type { Stores } from '../src/db/stores.js';
import { createLogger } from '../src/infra/logger.js';
import type { RedisClient } from '../src/infra/redis.js';
import { Refusal } from '../src/infra/refusal.js';
import { parsePromised } from '../src/redis/inventory.js';
import { defineProvider, providerApis, type ProviderRegistry } from '../src/payments/providers/definition.js';
import { PAYMENT_PROVIDERS, paymentProviders } from '../src/payments/providers/registry.js';
import { SERVICE_CONFIG_DEFAULTS, SERVICE_CONFIG_VARIABLES, settingsOf } from '../toolkit/provider-config.js';
import { stripe } from '../src/payments/providers/stripe/definition.js';
import { productionSecrets } from './helpers/env.js';
import { httpAt } from './helpers/http.js';

/** What a provider's folder would hold: its definition, nothing else anywhere. */
const stub = defineProvider({
  name: 'stub',
  variables: {
    STUB_SECRET: { schema: z.string().min(8, 'must be at least 8 characters') },
    STUB_MODE: { schema: z.enum(['sandbox', 'live']), default: 'sandbox' },
  },
  settings(values, { selected }) {
    const secret = values.STUB_SECRET as string | undefined;
    if (!secret) {
      if (selected) throw new ConfigError('PAYMENT_PROVIDER=stub needs STUB_SECRET');
      return null;
    }
    return { secret, mode: values.STUB_MODE as 'sandbox' | 'live' };
  },
  webhook: {
    path: '/api/payments/stub',
    operationId: 'stubWebhook',
    summary: "The stub provider's signed events",
    description: 'Signed with STUB_SECRET; every event is acknowledged and ignored.',
    signature: { scheme: 'stubSignature', header: 'Stub-Signature', description: 'The stub signs with STUB_SECRET.' },
    headers: z.object({ 'Stub-Signature': z.string() }),
    body: z.looseObject({ id: z.string().min(1) }),
    answer: z.object({ received: z.literal(true), outcome: z.literal('IGNORED') }).meta({ id: 'StubWebhookAnswer' }),
    answers: { 200: 'IGNORED', 202: 'never' },
    unavailable: '`UNAVAILABLE`: never',
  },
  intake: (settings) => ({
    verify(_raw, signature) {
      if (signature !== settings.secret) throw new Refusal('INVALID_SIGNATURE', 'not signed by the stub');
    },
    async handle(_verified, body) {
      body();
      return { outcome: 'IGNORED' };
    },
  }),
  api: () => ({
    name: 'stub',
    openPayment: () => Promise.reject(new Error('not in this test')),
    closeIntent: () => Promise.reject(new Error('not in this test')),
    refund: () => Promise.reject(new Error('not in this test')),
    followRefund: () => Promise.reject(new Error('not in this test')),
    undeliveredEvents: () => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('none')) }) }),
  }),
});

/** The registry with the stub's one line added. */
const registry: ProviderRegistry = [...PAYMENT_PROVIDERS, stub];

const quiet = { LOG_LEVEL: 'silent' };
const stubConfig = (env: Record<string, string> = {}) =>
  loadConfig({ ...quiet, PAYMENT_PROVIDER: 'stub', STUB_SECRET: 'stub-secret', ...env });

describe('the configuration, through the registry', () => {
  it("accepts a registered provider's name, and reads its settings with their defaults", () => {
    const providers = paymentProviders(stubConfig(), registry);
    expect(providers.selected.definition.name).toBe('stub');
    expect(providers.selected.settings).toEqual({ secret: 'stub-secret', mode: 'sandbox' });
    expect(Object.keys(providerApis(providers))).toEqual(['stub']);
  });

  it('refuses a name the registry does not know, naming the registered ones', () => {
    expect(() => paymentProviders(stubConfig(), PAYMENT_PROVIDERS)).toThrow(
      /PAYMENT_PROVIDER: must be one of generic, stripe \(is stub\)/,
    );
  });

  it("refuses a provider's bad variable, and a provider named without its keys", () => {
    expect(() => paymentProviders(stubConfig({ STUB_MODE: 'test' }), registry)).toThrow(/STUB_MODE: /);
    expect(() => paymentProviders(stubConfig({ STUB_SECRET: 'short' }), registry)).toThrow(
      /STUB_SECRET: must be at least 8/,
    );
    expect(() => paymentProviders(loadConfig({ ...quiet, PAYMENT_PROVIDER: 'stub' }), registry)).toThrow(
      'PAYMENT_PROVIDER=stub needs STUB_SECRET',
    );
  });

  it("keeps Stripe's checks as they were", () => {
    const keys = { STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_WEBHOOK_SECRET: 'whsec_abc' };
    expect(() => paymentProviders(loadConfig({ ...quiet, PAYMENT_PROVIDER: 'stripe' }))).toThrow(
      'PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET',
    );
    expect(() => paymentProviders(loadConfig({ ...quiet, STRIPE_SECRET_KEY: 'sk_test_abc' }))).toThrow(
      'STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET go together',
    );
    expect(() => paymentProviders(loadConfig({ ...quiet, ...keys, STRIPE_SECRET_KEY: 'nope' }))).toThrow(
      /STRIPE_SECRET_KEY: must be a Stripe secret/,
    );
    // Stripe's keys of its own too: the ones above are published, and production refuses them first.
    const own = randomBytes(16).toString('hex');
    const production = {
      ...quiet,
      ...productionSecrets(),
      STRIPE_SECRET_KEY: `sk_test_${own}`,
      STRIPE_WEBHOOK_SECRET: `whsec_${own}`,
    };
    expect(() => paymentProviders(loadConfig(production))).toThrow(/STRIPE_DEPLOYMENT_TAG: is the development default/);
    const config = loadConfig({
      ...quiet,
      ...keys,
      PAYMENT_PROVIDER: 'stripe',
      STRIPE_PAYMENT_METHOD_TYPES: 'card,sepa_debit',
    });
    expect(settingsOf(config, stripe)).toMatchObject({
      secretKey: 'sk_test_abc',
      currency: 'usd',
      paymentMethodTypes: ['card', 'sepa_debit'],
      requestsPerSecond: 20,
      catchUpIntervalMs: 60_000,
    });
    // Where Stripe's keys are unset, it is registered (its route answers 404) but not configured.
    expect(settingsOf(loadConfig(quiet), stripe)).toBeNull();
  });

  it("lists every registered provider's variables beside the core ones (docs/operations.md is held to it)", () => {
    expect(SERVICE_CONFIG_VARIABLES).toEqual(expect.arrayContaining(['PAYMENT_PROVIDER', 'STRIPE_SECRET_KEY']));
    expect(SERVICE_CONFIG_DEFAULTS).toMatchObject({ PAYMENT_PROVIDER: 'generic', STRIPE_REQUESTS_PER_SECOND: '20' });
  });
});

describe("the app, given a registry with the stub's line", () => {
  it('documents its webhook route and its signature scheme in the OpenAPI document', () => {
    const document = JSON.parse(openApiJsonWithoutStack(stubConfig(), registry)) as {
      paths: Record<string, Record<string, { operationId: string; security: unknown }>>;
      components: { securitySchemes: Record<string, unknown> };
    };
    expect(document.paths['/api/payments/stub']?.post).toMatchObject({
      operationId: 'stubWebhook',
      security: [{ stubSignature: [] }],
    });
    expect(document.components.securitySchemes.stubSignature).toEqual({
      type: 'apiKey',
      in: 'header',
      name: 'Stub-Signature',
      description: 'The stub signs with STUB_SECRET.',
    });
    // The configured providers keep their routes and schemes; Stripe, not configured here, has no path.
    expect(document.paths['/api/payments/webhook']?.post?.security).toEqual([{ paymentSignature: [] }]);
    expect(document.paths['/api/payments/stripe']).toBeUndefined();
    // Without the stub's line, nothing of it.
    expect(openApiJsonWithoutStack(loadConfig(quiet))).not.toContain('/api/payments/stub');
  });

  describe('serves its webhook', () => {
    let configured: string;
    let unconfigured: string;
    const servers: { close(): void }[] = [];

    beforeAll(async () => {
      configured = await serve(stubConfig());
      unconfigured = await serve(loadConfig(quiet));
    });
    afterAll(() => servers.forEach((server) => server.close()));

    async function serve(config: AppConfig): Promise<string> {
      const app = createApp(
        composeApi(
          {
            config,
            providers: registry,
            redis: inert<RedisClient>({ defineCommand: () => undefined }),
            stores: new Proxy({}, { get: () => inert({}) }) as Stores,
            temporal: inert<Client>({}),
            logger: createLogger({ logLevel: 'silent' }, 'provider-registry-test'),
          },
          { metrics: new ApiMetrics({ defaultMetrics: false }) },
        ),
      );
      const server = app.listen(0, '127.0.0.1');
      servers.push(server);
      await new Promise((resolve) => server.once('listening', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }

    const post = (url: string, signature: string) =>
      httpAt('POST', `${url}/api/payments/stub`, {
        headers: { 'content-type': 'application/json', 'stub-signature': signature },
        raw: JSON.stringify({ id: 'evt_1' }),
      });

    it('verified by its intake', async () => {
      const answer = await post(configured, 'stub-secret');
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ received: true, outcome: 'IGNORED' });
      const forged = await post(configured, 'guess');
      expect(forged.status).toBe(400);
      expect(forged.body).toMatchObject({ error: { code: 'INVALID_SIGNATURE' } });
    });

    it('answering 404 where the stub is registered but not configured', async () => {
      const answer = await post(unconfigured, 'stub-secret');
      expect(answer.status).toBe(404);
      expect(answer.body).toMatchObject({ error: { code: 'NOT_FOUND' } });
    });
  });
});

describe("an order's promise record", () => {
  it("keeps its provider's name, whatever provider it is", () => {
    const input = {
      orderNo: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
      sku: 'SKU-1',
      userId: 'u1',
      quantity: 1,
      unitPriceCents: 1_000,
      createdAt: '2026-01-01T00:00:00.000Z',
      paymentWindow: '30m',
    };
    for (const provider of ['stub', 'stripe'])
      expect(parsePromised(JSON.stringify({ ...input, paymentProvider: provider })).input.paymentProvider).toBe(
        provider,
      );
    // The generic webhook's orders carry none.
    expect(parsePromised(JSON.stringify(input)).input).not.toHaveProperty('paymentProvider');
  });
});

/** A client that must not be used: any call throws (`allowed` aside). */
function inert<T extends object>(allowed: Record<string, unknown>): T {
  return new Proxy(
    {},
    {
      get(_target, property) {
        if (typeof property === 'string' && property in allowed) return allowed[property];
        if (property === 'then' || typeof property === 'symbol') return undefined;
        return () => {
          throw new Error(`${String(property)}() was called in a test that uses no client`);
        };
      },
    },
  ) as T;
}
