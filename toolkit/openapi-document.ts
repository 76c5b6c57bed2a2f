/**
 * The OpenAPI document exactly as the API serves it, built over inert clients so that scripts/reference-docs.ts and the
 * docs tests need no stack (test/openapi.test.ts holds it equal to what a running API serves).
 */
import type { Client } from '@temporalio/client';
import { composeApi, createApp } from '../src/api/app.js';
import { ApiMetrics } from '../src/api/metrics.js';
import { buildOpenApiDocument, routersOf } from '../src/api/openapi.js';
import { loadConfig, type AppConfig } from '../src/config/index.js';
import type { Stores } from '../src/db/stores.js';
import { createLogger } from '../src/infra/logger.js';
import type { RedisClient } from '../src/infra/redis.js';
import type { ProviderRegistry } from '../src/payments/providers/definition.js';

export function openApiJsonWithoutStack(
  config: AppConfig = loadConfig({ LOG_LEVEL: 'silent' }),
  providers?: ProviderRegistry,
): string {
  const clients = {
    config,
    ...(providers ? { providers } : {}),
    redis: inert<RedisClient>('redis', {
      // Registers Lua scripts at construction: no I/O.
      defineCommand: () => undefined,
    }),
    stores: {
      orders: inert<Stores['orders']>('orders'),
      payments: inert<Stores['payments']>('payments'),
      refunds: inert<Stores['refunds']>('refunds'),
      sales: inert<Stores['sales']>('sales'),
      reports: inert<Stores['reports']>('reports'),
      events: inert<Stores['events']>('events'),
      webhooks: inert<Stores['webhooks']>('webhooks'),
    },
    temporal: inert<Client>('temporal'),
    logger: createLogger({ logLevel: 'silent' }, 'api-docs'),
  };
  // No process metrics: they would start an event-loop monitor for nothing.
  const app = createApp(composeApi(clients, { metrics: new ApiMetrics({ defaultMetrics: false }) }));
  return JSON.stringify(buildOpenApiDocument(routersOf(app)));
}

/** A client that must not be used: every method but `allowed` throws, naming itself. */
function inert<T extends object>(name: string, allowed: Record<string, unknown> = {}): T {
  const stub = new Proxy(
    {},
    {
      get(_target, property) {
        if (typeof property === 'string' && property in allowed) return allowed[property];
        // Not a thenable, nor inspectable: answer as a plain object would.
        if (property === 'then' || typeof property === 'symbol') return undefined;
        return () => {
          throw new Error(
            `${name}.${property}() was called while building the OpenAPI document: mounting the routers must not use a client`,
          );
        };
      },
    },
  );
  return stub as T;
}
