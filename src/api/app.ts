/** The API's wiring: builds the use cases (in their domain folders) from their clients and mounts the routers. */
import type { Client } from '@temporalio/client';
import type Koa from 'koa';
import { CheckoutService } from '../order/checkout.js';
import { SaleWindows } from '../order/sale-windows.js';
import { SoldOutCache } from '../order/sold-out-cache.js';
import type { AppConfig } from '../config/index.js';
import type { Stores } from '../db/stores.js';
import {
  boundBy,
  Deadline,
  DeadlineExceededError,
  DependencyGuard,
  DependencyUnavailableError,
  guarded,
  type DependencyGuards,
  type DependencyName,
  type DependencyObserver,
} from '../infra/dependency-guard.js';
import { isMysqlFailure } from '../db/rows.js';
import { isRedisFailure, type RedisClient } from '../infra/redis.js';
import { WorkerDeployments } from '../infra/worker-deployments.js';
import type { Logger } from '../infra/logger.js';
import { RedisInventory } from '../redis/inventory.js';
import { PROMISE_MAX_AGE_MS } from '../model/reconcile-workflow.js';
import { RedisSales } from '../redis/sales.js';
import { WorkerFiguresBoard } from '../redis/worker-figures.js';
import { ReplicaAcks } from '../redis/replica-acks.js';
import { CancelOrder } from '../order/cancel.js';
import { OrderCloser } from '../order/close.js';
import { isTemporalFailure, OrderWorkflowClient } from '../order/workflow-client.js';
import { hasGrpcStatus } from '../infra/temporal-connection.js';
import { OrderLookup } from '../order/lookup.js';
import { ShopperOrders } from '../order/shopper-orders.js';
import { StartPacing } from '../order/start-pacing.js';
import { OrderChangeNotifier, OrderStatusReader } from '../order/status-reads.js';
import { PaymentReceiver, PaymentSignals } from '../payments/receiver.js';
import { refundingProviders, type ProviderRegistry } from '../payments/providers/definition.js';
import { RefundStarter } from '../payments/refund-starter.js';
import { paymentProviders } from '../payments/providers/registry.js';
import { orderRoutes } from './routes/orders.js';
import { providerWebhookRoutes } from './routes/payments.js';
import { AdminService } from '../sales/admin-service.js';
import { SalesService } from '../sales/sales-service.js';
import { CredentialFailures, OperatorTokens, ShopperAuth } from './auth.js';
import { createKoaApp } from './http.js';
import { loadShedding } from './load-shedding.js';
import { ApiMetrics } from './metrics.js';
import { withApiDocs } from './openapi.js';
import { mergeRouters } from './route.js';
import { LineRateLimits, ORDERS_LIST_LIMIT, RateLimits } from './rate-limit.js';
import { AccessLog, requestLogMiddleware, requestSpanMiddleware } from './request-log.js';
import { soldOutDoor } from './sold-out-door.js';
import { activeTracing } from '../infra/tracing.js';
import { Refusal } from '../infra/refusal.js';
import { adminRoutes, type AdminDeployment } from './routes/admin.js';
import { runSmokeOrder } from '../order/smoke-order.js';
import { requiredTaskQueues } from '../model/order-workflow.js';
import { CustomerReferences, OrderEventFeed } from '../order-events/order-events.js';
import { EndpointDeliveryClient } from '../order-events/endpoint-delivery-client.js';
import { EndpointSecretBox } from '../order-events/endpoint-secrets.js';
import { ENDPOINT_STORE_METHODS, WebhookEndpoints } from '../order-events/endpoints.js';
import { webhookEndpointRoutes } from './routes/webhook-endpoints.js';
import { devRoutes } from './routes/dev.js';
import { operationsRoutes, Readiness } from './routes/operations.js';
import { salesRoutes } from './routes/sales.js';
import { LineService } from '../line/line-service.js';
import { RedisLine } from '../redis/line.js';
import { payloadCodecOf } from '../infra/data-converter.js';

/** The clients the API is built over; startApi opens them from configuration. */
export interface ApiClients {
  config: AppConfig;
  redis: RedisClient;
  stores: Stores;
  temporal: Client;
  logger: Logger;
  /** The registry's (src/payments/providers/registry.ts) unless a test passes its own. */
  providers?: ProviderRegistry;
}

/** Parts a caller builds itself: an order client that injects faults, metrics without process metrics, a cache. */
export interface ApiSubstitutes {
  orders?: OrderWorkflowClient;
  lookup?: OrderLookup;
  metrics?: ApiMetrics;
  soldOut?: SoldOutCache;
}

