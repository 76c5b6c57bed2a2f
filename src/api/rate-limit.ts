/**
 * Request budgets (docs/operations.md, "Rate limits"), counted in Redis so every API process shares them. One key per
 * (limit, identity), `ratelimit:<limit>:<identity>`, expiring with its window: a single-key script, Cluster-safe.
 */
import type { RedisClient } from '../infra/redis.js';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { AppConfig, RateLimit } from '../config/index.js';
import { DependencyUnavailableError, type DependencyGuard } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import { ApiError } from './errors.js';

export type RateLimitName = keyof AppConfig['rateLimits'] | 'orders';

export const RATE_LIMIT_KEY_PREFIX = 'ratelimit';

/** GET /api/orders per shopper (a page is a MySQL read), as a line's shopper budget; fixed until it has a setting. */
export const ORDERS_LIST_LIMIT: RateLimit = { points: 60, durationSeconds: 60 };

const WHAT: Record<RateLimitName, string> = {
  checkout: 'checkouts from this shopper',
  login: 'logins from this address',
  webhook: 'webhook calls from this address',
  orders: 'order lists from this shopper',
};

/** `local` stands in while Redis does not answer. */
interface Limiter {
  shared: RateLimiterRedis;
  local: RateLimiterMemory;
}

export class RateLimits {
  private readonly limiters = new Map<RateLimitName, Limiter>();

  /**
   * While `redisGuard` says Redis does not answer, each process counts in memory without waiting: a login or webhook
   * (no Redis needed) goes on; a checkout fails later, at its reserve.
   */
  constructor(
    redis: RedisClient,
    settings: Partial<Record<RateLimitName, RateLimit | null>>,
    private readonly logger: Logger,
    private readonly redisGuard?: DependencyGuard,
  ) {
    for (const [name, limit] of Object.entries(settings) as [RateLimitName, RateLimit | null | undefined][]) {
      if (!limit) continue;
      const local = new RateLimiterMemory({
        keyPrefix: `${RATE_LIMIT_KEY_PREFIX}:${name}`,
        points: limit.points,
        duration: limit.durationSeconds,
      });
      this.limiters.set(name, {
        local,
        shared: new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: `${RATE_LIMIT_KEY_PREFIX}:${name}`,
          points: limit.points,
          duration: limit.durationSeconds,
          // A spent identity is refused from memory until the window ends: no Redis round trip per hammering request.
          inMemoryBlockOnConsumed: limit.points,
          // Without a guard, the insurance counts in memory while Redis is down; with one, consumeOne does, so that
          // the failure reaches the breaker instead of being hidden here.
          rejectIfRedisNotReady: true,
          ...(redisGuard ? {} : { insuranceLimiter: local }),
        }),
      });
    }
  }

  /** Throws 429 RATE_LIMITED when the budget is spent. */
  async consume(name: RateLimitName, identity: string): Promise<void> {
    const limiter = this.limiters.get(name);
    if (!limiter) return;
    try {
      await this.consumeOne(limiter, identity);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        const retryAfterSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1_000));
        throw new ApiError(
          429,
          'RATE_LIMITED',
          `too many ${WHAT[name]}: at most ${limiter.shared.points} per ${limiter.shared.duration} s; retry in ${retryAfterSeconds} s`,
          undefined,
          { 'Retry-After': String(retryAfterSeconds) },
        );
      }
      // Neither Redis nor memory answered: let it through rather than refuse everyone over the limiter itself.
      this.logger.warn({ err: rejection, limit: name }, 'rate limiter failed; request let through');
    }
  }

  private async consumeOne(limiter: Limiter, identity: string): Promise<unknown> {
    const guard = this.redisGuard;
    if (!guard) return limiter.shared.consume(identity);
    if (!guard.closed) return limiter.local.consume(identity);
    try {
      return await guard.call(undefined, () => limiter.shared.consume(identity));
    } catch (err) {
      if (err instanceof DependencyUnavailableError) return limiter.local.consume(identity);
      throw err;
    }
  }
}
