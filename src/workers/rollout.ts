/** `npm run rollout` (docs/operations.md, "Deploying during a sale"); a rollback targets the old build. */
import { describeOpenRuns, type WorkerDeployments, type WorkerVersion } from '../infra/worker-deployments.js';
import type { SmokeOrderResult } from '../order/smoke-order.js';

export interface RolloutOptions {
  deployments: WorkerDeployments;
  /** The order queue: the status counts its orders. */
  taskQueue: string;
  /** A smoke order pinned to the target (the API runs it); null: none. */
  smokeOrder: ((target: WorkerVersion) => Promise<SmokeOrderResult>) | null;
  target: WorkerVersion;
  /** The task queues the target's workers must poll before it is made current (the order and provider queues). */
  taskQueues: readonly string[];
  /** A percentage (1-99) of new orders for the target, the rest staying on the current version; undefined: all. */
  rampPercentage?: number;
  /** How long to watch the previous version drain (0: do not watch). */
  drainTimeoutMs: number;
  pollTimeoutMs: number;
  say: (line: string) => void;
}

export type RolloutReport = Awaited<ReturnType<typeof rollout>>;

/** Polls, runs a smoke order, switches (or ramps), then watches the previous version drain. */
export async function rollout(options: RolloutOptions) {
  const { deployments, target, say } = options;
  const name = target.deploymentName;
  const before = await deployments.status(name, options.taskQueue);
  const previousBuildId = before.currentBuildId;
  say(`deployment ${name}: current ${previousBuildId ?? '(none)'}, target ${target.buildId}`);
  // Orders started before versioning would move onto the target's code mid-order: the switch waits for them.
  if (before.unversionedOpenOrders > 0 && previousBuildId && previousBuildId !== target.buildId)
    throw new Error(
      `${before.unversionedOpenOrders} open orders started before versioning run on the current build ` +
        `${previousBuildId} and would move to ${target.buildId} mid-order; nothing switched. Wait until ` +
        '`npm run rollout -- status` shows none (or pin each to the current build with a versioning override), then again',
    );
  await deployments.untilPolling(target, options.taskQueues, options.pollTimeoutMs);
  say(`target ${target.buildId} polls ${options.taskQueues.join(', ')}`);
  let smoke: SmokeOrderResult | null = null;
  if (options.smokeOrder) {
    smoke = await options.smokeOrder(target);
    say(`smoke order ${smoke.orderNo} on ${target.buildId}: persisted, cancelled, ${smoke.status} in ${smoke.ms} ms`);
  }
  const atSwitch = await deployments.status(name, options.taskQueue);
  const openAtSwitch = Object.fromEntries(atSwitch.versions.map((version) => [version.buildId, version.openOrders]));
  const report = {
    previousBuildId,
    targetBuildId: target.buildId,
    smoke,
    openAtSwitch,
    ramped: null as number | null,
    /** From the switch until the previous version showed DRAINED; null if not watched or not drained. */
    drainedAfterMs: null as number | null,
  };
  if (options.rampPercentage !== undefined && previousBuildId && previousBuildId !== target.buildId) {
    await deployments.setRamping(target, options.rampPercentage);
    say(`target ${target.buildId} takes ${options.rampPercentage} % of new orders; run again without --ramp to finish`);
    return { ...report, ramped: options.rampPercentage };
  }
  const switchedAt = Date.now();
  const routedMs = await deployments.setCurrent(target);
  const open = Object.entries(openAtSwitch).map(([buildId, count]) => `${buildId} ${count}`);
  say(
    `target ${target.buildId} is current (routing reached every task queue in ${routedMs} ms); ` +
      `open orders at the switch: ${open.join(', ') || 'none'}`,
  );
  if (!previousBuildId || previousBuildId === target.buildId || options.drainTimeoutMs <= 0) return report;
  for (;;) {
    const now = await deployments.status(name, options.taskQueue);
    const previous = now.versions.find((version) => version.buildId === previousBuildId);
    say(
      `previous ${previousBuildId}: ${previous?.status ?? 'gone'}, ${previous ? describeOpenRuns(previous) : 'no open runs'}; ` +
        `target: ${now.versions.find((version) => version.buildId === target.buildId)?.openOrders ?? 0}`,
    );
    if (!previous || previous.status === 'DRAINED') {
      report.drainedAfterMs = Date.now() - switchedAt;
      break;
    }
    if (Date.now() - switchedAt > options.drainTimeoutMs) {
      const holding = await deployments.openOrderIds({ ...target, buildId: previousBuildId }, options.taskQueue, 5);
      say(
        `previous ${previousBuildId} still has ${previous.openOrders} open orders after ${options.drainTimeoutMs} ms ` +
          `(${holding.join(', ')}${previous.openOrders > holding.length ? ', …' : ''}): keep its workers running ` +
          '(a Stripe order settling at its bank can take days); run `npm run rollout -- status` later',
      );
      return report;
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
  // Stopping them is the platform's (a Deployment scaled to 0, the Worker Controller's sunset), never the tool's.
  say(`previous ${previousBuildId} drained ${report.drainedAfterMs} ms after the switch: its workers can stop`);
  return report;
}
