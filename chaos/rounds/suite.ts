/**
 * The suite's stack: Temporal's dev server, Redis with its AOF and MariaDB, two APIs and a worker, all supervised (a
 * killed process is restarted, as in production); Stripe (stripe-mock behind the double) when a chosen round needs
 * it; and the clients every round's steps use (the Suite of chaos/rounds/round.ts).
 */
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { ShopperAuth } from '../../src/api/auth.js';
import { loadConfig } from '../../src/config/index.js';
import { migrate } from '../../src/db/migrate.js';
import { createMysqlPool } from '../../src/db/pool.js';
import { openStores } from '../../src/db/stores.js';
import { temporalDataConverter } from '../../src/infra/data-converter.js';
import { createRedis } from '../../src/infra/redis.js';
import { RedisInventory } from '../../src/redis/inventory.js';
import { StartPacing } from '../../src/order/start-pacing.js';
import { OrderWorkflowClient } from '../../src/order/workflow-client.js';
import { SalesService } from '../../src/sales/sales-service.js';
import { buildWorkflowBundle } from '../../src/workers/bundle.js';
import { clockAheadBy, spawnAppProcess, startAppProcess, type AppLaunch } from '../../stack/app-processes.js';
import { startStack, type RunningStack } from '../../stack/index.js';
import { freePort } from '../../stack/process.js';
import { loadToolPaths } from '../../stack/services.js';
import { startStripeDouble, type StripeDouble } from '../../stack/stripe-double.js';
import { startStripeMock, type RunningStripeMock } from '../../stack/stripe-mock.js';
import { Supervised } from '../../stack/supervisor.js';
import { waitFor } from '../../stack/wait-for.js';
import { answersOk, httpCall, isOk } from '../../toolkit/http-client.js';
import { thawEveryFrozen } from './faults.js';
import type { Round, RoundApi, Suite } from './round.js';
import type { SuiteSettings } from './settings.js';
import { STRIPE_LATE_DELIVERY } from './stripe-tools.js';

const root = resolve(import.meta.dirname, '..', '..');
/** Stripe's webhook signing secret for the suite's APIs and its simulated Stripe. */
const STRIPE_WEBHOOK_SECRET = 'whsec_chaos';

/**
 * The suite's processes and clients. `stop` undoes whatever `start` got to (it may be called mid-start: Ctrl-C), and
 * continues any process a freeze left stopped.
 */
export class SuiteStack {
  private stack: RunningStack | undefined;
  private stripeMock: RunningStripeMock | undefined;
  private stripeDouble: StripeDouble | undefined;
  private readonly apps: Supervised[] = [];
  private closeClients: () => Promise<void> = async () => {};
  /** Supervised processes (by name) whose next start runs with its wall clock this far ahead. */
  private readonly clockAheadMs = new Map<string, number>();
  /** Supervised processes (by name) whose next start adds these to the suite's environment. */
  private readonly envOverrides = new Map<string, Record<string, string>>();

  constructor(
    private readonly workDir: string,
    private readonly say: (line: string) => void,
  ) {}

