/**
 * A stack of a test file's own (Temporal dev server, Redis, MariaDB), migrated: for a file whose reconcile Schedule
 * surveys every sale, or whose servers it freezes, so that no other file's orders meet it. Its `env` points the app at
 * it; `stop()` tears it down.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { createMysqlPool } from '../../src/db/pool.js';
import { startStack, type RunningStack } from '../../stack/index.js';
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
