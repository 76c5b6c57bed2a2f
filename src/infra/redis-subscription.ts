/**
 * The API's one Redis pub/sub subscription, for caches kept safe by notifications: listeners hear when it is down
 * and messages may be missed. On a cluster PUBLISH reaches every node, so any one node will do.
 */
import { Cluster, Redis } from 'ioredis';
import type { Logger } from './logger.js';
import type { RedisClient } from './redis.js';

export interface ChannelListener {
  message(message: string): void;
  /** false: down, messages may be missed; true: live again. */
  listening(live: boolean): void;
}

/** The subscription's connection; quit() ends it for good. */
export interface RedisSubscription {
  quit(): Promise<unknown>;
}

const ignore = (): void => {};

/** Subscribes on a dedicated connection: a subscribed connection can run nothing else. */
export function subscribeChannels(
  redis: RedisClient,
  listeners: Record<string, ChannelListener>,
  logger: Logger,
): RedisSubscription {
  const channels = Object.keys(listeners);
  const setListening = (live: boolean) => {
    for (const listener of Object.values(listeners)) listener.listening(live);
  };
  const listenOn = (subscriber: Redis): void => {
    subscriber.on('message', (channel: string, message: string) => listeners[channel]?.message(message));
    subscriber.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis subscription error'));
    subscriber.on('close', () => setListening(false));
    // ioredis resubscribes after a reconnect; caches trust notifications again only once it has.
    subscriber.on('ready', () => void subscriber.subscribe(...channels).then(() => setListening(true), ignore));
  };
  if (redis instanceof Cluster) return subscribeOnCluster(redis, listenOn, setListening);
  const subscriber = redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null });
  listenOn(subscriber);
  return subscriber;
}

// One node at a time, the next on close; not ioredis' cluster subscriber, which hides losing its subscription.
function subscribeOnCluster(
  cluster: Cluster,
  listenOn: (subscriber: Redis) => void,
  setListening: (live: boolean) => void,
): RedisSubscription {
  let closed = false;
  let current: Redis | undefined;
  let attempt = 0;
  // None before the cluster client first connects: then try again shortly.
  const candidates = (): Array<{ host: string; port: number }> =>
    cluster.nodes('all').map((node) => ({ host: node.options.host ?? '127.0.0.1', port: node.options.port ?? 6379 }));
  const connect = () => {
    if (closed) return;
    const nodes = candidates();
    const node = nodes[attempt++ % Math.max(nodes.length, 1)];
    if (!node) {
      setTimeout(connect, 500).unref();
      return;
    }
    const { host, port } = node;
    const subscriber = new Redis({
      ...cluster.options.redisOptions,
      host,
      port,
      enableAutoPipelining: false,
      maxRetriesPerRequest: null,
      retryStrategy: () => null,
    });
    current = subscriber;
    listenOn(subscriber);
    // No reconnects: the next attempt goes to the next node, after a pause if all were tried.
    subscriber.once('end', () => {
      setListening(false);
      if (!closed) setTimeout(connect, attempt % Math.max(nodes.length, 1) === 0 ? 500 : 50).unref();
    });
  };
  connect();
  return {
    async quit() {
      closed = true;
      await current?.quit().catch(() => current?.disconnect());
    },
  };
}
