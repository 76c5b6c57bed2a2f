/**
 * A per-process "sold out" flag per SKU, so that once a sale is gone the flood of late shoppers is
 * answered from memory instead of Redis. It never hides stock given back: release.lua bumps the
 * sale's stock-returned generation and publishes it, and a flag is only trusted while no higher
 * generation has been seen. A short TTL and a full reset whenever the subscription (re)connects
 * cover a notification that could have been missed.
 *
 * On Redis Cluster, release.lua's PUBLISH reaches every node (classic pub/sub is broadcast over the
 * cluster bus), so the subscription listens on any one node, masters and replicas alike, and moves
 * to another node when that one goes away (see subscribeOnCluster).
 */
import { Cluster, Redis } from 'ioredis';
import { STOCK_RETURNED_CHANNEL } from '../inventory/redis-inventory.js';
import type { Logger } from '../infra/logger.js';
import type { RedisClient } from '../infra/redis.js';

/** The subscription's connection; quit() ends it for good. */
export interface StockReturnedSubscription {
  quit(): Promise<unknown>;
}

export class SoldOutCache {
  private readonly flags = new Map<string, { generation: number; until: number }>();
  private readonly returned = new Map<string, number>();
  private listening = false;

  constructor(private readonly ttlMs = 1_000) {}

  isSoldOut(sku: string, now = Date.now()): boolean {
    const flag = this.flags.get(sku);
    if (!flag) return false;
    if (now >= flag.until || flag.generation < (this.returned.get(sku) ?? 0)) {
      this.flags.delete(sku);
      return false;
    }
    return true;
  }

  /** Called with the generation reserve.lua saw when it answered SOLD_OUT. */
  markSoldOut(sku: string, generation: number, now = Date.now()): void {
    // Without a live subscription a return could go unnoticed: then nothing is cached.
    if (!this.listening || generation < (this.returned.get(sku) ?? 0)) return;
    this.flags.set(sku, { generation, until: now + this.ttlMs });
  }

  stockReturned(sku: string, generation: number): void {
    this.returned.set(sku, Math.max(generation, this.returned.get(sku) ?? 0));
    this.flags.delete(sku);
  }

  setListening(listening: boolean): void {
    this.listening = listening;
    this.flags.clear();
  }

  /** Subscribes on a dedicated connection (a subscribed connection can run nothing else). */
  async subscribe(redis: RedisClient, logger: Logger): Promise<StockReturnedSubscription> {
    if (redis instanceof Cluster) return this.subscribeOnCluster(redis, logger);
    const subscriber = redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null });
    this.listenOn(subscriber, logger);
    return subscriber;
  }

  private listenOn(subscriber: Redis, logger: Logger): void {
    subscriber.on('message', (_channel: string, message: string) => {
      const [sku, generation] = message.split('\n');
      if (sku && generation) this.stockReturned(sku, Number(generation));
    });
    subscriber.on('error', (err: Error) => logger.warn({ err: err.message }, 'sold-out subscription error'));
    subscriber.on('close', () => this.setListening(false));
    // ioredis resubscribes after a reconnect; flags are trusted again only once it has.
    subscriber.on(
      'ready',
      () =>
        void subscriber.subscribe(STOCK_RETURNED_CHANNEL).then(
          () => this.setListening(true),
          () => {},
        ),
    );
  }

  /**
   * One connection to one node of the cluster at a time, without reconnects of its own: when it
   * closes, the next node the cluster client knows (or a seed node) is tried, so a SIGKILLed node
   * costs one reconnect, not the subscription. Between the two nothing is cached (setListening).
   * ioredis' own cluster subscriber is not used because it does not say when it has lost or
   * regained its subscription, which is what makes the flag safe.
   */
  private subscribeOnCluster(cluster: Cluster, logger: Logger): StockReturnedSubscription {
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
      this.listenOn(subscriber, logger);
      // No reconnects: the next attempt goes to the next node, after a pause if all were tried.
      subscriber.once('end', () => {
        this.setListening(false);
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
}
