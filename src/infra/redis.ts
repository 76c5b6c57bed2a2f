import { Redis, type RedisOptions } from 'ioredis';
import type { AppConfig } from '../config/index.js';

/**
 * The app's Redis client. Auto-pipelining batches the many small commands of a burst into few
 * round trips; a bounded retry count makes a dead Redis fail requests fast instead of queueing them.
 */
export function createRedis(config: Pick<AppConfig, 'redisUrl'>, options: RedisOptions = {}): Redis {
  return new Redis(config.redisUrl, {
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    connectTimeout: 2_000,
    ...options,
  });
}
