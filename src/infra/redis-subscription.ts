/**
 * One Redis pub/sub subscription per API process, shared by everything that keeps a cache safe by
 * notifications (the sold-out flag, the order status cache). Each listener is told of its
 * channel's messages and of whether the subscription is live: while it is not, a message may be
 * missed, so caches that rely on it must not trust themselves.
 *
 * On Redis Cluster a PUBLISH reaches every node (classic pub/sub is broadcast over the cluster
 * bus), so the subscription listens on any one node, masters and replicas alike, and moves to
 * another node when that one goes away.
 */
import { Cluster, Redis } from 'ioredis';
import type { Logger } from './logger.js';
import type { RedisClient } from './redis.js';

export interface ChannelListener {
  message(message: string): void;
  /** false: the subscription is down (messages may be missed); true: it is live again. */
  listening(live: boolean): void;
}

/** The subscription's connection; quit() ends it for good. */
export interface RedisSubscription {
  quit(): Promise<unknown>;
}

/** Subscribes on a dedicated connection (a subscribed connection can run nothing else). */
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
    subscriber.on(
      'ready',
      () =>
        void subscriber.subscribe(...channels).then(
          () => setListening(true),
          () => {},
        ),
    );
  };
  if (redis instanceof Cluster) return subscribeOnCluster(redis, listenOn, setListening);
  const subscriber = redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null });
  listenOn(subscriber);
  return subscriber;
}

/**
 * One connection to one node of the cluster at a time, without reconnects of its own: when it
 * closes, the next node the cluster client knows (or a seed node) is tried, so a SIGKILLed node
 * costs one reconnect, not the subscription. Between the two the listeners are told it is down.
 * ioredis' own cluster subscriber is not used because it does not say when it has lost or
 * regained its subscription, which is what makes the caches safe.
 */
function subscribeOnCluster(
  cluster: Cluster,
  listenOn: (subscriber: Redis) => void,
  setListening: (live: boolean) => void,
): RedisSubscription {
  let closed = false;
  let current: Redis | undefined;
  let attempt = 0;
  // The nodes the cluster client knows (none before it first connects: then try again shortly).
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
