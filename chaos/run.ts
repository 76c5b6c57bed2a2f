/**
 * `npm run chaos [-- --quick] [--faults api-kill,worker-kill,...] [--out DIR]`: the fault suite.
 *
 * On a real local stack (Temporal dev server, Redis with its AOF, MariaDB) with two API processes
 * and one worker, all supervised (a killed process is restarted, as in production), it runs a
 * burst of shoppers with payments and cancels flowing and injects one fault per round:
 *   api-kill       SIGKILL of one API mid-burst (clients retry on the other)
 *   worker-kill    SIGKILL of the worker while orders are being persisted
 *   mariadb-kill   SIGKILL of MariaDB, back after 10 s
 *   redis-kill     SIGKILL of Redis, restarted from its append-only file
 *   redis-aof-tail-lost  SIGKILL of Redis and the last second of its append-only file cut off
 *                  before the restart: what a disk that loses its last writes (or a machine crash
 *                  under appendfsync everysec) leaves behind, repaired by the protocol
 *   temporal-kill  SIGKILL of the Temporal dev server, restarted on its SQLite file
 * and the gray failures, a server that hangs instead of dying (SIGSTOP, then SIGCONT after
 * `freezeMs`, 20 s; 6 s with --quick) under a paced burst (30 shoppers/s, more than the stock):
 *   temporal-freeze, redis-freeze, mariadb-freeze, worker-freeze
 * where every answer during the freeze must come within its deadline + 1 s (chaos/gray.ts).
 * A freeze of Temporal or the worker does not stop the sale (a reserved unit is a promise the
 * APIs' starters keep): during temporal-freeze and worker-freeze no checkout is turned away while
 * units remain and every status read is answered, and the orders made during the freeze get their
 * whole payment window from the thaw (checkSaleThroughFreeze in chaos/checks.ts). Two longer
 * rounds (not in --quick) freeze them for 60 s mid-sale, with more stock than the freeze sells,
 * shoppers checking out at 10 a second throughout and reading their orders until they are payable:
 *   temporal-freeze-sale, worker-freeze-sale
 * and report the promises pending at the thaw and how long until every 202 is an order row; and a
 * hung MySQL (SIGSTOP 30 s) mid-sale while promises wait for it, mariadb-freeze-sale.
 * Two longer freezes (not in --quick) test payments judged by when they arrived:
 *   worker-freeze-payments, temporal-freeze-payments
 * the worker, or Temporal, frozen 60 s (longer than PAYMENT_WINDOW) after the round's orders were
 * placed and persisted, so their payment deadlines pass during the freeze; webhooks are sent for
 * them during it, some before each order's deadline and some after (DEADLINE_PAYMENTS in
 * chaos/shoppers.ts). Beside the invariants: the first full payment recorded in time pays its
 * order, every other one is refunded (RECEIVED_AFTER_DEADLINE for a late one), and no webhook is
 * answered 503 (MySQL is up): checkPaymentsByArrival in chaos/checks.ts. worker-ahead-payments
 * freezes nothing: the worker runs under faketime 10 s ahead of every other clock while the same
 * payments are sent around the same deadlines, judged the same way.
 * One round (not in --quick) sells through Stripe as Stripe behaves: stripe-late-sale puts the
 * stateful Stripe double (stack/stripe-double.ts) in front of stripe-mock, its webhooks 1 to 5
 * minutes late, some twice, out of order; half the shoppers pay by card in the last seconds before
 * their deadline, another deployment's intents are paid on the same account, and Stripe's API
 * (stripe-mock) freezes across the deadlines while shoppers go on checking out: every order past
 * its deadline keeps its unit until Stripe answers, then is PAID (paid in time) or CANCELLED with
 * its intent cancelled, nothing refunded, foreign money ignored (chaos/stripe-round.ts).
 * stripe-webhook-drop (not in --quick, after it) drops Stripe's webhook for 2 minutes mid-sale (every delivery
 * answered 404, retried and given up) while shoppers keep paying by card: the payment catch-up (the worker restarted
 * with STRIPE_CATCH_UP_INTERVAL=20s for the round, its API with a 90 s PAYMENT_WINDOW) must apply every payment of
 * the window exactly once, before the order's own close would (chaos/stripe-drop-round.ts).
 * line-redis-freeze-api-kill (not in --quick) puts a waiting line in front of a sale: Redis frozen 15 s and an API
 * killed while shoppers wait, join, read their places and check out when admitted; every place survives, nobody is
 * admitted twice (chaos/line-round.ts).
 * events-receiver-freeze-worker-kill (not in --quick) pushes the sale's order events to a merchant's endpoint (the
 * receiver, a process of its own): frozen 20 s mid-sale, the worker SIGKILLed during it; every event of the sale's
 * orders must reach it, each accepted once by id, of its order's final state, none given up (chaos/events-round.ts).
 * Duplicate, wrong-amount, second, early and late webhooks flow during every fault, and shoppers
 * read their orders. After each,
 * it waits until the sale is quiet (a reconcile run included), checks the invariants against
 * what the API answered, prints a table fault × check, writes chaos/results/latest.json and exits
 * non-zero on any violation.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import type { RedisClient } from '../src/infra/redis.js';
import { ShopperAuth } from '../src/api/auth.js';
import { SalesService } from '../src/sales/sales-service.js';
import { loadConfig, type AppConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores, type Stores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { RedisInventory } from '../src/inventory/redis-inventory.js';
import { OrderWorkflowClient } from '../src/order/workflow-client.js';
import { orderNoTime } from '../src/model/order-workflow.js';
import { startStack, type RunningStack, type StackServer } from '../stack/index.js';
import { freePort, spawnLogged } from '../stack/process.js';
import { Supervised } from '../stack/supervisor.js';
import { waitFor } from '../stack/wait-for.js';
import { internalErrorsLogged, type InternalErrorLogged } from '../stack/internal-errors.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import {
  CHAOS_CHECKS,
  checkAfterFault,
  checkPaymentsByArrival,
  checkSaleThroughFreeze,
  PAYMENT_FREEZE_CHECKS,
  promisesPending,
  SALE_FREEZE_CHECKS,
  secondsUntilRows,
  ordersLostWithRedisWrites,
  waitForQuiescence,
  waitForRepair,
  watchSale,
  type ChaosVerdict,
  type PaymentFreezeVerdict,
  type SaleFreezeVerdict,
} from './checks.js';
import {
  answersDuringFreeze,
  countersSince,
  deadlinesByKind,
  scrapeApiCounters,
  secondsUntilHealthy,
  SHOPPER_WAIT_MS,
  type ApiCounters,
  type FreezeAnswers,
} from './gray.js';
import {
  buy,
  DEADLINE_PAYMENTS,
  payAroundDeadlines,
  runTraffic,
  sameKeySameOrder,
  type TrafficPlan,
  type TrafficResult,
} from './shoppers.js';
import { StartPacing } from '../src/order/start-pacing.js';
import { loadToolPaths } from '../stack/services.js';
import { startStripeDouble, type StripeDouble } from '../stack/stripe-double.js';
import { startStripeMock, type RunningStripeMock } from '../stack/stripe-mock.js';
import {
  STRIPE_LATE_CHECKS,
  STRIPE_LATE_DELIVERY,
  STRIPE_ROUND,
  STRIPE_ROUND_PLAN,
  stripeLateRound,
} from './stripe-round.js';
import {
  STRIPE_DROP_CHECKS,
  STRIPE_DROP_PLAN,
  STRIPE_DROP_ROUND,
  stripeWebhookDropRound,
} from './stripe-drop-round.js';
import { LINE_PLAN, LINE_ROUND, lineRedisFreezeApiKillRound } from './line-round.js';
import { EVENTS_PLAN, EVENTS_ROUND, EVENTS_ROUND_ENV, eventsReceiverFreezeWorkerKillRound } from './events-round.js';

const KILLS = [
  'api-kill',
  'worker-kill',
  'mariadb-kill',
  'redis-kill',
  'redis-aof-tail-lost',
  'temporal-kill',
] as const;
const FREEZES = ['temporal-freeze', 'redis-freeze', 'mariadb-freeze', 'worker-freeze'] as const;
/** Long freezes with payments sent during them, around their orders' deadlines (full run only). */
const PAYMENT_FREEZES = ['worker-freeze-payments', 'temporal-freeze-payments', 'worker-ahead-payments'] as const;
/** How far ahead the worker's clock runs in worker-ahead-payments (faketime): nothing may rest on it. */
const WORKER_AHEAD_MS = 10_000;
/** Long freezes mid-sale, shoppers checking out and reading their orders throughout (full run only). */
const SALE_FREEZES = ['temporal-freeze-sale', 'worker-freeze-sale', 'mariadb-freeze-sale'] as const;
/**
 * Stripe as it behaves, its API hung across the deadlines, its webhooks minutes late; then its webhook dropped for
 * two minutes mid-sale, the catch-up to make up for it (full run only).
 */
