/**
 * What the long-running launchers (`npm start`, `npm run start:cluster`) share: the schema applied
 * before any app process starts, and one orderly stop on Ctrl-C, SIGTERM or a failed start.
 */
import type { AppConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';

/** Applies the pending migrations to the stack's MariaDB: the worker and the API expect the schema in place. */
export async function migrateSchema(config: AppConfig, log: (line: string) => void): Promise<void> {
  const pool = createMysqlPool(config);
  try {
    const applied = await migrate(pool);
    log(applied.length ? `schema: applied ${applied.join(', ')}` : 'schema: up to date');
  } finally {
    await pool.end();
  }
}

export interface LauncherShutdown {
  /** Stops everything once and exits with `code`; a later call (a second Ctrl-C) waits for the first. */
  shutdown(code: number): Promise<never>;
  /** True once a shutdown began: a start that finishes after it must not report the stack ready. */
  readonly stopping: boolean;
}

/** Calls `stopAll` on SIGINT or SIGTERM (exit 0) or on shutdown(code); `say` reports its progress. */
export function shutdownOnSignals(say: (line: string) => void, stopAll: () => Promise<void>): LauncherShutdown {
  let stopping = false;
  const shutdown = async (code: number): Promise<never> => {
    if (stopping) return new Promise<never>(() => {});
    stopping = true;
    say('stopping…');
    await stopAll();
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  return {
    shutdown,
    get stopping() {
      return stopping;
    },
  };
}
