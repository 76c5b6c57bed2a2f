/**
 * The local stack itself: the app's own clients (built from the app's configuration code) reach
 * the real Redis and MariaDB, the schema is migrated, and /healthz reports each dependency.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { createRedis } from '../src/infra/redis.js';
import { testConfig } from './helpers/env.js';
import { startApiOnOwnRedis } from './helpers/own-redis.js';
import { httpAt } from './helpers/http.js';

describe('local stack', () => {
  it('Redis answers the app client built from REDIS_URL, with AOF on', async () => {
    const redis = createRedis(testConfig());
    try {
      await redis.set('stack-test', 'hello', 'EX', 60);
      expect(await redis.get('stack-test')).toBe('hello');
      expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await redis.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
    } finally {
      await redis.quit();
    }
  });

  it('MariaDB answers the app pool built from MYSQL_URL, with the schema migrated once', async () => {
    const pool = createMysqlPool(testConfig());
    try {
      const [[version]] = await pool.query<RowDataPacket[]>('SELECT VERSION() AS v');
      expect(String(version?.v)).toMatch(/MariaDB/);
      const [tables] = await pool.query<RowDataPacket[]>('SHOW TABLES');
      expect(tables.map((t) => Object.values(t)[0])).toEqual(
        expect.arrayContaining(['sales', 'orders', 'payments', 'schema_migrations']),
      );
      expect(await migrate(pool)).toEqual([]); // already applied by the global setup: a no-op
    } finally {
      await pool.end();
    }
  });

  it('/healthz is 200 with every dependency up, then 503 naming Redis once Redis stops', async () => {
    const { api, redisServer, close } = await startApiOnOwnRedis('health');
    try {
      const up = await httpAt('GET', `${api.url}/healthz`);
      expect(up.status).toBe(200);
      const closed = { redis: 'closed', mysql: 'closed', temporal: 'closed', workflows: 'closed' };
      // Each clock this process is compared with, as last measured: all on this box, so close.
      const near = {
        offsetMs: expect.toSatisfy((ms: number) => Math.abs(ms) < 1_000),
        uncertaintyMs: expect.any(Number),
        measuredAt: expect.any(String),
      };
      const clocks = { redis: near, mysql: near };
      expect(up.body).toEqual({
        status: 'ok',
        checks: { redis: 'up', mysql: 'up', temporal: 'up' },
        breakers: closed,
        clocks,
      });

      await redisServer.process.stop();
      const down = await httpAt('GET', `${api.url}/healthz`);
      expect(down.status).toBe(503);
      expect(down.body).toEqual({
        error: { code: 'UNAVAILABLE', message: 'down: redis' },
        checks: { redis: 'down', mysql: 'up', temporal: 'up' },
        // One failed probe: Redis's breaker opens only after BREAKER_FAILURES failures.
        breakers: closed,
        clocks,
      });
    } finally {
      await close();
    }
  });
});