const PROVIDER_FREEZES = [STRIPE_ROUND, STRIPE_DROP_ROUND] as const;
/** A sale with a waiting line: Redis frozen and an API killed while shoppers wait in it (full run only). */
const LINE_FAULTS = [LINE_ROUND] as const;
/** Order events to a merchant's endpoint frozen mid-sale, the worker killed meanwhile (full run only). */
const EVENTS_FAULTS = [EVENTS_ROUND] as const;
const FAULTS = [
  ...KILLS,
  ...FREEZES,
  ...PAYMENT_FREEZES,
  ...SALE_FREEZES,
  ...PROVIDER_FREEZES,
  ...LINE_FAULTS,
  ...EVENTS_FAULTS,
] as const;
type Fault = (typeof FAULTS)[number];
type Freeze = (typeof FREEZES)[number];
type PaymentFreeze = (typeof PAYMENT_FREEZES)[number];
type SaleFreeze = (typeof SALE_FREEZES)[number];
const isFreeze = (fault: Fault): fault is Freeze => (FREEZES as readonly string[]).includes(fault);
const isPaymentFreeze = (fault: Fault): fault is PaymentFreeze =>
  (PAYMENT_FREEZES as readonly string[]).includes(fault);
const isSaleFreeze = (fault: Fault): fault is SaleFreeze => (SALE_FREEZES as readonly string[]).includes(fault);
/** The freezes the sale goes on through (checkSaleThroughFreeze): Temporal's and the worker's. */
const SALE_GOES_ON: readonly Fault[] = ['temporal-freeze', 'worker-freeze', ...SALE_FREEZES];
/** --quick: every kill, and one freeze (the one every kind of request meets: Temporal). */
const QUICK_FAULTS: readonly Fault[] = [...KILLS, 'temporal-freeze'];

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    faults: { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const quick = args.quick ?? false;
const faults = (args.faults?.split(',') ?? (quick ? [...QUICK_FAULTS] : [...FAULTS])) as Fault[];
for (const fault of faults)
  if (!FAULTS.includes(fault)) throw new Error(`unknown fault ${fault}; choose from ${FAULTS.join(', ')}`);
const outDir = resolve(args.out ?? join(root, 'chaos', 'results'));
/**
 * The freeze-sale rounds' plan; saleFreezePlan adds the shoppers it makes. MariaDB's freeze is 30 s (a hung MySQL while
 * promises wait).
 */
const SALE_FREEZE = {
  freezeMs: 60_000,
  arrivalsPerSecond: 10,
  faultAfterMs: 5_000,
  tailMs: 5_000,
  stock: 1_000,
  readEveryMs: 3_000,
};
const saleFreezePlan = (fault: SaleFreeze) => {
  const plan = { ...SALE_FREEZE, freezeMs: fault === 'mariadb-freeze-sale' ? 30_000 : SALE_FREEZE.freezeMs };
  return { ...plan, shoppers: ((plan.faultAfterMs + plan.freezeMs + plan.tailMs) / 1_000) * plan.arrivalsPerSecond };
};
const settings = {
  // More shoppers than units, arriving over a few seconds, so the fault lands mid-burst.
  shoppers: quick ? 160 : 600,
  stock: quick ? 110 : 420,
  concurrency: quick ? 24 : 48,
  arrivalsPerSecond: quick ? 80 : 100,
  paymentWindow: quick ? '8s' : '15s',
  reconcileInterval: '3s',
  /** The waiting shoppers' Prefer: wait=5, honoured in full. */
  checkoutMaxWait: `${SHOPPER_WAIT_MS / 1000}s`,
  /** At least CHECKOUT_MAX_WAIT + CHECKOUT_DEADLINE (5 s + the default 2 s); loadConfig refuses less. */
  reservationGrace: '7s',
  /** When the fault hits, after the burst starts. */
  faultAfterMs: quick ? 700 : 2_000,
  quiescenceTimeoutMs: 150_000,
  /** How long after a thaw the sale's 202s are waited for as rows (the freezes the sale goes on through). */
  rowsAfterThawTimeoutMs: 300_000,
  /** The gray rounds: a paced burst that outlasts the freeze's start, more shoppers than units. */
  freeze: {
    freezeMs: quick ? 6_000 : 20_000,
    shoppers: quick ? 120 : 300,
    stock: quick ? 80 : 200,
    arrivalsPerSecond: 30,
    faultAfterMs: quick ? 1_000 : 2_000,
  },
  /**
   * The freeze-payment rounds: orders placed (waiting checkouts) and persisted before a freeze
   * longer than the payment window, so every deadline passes during it; one order per payment
   * kind in turn (DEADLINE_PAYMENTS), fewer orders than units.
   */
  paymentFreeze: {
    freezeMs: 60_000,
    orders: Object.keys(DEADLINE_PAYMENTS).length * (quick ? 3 : 5),
    stock: Object.keys(DEADLINE_PAYMENTS).length * (quick ? 3 : 5) + 10,
    arrivalsPerSecond: 20,
  },
  /**
   * The freeze-sale rounds: shoppers checking out at a steady 10 a second from `faultAfterMs`
   * before the freeze until `tailMs` after the thaw, each reading its order every `readEveryMs`
   * until it is payable; more stock than they buy, so units remain throughout.
   */
  saleFreeze: saleFreezePlan('worker-freeze-sale'),
  mariadbSaleFreeze: saleFreezePlan('mariadb-freeze-sale'),
  quick,
};
const say = (line: string) => console.log(`[chaos] ${line}`);

interface FaultResult extends ChaosVerdict {
  ok: boolean;
  /** What the APIs logged of each 500 answered during the round. */
  internalErrors?: InternalErrorLogged[];
  fault: Fault;
  seconds: { burst: number; storesAgreeAfterFault: number; quiet: number };
  /** Freeze rounds only: how the APIs answered while the server was frozen, and after. */
  gray?: GrayFigures;
  /** Freeze-payment rounds only: the payments judged by when they arrived. */
  payments?: PaymentFreezeVerdict;
  /** Freezes the sale goes on through (SALE_GOES_ON): checkouts and reads answered, whole payment windows. */
  sale?: SaleFreezeVerdict;
  /** The Stripe round: what went on while Stripe hung, and what it did once back. */
  stripe?: { checks: Record<string, boolean>; figures: Record<string, unknown>; violations: string[] };
  /** The waiting-line round: places and admissions through the faults. */
  line?: { checks: Record<string, boolean>; figures: Record<string, unknown>; violations: string[] };
  /** The order-events round: every event delivered through the receiver's freeze and the worker's kill. */
  events?: { checks: Record<string, boolean>; figures: Record<string, unknown>; violations: string[] };
}

interface GrayFigures extends FreezeAnswers, ApiCounters {
  frozenSeconds: number;
  /** From the thaw until every API was ready with every breaker closed (null: not within 60 s). */
  healthyAfterThawSeconds: number | null;
  /** Every request sent during the freeze was answered within its deadline + 1 s. */
  answeredInTime: boolean;
}

const workDir = mkdtempSync(join(tmpdir(), 'flash-chaos-'));
/** Supervised processes (by name) whose next start runs with its wall clock this far ahead. */
const clockAheadMs = new Map<string, number>();
/** Supervised processes (by name) whose next start adds these to the suite's environment. */
const envOverrides = new Map<string, Record<string, string>>();
let stack: RunningStack | undefined;
let stripeMock: RunningStripeMock | undefined;
/** Stripe as the app sees it in the Stripe round: the stateful double in front of stripe-mock. */
let stripeDouble: StripeDouble | undefined;
/** Stripe's webhook signing secret for the suite's APIs and its simulated Stripe. */
const STRIPE_WEBHOOK_SECRET = 'whsec_chaos';
const apps: Supervised[] = [];

async function main(): Promise<number> {
  const supervision = { initialDelayMs: 500, maxDelayMs: 5_000, log: (line: string) => say(`supervisor: ${line}`) };
  stack = await startStack({
    dataDir: join(workDir, 'stack'),
    ports: 'free',
    ephemeral: true,
    env: {},
    log: say,
    supervise: supervision,
  });
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...stack.env,
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
    // Every shopper of the line round joins and polls from 127.0.0.1: its per-shopper budget stays, the address's goes.
    RATE_LIMIT_LINE_IP: 'off',
    RATE_LIMIT_LINE_SUBNET: 'off',
    // No load balancer to drain from: an API stops at once.
    SHUTDOWN_DRAIN: '0s',
  };
  if (faults.some((fault) => (PROVIDER_FREEZES as readonly string[]).includes(fault))) {
    // Stripe's keys everywhere (the generic orders of the other rounds make no call to it); one API sells through it.
    // The app talks to the double, which forwards every request to stripe-mock first: a SIGSTOP of stripe-mock
    // freezes Stripe's API, while the double's webhook deliveries (Stripe's own system) go on. Its webhook is
    // pointed at the Stripe API once that is up (the round); its rate limit is test mode's (25/s).
    stripeMock = await startStripeMock({
      tools: loadToolPaths(),
      dataDir: join(workDir, 'stripe-mock'),
      port: await freePort(),
    });
    stripeDouble = await startStripeDouble({ stripeMockUrl: stripeMock.url, delivery: STRIPE_LATE_DELIVERY });
    say(`Stripe double at ${stripeDouble.url} in front of stripe-mock at ${stripeMock.url}`);
    Object.assign(env, {
      STRIPE_API_URL: stripeDouble.url,
      STRIPE_SECRET_KEY: 'sk_test_chaos',
      STRIPE_WEBHOOK_SECRET,
    });
  }
  // The worker's sender reaches the round's receiver on loopback, retrying soon (the other rounds make no endpoint).
  if (faults.includes(EVENTS_ROUND)) Object.assign(env, EVENTS_ROUND_ENV);
  const config = loadConfig(env);
  const pool = createMysqlPool(config);
  await migrate(pool);
  const stores = openStores(pool);
  const redis = createRedis(config, { maxRetriesPerRequest: 20 });
  redis.on('error', () => {});
  const connection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: temporalDataConverter(config),
  });
  const bundle = join(workDir, 'workflow-bundle.js');
  await buildWorkflowBundle(bundle);

  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const app = (
    name: string,
    script: string,
    extraEnv: Record<string, string>,
    ready: (logFile: string) => Promise<void>,
  ) =>
    new Supervised(
      name,
      async () => {
        // A process whose wall clock runs ahead (Debian's faketime; timers keep the true monotonic clock).
        const aheadMs = clockAheadMs.get(name) ?? 0;
        const [command, args, skew] =
          aheadMs === 0
            ? [tsx, [join(root, script)], {}]
            : [
                'faketime',
                ['-f', `+${aheadMs / 1_000}s`, tsx, join(root, script)],
                { FAKETIME_DONT_FAKE_MONOTONIC: '1' },
              ];
        const proc = spawnLogged(name, command, args, {
          logFile: join(workDir, `${name}.log`),
          cwd: root,
          env: { ...env, ...extraEnv, ...envOverrides.get(name), ...skew } as NodeJS.ProcessEnv,
        });
        await ready(proc.logFile);
        return proc;
      },
      supervision,
    );
  const apiPorts = [await freePort(), await freePort()];
  const workerHealthPort = await freePort();
  const apiUrls = apiPorts.map((port) => `http://127.0.0.1:${port}`);
  const worker = app(
    'worker',
    'src/workers/main.ts',
    // Free ports for the worker's metrics and health: a running `npm start` holds the defaults.
    {
      WORKFLOW_BUNDLE_PATH: bundle,
      WORKER_METRICS_PORT: String(await freePort()),
      WORKER_HEALTH_PORT: String(workerHealthPort),
    },
    async () => {},
  );
  const apis = apiPorts.map((port, i) =>
    app(`api-${i + 1}`, 'src/api/main.ts', { PORT: String(port) }, async () => {
      await waitFor(async () => (await fetch(`${apiUrls[i]}/healthz`)).ok, {
        what: `api-${i + 1} healthy`,
        timeoutMs: 60_000,
        intervalMs: 100,
        retryErrors: true,
      });
    }),
  );
  apps.push(worker, ...apis);
  await Promise.all(apps.map((a) => a.start()));
  say(`stack, 2 APIs (${apiUrls.join(', ')}) and a worker up; logs under ${workDir}`);

  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const sales = SalesService.onClients(stores, redis, config.temporal.taskQueue);
  const orders = OrderWorkflowClient.withoutBreakers(
    temporal,
    config.temporal.taskQueue,
    new StartPacing({ maxLimit: 32 }),
  );
  const auth = new ShopperAuth(config);
  const servers = stack.servers;
  const results: FaultResult[] = [];
  const roundContext: RoundContext = {
    stores,
    redis,
    inventory,
    temporal,
    sales,
    orders,
    auth,
    config,
    apiUrls,
    targets: { apis, worker, servers, say, aofWatch: undefined },
    workerHealthUrl: `http://127.0.0.1:${workerHealthPort}/readyz`,
    async startStripeApi(options = {}) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const name = options.name ?? 'api-stripe';
      const extra = { ...options.env, PORT: String(port), PAYMENT_PROVIDER: 'stripe' };
      const api = app(name, 'src/api/main.ts', extra, async () => {
        await waitFor(async () => (await fetch(`${url}/healthz`)).ok, {
          what: `${name} healthy`,
          timeoutMs: 60_000,
          intervalMs: 100,
          retryErrors: true,
        });
      });
      await api.start();
      return { url, stop: () => api.stop(5_000) };
    },
  };
  try {
    for (const fault of faults) {
      say(`── ${fault} ──`);
      const roundStartedAt = Date.now();
      const logged = results.length;
      // A 500 is a bug: the round keeps what the APIs logged of each (the answer names no cause).
      const keepInternalErrors = () => {
        const kept = internalErrorsLogged(workDir, roundStartedAt);
        const result = results[logged];
        if (result && kept.length > 0) result.internalErrors = kept;
        for (const error of kept) say(`  500 logged by ${error.app}: ${error.method} ${error.path}: ${error.error}`);
      };
      try {
        if (isPaymentFreeze(fault)) {
          results.push(await paymentFreezeRound(fault, roundContext));
          continue;
        }
        if (fault === STRIPE_ROUND) {
          results.push(await stripeRound(roundContext));
          continue;
        }
        if (fault === STRIPE_DROP_ROUND) {
          results.push(await stripeDropRound(roundContext));
          continue;
        }
        if (fault === LINE_ROUND) {
          results.push(await lineRound(roundContext));
          continue;
        }
        if (fault === EVENTS_ROUND) {
          results.push(await eventsRound(roundContext));
          continue;
        }
        const sku = `CHAOS-${fault.toUpperCase()}-${Date.now().toString(36)}`;
        const gray = isFreeze(fault) || isSaleFreeze(fault);
        // The freeze's plan: the 20 s rounds', or the 60 s mid-sale rounds'.
        const freezePlan = isSaleFreeze(fault) ? saleFreezePlan(fault) : settings.freeze;
        if (isSaleFreeze(fault) && config.paymentWindowMs + 5_000 >= freezePlan.freezeMs)
          throw new Error(
            `PAYMENT_WINDOW ${config.paymentWindow} must end well within the ${freezePlan.freezeMs / 1000} s freeze`,
          );
        const stock = gray ? freezePlan.stock : settings.stock;
        await sales.create({ sku, name: sku, priceCents: 1_500, stock, perUserLimit: 1 });
        const t0 = Date.now();
        // The API kill comes in a rush of checkouts (as in a real flash sale), so that some are
        // caught between their reservation and their workflow's start: the orphans to reclaim.
        const rush = fault === 'api-kill';
        const aofWatch = fault === 'redis-aof-tail-lost' ? watchAofSize(join(workDir, 'stack', 'redis')) : undefined;
        // A freeze meets shoppers who arrive at a steady pace whatever the answers (open loop: one
        // lane each), as they do in a real sale.
        const pace = gray
          ? {
              shoppers: freezePlan.shoppers,
              concurrency: freezePlan.shoppers,
              arrivalsPerSecond: freezePlan.arrivalsPerSecond,
            }
          : {
              shoppers: settings.shoppers,
              concurrency: rush ? settings.concurrency * 4 : settings.concurrency,
              arrivalsPerSecond: rush ? settings.arrivalsPerSecond * 10 : settings.arrivalsPerSecond,
            };
        const countersBefore = gray ? await scrapeApiCounters(apiUrls) : undefined;
        const plan: TrafficPlan = {
          sku,
          priceCents: 1_500,
          ...pace,
          apiUrls,
          tokenFor: (userId) => auth.issue(userId),
          webhookSecret: config.webhookSecret,
          paymentWindowMs: config.paymentWindowMs,
          retryForMs: 60_000,
          // Mid-sale, shoppers wait on their order's page until it is payable.
          ...(isSaleFreeze(fault)
            ? { readUntilPayable: { everyMs: SALE_FREEZE.readEveryMs, forMs: saleFreezePlan(fault).freezeMs + 60_000 } }
            : {}),
        };
        const traffic = runTraffic(plan);
        const acceptedSoFar = () =>
          traffic.sofar.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
        const saleWatch = SALE_GOES_ON.includes(fault)
          ? watchSale({ stores, redis, inventory }, sku, acceptedSoFar)
          : undefined;
        // The AOF cut needs a second of history to cut back to.
        await sleep(
          gray
            ? freezePlan.faultAfterMs
            : rush
              ? settings.faultAfterMs / 3
              : aofWatch
                ? settings.faultAfterMs + 1_000
                : settings.faultAfterMs,
        );
        const faultAt = Date.now();
        const freezing = await inject(fault, { apis, worker, servers, say, aofWatch }, freezePlan.freezeMs);
        // Redis has exited (inject waits for it): an order numbered before now may have been reserved
        // in the writes the cut took, those between faultAt and the kill landing included.
        const redisDiedAt = Date.now();
        // A freeze: the thaw, then how long until every API is healthy again (measured at once).
        const thawAt = freezing ? await freezing.thawed : undefined;
        const pendingAtThaw = thawAt && saleWatch ? await promisesPending(redis, sku) : undefined;
        if (pendingAtThaw !== undefined) say(`${pendingAtThaw} promised orders pending at the thaw`);
        const healthyAfterThaw = thawAt
          ? await secondsUntilHealthy(apiUrls, thawAt, canaryRead(traffic.sofar, auth), 60_000)
          : undefined;
        if (thawAt) say(`thawed; every API healthy ${healthyAfterThaw?.toFixed(1) ?? 'never'} s later`);
        // How long after the fault Redis again holds exactly what the running orders hold, and has as
        // many units available as MySQL (orphans released, lost writes repaired), once checkouts end.
        await traffic.checkoutsDone;
        // The sale went on through the freeze: how long from the thaw until every 202 is an order row.
        const rowsSeconds =
          thawAt && saleWatch
            ? await secondsUntilRows(saleWatch, acceptedSoFar(), thawAt, settings.rowsAfterThawTimeoutMs)
            : undefined;
        if (rowsSeconds !== undefined) say(`every 202 an order row ${rowsSeconds ?? 'never'} s after the thaw`);
        const repairedSeconds = await waitForRepair(
          { stores, redis, inventory, temporal },
          sku,
          faultAt,
          settings.quiescenceTimeoutMs,
          orders,
        );
        const result = await traffic.done;
        saleWatch?.stop();
        const burstSeconds = (Date.now() - t0) / 1000;
        const accepted = result.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
        say(
          `traffic done in ${burstSeconds.toFixed(1)} s: ${accepted.length} accepted; waiting for the sale to be quiet`,
        );
        // A Redis that lost acknowledged writes lost the promises in them not started yet: accounted for, by name.
        const lost = () =>
          fault === 'redis-aof-tail-lost'
            ? ordersLostWithRedisWrites({ stores, inventory }, sku, accepted, redisDiedAt, orders)
            : Promise.resolve(new Set<string>());
        const quietSeconds = await waitForQuiescence(
          { stores, redis, inventory, temporal },
          sku,
          accepted,
          settings.quiescenceTimeoutMs,
          lost,
        );
        // Every request has its answer now, those sent late in the freeze too.
        let grayFigures: GrayFigures | undefined;
        if (thawAt && countersBefore && healthyAfterThaw !== undefined) {
          grayFigures = await freezeFigures(
            result.requests,
            { faultAt, thawAt, countersBefore, healthyAfterThaw },
            config,
            apiUrls,
          );
        }
        const lostOrders = await lost();
        const numberedAfterFault = [...lostOrders].filter((orderNo) => (orderNoTime(orderNo) ?? 0) >= faultAt).length;
        if (lostOrders.size > 0)
          say(
            `${lostOrders.size} promises lost with Redis's writes (${numberedAfterFault} numbered after the fault began, before Redis died)`,
          );
        const verdict = await checkAfterFault(
          { stores, redis, inventory, temporal },
          sku,
          1,
          result,
          new Date(t0),
          () => sameKeySameOrder(plan, result, lostOrders),
          lostOrders,
        );
        const saleVerdict =
          thawAt && saleWatch
            ? await checkSaleThroughFreeze(stores, {
                orderNos: accepted,
                traffic: result,
                freeze: { from: faultAt, until: thawAt },
                paymentWindowMs: config.paymentWindowMs,
                watch: saleWatch,
                promisesPendingAtThaw: pendingAtThaw ?? 0,
                secondsFromThawUntilRows: rowsSeconds ?? null,
                deadlines: deadlinesByKind(config),
              })
            : undefined;
        const violated = [
          ...CHAOS_CHECKS.filter((c) => !verdict.checks[c]),
          ...(grayFigures && !grayFigures.answeredInTime ? ['answeredInTime'] : []),
          ...SALE_FREEZE_CHECKS.filter((c) => saleVerdict && !saleVerdict.checks[c]),
        ];
        const ok = violated.length === 0;
        results.push({
          fault,
          ok,
          ...verdict,
          seconds: {
            burst: round(burstSeconds),
            storesAgreeAfterFault: round(repairedSeconds),
            quiet: round(quietSeconds),
          },
          ...(grayFigures ? { gray: grayFigures } : {}),
          ...(saleVerdict ? { sale: saleVerdict } : {}),
        });
        say(
          `${fault}: ${ok ? 'all invariants hold' : `VIOLATED: ${violated.join(', ')}`} (quiet after ${quietSeconds.toFixed(1)} s)`,
        );
        say(`  ${JSON.stringify(verdict.figures)}`);
        if (saleVerdict) say(`  sale: ${JSON.stringify(saleVerdict.figures)}`);
        for (const violation of saleVerdict?.violations ?? []) say(`  ${violation}`);
      } finally {
        keepInternalErrors();
      }
    }
  } finally {
    await Promise.allSettled([pool.end(), redis.quit(), connection.close()]);
  }
  const date = new Date().toISOString();
  const restarts = Object.fromEntries([...apps, ...Object.values(servers)].map((s) => [s.name, s.restarts]));
  // A run of only some faults (--faults) updates their entries in the results file and keeps the
  // others' (each of its entries names its own run); a run of every fault writes the file anew.
  const partial = FAULTS.some((fault) => !faults.includes(fault));
  const file = join(outDir, 'latest.json');
  const previous =
    partial && existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as { faults?: Record<string, unknown> })
      : undefined;
  const entries = Object.fromEntries(
    results.map((r) => [
      r.fault,
      {
        ok: r.ok,
        ...(partial
          ? {
              run: {
                date,
                faults,
                quick,
                restarts,
                ...(r.payments ? { paymentWindow: settings.paymentWindow, paymentFreeze: settings.paymentFreeze } : {}),
                ...(isSaleFreeze(r.fault)
                  ? { paymentWindow: settings.paymentWindow, saleFreeze: saleFreezePlan(r.fault) }
                  : {}),
                ...(r.fault === STRIPE_ROUND
                  ? {
                      paymentWindow: settings.paymentWindow,
                      stripeRound: STRIPE_ROUND_PLAN,
                      stripeDelivery: STRIPE_LATE_DELIVERY,
                    }
                  : {}),
                ...(r.fault === STRIPE_DROP_ROUND
                  ? { stripeDropRound: STRIPE_DROP_PLAN, stripeDelivery: STRIPE_LATE_DELIVERY }
                  : {}),
                ...(r.fault === LINE_ROUND ? { paymentWindow: settings.paymentWindow, lineRound: LINE_PLAN } : {}),
                ...(r.fault === EVENTS_ROUND
                  ? { paymentWindow: settings.paymentWindow, eventsRound: EVENTS_PLAN, eventsEnv: EVENTS_ROUND_ENV }
                  : {}),
              },
            }
          : {}),
        checks: {
          ...r.checks,
          ...(r.gray ? { answeredInTime: r.gray.answeredInTime } : {}),
          ...(r.payments?.checks ?? {}),
          ...(r.sale?.checks ?? {}),
          ...(r.stripe?.checks ?? {}),
          ...(r.line?.checks ?? {}),
          ...(r.events?.checks ?? {}),
        },
        figures: r.figures,
        seconds: r.seconds,
        ...(r.internalErrors ? { internalErrors: r.internalErrors } : {}),
        ...(r.gray ? { gray: r.gray } : {}),
        ...(r.payments ? { payments: { figures: r.payments.figures, violations: r.payments.violations } } : {}),
        ...(r.sale ? { sale: { figures: r.sale.figures, violations: r.sale.violations } } : {}),
        ...(r.stripe ? { stripe: { figures: r.stripe.figures, violations: r.stripe.violations } } : {}),
        ...(r.line ? { line: { figures: r.line.figures, violations: r.line.violations } } : {}),
        ...(r.events ? { events: { figures: r.events.figures, violations: r.events.violations } } : {}),
      },
    ]),
  );
  const report = previous
    ? { ...previous, faults: { ...previous.faults, ...entries } }
    : { date, settings, restarts, faults: entries };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${table(results)}`);
  if (results.some((r) => r.gray)) console.log(`\n${grayTable(results)}`);
  if (results.some((r) => r.payments)) console.log(`\n${paymentsTable(results)}`);
  if (results.some((r) => r.sale)) console.log(`\n${saleTable(results)}`);
  for (const r of results.filter((result) => result.stripe))
    console.log(`\n${r.fault}: ${JSON.stringify(r.stripe?.checks)}\n  ${JSON.stringify(r.stripe?.figures)}`);
  for (const r of results.filter((result) => result.line))
    console.log(`\n${r.fault}: ${JSON.stringify(r.line?.checks)}\n  ${JSON.stringify(r.line?.figures)}`);
  for (const r of results.filter((result) => result.events))
    console.log(`\n${r.fault}: ${JSON.stringify(r.events?.checks)}\n  ${JSON.stringify(r.events?.figures)}`);
  say(
    `results in ${file}${previous ? ` (merged: ${results.map((r) => r.fault).join(', ')}; the other faults' entries kept)` : ''}`,
  );
  return results.every((r) => r.ok) && results.length === faults.length ? 0 : 1;
}

interface Targets {
  apis: Supervised[];
  worker: Supervised;
  servers: Partial<Record<StackServer, Supervised>>;
  say: (line: string) => void;
  aofWatch: AofWatch | undefined;
}

interface AofWatch {
  /** The incremental AOF file and its size about `ms` ago. */
  sizeAgo(ms: number): { file: string; size: number } | undefined;
  stop(): void;
}

/** Samples the size of Redis's incremental append-only file every 50 ms. */
function watchAofSize(redisDir: string): AofWatch {
  const samples: Array<{ at: number; file: string; size: number }> = [];
  const timer = setInterval(() => {
    const dir = join(redisDir, 'appendonlydir');
    const incr = readdirSync(dir)
      .filter((name) => name.endsWith('.incr.aof'))
      .sort()
      .at(-1);
    if (incr) samples.push({ at: Date.now(), file: join(dir, incr), size: statSync(join(dir, incr)).size });
  }, 50);
  return {
    sizeAgo(ms) {
      const cutoff = Date.now() - ms;
      return [...samples].reverse().find((sample) => sample.at <= cutoff);
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * Injects the fault; for a freeze (of `freezeMs`), resolves at once with `thawed`, the time of the
 * thaw (SIGCONT) to come.
 */
async function inject(
  fault: Fault,
  { apis, worker, servers, say: log, aofWatch }: Targets,
  freezeMs: number,
): Promise<{ thawed: Promise<number> } | undefined> {
  const server = (role: StackServer) => {
    const found = servers[role];
    if (!found) throw new Error(`the ${role} server is external: the fault suite needs its own`);
    return found;
  };
  const kill = (target: Supervised): undefined => {
    log(`SIGKILL ${target.name} (pid ${target.process?.pid})`);
    target.kill('SIGKILL');
    return undefined;
  };
  const freeze = (target: Supervised): { thawed: Promise<number> } => {
    log(`SIGSTOP ${target.name} (pid ${target.process?.pid}) for ${freezeMs / 1000} s`);
    target.kill('SIGSTOP');
    frozen.add(target);
    const thawed = sleep(freezeMs).then(() => {
      target.kill('SIGCONT');
      frozen.delete(target);
      log(`SIGCONT ${target.name}`);
      return Date.now();
    });
    return { thawed };
  };
  switch (fault) {
    case 'temporal-freeze':
    case 'temporal-freeze-payments':
    case 'temporal-freeze-sale':
      return freeze(server('temporal'));
    case 'redis-freeze':
      return freeze(server('redis'));
    case 'mariadb-freeze':
    case 'mariadb-freeze-sale':
      return freeze(server('mysql'));
    case 'worker-freeze':
    case 'worker-freeze-payments':
    case 'worker-freeze-sale':
      return freeze(worker);
    case 'api-kill':
      return kill(apis[0] as Supervised);
    case 'worker-kill':
      return kill(worker);
    case 'mariadb-kill': {
      const mariadb = server('mysql');
      mariadb.holdRestarts(10_000);
      return kill(mariadb);
    }
    case 'redis-kill':
      return kill(server('redis'));
    case 'redis-aof-tail-lost': {
      // What a disk that loses its last writes, or a machine crash under everysec, leaves behind.
      const redisServer = server('redis');
      const before = aofWatch?.sizeAgo(1_000);
      aofWatch?.stop();
      redisServer.holdRestarts(1_500);
      kill(redisServer);
      await redisServer.process?.exited;
      if (!before) throw new Error('no AOF size sample to cut back to');
      const now = statSync(before.file).size;
      truncateSync(before.file, before.size);
      log(`cut ${now - before.size} bytes (the last second of writes) off ${before.file}`);
      return undefined;
    }
    case 'temporal-kill':
      return kill(server('temporal'));
    case 'worker-ahead-payments':
      return undefined; // a clock, not a process, is at fault (restartWorkerWithClockAhead)
    case STRIPE_ROUND:
      return undefined; // stripeRound freezes Stripe's API itself, between its phases
    case STRIPE_DROP_ROUND:
      return undefined; // stripeDropRound points Stripe's webhook away and back itself
    case LINE_ROUND:
      return undefined; // lineRound freezes Redis and kills an API itself, mid-line
    case EVENTS_ROUND:
      return undefined; // eventsRound freezes its receiver and kills the worker itself, mid-sale
  }
}

interface RoundContext {
  stores: Stores;
  redis: RedisClient;
  inventory: RedisInventory;
  temporal: Client;
  sales: SalesService;
  orders: OrderWorkflowClient;
  auth: ShopperAuth;
  config: AppConfig;
  apiUrls: string[];
  targets: Targets;
  workerHealthUrl: string;
  /**
   * Starts an API selling through Stripe (PAYMENT_PROVIDER=stripe), for the Stripe rounds only: `name` (its log),
   * `env` added to the suite's (the drop round's PAYMENT_WINDOW).
   */
  startStripeApi(options?: {
    name?: string;
    env?: Record<string, string>;
  }): Promise<{ url: string; stop(): Promise<void> }>;
}

/**
 * The Stripe round (chaos/stripe-round.ts) on an API of its own that sells through Stripe; then, once the sale is
 * quiet, the invariants every round checks.
 */
async function stripeRound(ctx: RoundContext): Promise<FaultResult> {
  const { stores, redis, inventory, temporal, sales, auth, config, orders } = ctx;
  const deps = { stores, redis, inventory, temporal };
  const mock = stripeMock;
  const double = stripeDouble;
  if (!mock || !double) throw new Error('stripe-mock and the Stripe double are not running');
  const api = await ctx.startStripeApi();
  try {
    const stripe = await stripeLateRound({
      stores,
      temporal,
      sales,
      inventory,
      auth,
      config,
      apiUrl: api.url,
      double,
      webhookSecret: STRIPE_WEBHOOK_SECRET,
      freezeStripe: () => {
        say(`SIGSTOP stripe-mock (pid ${mock.process.pid})`);
        process.kill(mock.process.pid, 'SIGSTOP');
      },
      thawStripe: () => {
        process.kill(mock.process.pid, 'SIGCONT');
        say('SIGCONT stripe-mock');
      },
      say,
    });
    const repairedSeconds = await waitForRepair(
      deps,
      stripe.sku,
      stripe.freeze.from,
      settings.quiescenceTimeoutMs,
      orders,
    );
    const quietSeconds = await waitForQuiescence(deps, stripe.sku, stripe.accepted, settings.quiescenceTimeoutMs);
    const verdict = await checkAfterFault(deps, stripe.sku, 1, stripe.result, new Date(stripe.t0), () =>
      sameKeySameOrder(stripe.plan, stripe.result),
    );
    const violated = [
      ...CHAOS_CHECKS.filter((c) => !verdict.checks[c]),
      ...STRIPE_LATE_CHECKS.filter((c) => !stripe.checks[c]),
    ];
    const ok = violated.length === 0;
    say(
      `${STRIPE_ROUND}: ${ok ? 'all invariants hold' : `VIOLATED: ${violated.join(', ')}`} (quiet after ${quietSeconds.toFixed(1)} s)`,
    );
    say(`  ${JSON.stringify(verdict.figures)}`);
    say(`  stripe: ${JSON.stringify(stripe.figures)}`);
    for (const violation of stripe.violations) say(`  ${violation}`);
    return {
      fault: STRIPE_ROUND,
      ok,
      ...verdict,
      seconds: {
        burst: round((Date.now() - stripe.t0) / 1000),
        storesAgreeAfterFault: round(repairedSeconds),
        quiet: round(quietSeconds),
      },
      stripe: { checks: stripe.checks, figures: stripe.figures, violations: stripe.violations },
    };
  } finally {
    await api.stop();
  }
}

/**
 * The webhook-drop round (chaos/stripe-drop-round.ts): the worker restarted with the round's STRIPE_CATCH_UP_INTERVAL
 * (it puts the catch-up schedule at that interval at boot), an API of its own with the round's PAYMENT_WINDOW; then,
 * once the sale is quiet, the invariants every round checks; the worker restarted as it was.
 *
 * The short interval is the round's only: the catch-up takes in any event not delivered yet that is older than the
 * interval, and stripe-late-sale's webhooks come 1 to 5 minutes late, its checks counting on them to record the
 * payments they tell of first (a payment learnt from an event must answer its first delivery APPLIED).
 */
async function stripeDropRound(ctx: RoundContext): Promise<FaultResult> {
  const { stores, redis, inventory, temporal, sales, auth, config, orders } = ctx;
  const deps = { stores, redis, inventory, temporal };
  const double = stripeDouble;
  if (!double) throw new Error('the Stripe double is not running');
  await restartWorkerWithEnv(ctx, { STRIPE_CATCH_UP_INTERVAL: STRIPE_DROP_PLAN.catchUpInterval });
  const workerRestartedAt = Date.now();
  const api = await ctx.startStripeApi({
    name: 'api-stripe-drop',
    env: { PAYMENT_WINDOW: STRIPE_DROP_PLAN.paymentWindow },
  });
  try {
    const drop = await stripeWebhookDropRound({
      stores,
      temporal,
      sales,
      auth,
      config,
      apiUrl: api.url,
      double,
      webhookSecret: STRIPE_WEBHOOK_SECRET,
      workerRestartedAt,
      say,
    });
    const repairedSeconds = await waitForRepair(deps, drop.sku, drop.dropAt, settings.quiescenceTimeoutMs, orders);
    const quietSeconds = await waitForQuiescence(deps, drop.sku, drop.accepted, settings.quiescenceTimeoutMs);
    const verdict = await checkAfterFault(deps, drop.sku, 1, drop.result, new Date(drop.t0), () =>
      sameKeySameOrder(drop.plan, drop.result),
    );
    const violated = [
      ...CHAOS_CHECKS.filter((c) => !verdict.checks[c]),
      ...STRIPE_DROP_CHECKS.filter((c) => !drop.checks[c]),
    ];
    const ok = violated.length === 0;
    say(
      `${STRIPE_DROP_ROUND}: ${ok ? 'all invariants hold' : `VIOLATED: ${violated.join(', ')}`} (quiet after ${quietSeconds.toFixed(1)} s)`,
    );
    say(`  ${JSON.stringify(verdict.figures)}`);
    say(`  stripe: ${JSON.stringify(drop.figures)}`);
    for (const violation of drop.violations) say(`  ${violation}`);
    return {
      fault: STRIPE_DROP_ROUND,
      ok,
      ...verdict,
      seconds: {
        burst: round((Date.now() - drop.t0) / 1000),
        storesAgreeAfterFault: round(repairedSeconds),
        quiet: round(quietSeconds),
      },
      stripe: { checks: drop.checks, figures: drop.figures, violations: drop.violations },
    };
  } finally {
    await api.stop();
    await restartWorkerWithEnv(ctx, undefined).catch((err: unknown) =>
      say(`the worker did not come back with the suite's environment: ${String(err)}`),
    );
  }
}

