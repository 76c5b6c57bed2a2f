/**
 * A deploy during a sale, as the tests drive it on any stack (the test stack, the cluster layout): the builds (this
 * checkout's bundle, and build B with OrderWorkflow changed so that A's histories do not replay on it), worker
 * processes of a build, shoppers buying, paying and cancelling through the API, `npm run rollout` as an operator runs
 * it, and where each order's workflow tasks ran. One place for test/rollout.test.ts and the cluster suite.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { expect } from 'vitest';
import { buy, retrying, sendPayment, type TrafficPlan, type TrafficResult } from '../../toolkit/shoppers.js';
import type { ShopperAuth } from '../../src/api/auth.js';
import type { AppConfig } from '../../src/config/index.js';
import type { Stores } from '../../src/db/stores.js';
import { orderWorkflowId } from '../../src/model/order-workflow.js';
import type { RolloutReport } from '../../src/workers/rollout.js';
import { spawnAppProcess } from '../../stack/app-processes.js';
import type { ManagedProcess } from '../../stack/process.js';
import { waitFor } from '../../stack/wait-for.js';
import { clientFor } from '../../toolkit/http-client.js';
import { httpAt } from './http.js';
import { buildVariant, type VariantBuild } from './builds.js';
import { runScript } from './run-script.js';

const UNHANDLED_COMMAND =
  proto.temporal.api.enums.v1.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND;

/** The build of a bundle built by buildWorkflowBundle; a release before 7b2150e's successors stamped it `.hash`. */
export function buildOf(bundlePath: string): VariantBuild {
  const stamp = existsSync(`${bundlePath}.build-id`) ? `${bundlePath}.build-id` : `${bundlePath}.hash`;
  return { bundlePath, buildId: readFileSync(stamp, 'utf8').trim() };
}

/** `source` with `anchor` replaced once: a change whose anchor moved fails here, not as a broken build. */
function replaceOnce(source: string, anchor: string, replacement: string): string {
  if (source.split(anchor).length !== 2)
    throw new Error(`build B's change: ${JSON.stringify(anchor)} is not in the source once`);
  return source.replace(anchor, replacement);
}

export interface RanOn {
  buildIds: string[];
  failedTasks: number;
  closed: boolean;
}

/**
 * The build ids that completed a workflow's tasks, how many of its tasks failed, and whether it closed.
 * A task refused as UnhandledCommand is not counted: the server refuses a completion when an event (a second
 * payment Signal, say) arrived while the task ran, so that the workflow sees it; the task runs again, on its build.
 */
export async function ranOn(temporal: Client, workflowId: string): Promise<RanOn> {
  const handle = temporal.workflow.getHandle(workflowId);
  const history = await handle.fetchHistory();
  const buildIds = new Set<string>();
  let failedTasks = 0;
  for (const event of history.events ?? []) {
    const completed = event.workflowTaskCompletedEventAttributes;
    if (completed) buildIds.add(completed.deploymentVersion?.buildId || '(none)');
    const failed = event.workflowTaskFailedEventAttributes;
    if (failed && failed.cause !== UNHANDLED_COMMAND) {
      failedTasks++;
      console.warn(`[deploy] ${workflowId}: a workflow task failed (${failed.cause}): ${failed.failure?.message}`);
    }
  }
  const { status } = await handle.describe();
  return { buildIds: [...buildIds], failedTasks, closed: status.name !== 'RUNNING' };
}

/** Build B's change to src/workflows/order.ts: each order persisted one durable timer later (A's do not replay). */
export function persistOneTimerLater(source: string): string {
  return replaceOnce(
    replaceOnce(source, '  proxyActivities,\n', '  proxyActivities,\n  sleep,\n'),
    '      const persisted = await persistOrder({ ...this.input, paymentDeadline: this.facts.paymentDeadline });',
    '      await sleep(1);\n      const persisted = await persistOrder({ ...this.input, paymentDeadline: this.facts.paymentDeadline });',
  );
}

/** Build B: this checkout with persistOneTimerLater, bundled. */
export function buildChangedOrderWorkflow(dir: string): Promise<VariantBuild> {
  return buildVariant(dir, 'b', 'workflows/order.ts', persistOneTimerLater);
}

