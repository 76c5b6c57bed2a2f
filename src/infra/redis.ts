import { Cluster, Redis, ReplyError, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { AppConfig } from '../config/index.js';
import { activeTracing } from './tracing.js';

/**
 * The app's Redis client: one node (`Redis`) or a Redis Cluster (`Cluster`), chosen by
 * configuration alone (several URLs in REDIS_URL, or REDIS_CLUSTER=true). Both run the same
 * commands and the inventory's Lua scripts (all keys of a SKU share one hash slot); only
 * connection-level code (duplicate, subscriptions) needs to know which one it holds.
 */
export type RedisClient = Redis | Cluster;

/**
 * Auto-pipelining sends a batch of commands in the context of the command that opened it, so with
 * tracing on each command's span would hang under whichever request (or background task) came
 * first, or be dropped. Traced processes send each command on its own; untraced ones batch.
 */
function autoPipelining(): boolean {
  return activeTracing() === undefined;
}

/** The node URLs of REDIS_URL: one, or a comma-separated list of a cluster's nodes. */
export function redisNodeUrls(redisUrl: string): string[] {
  return redisUrl
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}

/** Whether the configuration asks for Redis Cluster: several nodes, or REDIS_CLUSTER=true. */
export function usesRedisCluster(
  config: Pick<AppConfig, 'redisUrl'> & Partial<Pick<AppConfig, 'redisCluster'>>,
): boolean {
  return config.redisCluster === true || redisNodeUrls(config.redisUrl).length > 1;
}

/**
 * The app's Redis client. Auto-pipelining batches the many small commands of a burst into few
 * round trips; a bounded retry count makes a dead Redis fail requests fast instead of queueing them.
 * `options` apply to every node connection (for a cluster: its redisOptions).
 */
export function createRedis(
  config: Pick<AppConfig, 'redisUrl'> & Partial<Pick<AppConfig, 'redisCluster'>>,
  options: RedisOptions = {},
): RedisClient {
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

/**
 * A Redis Cluster client seeded with `urls` (any subset of the nodes will do: the client learns the
 * rest from CLUSTER SLOTS). Credentials and TLS (`rediss://`) come from the first URL and apply to
 * every node, as they do on managed clusters. During a failover, commands for the lost master's
 * slots are retried (refreshing the slot table) until its replica has taken over or the retries
 * run out; a checkout then answers 503 with nothing reserved.
 */
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

/**
 * A new connection with the same target as `client` (a subscription, a blocking command): a
 * duplicate of a single-node client, or, for a cluster, a new cluster client over its nodes.
 */
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

/** Replies by which a Redis server says it cannot serve now (loading, busy with a script, failing over). */
const UNWELL_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN)\b/;

/**
 * Whether an error says Redis is unwell (no connection, a command timed out, a server that cannot
 * serve now) rather than answering (a script's own error, or a rate limiter's rejection, which is
 * no Error at all): only the former counts against the API's Redis breaker and answers 503.
 */
/** Redis's clock (TIME), in ms since the epoch. */
export async function redisClockMs(redis: RedisClient): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}

export function isRedisFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof ReplyError) return UNWELL_REPLY.test(err.message);
  return true;
}