/**
 * The waiting-line round (chaos/line-round.ts): Redis frozen (as redis-freeze) and the first API killed (as api-kill)
 * mid-line; the invariants every round checks, and the line's own.
 */
async function lineRound(ctx: RoundContext): Promise<FaultResult> {
  const { targets } = ctx;
  const round = await lineRedisFreezeApiKillRound({
    ...ctx,
    freezeRedis: (ms) => inject('redis-freeze', targets, ms),
    killApi: () => inject('api-kill', targets, 0),
    killedApi: targets.apis[0] as Supervised,
    quiescenceTimeoutMs: settings.quiescenceTimeoutMs,
    say,
  });
  say(
    `${LINE_ROUND}: ${round.ok ? 'all invariants hold' : `VIOLATED: ${round.violated.join(', ')}`} (quiet after ${round.seconds.quiet} s)`,
  );
  say(`  ${JSON.stringify(round.verdict.figures)}`);
  say(`  line: ${JSON.stringify(round.line.figures)}`);
  for (const violation of round.line.violations) say(`  ${violation}`);
  return { fault: LINE_ROUND, ok: round.ok, ...round.verdict, seconds: round.seconds, line: round.line };
}

/**
 * The order-events round (chaos/events-round.ts): its receiver frozen and the worker killed (as worker-kill) mid-sale;
 * the invariants every round checks, and every event delivered.
 */
