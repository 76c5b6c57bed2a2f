/**
 * What the launchers share. The long-running ones (`npm start`, `npm run start:cluster`): the schema
 * applied before any app process starts, and one orderly stop on Ctrl-C, SIGTERM or a failed start.
 * The benchmarks: a clean-up that runs however the run ends.
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

/**
 * Runs `main`, then `cleanup` however it ends, Ctrl-C included (exit 130): a benchmark must never
 * leave its servers running or its scratch directory behind. A failure is printed under `tag` and
 * sets exit code 1.
 */
export async function runThenCleanUp(
  tag: string,
  main: () => Promise<void>,
  cleanup: () => Promise<void>,
): Promise<void> {
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    await main();
  } catch (err) {
    console.error(`[${tag}] failed:`, err);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}
