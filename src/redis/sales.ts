/** A sale's definition in Redis: putting a SKU on sale and closing it (define_sale.lua, close_sale.lua). */
import type { RedisClient } from '../infra/redis.js';
import { toEpochMs, type SaleDefinition } from './inventory.js';
import { luaScripts, pipelineKeys, saleKeys } from './layout.js';
import { RedisLine, type LineDefinition } from './line.js';

export class RedisSales {
  private readonly scripts;
  private readonly activeSales: string;
  private readonly lines: RedisLine;

  /** `taskQueue`: the pipeline whose starters and lookups must find the sales defined here. */
  constructor(
    private readonly redis: RedisClient,
    taskQueue: string,
  ) {
    this.activeSales = pipelineKeys(taskQueue).activeSales;
    this.scripts = luaScripts(redis, { salesDefineSale: 'define_sale.lua', salesCloseSale: 'close_sale.lua' });
    this.lines = new RedisLine(redis);
  }

  /** Puts a SKU on sale: true when created or already defined exactly so; false (nothing changed): another exists. */
  async defineSale(sale: SaleDefinition & { line?: LineDefinition }): Promise<boolean> {
    // Registered first (never moving the mark back): no sale exists that starters and lookups cannot find.
    await this.redis.zadd(this.activeSales, 'GT', Date.now(), sale.sku);
    const created = await this.scripts.salesDefineSale(
      [saleKeys(sale.sku).sale],
      sale.stock,
      sale.perUserLimit,
      sale.priceCents,
      toEpochMs(sale.startsAt),
      toEpochMs(sale.endsAt),
      sale.line ? '1' : '0',
    );
    // 2: this very definition is there already (a create retried after its MySQL commit was lost).
    if (created !== 1 && created !== 2) return false;
    // The line after the sale, before the MySQL commit: a sale whose line failed is not created.
    return sale.line ? this.lines.define(sale.sku, sale.line) : true;
  }

  /** Ends the sale at `nowMs` unless it has ended already (checkouts then answer NOT_ACTIVE); null: no such sale. */
  async closeSale(sku: string, nowMs = Date.now()): Promise<Date | null> {
    const ends = Number(await this.scripts.salesCloseSale([saleKeys(sku).sale], Math.floor(nowMs)));
    return ends > 0 ? new Date(ends) : null;
  }
}
