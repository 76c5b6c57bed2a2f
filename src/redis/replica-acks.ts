/**
 * A 202 for an order its own start did not deliver waits until the pending start is on a replica (REDIS_WAIT_REPLICAS;
 * docs/fault-tolerance.md, "A reservation's owners"). Group-commit rounds per sale on a connection of its own (WAIT
 * blocks it): a tiny write to the sale's slot, then WAIT; replicas apply in order, so one ack covers all before it.
 */
import type { AppConfig } from '../config/index.js';
import { duplicateRedis, type RedisClient } from '../infra/redis.js';
import { saleKeys } from './layout.js';

/** The longest one round's WAIT blocks its connection; each caller stops waiting at its own bound. */
const ROUND_TIMEOUT_MS = 1_000;
/** The longest a round is waited for, answered or not. */
const ROUND_BOUND_MS = ROUND_TIMEOUT_MS + 1_000;

function newRound() {
  let resolve!: (acknowledged: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}
type Round = ReturnType<typeof newRound>;

export class ReplicaAcks {
  /** With REDIS_WAIT_REPLICAS (else undefined): on a lazy connection of its own, bounded by a round + REDIS_TIMEOUT. */
  static fromConfig(config: Pick<AppConfig, 'redisWaitReplicas' | 'deadlines'>, redis: RedisClient) {
    if (config.redisWaitReplicas <= 0) return undefined;
    const connection = duplicateRedis(redis, {
      lazyConnect: true,
      commandTimeout: ROUND_TIMEOUT_MS + config.deadlines.redisMs,
    });
    return new ReplicaAcks(connection, config.redisWaitReplicas);
  }

  /** Per SKU: the round waiting to be sent (callers join it), and whether one is in flight. */
  private readonly sales = new Map<string, { next?: Round; inFlight: boolean }>();

  /** `redis`: a connection of its own (WAIT blocks it); `replicas`: how many must acknowledge, at least 1. */
  constructor(
    private readonly redis: RedisClient,
    readonly replicas: number,
  ) {}

  /** Whether the replicas acked every write to the sale answered before this call, within `timeoutMs`; never throws. */
  async replicated(sku: string, timeoutMs: number): Promise<boolean> {
    if (timeoutMs <= 0) return false;
    const sale = this.sales.get(sku) ?? { inFlight: false };
    this.sales.set(sku, sale);
    sale.next ??= newRound();
    const mine = sale.next.promise;
    if (!sale.inFlight) void this.runRounds(sku, sale);
    return within(mine, timeoutMs);
  }

  private async runRounds(sku: string, sale: { next?: Round; inFlight: boolean }): Promise<void> {
    sale.inFlight = true;
    try {
      for (let round = sale.next; round; round = sale.next) {
        sale.next = undefined;
        // Bounded: a round whose node died (a cluster pipeline in a failover) may never settle, blocking the next.
        round.resolve(await within(this.sendRound(sku), ROUND_BOUND_MS));
      }
    } finally {
      sale.inFlight = false;
      // Nothing left to wait for: forget the sale (a sale's rounds start again with its next checkout).
      if (!sale.next) this.sales.delete(sku);
    }
  }

  /** A write to the sale's slot, then WAIT, pipelined so both reach the slot's master on this connection. */
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

/** `answer`, or false once `ms` have passed without one. */
async function within(answer: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([answer, late]);
  } finally {
    clearTimeout(timer);
  }
}
