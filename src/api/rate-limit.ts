/**
 * Request budgets (docs/api.md and docs/operations.md, "Rate limits"): per shopper on checkout, per
 * client IP on the dev login and the payment webhook. Counted in Redis with rate-limiter-flexible,
 * so every API process shares one budget per shopper or IP.
 *
 * Redis layout: one key per (limit, identity), `ratelimit:<limit>:<identity>`, e.g.
 * `ratelimit:checkout:alice`, expiring with its window. Nothing here starts with `sale:`, so it never
 * meets the inventory's keys, and each consume is one single-key script, which Redis Cluster runs
 * on whatever slot the key hashes to.
 */
import type { RedisClient } from '../infra/redis.js';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { AppConfig, RateLimit } from '../config/index.js';
import { DependencyUnavailableError, type DependencyGuard } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import { ApiError } from './errors.js';

export type RateLimitName = keyof AppConfig['rateLimits'];

export const RATE_LIMIT_KEY_PREFIX = 'ratelimit';

const WHAT: Record<RateLimitName, string> = {
  checkout: 'checkouts from this shopper',
  login: 'logins from this address',
  webhook: 'webhook calls from this address',
};

/** A budget counted in Redis, and the per-process count that stands in while Redis does not answer. */
interface Limiter {
  shared: RateLimiterRedis;
  local: RateLimiterMemory;
}

export class RateLimits {
  private readonly limiters = new Map<RateLimitName, Limiter>();

  /**
   * `redisGuard`: Redis's breaker and per-command bound. While Redis does not answer (a deadline
   * hit, or its breaker open) each process counts in memory instead, without waiting for it: a
   * login or a webhook, which do not need Redis, goes on; a checkout fails later, at its reserve.
   */
  constructor(
    redis: RedisClient,
    settings: AppConfig['rateLimits'],
    private readonly logger: Logger,
    private readonly redisGuard?: DependencyGuard,
  ) {
    for (const [name, limit] of Object.entries(settings) as [RateLimitName, RateLimit | null][]) {
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
          // Once an identity has used its budget this process refuses it from memory until the
          // window ends: a hammering client costs no Redis round trip per request.
          inMemoryBlockOnConsumed: limit.points,
          // Redis down: count per process in memory instead, so logins and webhooks (which do not
          // need Redis) still work, and still are limited. With a guard, consumeOne does that
          // itself, so that a Redis failure reaches the breaker instead of being hidden here.
          rejectIfRedisNotReady: true,
          ...(redisGuard ? {} : { insuranceLimiter: local }),
        }),
      });
    }
  }

  /** Counts one request of `identity` against the budget `name`; throws 429 RATE_LIMITED when it is spent. */
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
      // Neither Redis nor the in-memory insurance answered: let the request through rather than
      // refuse every shopper because of the limiter itself.
      this.logger.warn({ err: rejection, limit: name }, 'rate limiter failed; request let through');
    }
  }

  /** The shared count in Redis while it answers; the local one while it does not. */
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
