/**
 * "Durable when the shopper hears it" on a Redis with replicas (the cluster layout): a write the
 * master acknowledged is lost if the master dies before a replica has it. Before a checkout answers
 * 202 for a promise its own start did not deliver, the promise must be on a replica
 * (REDIS_WAIT_REPLICAS; docs/fault-tolerance.md, "A reservation's owners").
 *
 * WAIT blocks the connection it is sent on and covers only that connection's own writes, so it
 * cannot share the app's connection (every request's command would queue behind it). Instead a
 * connection of its own runs rounds per sale, a group commit: a tiny write to the sale's slot (which
 * lands after every reservation answered before the round began), then `WAIT n timeout`. Replicas
 * take the replication stream in order, so their acknowledgement of that write covers all those
 * reservations. One round in flight per sale; checkouts that arrive meanwhile share the next one.
 */
import type { AppConfig } from '../config/index.js';
import { duplicateRedis, type RedisClient } from '../infra/redis.js';
import { saleKeys } from './redis-inventory.js';

/** The longest one round's WAIT blocks its connection; each caller stops waiting at its own bound. */
const ROUND_TIMEOUT_MS = 1_000;
/** The longest a round is waited for, answered or not. */
const ROUND_BOUND_MS = ROUND_TIMEOUT_MS + 1_000;

interface Round {
  promise: Promise<boolean>;
  resolve(acknowledged: boolean): void;
}

function newRound(): Round {
  let resolve!: (acknowledged: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}

export class ReplicaAcks {
  /**
   * The process's replica acknowledgements with REDIS_WAIT_REPLICAS (else undefined), on a
   * connection of their own to `redis`'s target, opened on first use and bounded by one round plus REDIS_TIMEOUT.
   */
  static fromConfig(
    config: Pick<AppConfig, 'redisWaitReplicas' | 'deadlines'>,
    redis: RedisClient,
  ): ReplicaAcks | undefined {
    if (config.redisWaitReplicas <= 0) return undefined;
    const connection = duplicateRedis(redis, {
      lazyConnect: true,
      commandTimeout: ROUND_TIMEOUT_MS + config.deadlines.redisMs,
    });
    return new ReplicaAcks(connection, config.redisWaitReplicas);
  }

  /** Per SKU: the round waiting to be sent (callers join it), and whether one is in flight. */
  private readonly sales = new Map<string, { next?: Round; inFlight: boolean }>();

  /**
   * @param redis a connection of its own (WAIT blocks it), to the same Redis or cluster as the app's.
   * @param replicas how many replicas must have acknowledged (REDIS_WAIT_REPLICAS, at least 1).
   */
  constructor(
    private readonly redis: RedisClient,
    readonly replicas: number,
  ) {}

  /**
   * Whether `replicas` replicas acknowledged every write to the sale that Redis had answered
   * before this call, within `timeoutMs`. Never throws: no answer in time is false.
   */
  async replicated(sku: string, timeoutMs: number): Promise<boolean> {
    if (timeoutMs <= 0) return false;
    let sale = this.sales.get(sku);
    if (!sale) {
      sale = { inFlight: false };
      this.sales.set(sku, sale);
    }
    sale.next ??= newRound();
    const mine = sale.next.promise;
    if (!sale.inFlight) void this.runRounds(sku, sale);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([mine, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async runRounds(sku: string, sale: { next?: Round; inFlight: boolean }): Promise<void> {
    sale.inFlight = true;
    try {
      for (let round = sale.next; round; round = sale.next) {
        sale.next = undefined;
        round.resolve(await this.waitOnce(sku));
      }
    } finally {
      sale.inFlight = false;
      // Nothing left to wait for: forget the sale (a sale's rounds start again with its next checkout).
      if (!sale.next) this.sales.delete(sku);
    }
  }

  /**
   * One round, bounded: a round whose node died under it may never settle (a cluster pipeline
   * caught in a failover), and the sale's next rounds would wait behind it for good.
   */
  private async waitOnce(sku: string): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ROUND_BOUND_MS)));
    try {
      return await Promise.race([this.sendRound(sku), hung]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A write to the sale's slot, then WAIT on the same connection (a pipeline keeps them together, on the slot's
   * master).
   */
  private async sendRound(sku: string): Promise<boolean> {
    try {
      const replies = await this.redis
        .pipeline()
        .incr(saleKeys(sku).replicationMark)
        .wait(this.replicas, ROUND_TIMEOUT_MS)
        .exec();
      const [markError] = replies?.[0] ?? [new Error('no reply')];
      const [waitError, acknowledged] = replies?.[1] ?? [new Error('no reply')];
      return !markError && !waitError && Number(acknowledged) >= this.replicas;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => undefined);
  }
}
