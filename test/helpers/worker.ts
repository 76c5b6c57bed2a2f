/**
 * A production worker (src/workers/worker.ts) for a test file: on the test stack's Temporal (or
 * the connection given, e.g. the time-skipping server's), with the workflow bundle the global
 * setup built once, polling until close(), and beside it the starter of pending orders, as
 * in the worker process. One place for what every worker-running file did by hand.
 */
import { NativeConnection } from '@temporalio/worker';
import { inject } from 'vitest';
import { createLogger } from '../../src/infra/logger.js';
import type { Activities } from '../../src/activities/order.js';
import {
  createOrderWorker,
  startPromiseStarter,
  workerActivities,
  type OrderWorkerOptions,
  type OrderWorkers,
  type RunningPromiseStarter,
} from '../../src/workers/worker.js';
import type { RefundStartPage } from '../../src/model/reconcile-workflow.js';
import type { OwedPayment, RefundStore } from '../../src/db/refunds.js';
import type { Stores } from '../../src/db/stores.js';
import { startCacheFigures, type RunningCacheFigures } from '../../src/workers/cache-figures.js';
import { WorkerFiguresBoard } from '../../src/redis/worker-figures.js';
import { promoteOnStart } from '../../src/workers/versioning.js';

/** Wraps the real activities to inject faults around them (never instead of them). */
export type WrapActivities = (real: Activities) => Partial<Activities>;

export interface TestWorker {
  worker: OrderWorkers;
  /** The starter of pending orders; null when the test starts orders by hand (`starter: false`). */
  starter: RunningPromiseStarter | null;
  /** The reconciler's start of due refunds, run on a short period (`refunds`); null without. */
  refunds: RunningRefundStarts | null;
  /** Stops the owner, stops polling, lets in-flight activities finish, closes the connection it opened. */
  close(): Promise<void>;
}

export async function startTestWorker(
  options: Omit<OrderWorkerOptions, 'connection' | 'workflowBundlePath' | 'config' | 'activities'> &
    Omit<Parameters<typeof workerActivities>[0], 'config'> & {
      config: Parameters<typeof workerActivities>[0]['config'] & Parameters<typeof startPromiseStarter>[0]['config'];
      connection?: NativeConnection;
      wrapActivities?: WrapActivities;
      /** false: no starter (a test that starts its orders itself, or checks that nothing else does). */
      starter?: boolean;
      /**
       * The reconciler's page that starts owed refunds' workflows (startOwedRefunds), run every `everyMs` (default
       * 200 ms) as the worker's schedule runs it every RECONCILE_INTERVAL: opt-in, since it starts every due refund
       * in the shared database; `scope` keeps it to this file's (the others are other files', asked of their own
       * Stripe doubles).
       */
      refunds?: { everyMs?: number; scope?: (row: OwedPayment) => boolean };
      /**
       * Publishes the worker's cache figures as the worker process does (opt-in): `metricsUrl`, the Core runtime's
       * Prometheus endpoint if the file installed one (Runtime.install), else null (size and bound only).
       */
      cacheFigures?: { metricsUrl: string | null; everyMs?: number };
    },
): Promise<TestWorker> {
  const own = options.connection
    ? undefined
    : await NativeConnection.connect({ address: options.config.temporal.address });
  const connection = options.connection ?? own;
  if (!connection) throw new Error('no Temporal connection for the test worker');
  const real = workerActivities(options);
  const activities = options.wrapActivities ? { ...real, ...options.wrapActivities(real) } : real;
  const worker = await createOrderWorker({
    ...options,
    connection,
    activities,
    workflowBundlePath: inject('workflowBundlePath'),
  });
  const running = worker.run();
  // As the worker process does: its version made current once it polls (the test stack's workers promote themselves).
  const logger = createLogger({ logLevel: 'warn' }, 'worker');
  await promoteOnStart(worker, connection, options.config, logger);
  const starter =
    options.starter === false
      ? null
      : startPromiseStarter({
          config: options.config,
          connection,
          stores: options.stores,
          redis: options.redis,
          logger,
          version: worker.version,
        });
  const refunds = options.refunds ? startRefundStarts(options, options.refunds) : null;
  const cacheFigures: RunningCacheFigures | null = options.cacheFigures
    ? startCacheFigures({
        board: new WorkerFiguresBoard(options.redis, options.config.temporal.taskQueue),
        worker: worker.orders,
        logger: createLogger({ logLevel: 'warn' }, 'worker'),
        ...options.cacheFigures,
      })
    : null;
  return {
    worker,
    starter,
    refunds,
    async close() {
      await cacheFigures?.stop();
      await refunds?.stop();
      await starter?.stop();
      worker.shutdown();
      await running;
      await own?.close();
    },
  };
}

export interface RunningRefundStarts {
  /** One pass now (besides the period's). */
  runOnce(): Promise<RefundStartPage>;
  stop(): Promise<void>;
}

/** The reconciler's startOwedRefunds on a period, over the stores `scope` narrows: the schedule at test speed. */
function startRefundStarts(
  options: Parameters<typeof workerActivities>[0],
  { everyMs = 200, scope }: { everyMs?: number; scope?: (row: OwedPayment) => boolean },
): RunningRefundStarts {
  const { startOwedRefunds } = workerActivities({
    ...options,
    ...(scope ? { stores: refundsScopedTo(options.stores, scope) } : {}),
  });
  if (!startOwedRefunds) throw new Error("starting refunds needs the worker's Temporal client (`temporal`)");
  let pass: Promise<RefundStartPage> | undefined;
  const runOnce = () => (pass ??= startOwedRefunds({ afterEventId: '', limit: 50 }).finally(() => (pass = undefined)));
  const timer = setInterval(() => void runOnce().catch(() => undefined), everyMs);
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
      await pass?.catch(() => undefined);
    },
  };
}

/**
 * The stores as the reconciler's refund page sees them when it starts only the refunds `keep` says are its own:
 * owedRefundsPage answers only those (the others in the shared database are other files', asked of their own Stripe
 * doubles); every other call is the store's own. `afterLook` runs after each look, before the refunds are started.
 */
export function refundsScopedTo<S extends Pick<Stores, 'refunds'>>(
  stores: S,
  keep: (row: OwedPayment) => boolean,
  afterLook?: () => Promise<void>,
): S {
  const owedRefundsPage: RefundStore['owedRefundsPage'] = async (providers, afterEventId, limit) => {
    const rows = (await stores.refunds.owedRefundsPage(providers, afterEventId, 10_000)).filter(keep).slice(0, limit);
    await afterLook?.();
    return rows;
  };
  const refunds = new Proxy(stores.refunds, {
    get(target, key) {
      if (key === 'owedRefundsPage') return owedRefundsPage;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { ...stores, refunds };
}
