/**
 * The stores: every SQL statement of the service, one store per transaction boundary (a transaction's SQL stays in
 * one method of one store), all over one pool. Activities, the API, the benchmark and the tests call them, each
 * taking only the stores it uses; nothing else under src/ speaks SQL (the migrator and the database provisioning in
 * this folder aside).
 *
 * Business outcomes (an order that is already there, a sale MySQL lacks stock for) are returned as
 * values; only infrastructure failures (connection refused, lock wait timeout, deadlock) are thrown,
 * so the caller decides what is retryable.
 */
import type { Pool } from 'mysql2/promise';
import { OrderStore } from './orders.js';
import { PaymentStore } from './payments.js';
import { RefundStore } from './refunds.js';
import { ReportStore } from './reports.js';
import { SaleStore } from './sales.js';

export interface Stores {
  orders: OrderStore;
  payments: PaymentStore;
  refunds: RefundStore;
  sales: SaleStore;
  reports: ReportStore;
}

/** The stores over `pool`; whoever opened the pool ends it. */
export function openStores(pool: Pool): Stores {
  return {
    orders: new OrderStore(pool),
    payments: new PaymentStore(pool),
    refunds: new RefundStore(pool),
    sales: new SaleStore(pool),
    reports: new ReportStore(pool),
  };
}
