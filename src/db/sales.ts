/** The sales table: a sale's definition and its MySQL stock, written once with Redis's (createSale). */
import type { RowDataPacket } from 'mysql2/promise';
import { inTransaction, isDuplicateKey, toSaleRow, type SaleRecord, type SaleRow, Store } from './rows.js';

export class SaleStore extends Store {
  /** Inserts the sale and runs `alsoElsewhere` (Redis's) in its transaction: both or neither. False: the SKU exists. */
  async createSale(sale: SaleRecord, alsoElsewhere: () => Promise<boolean>): Promise<boolean> {
    try {
      return await inTransaction(this.pool, async (conn) => {
        await conn.query(
          `INSERT INTO sales (sku, name, price_cents, stock, available, per_user_limit, starts_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [sale.sku, sale.name, sale.priceCents, sale.stock, sale.stock, sale.perUserLimit, sale.startsAt, sale.endsAt],
        );
        if (!(await alsoElsewhere())) throw new SaleExistsElsewhere();
        return true;
      });
    } catch (err) {
      if (isDuplicateKey(err) || err instanceof SaleExistsElsewhere) return false;
      throw err;
    }
  }

  async getSale(sku: string): Promise<SaleRow | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(`SELECT ${toSaleRow.columns} FROM sales WHERE sku = ?`, [
      sku,
    ]);
    const row = rows[0];
    return row ? toSaleRow(row) : null;
  }

  /** Ends the sale at `endsAt` unless it ends earlier (a retry never moves it); the end after; undefined: no sale. */
  async closeSale(sku: string, endsAt: Date): Promise<Date | null | undefined> {
    await this.pool.query('UPDATE sales SET ends_at = ? WHERE sku = ? AND (ends_at IS NULL OR ends_at > ?)', [
      endsAt,
      sku,
      endsAt,
    ]);
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT ends_at FROM sales WHERE sku = ?', [sku]);
    return rows[0] ? ((rows[0].ends_at as Date | null) ?? null) : undefined;
  }

  /** Test and operator helper: removes a sale row (orders keep their SKU). */
  async deleteSale(sku: string): Promise<void> {
    await this.pool.query('DELETE FROM sales WHERE sku = ?', [sku]);
  }

  /** Which of these SKUs have a sale row. */
  async existingSaleSkus(skus: readonly string[]): Promise<Set<string>> {
    if (skus.length === 0) return new Set();
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT sku FROM sales WHERE sku IN (?)', [skus]);
    return new Set(rows.map((row) => String(row.sku)));
  }

  /** One page of sale SKUs after `afterSku`, in SKU order. */
  async saleSkusPage(afterSku: string, limit: number): Promise<string[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT sku FROM sales WHERE sku > ? ORDER BY sku LIMIT ?', [
      afterSku,
      limit,
    ]);
    return rows.map((row) => String(row.sku));
  }
}

class SaleExistsElsewhere extends Error {}
