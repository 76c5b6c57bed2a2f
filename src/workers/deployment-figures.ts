/**
 * The Worker Deployment's builds as metrics (docs/operations.md, "Metrics"): open pinned runs by type, workers polling.
 * Read by the current build only, so no old build's figures go stale beside it; replicas agree (max by build_id).
 */
import type { MetricMeter } from '@temporalio/common';
import type { Logger } from '../infra/logger.js';
import type { WorkerDeployments, WorkerVersion } from '../infra/worker-deployments.js';
import { gauge, metricGroup } from './telemetry.js';

const DEPLOYMENT = metricGroup({
  openRuns: gauge(
    'flash_deployment_open_runs',
    'Open runs pinned to each build of the Worker Deployment, by build_id and workflow_type: it drains once all are 0',
  ),
  pollers: gauge(
    'flash_deployment_pollers',
    "Each build's workers whose last poll of the order queue arrived within 2 minutes, by build_id",
  ),
});

/** A live worker's long poll is answered within about 70 s: one silent for 2 minutes is gone. */
const POLLED_WITHIN_MS = 120_000;

export function startDeploymentFigures(options: {
  deployments: WorkerDeployments;
  version: WorkerVersion;
  orderTaskQueue: string;
  meter: MetricMeter;
  isCurrent: () => boolean;
  logger: Logger;
  everyMs?: number;
}): { stop(): void } {
  const { deployments, version, orderTaskQueue } = options;
  const { openRuns, pollers } = DEPLOYMENT.on(options.meter);
  const look = async () => {
    if (!options.isCurrent()) return;
    const [status, polling] = await Promise.all([
      deployments.status(version.deploymentName, orderTaskQueue),
      deployments.orderQueuePollers(orderTaskQueue),
    ]);
    const since = Date.now() - POLLED_WITHIN_MS;
    for (const build of status.versions) {
      for (const [type, count] of Object.entries(build.openRuns))
        openRuns.set(count, { build_id: build.buildId, workflow_type: type });
      const live = polling.filter(
        (poller) =>
          poller.version?.deploymentName === version.deploymentName &&
          poller.version.buildId === build.buildId &&
          poller.lastPollMs >= since,
      );
      pollers.set(live.length, { build_id: build.buildId });
    }
  };
  const tick = () =>
    void look().catch((err: unknown) => options.logger.warn({ err }, 'could not read the deployment for its metrics'));
  const timer = setInterval(tick, options.everyMs ?? 15_000);
  timer.unref();
  tick();
  return { stop: () => clearInterval(timer) };
}