async function eventsRound(ctx: RoundContext): Promise<FaultResult> {
  const { targets } = ctx;
  const round = await eventsReceiverFreezeWorkerKillRound({
    ...ctx,
    logDir: workDir,
    killWorker: () => inject('worker-kill', targets, 0),
    worker: targets.worker,
    quiescenceTimeoutMs: settings.quiescenceTimeoutMs,
    say,
  });
  say(
    `${EVENTS_ROUND}: ${round.ok ? 'all invariants hold' : `VIOLATED: ${round.violated.join(', ')}`} (quiet after ${round.seconds.quiet} s)`,
  );
  say(`  ${JSON.stringify(round.verdict.figures)}`);
  say(`  events: ${JSON.stringify(round.events.figures)}`);
  for (const violation of round.events.violations) say(`  ${violation}`);
  return { fault: EVENTS_ROUND, ok: round.ok, ...round.verdict, seconds: round.seconds, events: round.events };
}

/**
 * Restarts the worker (SIGTERM: it drains, exits, and its supervisor starts it again) with `overrides` added to the
 * suite's environment (undefined: none), and waits until the new process is ready.
 */
async function restartWorkerWithEnv(ctx: RoundContext, overrides: Record<string, string> | undefined): Promise<void> {
  const { worker } = ctx.targets;
  const before = worker.process?.pid;
  if (overrides) envOverrides.set(worker.name, overrides);
  else envOverrides.delete(worker.name);
  worker.kill('SIGTERM');
  await waitFor(
    async () => {
      if ((await worker.running()).pid === before) return false;
      return (await fetch(ctx.workerHealthUrl)).ok;
    },
    { what: 'the worker restarted', timeoutMs: 90_000, intervalMs: 250, retryErrors: true },
  );
  say(`worker restarted${overrides ? ` with ${JSON.stringify(overrides)}` : " with the suite's environment"}`);
}

