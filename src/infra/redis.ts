import { Cluster, Redis, ReplyError, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';
import { commaList, type AppConfig } from '../config/index.js';
import { activeTracing } from './tracing.js';

/** One node or a Cluster, by configuration; a SKU's keys share one hash slot, so both run the same Lua scripts. */
export type RedisClient = Redis | Cluster;

// A pipelined batch runs in its first command's context, so traced spans would hang under the wrong request.
function autoPipelining(): boolean {
  return activeTracing() === undefined;
}

/** REDIS_URL's node URLs: one, or a comma-separated list of a cluster's nodes. */
export function redisNodeUrls(redisUrl: string): string[] {
  return commaList(redisUrl);
}

type RedisSettings = Pick<AppConfig, 'redisUrl'> & Partial<Pick<AppConfig, 'redisCluster'>>;

/** Several nodes, or REDIS_CLUSTER=true. */
export function usesRedisCluster(config: RedisSettings): boolean {
  return config.redisCluster === true || redisNodeUrls(config.redisUrl).length > 1;
}

/** Bounded retries fail requests fast on a dead Redis instead of queueing them; `options` go to every node. */
export function createRedis(config: RedisSettings, options: RedisOptions = {}): RedisClient {
  if (!usesRedisCluster(config)) {
    return new Redis(config.redisUrl, {
      enableAutoPipelining: autoPipelining(),
      maxRetriesPerRequest: 2,
      connectTimeout: 2_000,
      ...options,
    });
  }
  return createRedisCluster(redisNodeUrls(config.redisUrl), options);
}

// Any subset of nodes seeds it (CLUSTER SLOTS gives the rest); credentials and TLS come from the first URL.
function createRedisCluster(urls: string[], options: RedisOptions): Cluster {
  const first = new URL(urls[0] ?? 'redis://127.0.0.1:6379');
  const nodes: ClusterNode[] = urls.map((url) => {
    const parsed = new URL(url);
    return { host: parsed.hostname, port: Number(parsed.port || 6379) };
  });
  const { enableAutoPipelining, ...nodeOptions } = options;
  const clusterOptions: ClusterOptions = {
    enableAutoPipelining: enableAutoPipelining ?? autoPipelining(),
    // Writes and reads go to masters: a replica may lag behind the reservation a shopper just made.
    scaleReads: 'master',
    retryDelayOnFailover: 300,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 100,
    // 16 redirections × 300 ms rides out most of a failover (cluster-node-timeout + election).
    maxRedirections: 16,
    slotsRefreshTimeout: 2_000,
    // Managed clusters announce nodes by IP behind a TLS name; keep the address as announced.
    dnsLookup: (address, callback) => callback(null, address),
    redisOptions: {
      maxRetriesPerRequest: 2,
      connectTimeout: 2_000,
      ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
      ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
      ...(first.protocol === 'rediss:' ? { tls: { servername: first.hostname } } : {}),
      ...nodeOptions,
    },
  };
  return new Cluster(nodes, clusterOptions);
}

/** A new connection to the same target, e.g. for a subscription or a blocking command. */
export function duplicateRedis(client: RedisClient, options: RedisOptions = {}): RedisClient {
  if (client instanceof Cluster) {
    const { enableAutoPipelining, ...nodeOptions } = options;
    return client.duplicate(undefined, {
      ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
      redisOptions: { ...client.options.redisOptions, ...nodeOptions },
    });
  }
  return client.duplicate(options);
}

/** Replies by which a server says it cannot serve us now: busy, failing over, or refusing our credentials. */
const UNWELL_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|WRONGPASS|NOAUTH)\b/;

/** Redis's clock (TIME), in ms since the epoch. */
export async function redisClockMs(redis: RedisClient): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}

/** Redis unwell (no connection, timeout, LOADING…), not a script's error: only that opens the breaker, answers 503. */
export function isRedisFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof ReplyError) return UNWELL_REPLY.test(err.message);
  return true;
}
