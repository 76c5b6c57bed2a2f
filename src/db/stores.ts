/** Every SQL statement: a store per aggregate, one pool; outcomes are values, only infrastructure failures throw. */
import type { Pool } from 'mysql2/promise';
import { EventStore } from './events.js';
import { OrderStore } from './orders.js';
import { PaymentStore } from './payments.js';
import { RefundStore } from './refunds.js';
import { ReportStore } from './reports.js';
import { SaleStore } from './sales.js';
import { WebhookStore } from './webhooks.js';

export type Stores = ReturnType<typeof openStores>;

/** The stores over `pool`; whoever opened the pool ends it. */
export function openStores(pool: Pool) {
  return {
    orders: new OrderStore(pool),
    payments: new PaymentStore(pool),
    refunds: new RefundStore(pool),
    sales: new SaleStore(pool),
    reports: new ReportStore(pool),
    events: new EventStore(pool),
    webhooks: new WebhookStore(pool),
  };
}
