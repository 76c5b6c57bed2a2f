/**
 * Sales: an admin puts stock on sale in MySQL (the record) and Redis (the counters checkout uses).
 */
import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { RedisInventory } from '../inventory/redis-inventory.js';
import { ApiError } from './errors.js';

export interface NewSale {
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
  perUserLimit: number;
  startsAt?: string;
  endsAt?: string;
}

export interface SaleView {
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
  /** Units a shopper can still reserve now (Redis, the live count). */
  available: number;
  reserved: number;
  sold: number;
  perUserLimit: number;
  startsAt: string | null;
  endsAt: string | null;
  createdAt: string;
}

export class SalesService {
  constructor(
    private readonly pool: Pool,
    private readonly inventory: RedisInventory,
  ) {}

  /**
   * MySQL first inside a transaction, then Redis, then commit: the sale exists in both or in
   * neither, and a second create of the same SKU is refused by whichever sees it first.
   */
  async create(sale: NewSale): Promise<SaleView> {
    const conn = await this.pool.getConnection();
    try {
      await conn.beginTransaction();
      try {
        await conn.query(
          `INSERT INTO sales (sku, name, price_cents, stock, available, per_user_limit, starts_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [sale.sku, sale.name, sale.priceCents, sale.stock, sale.stock, sale.perUserLimit, toDate(sale.startsAt), toDate(sale.endsAt)],
        );
      } catch (err) {
        if ((err as { code?: string }).code === 'ER_DUP_ENTRY') throw saleExists(sale.sku);
        throw err;
      }
      const created = await this.inventory.defineSale({ ...sale, startsAt: toDate(sale.startsAt), endsAt: toDate(sale.endsAt) });
      if (!created) throw saleExists(sale.sku);
      await conn.commit();
    } catch (err) {
      await conn.rollback().catch(() => {});
      throw err;
    } finally {
      conn.release();
    }
    const view = await this.get(sale.sku);
    if (!view) throw new Error(`sale ${sale.sku} vanished right after it was created`);
    return view;
  }

  async get(sku: string): Promise<SaleView | null> {
    const [[rows], stock] = await Promise.all([
      this.pool.query<RowDataPacket[]>('SELECT sku, name, price_cents, stock, per_user_limit, starts_at, ends_at, created_at FROM sales WHERE sku = ?', [sku]),
      this.inventory.getSale(sku),
    ]);
    const row = rows[0];
    if (!row || !stock) return null;
    return {
      sku: String(row.sku),
      name: String(row.name),
      priceCents: Number(row.price_cents),
      stock: Number(row.stock),
      available: stock.available,
      reserved: stock.reserved,
      sold: stock.sold,
      perUserLimit: Number(row.per_user_limit),
      startsAt: row.starts_at ? (row.starts_at as Date).toISOString() : null,
      endsAt: row.ends_at ? (row.ends_at as Date).toISOString() : null,
      createdAt: (row.created_at as Date).toISOString(),
    };
  }
}

const saleExists = (sku: string) => new ApiError(409, 'SALE_EXISTS', `a sale for ${sku} already exists`);
const toDate = (iso: string | undefined) => (iso ? new Date(iso) : null);