/**
 * A freeze-payment round: the round's orders placed (waiting checkouts) and awaiting payment, then
 * the worker or Temporal frozen for settings.paymentFreeze.freezeMs, longer than the payment
 * window, with each order's webhooks sent during the freeze at times around its deadline. Once
 * the sale is quiet: the invariants, the freeze figures, and checkPaymentsByArrival.
 */
async function paymentFreezeRound(fault: PaymentFreeze, ctx: RoundContext): Promise<FaultResult> {
  if (fault !== 'worker-ahead-payments') return paymentRound(fault, ctx);
  await restartWorkerWithClockAhead(ctx, WORKER_AHEAD_MS);
  try {
    return await paymentRound(fault, ctx);
  } finally {
    await restartWorkerWithClockAhead(ctx, 0);
  }
}

/**
 * Restarts the worker (SIGKILL; its supervisor starts it again) with its wall clock `aheadMs` ahead, and waits until
 * its /readyz shows it.
 */
async function restartWorkerWithClockAhead(ctx: RoundContext, aheadMs: number): Promise<void> {
  const { worker } = ctx.targets;
  const before = worker.process?.pid;
  clockAheadMs.set(worker.name, aheadMs);
  worker.kill('SIGKILL');
  await waitFor(
    async () => {
      if ((await worker.running()).pid === before) return false;
      const answer = await fetch(ctx.workerHealthUrl);
      const body = (await answer.json()) as { clocks?: { mysql?: { offsetMs: number } } };
      const offset = body.clocks?.mysql?.offsetMs;
      // MySQL's clock minus the worker's: about -aheadMs once the new process runs.
      return answer.ok && offset !== undefined && Math.abs(offset + aheadMs) < 2_000;
    },
    { what: `the worker running ${aheadMs / 1000} s ahead`, timeoutMs: 90_000, intervalMs: 250, retryErrors: true },
  );
  say(`worker restarted with its clock ${aheadMs / 1000} s ahead of MySQL's and Redis's`);
}

