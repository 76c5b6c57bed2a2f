/**
 * The API's wiring: builds the services from their clients and mounts the routers in the Koa shell.
 * Routes live in ./routes (one file per resource); handlers validate, call one service, map errors.
 */
import type { Client } from '@temporalio/client';
import type { RedisClient } from '../infra/redis.js';
import type Koa from 'koa';
import type { AppConfig } from '../config/index.js';
import type { Store } from '../db/store.js';
import type { Logger } from '../infra/logger.js';
import { RedisInventory } from '../inventory/redis-inventory.js';
import { OrderClient } from '../orders/order-client.js';
import { ShopperAuth } from './auth.js';
import { CheckoutService } from './checkout.js';
import { createKoaApp } from './http.js';
import { PaymentWebhook } from './payments.js';
import { authRoutes } from './routes/auth.js';
import { devRoutes } from './routes/dev.js';
import { healthRoutes } from './routes/health.js';
import { orderRoutes } from './routes/orders.js';
import { paymentRoutes } from './routes/payments.js';
import { salesRoutes } from './routes/sales.js';
import { SalesService } from './sales.js';
import { SoldOutCache } from './sold-out-cache.js';

export interface ApiDeps {
  config: AppConfig;
  redis: RedisClient;
  store: Store;
  temporal: Client;
  logger: Logger;
  /** Fed by a subscription the caller owns (see startApi); without one it never caches. */
  soldOut?: SoldOutCache;
  /** The order client to use; tests pass one that injects faults around the real one. */
  orders?: OrderClient;
}

export function createApp(deps: ApiDeps): Koa {
  const { config, redis, store, temporal, logger } = deps;
  const inventory = new RedisInventory(redis);
  const auth = new ShopperAuth(config);
  const orders = deps.orders ?? new OrderClient(temporal, store, config.temporal.taskQueue);
  const sales = new SalesService(store, inventory);
  const checkout = new CheckoutService({ config, inventory, orders, logger, soldOut: deps.soldOut ?? new SoldOutCache() });
  const webhook = new PaymentWebhook({ config, store, orders });

  return createKoaApp(
    [
      healthRoutes({ redis, store, temporal }),
      salesRoutes({ sales, adminToken: config.adminToken }),
      authRoutes({ auth, devLogin: config.authDevLogin }),
      orderRoutes({ auth, checkout, orders, inventory }),
      paymentRoutes({ webhook }),
      devRoutes({ auth, orders, webhook, enabled: config.authDevLogin }),
    ],
    logger,
  );
}