/**
 * The shoppers of a deploy test: no burst of their own (the test buys, pays and cancels order by order), ten at a
 * time, each call retried for 20 s while a build drains; `apiUrls` the APIs they go through (a test may add some).
 */
export function deployTrafficPlan(
  config: AppConfig,
  auth: ShopperAuth,
  sale: { sku: string; priceCents: number },
  apiUrls: string[] = [],
): TrafficPlan {
  return {
    ...sale,
    shoppers: 0,
    concurrency: 10,
    arrivalsPerSecond: 100,
    apiUrls,
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: config.webhookSecret,
    paymentWindowMs: config.paymentWindowMs,
    retryForMs: 20_000,
  };
}

export class DeployDriver {
  readonly result: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  readonly workers: ManagedProcess[] = [];
  private readonly userOf = new Map<string, string>();

  constructor(
    private readonly deps: {
      /** The app's environment on this stack (its task queue included). */
      env: Record<string, string>;
      logDir: string;
      plan: TrafficPlan;
      stores: Stores;
      temporal: Client;
    },
  ) {}

  /** A worker process of `build`, as an operator's deploy starts it; `promote`: whether it makes itself current. */
  startWorker(
    build: VariantBuild,
    promote: 'on-start' | 'by-rollout',
    env: Record<string, string> = {},
  ): ManagedProcess {
    const worker = spawnAppProcess({
      role: 'worker',
      name: `worker ${build.buildId}`,
      logFile: join(this.deps.logDir, `rollout-worker-${build.buildId}-${this.workers.length}.log`),
      env: {
        ...this.deps.env,
        WORKER_METRICS_PORT: '0',
        WORKER_HEALTH_PORT: '0',
        ...env,
        WORKFLOW_BUNDLE_PATH: build.bundlePath,
        WORKER_BUILD_ID: build.buildId,
        WORKER_PROMOTE: promote,
      },
    });
    this.workers.push(worker);
    return worker;
  }

  async stopWorkers(): Promise<void> {
    await Promise.allSettled(this.workers.map((worker) => worker.stop(15_000)));
  }

  /** `count` new shoppers `<prefix>-<i>` each buy one unit; their order numbers, as the checkout answered. */
  async buy(prefix: string, count: number): Promise<string[]> {
    const users = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
    const outcomes = await Promise.all(users.map((userId) => buy(this.deps.plan, userId, 20_000, false, this.result)));
    return outcomes.map((outcome) => {
      if (outcome.answer.kind !== 'accepted')
        throw new Error(`checkout of ${outcome.userId}: ${JSON.stringify(outcome.answer)}`);
      this.userOf.set(outcome.answer.orderNo, outcome.userId);
      return outcome.answer.orderNo;
    });
  }

  /** buy(), then waits until each order awaits payment. */
  async sell(prefix: string, count: number): Promise<string[]> {
    const orderNos = await this.buy(prefix, count);
    await this.untilStatus(orderNos, ['AWAITING_PAYMENT'], `${prefix}'s orders to await payment`);
    return orderNos;
  }