async function paymentRound(fault: PaymentFreeze, ctx: RoundContext): Promise<FaultResult> {
  const { stores, redis, inventory, temporal, sales, orders, auth, config, apiUrls } = ctx;
  const deps = { stores, redis, inventory, temporal };
  const p = settings.paymentFreeze;
  if (config.paymentWindowMs + 5_000 >= p.freezeMs)
    throw new Error(`PAYMENT_WINDOW ${config.paymentWindow} must end well within the ${p.freezeMs / 1000} s freeze`);
  const sku = `CHAOS-${fault.toUpperCase()}-${Date.now().toString(36)}`;
  const priceCents = 1_500;
  await sales.create({ sku, name: sku, priceCents, stock: p.stock, perUserLimit: 1 });
  const t0 = Date.now();
  const result: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  const plan: TrafficPlan = {
    sku,
    priceCents,
    shoppers: p.orders,
    concurrency: p.orders,
    arrivalsPerSecond: p.arrivalsPerSecond,
    apiUrls,
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: config.webhookSecret,
    paymentWindowMs: config.paymentWindowMs,
    retryForMs: 60_000,
  };
  // 1. The orders, before the freeze: waiting checkouts (201 once persisted), retried.
  const runId = Date.now().toString(36);
  await Promise.all(
    Array.from({ length: p.orders }, async (_, index) => {
      await sleep((index / p.arrivalsPerSecond) * 1_000);
      result.intents.push(await buy(plan, `chaos-pay-${runId}-${index}`, 20_000, true, result));
    }),
  );
  const accepted = result.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
  if (accepted.length !== p.orders)
    say(
      `  only ${accepted.length} of ${p.orders} orders accepted: ${JSON.stringify(result.intents.filter((i) => i.answer.kind !== 'accepted'))}`,
    );
  // Every order awaits payment, in MySQL and in its workflow, before the freeze.
  await waitFor(
    async () => {
      const rows = await stores.orders.getOrders(accepted);
      if (rows.size !== accepted.length || [...rows.values()].some((row) => row.status !== 'AWAITING_PAYMENT'))
        return false;
      const states = await Promise.all(accepted.map((orderNo) => orders.queryLive(orderNo)));
      return states.every((state) => state?.status === 'AWAITING_PAYMENT');
    },
    { what: `the orders of ${sku} awaiting payment`, timeoutMs: 60_000, intervalMs: 250, retryErrors: true },
  );
  const rows = await stores.orders.getOrders(accepted);
  const deadlines = accepted.map((orderNo) => ({
    orderNo,
    deadline: rows.get(orderNo)?.paymentDeadline.getTime() ?? Date.now(),
  }));
  const countersBefore = await scrapeApiCounters(apiUrls);

  // 2. The freeze, and the payments during it.
  const faultAt = Date.now();
  const firstDeadline = Math.min(...deadlines.map((d) => d.deadline));
  const lastDeadline = Math.max(...deadlines.map((d) => d.deadline));
  say(
    `${accepted.length} orders awaiting payment; deadlines ${((firstDeadline - faultAt) / 1000).toFixed(1)}–${((lastDeadline - faultAt) / 1000).toFixed(1)} s into the freeze`,
  );
  // worker-ahead-payments freezes nothing: the same window, the worker's clock ahead throughout.
  const freezing =
    fault === 'worker-ahead-payments'
      ? { thawed: sleep(p.freezeMs).then(() => Date.now()) }
      : await inject(fault, ctx.targets, p.freezeMs);
  if (!freezing) throw new Error(`${fault} did not freeze anything`);
  const paying = payAroundDeadlines(plan, deadlines, { from: faultAt, until: faultAt + p.freezeMs }, result);
  const thawAt = await freezing.thawed;
  const healthyAfterThaw = await secondsUntilHealthy(apiUrls, thawAt, canaryRead(result, auth), 60_000);
  say(`thawed; every API healthy ${healthyAfterThaw?.toFixed(1) ?? 'never'} s later`);
  await paying;

  // 3. Quiet, then the checks.
  const repairedSeconds = await waitForRepair(deps, sku, faultAt, settings.quiescenceTimeoutMs, orders);
  const burstSeconds = (Date.now() - t0) / 1000;
  const quietSeconds = await waitForQuiescence(deps, sku, accepted, settings.quiescenceTimeoutMs);
  const gray = await freezeFigures(
    result.requests,
    { faultAt, thawAt, countersBefore, healthyAfterThaw },
    config,
    apiUrls,
  );
  const verdict = await checkAfterFault(deps, sku, 1, result, new Date(t0), () => sameKeySameOrder(plan, result));
  const payments = await checkPaymentsByArrival(stores, accepted, result, { from: faultAt, until: thawAt });
  payments.figures = { paymentWindow: config.paymentWindow, ...payments.figures };
  const violated = [
    ...CHAOS_CHECKS.filter((c) => !verdict.checks[c]),
    ...(gray.answeredInTime ? [] : ['answeredInTime']),
    ...PAYMENT_FREEZE_CHECKS.filter((c) => !payments.checks[c]),
  ];
  const ok = violated.length === 0;
  say(
    `${fault}: ${ok ? 'all invariants hold' : `VIOLATED: ${violated.join(', ')}`} (quiet after ${quietSeconds.toFixed(1)} s)`,
  );
  say(`  ${JSON.stringify(verdict.figures)}`);
  say(`  payments: ${JSON.stringify(payments.figures)}`);
  for (const violation of payments.violations) say(`  ${violation}`);
  return {
    fault,
    ok,
    ...verdict,
    seconds: { burst: round(burstSeconds), storesAgreeAfterFault: round(repairedSeconds), quiet: round(quietSeconds) },
    // Nothing froze in worker-ahead-payments: its answers are checked (answeredInTime), not reported as a freeze.
    ...(fault === 'worker-ahead-payments' ? {} : { gray }),
    payments,
  };
}

