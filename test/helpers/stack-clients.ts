/**
 * The one way a test opens the app's clients onto a stack (the shared test stack unless its config says otherwise):
 * MySQL pool and stores, Redis and the inventory of the config's task queue, and a Temporal client made as the API
 * makes it. startTestApp and the per-queue testbed stand on it; so does every file that drives the stores itself.
 */
import type { Client, ConnectionLike } from '@temporalio/client';
import type { Pool } from 'mysql2/promise';
import type { AppConfig } from '../../src/config/index.js';
import { createMysqlPool } from '../../src/db/pool.js';
import { openStores, type Stores } from '../../src/db/stores.js';
import { createRedis, type RedisClient } from '../../src/infra/redis.js';
import { createTemporalClient } from '../../src/infra/temporal-connection.js';
import { RedisInventory } from '../../src/redis/inventory.js';
import { testConfig } from './env.js';

/** MySQL and Redis, for a file that needs no Temporal (or one that has stopped it). */
export interface StoreClients {
  config: AppConfig;
  pool: Pool;
  stores: Stores;
  redis: RedisClient;
  /** The inventory of `config`'s task queue. */
  inventory: RedisInventory;
  /** Closes every client; each close is tried whatever became of the others. */
  close(): Promise<void>;
}

export interface StackClients extends StoreClients {
  temporal: Client;
  connection: ConnectionLike;
}

export function openStoreClients(config: AppConfig = testConfig()): StoreClients {
  const pool = createMysqlPool(config);
  const redis = createRedis(config);
  return {
    config,
    pool,
    stores: openStores(pool),
    redis,
    inventory: new RedisInventory(redis, config.temporal.taskQueue),
    async close() {
      await Promise.allSettled([pool.end(), redis.quit()]);
    },
  };
}

/** `readsWith`: the Temporal client reads with another codec's keys (a test crossing codec settings). */
export async function openStackClients(
  config: AppConfig = testConfig(),
  options: { readsWith?: AppConfig } = {},
): Promise<StackClients> {
  const temporal = await createTemporalClient({
    temporal: config.temporal,
    payloadCodec: (options.readsWith ?? config).payloadCodec,
  });
  const stores = openStoreClients(config);
  return {
    ...stores,
    temporal,
    connection: temporal.connection,
    async close() {
      await Promise.allSettled([stores.close(), temporal.connection.close()]);
    },
  };
}