/** Every long-lived part of the API, built once by composeApi; createApp mounts routes over them. */
type ApiParts = ReturnType<typeof composeApi>;

/** The API's composition root: every part built once from the clients. */
export function composeApi(clients: ApiClients, substitutes: ApiSubstitutes = {}) {
  const { config, redis, stores, temporal, logger } = clients;
  const metrics = substitutes.metrics ?? new ApiMetrics();
  const guards = createDependencyGuards(config, metrics, logger);
  const inventory = new RedisInventory(redis, config.temporal.taskQueue);
  const pacing = new StartPacing({ maxLimit: config.maxConcurrentStarts });
  const orders =
    substitutes.orders ?? new OrderWorkflowClient(temporal, config.temporal.taskQueue, guards, pacing, metrics);
  // Redis's pending start first (a burst's PENDING orders), for a share of the read deadline; the row gets the rest.
  const { readMs, redisMs } = config.deadlines;
  const lookup =
    substitutes.lookup ??
    new OrderLookup({
      stores,
      mysql: guards.mysql,
      inventory,
      promiseReadMs: Math.min(Math.floor(readMs / 4), 2 * redisMs),
      secrets: payloadCodecOf(config),
      workflows: orders,
    });
  const statusReader = OrderStatusReader.fromConfig(lookup, config, metrics, new OrderChangeNotifier(redis));
  const changed = (orderNo: string) => statusReader.changed(orderNo);
  // Starts the refunds a commit of this process left owed.
  const refunds = new RefundStarter({
    orders,
    providers: refundingProviders(paymentProviders(config, clients.providers)),
    logger,
  });
  // The payment Signals (and refunds) sent after the webhooks' commits.
  const payments = new PaymentSignals({ orders, refunds, changed, logger });
  // Fed by the stock-returned subscription; a stale flag answers while its probe runs, within the checkout deadline.
  const soldOut = substitutes.soldOut ?? new SoldOutCache(1_000, config.deadlines.checkoutMs);
  const line = new LineService({
    line: guarded(new RedisLine(redis), guards.redis, config.deadlines.redisMs, GUARDED_LINE_METHODS),
    jwtSecret: config.jwtSecret,
    clockSkewMarginMs: config.clockSkewMarginMs,
    observer: metrics,
    logger,
  });
  return {
    ...clients,
    metrics,
    guards,
    orders,
    lookup,
    statusReader,
    payments,
    refunds,
    soldOut,
    line,
    readiness: new Readiness(),
    // What a checkout's 202 waits for with REDIS_WAIT_REPLICAS, on its own connection; else null.
    replicaAcks: ReplicaAcks.fromConfig(config, redis) ?? null,
  };
}

// The only methods the guarded views offer: a use case calling another does not compile until listed (so guarded) here.
const GUARDED_INVENTORY_METHODS = [
  'reserve',
  'markSaleActive',
  'saleWindow',
  'countCancel',
  'getSale',
  'confirm',
  'release',
  'adopt',
  'restoreKey',
  'heldOrderInputs',
] as const;
const GUARDED_SALES_METHODS = ['defineSale', 'closeSale'] as const;
const GUARDED_LINE_METHODS = ['tick', 'join', 'place', 'control', 'seed', 'define'] as const;
const GUARDED_STORE_METHODS = {
  sales: ['createSale', 'getSale', 'closeSale'],
  orders: ['getOrder', 'close'],
  payments: ['paymentsOfOrder', 'paymentFailuresOfOrder'],
  refunds: ['takebacksOf'],
  events: ['feedPage'],
  webhooks: ENDPOINT_STORE_METHODS,
  reports: [
    'salesPage',
    'ordersPage',
    'paymentsPage',
    'orderCountsByStatus',
    'paymentCountsOfSale',
    'saleStockFigures',
    'orderNumbersOfSale',
    'shopperOrdersPage',
  ],
} as const;