/**
 * How the APIs answered while the server was frozen, and what their breakers did, from the round's requests and
 * counters.
 */
async function freezeFigures(
  requests: TrafficResult['requests'],
  freeze: { faultAt: number; thawAt: number; countersBefore: ApiCounters; healthyAfterThaw: number | null },
  config: AppConfig,
  apiUrls: readonly string[],
): Promise<GrayFigures> {
  const answers = answersDuringFreeze(requests, freeze.faultAt, freeze.thawAt, deadlinesByKind(config));
  say(`  during the freeze: ${JSON.stringify(answers)}`);
  return {
    frozenSeconds: round((freeze.thawAt - freeze.faultAt) / 1000),
    ...answers,
    ...countersSince(freeze.countersBefore, await scrapeApiCounters(apiUrls)),
    healthyAfterThawSeconds: freeze.healthyAfterThaw === null ? null : round(freeze.healthyAfterThaw),
    answeredInTime: answers.late === 0,
  };
}

function table(results: FaultResult[]): string {
  const head = `| fault | ${CHAOS_CHECKS.join(' | ')} | accepted | 202 without a row (lost with Redis's writes) | paid / cancelled / failed | orphans released | repaired (adopted / aligned) | payments applied / refund | retried requests | stores agree after fault | quiet after |`;
  const rule = `|---|${CHAOS_CHECKS.map(() => ':-:').join('|')}|---:|---:|---|---:|---:|---|---:|---:|---:|`;
  const rows = results.map((r) => {
    const f = r.figures as {
      accepted: number;
      acceptedWithoutRow: number;
      lostWithRedisWrites: number;
      orders: { paid: number; cancelled: number; failed: number };
      orphansReleased: number;
      repairs: { adopted: number; aligned: number };
      paymentEvents: { applied: number; refundRequired: number };
      retriedRequests: number;
    };
    return `| ${r.fault} | ${CHAOS_CHECKS.map((c) => (r.checks[c] ? 'ok' : '**FAIL**')).join(' | ')} | ${f.accepted} | ${f.acceptedWithoutRow} (${f.lostWithRedisWrites}) | ${f.orders.paid} / ${f.orders.cancelled} / ${f.orders.failed} | ${f.orphansReleased} | ${f.repairs.adopted} / ${f.repairs.aligned} | ${f.paymentEvents.applied} / ${f.paymentEvents.refundRequired} | ${f.retriedRequests} | ${r.seconds.storesAgreeAfterFault} s | ${r.seconds.quiet} s |`;
  });
  return [head, rule, ...rows].join('\n');
}

