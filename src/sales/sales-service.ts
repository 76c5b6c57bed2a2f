/** Sales: an admin puts stock on sale in MySQL (the record) and Redis (the counters checkout uses). */
import type { SaleRecord } from '../db/rows.js';
import type { SaleStore } from '../db/sales.js';
import type { RedisClient } from '../infra/redis.js';
import { RedisInventory } from '../redis/inventory.js';
import { RedisSales } from '../redis/sales.js';
import { echo, Refusal } from '../infra/refusal.js';
import { saleSchema, type SaleView } from './sale-view.js';
import { shown } from '../infra/schema-fields.js';
import { LineService, type LineSettings } from '../line/line-service.js';

/** `line`: a waiting line in front of the checkout; each setting left out takes the configured default. */
export type NewSale = Omit<SaleRecord, 'startsAt' | 'endsAt'> & {
  startsAt?: string;
  endsAt?: string;
  line?: Partial<LineSettings>;
};

/** A line's settings where the sale says nothing (LINE_ADMISSIONS_PER_SECOND, LINE_ADMISSION_TTL). */
export type LineDefaults = Pick<LineSettings, 'admissionsPerSecond' | 'admissionTtlSeconds'>;

export class SalesService {
  /** The API passes its guarded views (src/api/app.ts). */
  constructor(
    private readonly stores: { sales: Pick<SaleStore, 'createSale' | 'getSale'> },
    private readonly inventory: Pick<RedisInventory, 'getSale'>,
    private readonly redisSales: Pick<RedisSales, 'defineSale'>,
    private readonly lineDefaults: LineDefaults = { admissionsPerSecond: 40, admissionTtlSeconds: 120 },
  ) {}

  /** Over the clients as they are (tools and tests; the API passes guarded views). */
  static onClients(stores: { sales: SaleStore }, redis: RedisClient, taskQueue: string): SalesService {
    return new SalesService(stores, new RedisInventory(redis, taskQueue), new RedisSales(redis, taskQueue));
  }

  /** MySQL in a transaction, then Redis, then commit: in both or neither; a second create is refused by either. */
  async create(sale: NewSale): Promise<SaleView> {
    const startsAt = toDate(sale.startsAt);
    const { line, ...definition } = sale;
    const record = {
      ...definition,
      startsAt,
      endsAt: toDate(sale.endsAt),
      ...(line ? { line: LineService.definitionFor({ ...this.lineDefaults, ...line }, startsAt) } : {}),
    };
    const created = await this.stores.sales.createSale(record, () => this.redisSales.defineSale(record));
    if (!created) throw new Refusal('SALE_EXISTS', `a sale for ${sale.sku} already exists`);
    const view = await this.get(sale.sku);
    if (!view) throw new Error(`sale ${sale.sku} vanished right after it was created`);
    return view;
  }

  async get(sku: string): Promise<SaleView | null> {
    const [row, stock] = await Promise.all([this.stores.sales.getSale(sku), this.inventory.getSale(sku)]);
    if (!row || !stock) return null;
    // Redis's counts: the live ones.
    return { ...shown(saleSchema, row), available: stock.available, reserved: stock.reserved, sold: stock.sold };
  }
}

const toDate = (iso: string | undefined) => (iso ? new Date(iso) : null);

/** No sale for the SKU (or for a path that cannot name one): the SKU as it was asked for, shortened. */
export const skuNotFound = (sku: string) => new Refusal('SKU_NOT_FOUND', `no sale for sku ${echo(sku)}`);
