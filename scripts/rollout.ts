/**
 * `npm run rollout`: an operator's rollout of a new build during a sale, with the app's configuration (the same
 * variables as the API and the worker). docs/operations.md, "Deploying during a sale", says when to run what.
 *
 *   npm run rollout -- status                     the deployment's versions and their open runs, by type
 *   npm run rollout -- build-id [bundle]          this checkout's build id (or a built bundle's)
 *   npm run rollout -- promote <build id> [--ramp N] [--no-smoke] [--drain-timeout 30m] [--stop-pids 1,2]
 *                                                 smoke order, make current (or ramp), watch the previous drain
 *   npm run rollout -- prune                      delete drained versions that no order needs
 *
 * A rollback is `promote` with the previous build id while its workers still run. --json prints the report as the
 * last line. Exit codes: 0 done, 1 failed (nothing switched if the smoke order failed), 2 bad arguments, 3 the
 * previous version had not drained by --drain-timeout (it stays; keep its workers).
 */
import { parseArgs } from 'node:util';
import ms from 'ms';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { loadConfig } from '../src/config/index.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { temporalConnectionSettings } from '../src/infra/temporal-connection.js';
import { describeOpenRuns, openRunsOf, WorkerDeployments } from '../src/infra/worker-deployments.js';
import { deleteWorkerVersion } from '../toolkit/worker-versions.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { requiredTaskQueues } from '../src/model/order-workflow.js';
import { SalesService } from '../src/sales/sales-service.js';
import { defaultWorkflowBundle } from '../src/workers/bundle.js';
import { workerBuildId } from '../src/workers/versioning.js';
import { rollout } from '../src/workers/rollout.js';

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    ramp: { type: 'string' },
    'no-smoke': { type: 'boolean', default: false },
    'drain-timeout': { type: 'string', default: '30m' },
    'poll-timeout': { type: 'string', default: '60s' },
    'stop-pids': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const say = (line: string) => console.log(`[rollout] ${line}`);
const usage = (problem: string): never => {
  console.error(
    `[rollout] ${problem}\nusage: npm run rollout -- status | build-id [bundle] | promote <build id> [--ramp N] [--no-smoke] [--drain-timeout 30m] [--stop-pids 1,2] | prune`,
  );
  process.exit(2);
};

const [command, argument] = positionals;
if (command === 'build-id') {
  // The bundle's emitted code and this configuration's payload codec, as the worker names itself.
  console.log(workerBuildId(loadConfig(), argument ?? (await defaultWorkflowBundle())));
  process.exit(0);
}
const config = loadConfig();
const versioning = config.temporal.versioning;
if (!versioning) usage('WORKER_VERSIONING=false: the workers are unversioned, there is nothing to roll out');
const deploymentName = versioning!.deploymentName;
const connection = await Connection.connect(temporalConnectionSettings(config));
const identity = `rollout-${process.env.USER ?? 'operator'}`;
const deployments = new WorkerDeployments(connection, config.temporal.namespace, identity);
let exitCode = 0;
try {
  if (command === 'status') {
    const status = await deployments.status(deploymentName, config.temporal.taskQueue);
    say(
      `deployment ${deploymentName}: current ${status.currentBuildId ?? '(none)'}` +
        (status.rampingBuildId ? `, ramping ${status.rampingBuildId} at ${status.rampingPercentage} %` : ''),
    );
    for (const version of status.versions)
      say(`  ${version.buildId}  ${version.status.padEnd(8)}  ${describeOpenRuns(version)}`);
    if (status.unversionedOpenOrders > 0) say(`  (unversioned)  ${status.unversionedOpenOrders} open orders`);
    if (flags.json) console.log(JSON.stringify(status));
  } else if (command === 'promote') {
    if (!argument)
      usage("promote needs the build id to make current (npm run rollout -- build-id prints this checkout's)");
    const ramp = flags.ramp === undefined ? undefined : Number(flags.ramp);
    if (ramp !== undefined && !(Number.isInteger(ramp) && ramp >= 1 && ramp <= 99))
      usage('--ramp must be a whole percentage, 1 to 99');
    const drainTimeoutMs = ms(flags['drain-timeout'] as ms.StringValue);
    const pollTimeoutMs = ms(flags['poll-timeout'] as ms.StringValue);
    if (!Number.isFinite(drainTimeoutMs) || !Number.isFinite(pollTimeoutMs))
      usage('--drain-timeout and --poll-timeout are durations such as 30m');
    const stopPids = (flags['stop-pids'] ?? '').split(',').filter(Boolean).map(Number);
    if (stopPids.some((pid) => !Number.isInteger(pid) || pid <= 1))
      usage('--stop-pids is a comma-separated list of process ids');
    const pool = createMysqlPool(config);
    const redis = createRedis(config);
    try {
      const report = await rollout({
        deployments,
        client: new Client({
          connection,
          namespace: config.temporal.namespace,
          dataConverter: temporalDataConverter(config),
        }),
        taskQueue: config.temporal.taskQueue,
        inventory: new RedisInventory(redis, config.temporal.taskQueue),
        sales: SalesService.onClients(openStores(pool), redis, config.temporal.taskQueue),
        target: { deploymentName, buildId: argument! },
        taskQueues: requiredTaskQueues(config.temporal.taskQueue),
        smoke: !flags['no-smoke'],
        ...(ramp !== undefined ? { rampPercentage: ramp } : {}),
        drainTimeoutMs,
        pollTimeoutMs,
        ...(stopPids.length > 0 ? { stopDrained: () => stopProcesses(stopPids) } : {}),
        say,
      });
      if (
        report.previousBuildId &&
        report.previousBuildId !== report.targetBuildId &&
        report.ramped === null &&
        report.drainedAfterMs === null &&
        drainTimeoutMs > 0
      )
        exitCode = 3;
      if (flags.json) console.log(JSON.stringify(report));
    } finally {
      await Promise.allSettled([pool.end(), redis.quit()]);
    }
  } else if (command === 'prune') {
    const status = await deployments.status(deploymentName, config.temporal.taskQueue);
    for (const version of status.versions) {
      if (version.status !== 'DRAINED' && version.status !== 'INACTIVE') continue;
      if (openRunsOf(version) > 0 || version.buildId === status.currentBuildId) continue;
      try {
        await deleteWorkerVersion(connection, config.temporal.namespace, identity, {
          deploymentName,
          buildId: version.buildId,
        });
        say(`deleted ${version.buildId} (${version.status})`);
      } catch (err) {
        // The server refuses while the version's workers still poll: stop them first.
        say(`kept ${version.buildId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  } else {
    usage(command ? `unknown command '${command}'` : 'a command is needed');
  }
} catch (err) {
  console.error(`[rollout] failed: ${err instanceof Error ? err.message : String(err)}`);
  exitCode = 1;
} finally {
  await connection.close();
}
process.exit(exitCode);

/** SIGTERM to each process (a worker's graceful shutdown), then waits until each has exited (bounded). */
async function stopProcesses(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  const until = Date.now() + 60_000;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  while (pids.some(alive) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
  const left = pids.filter(alive);
  if (left.length > 0) throw new Error(`processes ${left.join(', ')} did not exit within 60 s of SIGTERM`);
}
