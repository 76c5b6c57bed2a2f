/**
 * An API on a Redis of the test's own, for tests that stop Redis: stopping the stack's Redis would
 * disturb every other test file running beside it.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { startApi, type RunningApi } from '../../src/api/server.js';
import { freePort } from '../../stack/process.js';
import { loadToolPaths, startRedis, type RunningService } from '../../stack/services.js';
import { testConfig } from './env.js';

export interface ApiOnOwnRedis {
  api: RunningApi;
  redisServer: RunningService;
  /** Closes the API, then stops the Redis (again, if the test stopped it already). */
  close(): Promise<void>;
}

/** `name` prefixes the Redis's data directory under the stack's, so a failed run's leftovers say whose they are. */
export async function startApiOnOwnRedis(name: string): Promise<ApiOnOwnRedis> {
  const dataDir = mkdtempSync(join(inject('stackDataDir'), `${name}-redis-`));
  const redisServer = await startRedis({ tools: loadToolPaths(), dataDir, port: await freePort() });
  const api = await startApi(testConfig({ ...redisServer.env, LOG_LEVEL: 'silent' }), 0);
  return {
    api,
    redisServer,
    async close() {
      await api.close();
      await redisServer.process.stop();
    },
  };
}
