/** GET /api/orders: the shopper's orders with a row, newest first, keyset-paged (a promise's number came in a 202). */
import type { ReportStore } from '../db/reports.js';
import { CURSOR_POSITIONS, decodeCursor, pageOf, type Page } from '../infra/cursor.js';
import type { OrderView } from '../model/order-workflow.js';
import { viewOfRow } from './lookup.js';

export class ShopperOrders {
  constructor(
    private readonly deps: {
      /** The API passes its guarded view (MYSQL_TIMEOUT, the breaker). */
      reports: Pick<ReportStore, 'shopperOrdersPage'>;
      /** The shopper's request budget (429 RATE_LIMITED when spent), counted once the request is known good. */
      spendBudget?: (userId: string) => Promise<void>;
    },
  ) {}

  /** `userId`'s orders only; a cursor that is not one of this list's is 400 INVALID_REQUEST, before the budget. */
  async list(query: { userId: string; sku?: string; cursor?: string; limit: number }): Promise<Page<OrderView>> {
    const before = query.cursor ? decodeCursor(query.cursor, CURSOR_POSITIONS.orders)[0] : undefined;
    await this.deps.spendBudget?.(query.userId);
    const rows = await this.deps.reports.shopperOrdersPage({
      userId: query.userId,
      ...(query.sku === undefined ? {} : { sku: query.sku }),
      ...(before === undefined ? {} : { beforeOrderNo: before }),
      limit: query.limit + 1,
    });
    return pageOf(rows, query.limit, viewOfRow, (last) => [last.orderNo]);
  }
}