export function createApp(parts: ApiParts): Koa {
  const { config, redis, temporal, logger, metrics, guards, orders, lookup, statusReader, payments } = parts;
  // Every Redis and MySQL call of a request is bounded (REDIS_TIMEOUT, MYSQL_TIMEOUT) and behind its breaker.
  const inventory = guarded(
    new RedisInventory(redis, config.temporal.taskQueue),
    guards.redis,
    config.deadlines.redisMs,
    GUARDED_INVENTORY_METHODS,
  );
  const { mysqlMs } = config.deadlines;
  const stores = {
    sales: guarded(parts.stores.sales, guards.mysql, mysqlMs, GUARDED_STORE_METHODS.sales),
    orders: guarded(parts.stores.orders, guards.mysql, mysqlMs, GUARDED_STORE_METHODS.orders),
    payments: guarded(parts.stores.payments, guards.mysql, mysqlMs, GUARDED_STORE_METHODS.payments),
    refunds: guarded(parts.stores.refunds, guards.mysql, mysqlMs, GUARDED_STORE_METHODS.refunds),
    reports: guarded(parts.stores.reports, guards.mysql, mysqlMs, GUARDED_STORE_METHODS.reports),
    events: guarded(parts.stores.events, guards.mysql, mysqlMs, GUARDED_STORE_METHODS.events),
    webhooks: guarded(parts.stores.webhooks, guards.mysql, mysqlMs, GUARDED_STORE_METHODS.webhooks),
  };
  const auth = new ShopperAuth(config);
  const operators = new OperatorTokens(config, new CredentialFailures(config.credentialFailureLimit));
  const redisSales = guarded(
    new RedisSales(redis, config.temporal.taskQueue),
    guards.redis,
    config.deadlines.redisMs,
    GUARDED_SALES_METHODS,
  );
  const sales = new SalesService(stores, inventory, redisSales, config.line);
  const limits = new RateLimits(redis, { ...config.rateLimits, orders: ORDERS_LIST_LIMIT }, logger, guards.redis);
  // A ConfigError at boot for an unknown PAYMENT_PROVIDER or bad provider settings.
  const providers = paymentProviders(config, parts.providers);
  const checkout = new CheckoutService({
    config,
    paymentProvider: providers.selected.definition.api ? providers.selected.definition.name : null,
    inventory,
    redis: guards.redis,
    orders,
    lookup,
    replicas: parts.replicaAcks,
    logger,
    soldOut: parts.soldOut,
    windows: new SaleWindows((sku) => inventory.saleWindow(sku), config.clockSkewMarginMs),
    observer: metrics,
    spendBudget: (userId) => limits.consume('checkout', userId),
    admissions: parts.line,
  });
  const webhook = new PaymentReceiver({ config, stores: parts.stores, guards, signals: payments });
  // Only configured providers get a route, so the OpenAPI document lists exactly what is served; others' paths are 404.
  const mountedProviders = providers.configured.map(({ definition, settings }) => ({
    definition,
    intake: definition.intake(settings, {
      payments: webhook,
      stores: parts.stores,
      mysql: guards.mysql,
      mysqlMs: config.deadlines.mysqlMs,
      changed: (orderNo) => statusReader.changed(orderNo),
      takenBack: (kind) => metrics.moneyTakenBack(kind),
      logger,
    }),
  }));
  const admin = new AdminService({ stores, inventory, redisSales, orders, sales });
  const cancelOrder = new CancelOrder({
    orders,
    // The one close, for an order whose workflow is gone, within the request's bounds.
    closer: new OrderCloser({
      orders: stores.orders,
      inventory,
      changes: new OrderChangeNotifier(redis),
      refunds: parts.refunds,
    }),
    rows: stores.orders,
    statusReader,
    inventory,
    writeDeadlineMs: config.deadlines.writeMs,
  });
  const shopperOrders = new ShopperOrders({
    reports: stores.reports,
    // A pending start lives at most PROMISE_MAX_AGE_MS (then the reconciler fails it): its sale was active since.
    heldOrders: (userId, sku) => inventory.heldOrderInputs(userId, Date.now() - PROMISE_MAX_AGE_MS - 60_000, sku),
    spendBudget: (userId) => limits.consume('orders', userId),
  });
  // Merchants' endpoints for order events; their delivery workflows run on the worker, woken from here.
  const webhookEndpoints = new WebhookEndpoints({
    webhooks: stores.webhooks,
    secrets: new EndpointSecretBox(config.webhookDelivery.secretKeys),
    delivery: new EndpointDeliveryClient(temporal, config),
    settings: config.webhookDelivery,
    logger,
  });
  const accessLog = new AccessLog({ logger, metrics, soldOutSampleEvery: config.accessLogSoldOutSample });
  const tracing = activeTracing() !== undefined;

  const app = createKoaApp(
    [
      mergeRouters([
        // Raw clients: the readiness probe bounds each call itself and runs it through its breaker.
        operationsRoutes({ redis, stores: parts.stores, temporal, guards, readiness: parts.readiness, metrics }),
        salesRoutes({
          sales,
          operators,
          auth,
          line: parts.line,
          limits: new LineRateLimits(config.lineRateLimits),
          challenge: config.line.challenge,
        }),
        devRoutes({ config, auth, limits, statusReader, webhook }),
        orderRoutes({ auth, checkout, metrics, statusReader, orders: shopperOrders, cancelOrder }),
        providerWebhookRoutes({ providers: mountedProviders, limits, metrics }),
        adminRoutes({
          admin,
          operators,
          workers: guarded(
            new WorkerFiguresBoard(redis, config.temporal.taskQueue),
            guards.redis,
            config.deadlines.redisMs,
            ['read'] as const,
          ),
          deployment: deploymentOf(config, temporal, config.deadlines.readMs, { sales, inventory }),
          feed: new OrderEventFeed(stores.events, new CustomerReferences(config.webhookDelivery.customerSecret)),
        }),
        webhookEndpointRoutes({ endpoints: webhookEndpoints, operators }),
      ]),
    ],
    logger,
    {
      proxy: config,
      outermost: [
        loadShedding({ maxInFlight: config.maxInFlightRequests, metrics, logger }),
        requestLogMiddleware(accessLog, metrics),
        ...(tracing ? [requestSpanMiddleware()] : []),
      ],
    },
  );
  // Docs last: the OpenAPI document describes every router mounted before it.
  withApiDocs(app);
  if (!tracing) {
    // app.listen takes its listener from callback(): the front's sold-out check answers its flood before the app.
    const appListener = app.callback.bind(app);
    app.callback = () => soldOutDoor(appListener(), { auth, checkout, accessLog, metrics });
  }
  return app;
}

