/**
 * A rollout of a new build during a sale, as `npm run rollout` runs it (docs/operations.md, "Deploying during a sale"):
 * poll, smoke order, switch or ramp, drain the old version. A rollback is the same with the old build as the target.
 */
import type { Client } from '@temporalio/client';
import type { DeploymentStatus, WorkerDeployments, WorkerVersion } from '../infra/worker-deployments.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import type { SalesService } from '../sales/sales-service.js';
import { runSmokeOrder, SMOKE_SALE, type SmokeOrderResult } from '../order/smoke-order.js';
import { Refusal } from '../infra/refusal.js';

export interface RolloutOptions {
  target: WorkerVersion;
  /** The task queues the target's workers must poll before it is made current (the order and provider queues). */
  taskQueues: readonly string[];
  /** Run a smoke order on the target before it takes traffic (default true). */
  smoke: boolean;
  /** A percentage (1-99) of new orders for the target, the rest staying on the current version; undefined: all. */
  rampPercentage?: number;
  /** How long to watch the previous version drain (0: do not watch). */
  drainTimeoutMs: number;
  pollTimeoutMs: number;
  everyMs?: number;
  /** After the previous version drained: stop its workers (the local stack's processes, or the operator's hook). */
  stopDrained?: (buildId: string) => Promise<void>;
  say: (line: string) => void;
}

export interface RolloutReport {
  previousBuildId: string | null;
  targetBuildId: string;
  smoke: SmokeOrderResult | null;
  /** Open orders per build id at the switch. */
  openAtSwitch: Record<string, number>;
  ramped: number | null;
  /** Milliseconds from the switch until the previous version showed DRAINED; null if not watched or not drained. */
  drainedAfterMs: number | null;
  previousStopped: boolean;
}

export async function rollout(
  deps: {
    deployments: WorkerDeployments;
    client: Client;
    taskQueue: string;
    inventory: RedisInventory;
    sales: SalesService;
  },
  options: RolloutOptions,
): Promise<RolloutReport> {
  const { deployments } = deps;
  const { target, say } = options;
  const name = target.deploymentName;
  const before = await deployments.status(name, deps.taskQueue);
  const previousBuildId = before.currentBuildId;
  say(`deployment ${name}: current ${previousBuildId ?? '(none)'}, target ${target.buildId}`);
  const held = unversionedHoldBack(before, target.buildId);
  if (held) throw new Error(held);
  await deployments.untilPolling(target, options.taskQueues, options.pollTimeoutMs);
  say(`target ${target.buildId} polls ${options.taskQueues.join(', ')}`);
  let smoke: SmokeOrderResult | null = null;
  if (options.smoke) {
    await deps.sales.create({ ...SMOKE_SALE }).catch((err: unknown) => {
      if (!(err instanceof Refusal && err.code === 'SALE_EXISTS')) throw err;
    });
    smoke = await runSmokeOrder({ ...deps, version: target });
    say(`smoke order ${smoke.orderNo} on ${target.buildId}: persisted, cancelled, ${smoke.status} in ${smoke.ms} ms`);
  }
  const atSwitch = await deployments.status(name, deps.taskQueue);
  const openAtSwitch = Object.fromEntries(atSwitch.versions.map((version) => [version.buildId, version.openOrders]));
  if (options.rampPercentage !== undefined && previousBuildId && previousBuildId !== target.buildId) {
    await deployments.setRamping(target, options.rampPercentage);
    say(`target ${target.buildId} takes ${options.rampPercentage} % of new orders; run again without --ramp to finish`);
    return {
      previousBuildId,
      targetBuildId: target.buildId,
      smoke,
      openAtSwitch,
      ramped: options.rampPercentage,
      drainedAfterMs: null,
      previousStopped: false,
    };
  }
  const switchedAt = Date.now();
  const routedMs = await deployments.setCurrent(target);
  say(
    `target ${target.buildId} is current (routing reached every task queue in ${routedMs} ms); ` +
      `open orders at the switch: ${describeOpen(openAtSwitch)}`,
  );
  const report: RolloutReport = {
    previousBuildId,
    targetBuildId: target.buildId,
    smoke,
    openAtSwitch,
    ramped: null,
    drainedAfterMs: null,
    previousStopped: false,
  };
  if (!previousBuildId || previousBuildId === target.buildId || options.drainTimeoutMs <= 0) return report;
  for (;;) {
    const now = await deployments.status(name, deps.taskQueue);
    const previous = now.versions.find((version) => version.buildId === previousBuildId);
    say(
      `previous ${previousBuildId}: ${previous?.status ?? 'gone'}, ${previous?.openOrders ?? 0} open orders; ` +
        `target: ${now.versions.find((version) => version.buildId === target.buildId)?.openOrders ?? 0}`,
    );
    if (!previous || previous.status === 'DRAINED') {
      report.drainedAfterMs = Date.now() - switchedAt;
      break;
    }
    if (Date.now() - switchedAt > options.drainTimeoutMs) {
      const holding = await deployments.openOrderIds(
        { deploymentName: name, buildId: previousBuildId },
        deps.taskQueue,
        5,
      );
      say(
        `previous ${previousBuildId} still has ${previous.openOrders} open orders after ${options.drainTimeoutMs} ms ` +
          `(${holding.join(', ')}${previous.openOrders > holding.length ? ', …' : ''}): keep its workers running ` +
          '(a Stripe order settling at its bank can take days); run `npm run rollout -- status` later',
      );
      return report;
    }
    await new Promise((resolve) => setTimeout(resolve, options.everyMs ?? 2_000));
  }
  say(`previous ${previousBuildId} drained ${report.drainedAfterMs} ms after the switch: its workers can stop`);
  if (options.stopDrained) {
    await options.stopDrained(previousBuildId);
    report.previousStopped = true;
    say(`previous ${previousBuildId}: its workers stopped`);
  }
  return report;
}

/**
 * Why a switch must wait, or null: orders started before versioning run on the current version, so a switch would move
 * them onto the target's code mid-order. Only the first versioned build (it kept their patches) takes them.
 */
export function unversionedHoldBack(status: DeploymentStatus, targetBuildId: string): string | null {
  if (status.unversionedOpenOrders === 0 || !status.currentBuildId || status.currentBuildId === targetBuildId)
    return null;
  return (
    `${status.unversionedOpenOrders} open orders started before versioning run on the current build ` +
    `${status.currentBuildId} and would move to ${targetBuildId} mid-order; nothing switched. Wait until ` +
    '`npm run rollout -- status` shows none (or pin each to the current build with a versioning override), then again'
  );
}

function describeOpen(open: Record<string, number>): string {
  const entries = Object.entries(open);
  return entries.length === 0 ? 'none' : entries.map(([buildId, count]) => `${buildId} ${count}`).join(', ');
}