  async start(settings: SuiteSettings, rounds: readonly Round[]): Promise<Suite> {
    const { say, workDir } = this;
    const supervision = { initialDelayMs: 500, maxDelayMs: 5_000, log: (line: string) => say(`supervisor: ${line}`) };
    this.stack = await startStack({
      dataDir: join(workDir, 'stack'),
      ports: 'free',
      ephemeral: true,
      env: {},
      log: say,
      supervise: supervision,
    });
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...this.stack.env,
      TEMPORAL_TASK_QUEUE: `chaos-${process.pid}`,
      PAYMENT_WINDOW: settings.paymentWindow,
      RECONCILE_INTERVAL: settings.reconcileInterval,
      RESERVATION_GRACE: settings.reservationGrace,
      CHECKOUT_MAX_WAIT: settings.checkoutMaxWait,
      AUTH_DEV_LOGIN: 'false',
      LOG_LEVEL: 'warn',
      // The simulated payment provider sends every webhook (hundreds a second in the api-kill rush)
      // from 127.0.0.1, and a 429 would end its delivery: the suite tests faults, not budgets. The
      // shoppers stay under the default checkout limit (one purchase each, retried with backoff).
      RATE_LIMIT_WEBHOOK: 'off',
      // Every shopper of the line round joins and polls from 127.0.0.1: its per-shopper budget stays, the
      // address's goes.
      RATE_LIMIT_LINE_IP: 'off',
      RATE_LIMIT_LINE_SUBNET: 'off',
      // No load balancer to drain from: an API stops at once.
      SHUTDOWN_DRAIN: '0s',
    };
    if (rounds.some((round) => round.needs.stripe)) {
      // Stripe's keys everywhere (the generic orders of the other rounds make no call to it); one API sells through it.
      // The app talks to the double, which forwards every request to stripe-mock first: a SIGSTOP of stripe-mock
      // freezes Stripe's API, while the double's webhook deliveries (Stripe's own system) go on. Its webhook is
      // pointed at the Stripe API once that is up (the round); its rate limit is test mode's (25/s).
      this.stripeMock = await startStripeMock({
        tools: loadToolPaths(),
        dataDir: join(workDir, 'stripe-mock'),
        port: await freePort(),
      });
      this.stripeDouble = await startStripeDouble({
        stripeMockUrl: this.stripeMock.url,
        delivery: STRIPE_LATE_DELIVERY,
      });
      say(`Stripe double at ${this.stripeDouble.url} in front of stripe-mock at ${this.stripeMock.url}`);
      Object.assign(env, {
        STRIPE_API_URL: this.stripeDouble.url,
        STRIPE_SECRET_KEY: 'sk_test_chaos',
        STRIPE_WEBHOOK_SECRET,
      });
    }
    // A round's additions to every process's environment (the events round's sender reaching its receiver).
    for (const round of rounds) Object.assign(env, round.needs.env);
    const config = loadConfig(env);
    const pool = createMysqlPool(config);
    await migrate(pool);
    const stores = openStores(pool);
    const redis = createRedis(config, { maxRetriesPerRequest: 20 });
    redis.on('error', () => {});
    const connection = await Connection.connect({ address: config.temporal.address });
    this.closeClients = async () => {
      await Promise.allSettled([pool.end(), redis.quit(), connection.close()]);
    };
    const temporal = new Client({
      connection,
      namespace: config.temporal.namespace,
      dataConverter: temporalDataConverter(config),
    });
    const bundle = join(workDir, 'workflow-bundle.js');
    await buildWorkflowBundle(bundle);

    // The worker is spawned only (restartWorker* wait for its /readyz themselves); an API is ready once /healthz is.
    const app = (name: string, role: 'api' | 'worker', extraEnv: Record<string, string>) =>
      new Supervised(
        name,
        async () => {
          // Read at each start: a restart may run with the wall clock ahead, or with a round's overrides.
          const aheadMs = this.clockAheadMs.get(name) ?? 0;
          const launch: AppLaunch = {
            role,
            name,
            root,
            logFile: join(workDir, `${name}.log`),
            env: { ...env, ...extraEnv, ...this.envOverrides.get(name) },
            ...(aheadMs === 0 ? {} : { wrapper: clockAheadBy(aheadMs) }),
          };
          return role === 'worker' ? spawnAppProcess(launch) : startAppProcess(launch);
        },
        supervision,
      );
    const apiPorts = [await freePort(), await freePort()];
    const workerHealthPort = await freePort();
    const apiUrls = apiPorts.map((port) => `http://127.0.0.1:${port}`);
    const worker = app(
      'worker',
      'worker',
      // Free ports for the worker's metrics and health: a running `npm start` holds the defaults.
      {
        WORKFLOW_BUNDLE_PATH: bundle,
        WORKER_METRICS_PORT: String(await freePort()),
        WORKER_HEALTH_PORT: String(workerHealthPort),
      },
    );
    const apis = apiPorts.map((port, i) => app(`api-${i + 1}`, 'api', { PORT: String(port) }));
    this.apps.push(worker, ...apis);
    await Promise.all(this.apps.map((a) => a.start()));
    say(`stack, 2 APIs (${apiUrls.join(', ')}) and a worker up; logs under ${workDir}`);

