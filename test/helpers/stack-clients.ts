/**
 * The app's own clients onto the test stack, for a test that runs its workers and APIs as separate processes (the
 * rollout tests): MySQL pool and stores, Redis, and a Temporal connection and client with the app's data converter.
 */
import { Client, Connection } from '@temporalio/client';
import type { Pool } from 'mysql2/promise';
import type { AppConfig } from '../../src/config/index.js';
import { createMysqlPool } from '../../src/db/pool.js';
import { openStores, type Stores } from '../../src/db/stores.js';
import { temporalDataConverter } from '../../src/infra/data-converter.js';
import { createRedis, type RedisClient } from '../../src/infra/redis.js';

export interface StackClients {
  pool: Pool;
  stores: Stores;
  redis: RedisClient;
  connection: Connection;
  client: Client;
  /** Closes every client; each close is tried whatever became of the others. */
  close(): Promise<void>;
}

/**
 * Opens the clients over `config`. `readsWith` gives the client another codec's keys (a test that crosses codec
 * settings reads what every step wrote).
 */
export async function openStackClients(
  config: AppConfig,
  options: { readsWith?: AppConfig } = {},
): Promise<StackClients> {
  const pool = createMysqlPool(config);
  const redis = createRedis(config);
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: temporalDataConverter(options.readsWith ?? config),
  });
  return {
    pool,
    stores: openStores(pool),
    redis,
    connection,
    client,
    async close() {
      await Promise.allSettled([pool.end(), redis.quit(), connection.close()]);
    },
  };
}
