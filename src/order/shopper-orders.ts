/** GET /api/orders: the shopper's orders, newest first, keyset-paged: rows and pending starts with no row (PENDING). */
import type { ReportStore } from '../db/reports.js';
import { CURSOR_POSITIONS, decodeCursor, pageOf, type Page } from '../infra/cursor.js';
import { pendingOrderState, type OrderInput } from '../model/order-workflow.js';
import { viewOfRow, viewOfState, type OrderView } from './lookup.js';

export class ShopperOrders {
  constructor(
    private readonly deps: {
      /** The API passes its guarded view (MYSQL_TIMEOUT, the breaker). */
      reports: Pick<ReportStore, 'shopperOrdersPage'>;
      /** The shopper's orders holding units in Redis (of `sku` only, if given), bounded; a row may exist for some. */
      heldOrders: (userId: string, sku: string | undefined) => Promise<OrderInput[]>;
      /** The shopper's request budget (429 RATE_LIMITED when spent), counted once the request is known good. */
      spendBudget?: (userId: string) => Promise<void>;
    },
  ) {}

  /** `userId`'s orders only; a cursor that is not one of this list's is 400 INVALID_REQUEST, before the budget. */
  async list(query: { userId: string; sku?: string; cursor?: string; limit: number }): Promise<Page<OrderView>> {
    const before = query.cursor ? decodeCursor(query.cursor, CURSOR_POSITIONS.orders)[0] : undefined;
    await this.deps.spendBudget?.(query.userId);
    // Pending starts first: one persisted meanwhile then shows from its row, never missing from both reads.
    const held = await this.deps.heldOrders(query.userId, query.sku);
    const rows = await this.deps.reports.shopperOrdersPage({
      userId: query.userId,
      ...(query.sku === undefined ? {} : { sku: query.sku }),
      ...(before === undefined ? {} : { beforeOrderNo: before }),
      limit: query.limit + 1,
    });
    // Numbers sort by time: a pending start above the page's last row has no row; one below it falls past this page.
    const listed = new Set(rows.map((row) => row.orderNo));
    const orders = [
      ...rows.map((row) => ({ orderNo: row.orderNo, view: () => viewOfRow(row) })),
      ...held
        .filter((input) => !listed.has(input.orderNo) && (before === undefined || input.orderNo < before))
        .map((input) => ({ orderNo: input.orderNo, view: () => viewOfState(pendingOrderState(input)) })),
    ].sort((a, b) => (a.orderNo < b.orderNo ? 1 : a.orderNo > b.orderNo ? -1 : 0));
    return pageOf(
      orders.slice(0, query.limit + 1),
      query.limit,
      (order) => order.view(),
      (last) => [last.orderNo],
    );
  }
}
