/**
 * The API process's breakers, one per dependency, with what counts as its failure and its per-call bound; Temporal's
 * calls take the request's own deadline (CHECKOUT_DEADLINE, READ_DEADLINE, WRITE_DEADLINE) instead.
 */
import type { AppConfig } from '../config/index.js';
import { isMysqlFailure } from '../db/rows.js';
import { DependencyGuard, type DependencyGuards, type DependencyObserver } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import { isRedisFailure } from '../infra/redis.js';
import { isTemporalFailure } from '../order/workflow-client.js';

export function createDependencyGuards(
  config: Pick<AppConfig, 'breaker' | 'deadlines'>,
  observer: DependencyObserver,
  logger: Logger,
): DependencyGuards {
  const common = {
    failureThreshold: config.breaker.failureThreshold,
    noSuccessForMs: config.breaker.noSuccessForMs,
    halfOpenAfterMs: config.breaker.halfOpenAfterMs,
    observer,
    log: ({ dependency, state, cause }: { dependency: string; state: string; cause?: string }) => {
      const fields = { dependency, state, ...(cause ? { cause } : {}) };
      if (state === 'open') logger.warn(fields, `circuit breaker opened: requests that need ${dependency} fail fast`);
      else logger.info(fields, `circuit breaker ${state}`);
    },
  };
  return {
    redis: new DependencyGuard('redis', {
      ...common,
      callTimeoutMs: config.deadlines.redisMs,
      isFailure: isRedisFailure,
    }),
    mysql: new DependencyGuard('mysql', {
      ...common,
      callTimeoutMs: config.deadlines.mysqlMs,
      isFailure: isMysqlFailure,
    }),
    temporal: new DependencyGuard('temporal', { ...common, isFailure: isTemporalFailure }),
    workflows: new DependencyGuard('workflows', { ...common, isFailure: isTemporalFailure }),
  };
}
