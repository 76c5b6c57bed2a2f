/** Request budgets (docs/operations.md, "Rate limits") shared in Redis, a key per limit and identity: Cluster-safe. */
import type { RedisClient } from '../infra/redis.js';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { AppConfig, RateLimit } from '../config/index.js';
import { DependencyUnavailableError, type DependencyGuard } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import { subnetOf } from '../line/line-rules.js';
import { ApiError } from './errors.js';

type RateLimitName = keyof AppConfig['rateLimits'] | 'orders';

export const RATE_LIMIT_KEY_PREFIX = 'ratelimit';

/** GET /api/orders per shopper (a page is a MySQL read), as a line's shopper budget; fixed until it has a setting. */
export const ORDERS_LIST_LIMIT: RateLimit = { points: 60, durationSeconds: 60 };

const WHAT: Record<RateLimitName, string> = {
  checkout: 'checkouts from this shopper',
  login: 'logins from this address',
  webhook: 'webhook calls from this address',
  orders: 'order lists from this shopper',
};

export class RateLimits {
  /** Each budget's shared counter, and the one in memory that stands in while Redis does not answer. */
  private readonly limiters = new Map<RateLimitName, { shared: RateLimiterRedis; local: RateLimiterMemory }>();

  /** While Redis does not answer, each process counts in memory without waiting: logins and webhooks go on. */
  constructor(
    redis: RedisClient,
    settings: Partial<Record<RateLimitName, RateLimit | null>>,
    private readonly logger: Logger,
    private readonly redisGuard: DependencyGuard,
  ) {
    for (const [name, limit] of Object.entries(settings) as [RateLimitName, RateLimit | null | undefined][]) {
      if (!limit) continue;
      const options = {
        keyPrefix: `${RATE_LIMIT_KEY_PREFIX}:${name}`,
        points: limit.points,
        duration: limit.durationSeconds,
      };
      this.limiters.set(name, {
        local: new RateLimiterMemory(options),
        shared: new RateLimiterRedis({
          ...options,
          storeClient: redis,
          // A spent identity is refused from memory until the window ends: no Redis round trip per hammering request.
          inMemoryBlockOnConsumed: limit.points,
          // consumeOne counts in memory while Redis is down, so the failure reaches the breaker, not hidden here.
          rejectIfRedisNotReady: true,
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
      if (rejection instanceof RateLimiterRes) throw tooMany(WHAT[name], limiter.shared, rejection);
      // Neither Redis nor memory answered: let it through rather than refuse everyone over the limiter itself.
      this.logger.warn({ err: rejection, limit: name }, 'rate limiter failed; request let through');
    }
  }

  private async consumeOne(limiter: { shared: RateLimiterRedis; local: RateLimiterMemory }, identity: string) {
    if (!this.redisGuard.closed) return limiter.local.consume(identity);
    try {
      return await this.redisGuard.call(undefined, () => limiter.shared.consume(identity));
    } catch (err) {
      if (err instanceof DependencyUnavailableError) return limiter.local.consume(identity);
      throw err;
    }
  }
}

/** A line's joins and reads per shopper, IP and subnet, in this process's memory: a poll costs no Redis round trip. */
export class LineRateLimits {
  private readonly limiters: { limiter: RateLimiterMemory; identity: (who: Who) => string; what: string }[] = [];

  constructor(limits: AppConfig['lineRateLimits']) {
    const add = (limit: RateLimit | null, name: string, identity: (who: Who) => string, what: string) => {
      if (!limit) return;
      const limiter = new RateLimiterMemory({
        keyPrefix: `line:${name}`,
        points: limit.points,
        duration: limit.durationSeconds,
      });
      this.limiters.push({ limiter, identity, what: `line requests from ${what}` });
    };
    add(limits.shopper, 'shopper', (who) => who.userId, 'this shopper');
    add(limits.ip, 'ip', (who) => who.ip, 'this address');
    add(limits.subnet, 'subnet', (who) => subnetOf(who.ip), 'this network');
  }

  /** Counts one join or read against every budget; 429 RATE_LIMITED naming the first one spent. */
  async consume(who: Who): Promise<void> {
    for (const { limiter, identity, what } of this.limiters) {
      try {
        await limiter.consume(identity(who));
      } catch (rejection) {
        throw rejection instanceof RateLimiterRes ? tooMany(what, limiter, rejection) : rejection;
      }
    }
  }
}

interface Who {
  userId: string;
  ip: string;
}

/** 429 RATE_LIMITED, naming what was counted and when to retry. */
export function tooMany(
  what: string,
  limiter: { points: number; duration: number },
  rejection: RateLimiterRes,
): ApiError {
  const seconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1_000));
  const message = `too many ${what}: at most ${limiter.points} per ${limiter.duration} s; retry in ${seconds} s`;
  return new ApiError('RATE_LIMITED', message, undefined, { 'Retry-After': String(seconds) });
}