  /** Waits (bounded) until MySQL holds each order in one of `wanted`. */
  async untilStatus(orderNos: string[], wanted: string[], what: string): Promise<void> {
    const statusOf = async (orderNo: string) => (await this.deps.stores.orders.getOrder(orderNo))?.status ?? 'NO_ROW';
    await waitFor(async () => (await Promise.all(orderNos.map(statusOf))).every((status) => wanted.includes(status)), {
      what,
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  }

  /** Each order's full payment, through the signed webhook as the provider sends it. */
  async pay(orderNos: string[]): Promise<void> {
    const { plan } = this.deps;
    await Promise.all(
      orderNos.map((orderNo) =>
        sendPayment(
          plan,
          { orderNo, eventId: `evt-${orderNo}`, amountCents: plan.priceCents, kind: 'pay' },
          this.result,
        ),
      ),
    );
  }

  /** Each order's shopper cancels it through the API. */
  async cancel(orderNos: string[]): Promise<void> {
    const { plan } = this.deps;
    await Promise.all(
      orderNos.map(async (orderNo) => {
        const token = await plan.tokenFor(this.userOf.get(orderNo) ?? '');
        const call = await retrying(plan, 'cancel', this.result, (apiUrl) =>
          clientFor(apiUrl).request('POST', `/api/orders/${orderNo}/cancel`, {
            headers: { authorization: `Bearer ${token}` },
            timeoutMs: 15_000,
          }),
        );
        expect([200, 202], `cancel of ${orderNo}`).toContain(call.status);
      }),
    );
  }

  /** ranOn() of the order's workflow. */
  async ranOn(orderNo: string): Promise<RanOn> {
    return ranOn(this.deps.temporal, orderWorkflowId(orderNo));
  }

  /** Waits (bounded) until each order's workflow has closed. */
  async untilClosed(orderNos: string[], what: string): Promise<void> {
    try {
      await waitFor(async () => (await Promise.all(orderNos.map((o) => this.ranOn(o)))).every((ran) => ran.closed), {
        what,
        timeoutMs: 60_000,
        intervalMs: 500,
      });
    } catch (error) {
      // What a timeout needs to be read: each open order's build and the end of its history.
      for (const orderNo of orderNos) {
        const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderNo));
        const { status, raw } = await handle.describe();
        if (status.name !== 'RUNNING') continue;
        const events = (await handle.fetchHistory()).events ?? [];
        const tail = events.slice(-8).map((event) => `${event.eventId} ${String(event.eventType)}`);
        console.warn(
          `[deploy] ${orderNo} open: versioning ${JSON.stringify(raw.workflowExtendedInfo ?? {})} ` +
            `${JSON.stringify(raw.workflowExecutionInfo?.versioningInfo ?? {})}; ` +
            `pending task ${JSON.stringify(raw.pendingWorkflowTask ?? null)}; ` +
            `row ${(await this.deps.stores.orders.getOrder(orderNo))?.status}; history … ${tail.join(', ')}`,
        );
      }
      // How the API's payment Signals went (flash_payment_signal_seconds by outcome) and its breakers.
      for (const apiUrl of this.deps.plan.apiUrls) {
        const metrics = await httpAt('GET', `${apiUrl}/metrics`).then((answer) => String(answer.body), String);
        const signals = metrics.split('\n').filter((line) => line.startsWith('flash_payment_signal_seconds_count'));
        const health = await httpAt('GET', `${apiUrl}/healthz`).then((answer) => JSON.stringify(answer.body), String);
        console.warn(`[deploy] ${apiUrl}: ${signals.join('; ')}; health ${health}`);
      }
      throw error;
    }
  }

  /**
   * Runs `npm run rollout -- promote <build> …` as a process; `lines` collects what it prints as it goes. Resolves
   * with its exit code, output and report once it ends.
   */
  async rollout(
    build: VariantBuild,
    args: string[],
    lines: string[],
  ): Promise<{ code: number | null; output: string; report: RolloutReport | undefined }> {
    // The smoke order goes through the shoppers' API unless the test names another (one of this checkout's).
    const api = args.includes('--api') ? [] : ['--api', this.deps.plan.apiUrls[0] ?? ''];
    const ran = await runScript(
      'src/workers/rollout-main.ts',
      ['promote', build.buildId, ...api, ...args, '--json'],
      this.deps.env,
      (line) => lines.push(line),
    );
    // --json: the report is the last line of a rollout that finished (exit 0 or 3).
    const last = ran.output.trim().split('\n').at(-1) ?? '';
    return { ...ran, report: last.startsWith('{') ? (JSON.parse(last) as RolloutReport) : undefined };
  }

  /** Waits until the rollout printed that the target is current (or failed). */
  async untilCurrent(lines: string[], what: string): Promise<void> {
    await waitFor(async () => lines.some((line) => line.includes('is current')), {
      what,
      timeoutMs: 90_000,
      intervalMs: 200,
      abortIf: () => (lines.some((line) => line.includes('failed:')) ? lines.join('\n') : undefined),
    });
  }
}
