/**
 * The operators' views of a sale (docs/operations.md, "Admin views"): Redis, MySQL and Temporal figures with their
 * drift, keyset-paged orders, payments and sales, and closing a sale early.
 */
import type { OrderStore } from '../db/orders.js';
import type { PaymentStore } from '../db/payments.js';
import type { RefundStore } from '../db/refunds.js';
import type { PaymentListRow, ReportStore } from '../db/reports.js';
import type { OrderRow, SaleRow } from '../db/rows.js';
import type { SaleStore } from '../db/sales.js';
import type {
  OrderDispute,
  PaymentProviderName,
  StoredOrderStatus,
  StoredPaymentOutcome,
} from '../model/order-workflow.js';
import { SOLD_STATUSES } from '../model/order-rules.js';
import { disputeView } from '../order/lookup.js';
import {
  checkSaleInvariants,
  type Invariant,
  type RedisCounters,
  type SaleInvariantSources,
} from '../invariants/check.js';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import type { RedisSales } from '../inventory/redis-sales.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';
import type { SaleView } from './sale-view.js';
import { skuNotFound, type SalesService } from './sales-service.js';
import { CURSOR_POSITIONS, decodeCursor, pageOf, type Page } from '../infra/cursor.js';
import { Refusal } from '../infra/refusal.js';

export type StatusFigures = Record<StoredOrderStatus, number>;

export interface SaleStats {
  sku: string;
  redis: RedisCounters;
  mysql: { stock: number; available: number; orders: StatusFigures; units: StatusFigures };
  /** OrderWorkflows of the sale still running (PENDING or AWAITING_PAYMENT), from Temporal visibility. */
  runningWorkflows: number;
  /** The payment events of the sale's orders by outcome: applied, and refunds to make, asked, done or failed. */
  payments: Record<StoredPaymentOutcome, number>;
  /** Redis minus MySQL: 0 once no order is PENDING; while orders persist, Redis is ahead by their units. */
  drift: { available: number; reserved: number; sold: number };
  /** The invariants of docs/fault-tolerance.md for this sale as they stand now (storesAgree only at rest). */
  invariants: { ok: boolean; checks: Record<Invariant, boolean> };
}

export interface AdminOrderView {
  orderNo: string;
  sku: string;
  userId: string;
  quantity: number;
  totalCents: number;
  status: StoredOrderStatus;
  cancelReason: string | null;
  failureReason: string | null;
  paymentDeadline: string;
  createdAt: string;
  paidAt: string | null;
  cancelledAt: string | null;
  /** Refunded at the provider after payment without us asking. */
  refundedCents: number;
  dispute: OrderDispute | null;
}

export interface AdminPaymentView {
  eventId: string;
  orderNo: string;
  sku: string | null;
  amountCents: number;
  outcome: StoredPaymentOutcome;
  refundReason: string | null;
  receivedAt: string;
  provider: PaymentProviderName;
  /** The provider's id of the payment (Stripe: the PaymentIntent). */
  providerRef: string | null;
  /** The provider's refund, once asked, and why the last attempt did not get one. */
  refundId: string | null;
  refundError: string | null;
}

/** One order's payment events and failed payment attempts (GET /api/admin/orders/:orderNo/payments). */
export interface AdminOrderPayments {
  orderNo: string;
  payments: AdminPaymentView[];
  failedAttempts: Array<{
    eventId: string;
    provider: PaymentProviderName;
    providerRef: string | null;
    code: string | null;
    message: string | null;
    receivedAt: string;
  }>;
  /** Refunds made at the provider without us and disputes, oldest first (docs/api.md, "Order states"). */
  takenBack: Array<{
    id: string;
    kind: 'REFUND' | 'DISPUTE';
    amountCents: number;
    status: string;
    providerStatus: string;
    reason: string | null;
    dueBy: string | null;
    createdAt: string;
  }>;
}

