/**
 * The rollout tool (docs/operations.md, "Deploying during a sale"): talks only to Temporal and the API (smoke order),
 * stops no process. Exit codes: 0 done, 1 failed (nothing switched if the smoke failed), 2 bad arguments, 3 undrained.
 */
import { parseArgs } from 'node:util';
import ms from 'ms';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../config/index.js';
import { temporalConnectionSettings } from '../infra/temporal-connection.js';
import { describeOpenRuns, openRunsOf, WorkerDeployments, type WorkerVersion } from '../infra/worker-deployments.js';
import { requiredTaskQueues } from '../model/order-workflow.js';
import type { SmokeOrderResult } from '../order/smoke-order.js';
import { defaultWorkflowBundle } from './bundle.js';
import { workerBuildId } from './versioning.js';
import { rollout } from './rollout.js';

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    ramp: { type: 'string' },
    'no-smoke': { type: 'boolean', default: false },
    'drain-timeout': { type: 'string', default: '30m' },
    'poll-timeout': { type: 'string', default: '60s' },
    api: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const say = (line: string) => console.log(`[rollout] ${line}`);
const usage = (problem: string): never => {
  console.error(
    `[rollout] ${problem}\nusage: rollout status | build-id [bundle] | promote <build id> [--ramp N] [--no-smoke] ` +
      '[--api URL] [--drain-timeout 30m] | prune',
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
    const apiUrl = flags.api ?? process.env.ROLLOUT_API_URL ?? `http://127.0.0.1:${config.port}`;
    const report = await rollout({
      deployments,
      taskQueue: config.temporal.taskQueue,
      smokeOrder: flags['no-smoke'] ? null : (target) => smokeOrderThrough(apiUrl, config.adminToken, target),
      target: { deploymentName, buildId: argument! },
      taskQueues: requiredTaskQueues(config.temporal.taskQueue),
      ...(ramp !== undefined ? { rampPercentage: ramp } : {}),
      drainTimeoutMs,
      pollTimeoutMs,
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
  } else if (command === 'prune') {
    const status = await deployments.status(deploymentName, config.temporal.taskQueue);
    for (const version of status.versions) {
      if (version.status !== 'DRAINED' && version.status !== 'INACTIVE') continue;
      if (openRunsOf(version) > 0 || version.buildId === status.currentBuildId) continue;
      try {
        await deployments.deleteVersion({ deploymentName, buildId: version.buildId });
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

/** The API's smoke order on `target` (POST /api/admin/deployment/smoke-orders): its result, or why it failed. */
async function smokeOrderThrough(apiUrl: string, adminToken: string, target: WorkerVersion): Promise<SmokeOrderResult> {
  const url = `${apiUrl}/api/admin/deployment/smoke-orders`;
  const answer = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ buildId: target.buildId }),
    // The smoke's own deadline is 30 s; the rest is the API's way there and back.
    signal: AbortSignal.timeout(45_000),
  }).catch((err: unknown) => {
    throw new Error(`the smoke order: ${url} did not answer (${err instanceof Error ? err.message : String(err)})`);
  });
  const body = (await answer.json().catch(() => null)) as { error?: { message?: string } } | null;
  if (answer.status !== 201)
    throw new Error(`the smoke order: ${url} answered ${answer.status} ${body?.error?.message ?? ''}`.trim());
  return body as unknown as SmokeOrderResult;
}
