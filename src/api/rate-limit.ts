/**
 * Request budgets (README, "Rate limits"): per shopper on checkout, per client IP on the dev login
 * and the payment webhook. Counted in Redis with rate-limiter-flexible, so every API process shares
 * one budget per shopper or IP.
 *
 * Redis layout: one key per (limit, identity), `ratelimit:<limit>:<identity>`, e.g.
 * `ratelimit:checkout:alice`, expiring with its window. Nothing here starts with `sale:`, so it never
 * meets the inventory's keys, and each consume is one single-key script, which Redis Cluster runs
 * on whatever slot the key hashes to.
 */
import type { RedisClient } from '../infra/redis.js';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { AppConfig, RateLimit } from '../config/index.js';
import type { Logger } from '../infra/logger.js';
import { ApiError } from './errors.js';

export type RateLimitName = keyof AppConfig['rateLimits'];

export const RATE_LIMIT_KEY_PREFIX = 'ratelimit';

const WHAT: Record<RateLimitName, string> = {
  checkout: 'checkouts from this shopper',
  login: 'logins from this address',
  webhook: 'webhook calls from this address',
};

export class RateLimits {
  private readonly limiters = new Map<RateLimitName, RateLimiterRedis>();

  constructor(
    redis: RedisClient,
    settings: AppConfig['rateLimits'],
    private readonly logger: Logger,
  ) {
    for (const [name, limit] of Object.entries(settings) as [RateLimitName, RateLimit | null][]) {
      if (!limit) continue;
      this.limiters.set(
        name,
        new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: `${RATE_LIMIT_KEY_PREFIX}:${name}`,
          points: limit.points,
          duration: limit.durationSeconds,
          // Once an identity has used its budget this process refuses it from memory until the
          // window ends: a hammering client costs no Redis round trip per request.
          inMemoryBlockOnConsumed: limit.points,
          // Redis down: count per process in memory instead, so logins and webhooks (which do not
          // need Redis) still work, and still are limited.
          rejectIfRedisNotReady: true,
          insuranceLimiter: new RateLimiterMemory({ keyPrefix: `${RATE_LIMIT_KEY_PREFIX}:${name}`, points: limit.points, duration: limit.durationSeconds }),
        }),
      );
    }
  }

  /** Counts one request of `identity` against the budget `name`; throws 429 RATE_LIMITED when it is spent. */
  async consume(name: RateLimitName, identity: string): Promise<void> {
    const limiter = this.limiters.get(name);
    if (!limiter) return;
    try {
      await limiter.consume(identity);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        const retryAfterSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1_000));
        throw new ApiError(
          429,
          'RATE_LIMITED',
          `too many ${WHAT[name]}: at most ${limiter.points} per ${limiter.duration} s; retry in ${retryAfterSeconds} s`,
          undefined,
          { 'Retry-After': String(retryAfterSeconds) },
        );
      }
      // Neither Redis nor the in-memory insurance answered: let the request through rather than
      // refuse every shopper because of the limiter itself.
      this.logger.warn({ err: rejection, limit: name }, 'rate limiter failed; request let through');
    }
  }
}