/** The freeze rounds: what the APIs answered while the server was frozen, and how they came back. */
function grayTable(results: FaultResult[]): string {
  const head =
    '| freeze | invariants | answers during the freeze (status: count) | slowest during the freeze vs deadline (ms) | late | shed | breaker transitions | healthy after thaw |';
  const rule = '|---|:-:|---|---|---:|---:|---|---:|';
  const rows = results.flatMap((r) => {
    if (!r.gray) return [];
    const g = r.gray;
    const answers = Object.entries(g.byOutcome)
      .map(([outcome, count]) => `${outcome}: ${count}`)
      .join(', ');
    const slowest = Object.entries(g.slowest)
      .map(([kind, s]) => `${kind} ${s.ms} / ${s.deadlineMs}`)
      .join('; ');
    const transitions = Object.entries(g.transitions)
      .map(([key, count]) => `${key} ×${count}`)
      .join(', ');
    const invariants = CHAOS_CHECKS.every((c) => r.checks[c]) ? 'ok' : '**FAIL**';
    return [
      `| ${r.fault} | ${invariants} | ${answers} | ${slowest} | ${g.late === 0 ? '0' : `**${g.late}**`} | ${g.shed} | ${transitions || 'none'} | ${g.healthyAfterThawSeconds ?? 'never'} s |`,
    ];
  });
  return [head, rule, ...rows].join('\n');
}

/** The freeze-payment rounds: what the webhooks answered during the freeze, and how each payment was judged. */
function paymentsTable(results: FaultResult[]): string {
  const head = `| freeze-payments | ${PAYMENT_FREEZE_CHECKS.join(' | ')} | webhook answers during the freeze | recorded before / after the deadline | applied / refunded | refund reasons after the deadline |`;
  const rule = `|---|${PAYMENT_FREEZE_CHECKS.map(() => ':-:').join('|')}|---|---:|---:|---|`;
  const rows = results.flatMap((r) => {
    if (!r.payments) return [];
    const f = r.payments.figures as {
      webhookAnswersDuringFreeze: Record<string, number>;
      payments: {
        receivedBeforeDeadline: number;
        receivedAfterDeadline: number;
        applied: number;
        refundRequired: number;
      };
      refundReasons: { afterDeadline: Record<string, number> };
    };
    const list = (counts: Record<string, number>) =>
      Object.entries(counts)
        .map(([key, count]) => `${key}: ${count}`)
        .join(', ');
    const checks = r.payments.checks;
    return [
      `| ${r.fault} | ${PAYMENT_FREEZE_CHECKS.map((c) => (checks[c] ? 'ok' : '**FAIL**')).join(' | ')} | ${list(f.webhookAnswersDuringFreeze)} | ${f.payments.receivedBeforeDeadline} / ${f.payments.receivedAfterDeadline} | ${f.payments.applied} / ${f.payments.refundRequired} | ${list(f.refundReasons.afterDeadline)} |`,
    ];
  });
  return [head, rule, ...rows].join('\n');
}

/**
 * The freezes the sale goes on through: what checkouts and reads were answered during it, the promises, the rows, the
 * payment windows.
 */
function saleTable(results: FaultResult[]): string {
  const head = `| sale through the freeze | ${SALE_FREEZE_CHECKS.join(' | ')} | checkouts during the freeze | reads during the freeze | available (min–max) | promises pending at thaw | every 202 a row after thaw | payment window from thaw (min) | failed or late after the thaw, until every 202 was a row |`;
  const rule = `|---|${SALE_FREEZE_CHECKS.map(() => ':-:').join('|')}|---|---|---:|---:|---:|---:|---|`;
  const rows = results.flatMap((r) => {
    if (!r.sale) return [];
    const f = r.sale.figures as {
      answersDuringFreeze: Record<string, Record<string, number>>;
      availableDuringFreeze: { min: number; max: number } | null;
      promisesPending: { atThaw: number };
      secondsFromThawUntilEvery202IsARow: number | null;
      paymentWindowSeconds: { fromThaw: { min: number } | null };
      answersAfterThaw: Record<string, Record<string, number>>;
      lateAfterThaw: Record<string, Record<string, number>>;
    };
    const list = (counts: Record<string, number> | undefined) =>
      Object.entries(counts ?? {})
        .map(([key, count]) => `${key}: ${count}`)
        .join(', ') || 'none';
    const checkouts: Record<string, number> = {};
    for (const kind of ['checkout', 'checkout-wait'])
      for (const [answer, count] of Object.entries(f.answersDuringFreeze[kind] ?? {}))
        checkouts[answer] = (checkouts[answer] ?? 0) + count;
    const available = f.availableDuringFreeze ? `${f.availableDuringFreeze.min}–${f.availableDuringFreeze.max}` : '?';
    const rowsAfter =
      f.secondsFromThawUntilEvery202IsARow === null ? '**never**' : `${f.secondsFromThawUntilEvery202IsARow} s`;
    const window = f.paymentWindowSeconds.fromThaw ? `${f.paymentWindowSeconds.fromThaw.min} s` : '–';
    const failedAfter = Object.entries(f.answersAfterThaw).flatMap(([kind, answers]) =>
      Object.entries(answers).flatMap(([answer, count]) =>
        /^(5|timeout|error)/.test(answer) ? [`${kind} ${answer}: ${count}`] : [],
      ),
    );
    const lateAfter = Object.entries(f.lateAfterThaw).map(
      ([kind, answers]) => `${kind} late: ${Object.values(answers).reduce((a, b) => a + b, 0)}`,
    );
    const recovery = [...failedAfter, ...lateAfter].join(', ') || 'none';
    return [
      `| ${r.fault} | ${SALE_FREEZE_CHECKS.map((c) => (r.sale?.checks[c] ? 'ok' : '**FAIL**')).join(' | ')} | ${list(checkouts)} | ${list(f.answersDuringFreeze.read)} | ${available} | ${f.promisesPending.atThaw} | ${rowsAfter} | ${window} | ${recovery} |`,
    ];
  });
  return [head, rule, ...rows].join('\n');
}

/** A status read of the round's first order through one API, by its shopper: probes the order workflows' breaker. */
function canaryRead(
  sofar: { intents: ReadonlyArray<{ userId: string; answer: { kind: string; orderNo?: string } }> },
  auth: ShopperAuth,
) {
  return async (apiUrl: string): Promise<void> => {
    const intent = sofar.intents.find((i) => i.answer.kind === 'accepted');
    if (!intent?.answer.orderNo) return;
    const token = await auth.issue(intent.userId);
    await fetch(`${apiUrl}/api/orders/${intent.answer.orderNo}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5_000),
    });
  };
}

const round = (value: number) => Math.round(value * 10) / 10;

/** Processes stopped by a freeze round, continued at cleanup if the suite ends before their thaw. */
const frozen = new Set<Supervised>();

async function cleanup(): Promise<void> {
  for (const target of frozen) target.kill('SIGCONT');
  // A stripe-mock left frozen is continued first: the double's requests to it end, and it can be stopped.
  if (stripeMock) {
    try {
      process.kill(stripeMock.process.pid, 'SIGCONT');
    } catch {
      // Exited already.
    }
  }
  await stripeDouble?.stop();
  await stripeMock?.process.stop();
  for (const a of [...apps].reverse()) await a.stop(5_000);
  await stack?.stop();
  if (!args.keep) rmSync(workDir, { recursive: true, force: true });
}

process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
let code = 1;
try {
  code = await main();
} catch (err) {
  console.error('[chaos] failed:', err);
} finally {
  await cleanup();
}
process.exit(code);
