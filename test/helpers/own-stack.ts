/**
 * A stack of a test file's own (Temporal dev server, Redis, MariaDB), migrated: for a file whose reconcile Schedule
 * surveys every sale, or whose servers it freezes, so that no other file's orders meet it. Its `env` points the app at
 * it; `stop()` tears it down.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'mysql2/promise';
import { inject } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { createMysqlPool } from '../../src/db/pool.js';
import { startStack, type RunningStack } from '../../stack/index.js';
import { freePort } from '../../stack/process.js';
import { loadToolPaths, startMariaDb } from '../../stack/services.js';
import { testConfig } from './env.js';

export async function startOwnStack(name: string): Promise<RunningStack> {
  const stack = await startStack({
    dataDir: mkdtempSync(join(inject('stackDataDir'), `${name}-`)),
    ports: 'free',
    ephemeral: true,
    env: {},
  });
  const migrating = createMysqlPool(testConfig(stack.env));
  try {
    await migrate(migrating);
  } finally {
    await migrating.end();
  }
  return stack;
}

/**
 * A MariaDB of a test file's own, migrated: for a file that prunes or reorders what every other file's events share
 * (the feed's retention, its positions). `pool` is the app's pool on it; `stop()` ends both.
 */
export async function startOwnMariaDb(
  name: string,
): Promise<{ pool: Pool; env: Record<string, string>; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(join(inject('stackDataDir'), `${name}-`));
  const credentials = { database: 'flash', user: 'flash', password: randomBytes(12).toString('hex') };
  const server = await startMariaDb({
    tools: loadToolPaths(),
    dataDir,
    port: await freePort(),
    credentials,
    ephemeral: true,
  });
  const pool = createMysqlPool(testConfig(server.env));
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end();
    await server.process.stop();
    throw err;
  }
  return {
    pool,
    env: server.env,
    async stop() {
      await pool.end();
      await server.process.stop();
    },
  };
}