export interface AdminSaleView {
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
  /** MySQL's count (the live Redis count is in GET /api/sales/:sku and the stats). */
  available: number;
  perUserLimit: number;
  startsAt: string | null;
  endsAt: string | null;
  createdAt: string;
}

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
          | 'ordersPage'
          | 'shopperOrdersPage'
          | 'paymentsPage'
          | 'salesPage'
          | 'orderCountsByStatus'
          | 'paymentCountsOfSale'
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
    const redis = figures.redis ?? {
      stock: redisSale.stock,
      available: redisSale.available,
      reserved: redisSale.reserved,
      sold: redisSale.sold,
    };
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
      drift: {
        available: redis.available - figures.mysql.available,
        reserved: redis.reserved - units.AWAITING_PAYMENT,
        sold: redis.sold - SOLD_STATUSES.reduce((sold, status) => sold + units[status], 0),
      },
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
    const page = {
      ...(query.status ? { status: query.status } : {}),
      ...(before ? { beforeOrderNo: before } : {}),
      limit: query.limit + 1,
    };
    const rows =
      query.userId !== undefined
        ? await this.deps.stores.reports.shopperOrdersPage({
            userId: query.userId,
            ...(query.sku !== undefined ? { sku: query.sku } : {}),
            ...page,
          })
        : await this.deps.stores.reports.ordersPage({
            ...(query.sku !== undefined ? { sku: query.sku } : {}),
            ...page,
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
    return pageOf(rows, query.limit, paymentView, (last) => [last.receivedAt.toISOString(), last.eventId]);
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
      payments: payments.map((row) => paymentView({ ...row, sku: order?.sku ?? null })),
      failedAttempts: failures.map((failure) => ({
        eventId: failure.eventId,
        provider: failure.provider,
        providerRef: failure.providerRef,
        code: failure.code,
        message: failure.message,
        receivedAt: failure.receivedAt.toISOString(),
      })),
      takenBack: takebacks.map((taken) => ({
        id: taken.id,
        kind: taken.kind,
        amountCents: taken.amountCents,
        status: taken.status,
        providerStatus: taken.providerStatus,
        reason: taken.reason,
        dueBy: taken.dueBy?.toISOString() ?? null,
        createdAt: taken.createdAt.toISOString(),
      })),
    };
  }

  /** The sales, newest first. */
  async listSales(query: { cursor?: string; limit: number }): Promise<Page<AdminSaleView>> {
    const before = query.cursor ? decodeCursor(query.cursor, CURSOR_POSITIONS.sales) : undefined;
    const rows = await this.deps.stores.reports.salesPage(
      before ? { createdAt: before[0], sku: before[1] } : undefined,
      query.limit + 1,
    );
    return pageOf(rows, query.limit, saleView, (last) => [last.createdAt.toISOString(), last.sku]);
  }

  /**
   * Closes a sale now; placed orders run to their end. Redis first, where reserve.lua reads the end; MySQL then takes
   * the end Redis answered, so a retry after a partial close writes the same end (idempotent).
   */
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

/** An order as the admin views (and the order events) show it. */
export function adminOrderView(row: OrderRow): AdminOrderView {
  return {
    orderNo: row.orderNo,
    sku: row.sku,
    userId: row.userId,
    quantity: row.quantity,
    totalCents: row.totalCents,
    status: row.status,
    cancelReason: row.cancelReason,
    failureReason: row.failureReason,
    paymentDeadline: row.paymentDeadline.toISOString(),
    createdAt: row.createdAt.toISOString(),
    paidAt: row.paidAt?.toISOString() ?? null,
    cancelledAt: row.cancelledAt?.toISOString() ?? null,
    refundedCents: row.refundedCents,
    dispute: row.dispute ? disputeView(row.dispute) : null,
  };
}

function paymentView(row: PaymentListRow): AdminPaymentView {
  return {
    eventId: row.eventId,
    orderNo: row.orderNo,
    sku: row.sku,
    amountCents: row.amountCents,
    outcome: row.outcome,
    refundReason: row.refundReason,
    receivedAt: row.receivedAt.toISOString(),
    provider: row.provider,
    providerRef: row.providerRef,
    refundId: row.refundId,
    refundError: row.refundError,
  };
}

function saleView(row: SaleRow): AdminSaleView {
  return {
    sku: row.sku,
    name: row.name,
    priceCents: row.priceCents,
    stock: row.stock,
    available: row.available,
    perUserLimit: row.perUserLimit,
    startsAt: row.startsAt?.toISOString() ?? null,
    endsAt: row.endsAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}
