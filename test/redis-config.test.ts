/**
 * Which Redis client the configuration gives: one node by default, ioredis' Cluster client for
 * several nodes in REDIS_URL or REDIS_CLUSTER=true (the cluster suite, npm run test:cluster, runs
 * the app on a real Redis Cluster).
 */
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/index.js';
import { createRedis, redisNodeUrls, usesRedisCluster } from '../src/infra/redis.js';
import { testConfig } from './helpers/env.js';

describe('Redis client by configuration', () => {
  it('keeps the single-node client for one URL, and it answers', async () => {
    const config = testConfig();
    expect(config.redisCluster).toBe(false);
    const redis = createRedis(config);
    try {
      expect(redis).toBeInstanceOf(Redis);
      expect(redis).not.toBeInstanceOf(Cluster);
      expect(await redis.ping()).toBe('PONG');
    } finally {
      await redis.quit();
    }
  });

  it('uses the Cluster client for several URLs, or for one with REDIS_CLUSTER=true', async () => {
    const list = loadConfig({ REDIS_URL: 'redis://127.0.0.1:7001, redis://127.0.0.1:7002,redis://127.0.0.1:7003' });
    expect(list.redisCluster).toBe(true);
    expect(redisNodeUrls(list.redisUrl)).toEqual([
      'redis://127.0.0.1:7001',
      'redis://127.0.0.1:7002',
      'redis://127.0.0.1:7003',
    ]);
    const endpoint = loadConfig({ REDIS_URL: 'rediss://user:secret@cluster.example:6379', REDIS_CLUSTER: 'true' });
    expect(usesRedisCluster(endpoint)).toBe(true);
    expect(usesRedisCluster(loadConfig({ REDIS_URL: 'redis://127.0.0.1:7001' }))).toBe(false);
    const cluster = createRedis(endpoint, { lazyConnect: true });
    try {
      expect(cluster).toBeInstanceOf(Cluster);
      const options = (cluster as Cluster).options.redisOptions;
      expect(options).toMatchObject({ username: 'user', password: 'secret', tls: { servername: 'cluster.example' } });
    } finally {
      cluster.disconnect();
    }
  });

  it('refuses a REDIS_URL that is not a list of redis:// or rediss:// URLs, naming it', () => {
    for (const bad of [
      'http://127.0.0.1:6379',
      'redis://127.0.0.1:7001,not a url',
      'redis://a:1,,',
      'localhost:6379',
    ]) {
      expect(() => loadConfig({ REDIS_URL: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ REDIS_URL: bad }), bad).toThrow(/REDIS_URL/);
    }
    expect(() => loadConfig({ REDIS_CLUSTER: 'maybe' })).toThrow(/REDIS_CLUSTER/);
  });
});