/** Temporal's calls take the request's own deadline (CHECKOUT_DEADLINE, READ_DEADLINE, WRITE_DEADLINE) instead. */
export function createDependencyGuards(
  config: Pick<AppConfig, 'breaker' | 'deadlines'>,
  observer: DependencyObserver,
  logger: Logger,
): DependencyGuards {
  const common = {
    failureThreshold: config.breaker.failureThreshold,
    noSuccessForMs: config.breaker.noSuccessForMs,
    halfOpenAfterMs: config.breaker.halfOpenAfterMs,
    observer,
    log: ({ dependency, state, cause }: { dependency: string; state: string; cause?: string }) => {
      const fields = { dependency, state, ...(cause ? { cause } : {}) };
      if (state === 'open') logger.warn(fields, `circuit breaker opened: requests that need ${dependency} fail fast`);
      else logger.info(fields, `circuit breaker ${state}`);
    },
  };
  const guard = (name: DependencyName, isFailure: (err: unknown) => boolean, callTimeoutMs?: number) =>
    new DependencyGuard(name, { ...common, isFailure, callTimeoutMs });
  return {
    redis: guard('redis', isRedisFailure, config.deadlines.redisMs),
    mysql: guard('mysql', isMysqlFailure, config.deadlines.mysqlMs),
    temporal: guard('temporal', isTemporalFailure),
    workflows: guard('workflows', isTemporalFailure),
  };
}

/** Outside Temporal's breaker: an operator's slow visibility reads must not refuse shoppers. Null: unversioned. */
function deploymentOf(
  config: AppConfig,
  temporal: Client,
  readMs: number,
  smoke: Pick<Parameters<typeof runSmokeOrder>[0], 'sales' | 'inventory'>,
): AdminDeployment | null {
  const versioning = config.temporal.versioning;
  if (!versioning) return null;
  const deployments = new WorkerDeployments(temporal.connection, config.temporal.namespace, 'api');
  const { deploymentName } = versioning;
  const { taskQueue } = config.temporal;
  return {
    status: async () => {
      const deadline = Deadline.in(readMs);
      try {
        return await boundBy(deadline, () =>
          temporal.connection.withDeadline(deadline.at, () => deployments.status(deploymentName, taskQueue)),
        );
      } catch (err) {
        const reason =
          err instanceof DeadlineExceededError || hasGrpcStatus(err, 'DEADLINE_EXCEEDED') ? 'deadline' : 'failed';
        throw new DependencyUnavailableError('temporal', reason, 1, err);
      }
    },
    // A build nobody polls is refused before a unit is reserved; then bounded by the smoke's own 30 s deadline.
    smokeOrder: async (buildId) => {
      const version = { deploymentName, buildId };
      try {
        // Every Temporal call of it under one gRPC deadline: a hung server ends the wait, not the smoke order's run.
        return await temporal.connection.withDeadline(Date.now() + 35_000, async () => {
          // Not one read: a read of the version's queues can lag what the caller just saw polling (seen on a cluster).
          await deployments.untilPolling(version, requiredTaskQueues(taskQueue), 5_000);
          return runSmokeOrder({ ...smoke, client: temporal, taskQueue, version });
        });
      } catch (err) {
        throw new Refusal('SMOKE_ORDER_FAILED', err instanceof Error ? err.message : String(err));
      }
    },
  };
}