    const workerHealthUrl = `http://127.0.0.1:${workerHealthPort}/readyz`;
    return {
      stores,
      redis,
      inventory: new RedisInventory(redis, config.temporal.taskQueue),
      temporal,
      sales: SalesService.onClients(stores, redis, config.temporal.taskQueue),
      orders: OrderWorkflowClient.withoutBreakers(
        temporal,
        config.temporal.taskQueue,
        new StartPacing({ maxLimit: 32 }),
      ),
      auth: new ShopperAuth(config),
      config,
      apiUrls,
      targets: { apis, worker, servers: this.stack.servers },
      workerHealthUrl,
      workDir,
      settings,
      say,
      stripe:
        this.stripeMock && this.stripeDouble
          ? { mock: this.stripeMock, double: this.stripeDouble, webhookSecret: STRIPE_WEBHOOK_SECRET }
          : undefined,
      startStripeApi: async (options = {}): Promise<RoundApi> => {
        const port = await freePort();
        const url = `http://127.0.0.1:${port}`;
        const name = options.name ?? 'api-stripe';
        const extra = { ...options.env, PORT: String(port), PAYMENT_PROVIDER: 'stripe' };
        const api = app(name, 'api', extra);
        await api.start();
        return { url, stop: () => api.stop(5_000) };
      },
      restartWorkerWithEnv: async (overrides) => {
        const before = worker.process?.pid;
        if (overrides) this.envOverrides.set(worker.name, overrides);
        else this.envOverrides.delete(worker.name);
        worker.kill('SIGTERM');
        await waitFor(
          async () => {
            if ((await worker.running()).pid === before) return false;
            return answersOk(workerHealthUrl, 5_000);
          },
          { what: 'the worker restarted', timeoutMs: 90_000, intervalMs: 250, retryErrors: true },
        );
        say(`worker restarted${overrides ? ` with ${JSON.stringify(overrides)}` : " with the suite's environment"}`);
      },
      restartWorkerWithClockAhead: async (aheadMs) => {
        const before = worker.process?.pid;
        this.clockAheadMs.set(worker.name, aheadMs);
        worker.kill('SIGKILL');
        await waitFor(
          async () => {
            if ((await worker.running()).pid === before) return false;
            const answer = await httpCall('GET', workerHealthUrl, { timeoutMs: 5_000 });
            const body = answer.json as { clocks?: { mysql?: { offsetMs: number } } } | undefined;
            const offset = body?.clocks?.mysql?.offsetMs;
            // MySQL's clock minus the worker's: about -aheadMs once the new process runs.
            return isOk(answer) && offset !== undefined && Math.abs(offset + aheadMs) < 2_000;
          },
          {
            what: `the worker running ${aheadMs / 1000} s ahead`,
            timeoutMs: 90_000,
            intervalMs: 250,
            retryErrors: true,
          },
        );
        say(`worker restarted with its clock ${aheadMs / 1000} s ahead of MySQL's and Redis's`);
      },
    };
  }

  /** How often each supervised process was started again after a crash. */
  restarts(): Record<string, number> {
    const servers = Object.values(this.stack?.servers ?? {});
    return Object.fromEntries([...this.apps, ...servers].map((s) => [s.name, s.restarts]));
  }

  /** Closes the suite's own connections (the processes run on until stop). */
  async close(): Promise<void> {
    await this.closeClients();
  }

  async stop(): Promise<void> {
    thawEveryFrozen();
    // A stripe-mock left frozen is continued first: the double's requests to it end, and it can be stopped.
    if (this.stripeMock) {
      try {
        process.kill(this.stripeMock.process.pid, 'SIGCONT');
      } catch {
        // Exited already.
      }
    }
    await this.stripeDouble?.stop();
    await this.stripeMock?.process.stop();
    for (const a of [...this.apps].reverse()) await a.stop(5_000);
    await this.stack?.stop();
  }
}
