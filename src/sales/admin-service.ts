/** The operators' views (docs/operations.md, "Admin views"): figures and drift, pages of orders, payments, sales. */
import type { OrderStore } from '../db/orders.js';
import type { PaymentStore } from '../db/payments.js';
import type { RefundStore } from '../db/refunds.js';
import type { ReportStore } from '../db/reports.js';
import type { SaleStore } from '../db/sales.js';
import type { StoredOrderStatus, StoredPaymentOutcome } from '../model/order-workflow.js';
import { soldUnits } from '../model/order-rules.js';
import { checkSaleInvariants, countersOf, driftOf, type SaleInvariantSources } from '../invariants/check.js';
import type { RedisInventory } from '../redis/inventory.js';
import type { RedisSales } from '../redis/sales.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';
import type { SaleView } from './sale-view.js';
import { skuNotFound, type SalesService } from './sales-service.js';
import {
  adminOrderView,
  adminPaymentView,
  adminSaleView,
  failedAttemptView,
  takenBackView,
  type AdminOrderPayments,
  type AdminOrderView,
  type AdminPaymentView,
  type AdminSaleView,
  type SaleStats,
  type StatusFigures,
} from './admin-views.js';
import { CURSOR_POSITIONS, decodeCursor, pageOf, type Page } from '../infra/cursor.js';
import { Refusal } from '../infra/refusal.js';

export class AdminService {
  /** The API passes its guarded views. */
  constructor(
    private readonly deps: {
      stores: {
        sales: Pick<SaleStore, 'getSale' | 'closeSale'>;
        orders: Pick<OrderStore, 'getOrder'>;
        payments: Pick<PaymentStore, 'paymentsOfOrder' | 'paymentFailuresOfOrder'>;
        refunds: Pick<RefundStore, 'takebacksOf'>;
        reports: Pick<
          ReportStore,
          'ordersPage' | 'paymentsPage' | 'salesPage' | 'orderCountsByStatus' | 'paymentCountsOfSale'
        > &
          SaleInvariantSources['stores']['reports'];
      };
      inventory: Pick<RedisInventory, 'getSale'>;
      redisSales: Pick<RedisSales, 'closeSale'>;
      orders: OrderWorkflowClient;
      sales: SalesService;
    },
  ) {}

  async saleStats(sku: string): Promise<SaleStats> {
    const { stores, inventory, orders } = this.deps;
    const [sale, redisSale] = await Promise.all([stores.sales.getSale(sku), inventory.getSale(sku)]);
    if (!sale || !redisSale) throw skuNotFound(sku);
    const [report, counts, runningWorkflows, payments] = await Promise.all([
      checkSaleInvariants({ stores, inventory }, { sku, perUserLimit: sale.perUserLimit }),
      stores.reports.orderCountsByStatus(sku),
      orders.countRunning(sku),
      stores.reports.paymentCountsOfSale(sku),
    ]);
    const { figures } = report;
    // Both stores were found above, so the checker's Redis figures are there.
    const redis = figures.redis ?? countersOf(redisSale);
    const units: StatusFigures = {
      AWAITING_PAYMENT: figures.mysql.awaitingPayment,
      PAID: figures.mysql.paid,
      CANCELLED: figures.mysql.cancelled,
      FAILED: figures.mysql.failed,
      DISPUTED: figures.mysql.disputed,
      REFUNDED: figures.mysql.refunded,
    };
    return {
      sku,
      redis,
      mysql: { stock: figures.stock, available: figures.mysql.available, orders: counts, units },
      runningWorkflows,
      payments,
      drift: driftOf(redis, { ...figures.mysql, sold: soldUnits(units) }),
      invariants: { ok: report.ok, checks: report.checks },
    };
  }

  /** A sale's orders with a MySQL row, newest first (by order number), keyset-paged. */
  async listOrders(query: {
    sku?: string;
    userId?: string;
    status?: StoredOrderStatus;
    cursor?: string;
    limit: number;
  }): Promise<Page<AdminOrderView>> {
    const before = query.cursor ? decodeCursor(query.cursor, CURSOR_POSITIONS.orders)[0] : undefined;
    if (query.sku !== undefined && !(await this.deps.stores.sales.getSale(query.sku))) throw skuNotFound(query.sku);
    const rows = await this.deps.stores.reports.ordersPage({
      ...query,
      ...(before ? { beforeOrderNo: before } : {}),
      limit: query.limit + 1,
    });
    return pageOf(rows, query.limit, adminOrderView, (last) => [last.orderNo]);
  }

  /** Payments with one outcome, oldest first: for REFUND_REQUIRED, the refunds an operator must make. */
  async listPayments(query: {
    outcome: StoredPaymentOutcome;
    cursor?: string;
    limit: number;
  }): Promise<Page<AdminPaymentView>> {
    const after = query.cursor ? decodeCursor(query.cursor, CURSOR_POSITIONS.payments) : undefined;
    const rows = await this.deps.stores.reports.paymentsPage({
      outcome: query.outcome,
      ...(after ? { after: { receivedAt: after[0], eventId: after[1] } } : {}),
      limit: query.limit + 1,
    });
    return pageOf(rows, query.limit, adminPaymentView, (last) => [last.receivedAt.toISOString(), last.eventId]);
  }

  /** One order's payment events and failed attempts: where a shopper's money went. */
  async orderPayments(orderNo: string): Promise<AdminOrderPayments> {
    const { stores } = this.deps;
    const [order, payments, failures, takebacks] = await Promise.all([
      stores.orders.getOrder(orderNo),
      stores.payments.paymentsOfOrder(orderNo),
      stores.payments.paymentFailuresOfOrder(orderNo),
      stores.refunds.takebacksOf(orderNo),
    ]);
    if (!order && payments.length === 0 && failures.length === 0)
      throw new Refusal('ORDER_NOT_FOUND', `no order ${orderNo} and nothing paid for it`);
    return {
      orderNo,
      payments: payments.map((row) => adminPaymentView({ ...row, sku: order?.sku ?? null })),
      failedAttempts: failures.map(failedAttemptView),
      takenBack: takebacks.map(takenBackView),
    };
  }

  /** The sales, newest first. */
  async listSales(query: { cursor?: string; limit: number }): Promise<Page<AdminSaleView>> {
    const before = query.cursor ? decodeCursor(query.cursor, CURSOR_POSITIONS.sales) : undefined;
    const rows = await this.deps.stores.reports.salesPage(
      before ? { createdAt: before[0], sku: before[1] } : undefined,
      query.limit + 1,
    );
    return pageOf(rows, query.limit, adminSaleView, (last) => [last.createdAt.toISOString(), last.sku]);
  }

  /** Redis first (reserve.lua reads the end); MySQL takes the end Redis answered, so a retry writes the same end. */
  async closeSale(sku: string): Promise<SaleView> {
    const { stores, redisSales, sales } = this.deps;
    if (!(await stores.sales.getSale(sku))) throw skuNotFound(sku);
    const endsAt = await redisSales.closeSale(sku);
    if (!endsAt) throw skuNotFound(sku);
    await stores.sales.closeSale(sku, endsAt);
    const view = await sales.get(sku);
    if (!view) throw skuNotFound(sku);
    return view;
  }
}
