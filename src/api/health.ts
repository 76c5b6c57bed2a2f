/**
 * /readyz (and /healthz): a real round trip to each dependency, each bounded by a timeout so a hung
 * server shows as down instead of hanging the probe; and whether the process is draining.
 *
 * With the API's guards the round trips go through the breakers: a dependency whose breaker is open
 * shows as down at once, and once the breaker may probe, the readiness probe is that probe, so a
 * breaker closes again after an outage even when no shopper's request comes to try it.
 */
import type { Client } from '@temporalio/client';
import { Deadline, DEPENDENCY_NAMES, type BreakerState, type DependencyGuards, type DependencyName } from '../infra/dependency-guard.js';
import type { RedisClient } from '../infra/redis.js';
import type { Store } from '../db/store.js';

export type Dependency = 'redis' | 'mysql' | 'temporal';
export interface HealthReport {
  ok: boolean;
  checks: Record<Dependency, 'up' | 'down'>;
  down: Dependency[];
}

/** Each dependency's breaker as it stands (an open one: requests that need it fail fast). */
export function breakerStates(guards: DependencyGuards): Record<DependencyName, BreakerState> {
  return Object.fromEntries(DEPENDENCY_NAMES.map((name) => [name, guards[name].state])) as Record<DependencyName, BreakerState>;
}

const TIMEOUT_MS = 1_500;

export async function checkHealth(deps: { redis: RedisClient; store: Store; temporal: Client; guards?: DependencyGuards }): Promise<HealthReport> {
  const probes: Record<Dependency, () => Promise<unknown>> = {
    redis: () => deps.redis.ping(),
    mysql: () => deps.store.ping(),
    temporal: () => deps.temporal.workflowService.getSystemInfo({}),
  };
  const names = Object.keys(probes) as Dependency[];
  const results = await Promise.all(
    names.map((name) => {
      const guard = deps.guards?.[name];
      const probe = guard ? guard.call(Deadline.in(TIMEOUT_MS), probes[name]) : withTimeout(probes[name]());
      return probe.then(
        () => true,
        () => false,
      );
    }),
  );
  const checks = Object.fromEntries(names.map((name, i) => [name, results[i] ? 'up' : 'down'])) as HealthReport['checks'];
  const down = names.filter((name) => checks[name] === 'down');
  return { ok: down.length === 0, checks, down };
}

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Whether this process should be sent traffic. From SIGTERM on it drains: /readyz answers 503 so
 * load balancers stop routing here, while requests that still arrive are served as usual.
 */
export class Readiness {
  private drainingSince: number | undefined;

  startDraining(now = Date.now()): void {
    this.drainingSince ??= now;
  }

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }
}
