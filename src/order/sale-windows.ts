import { LRUCache } from 'lru-cache';
import type { SaleWindow } from '../redis/inventory.js';

/** Sales' windows, read ≤ 1/s per SKU (made-up ones too); near a bound "try": reserve.lua decides. */
export class SaleWindows {
  private readonly windows = new LRUCache<string, { window: SaleWindow | 'none' }>({ max: 10_000, ttl: 1_000 });

  constructor(
    private readonly read: (sku: string) => Promise<SaleWindow | null>,
    private readonly skewMarginMs: number,
  ) {}

  /** The refusal before Redis's writes (null: open, or too close to a bound to tell here); whether it has a line. */
  async check(sku: string, now = Date.now()): Promise<{ refusal: 'NO_SALE' | 'NOT_ACTIVE' | null; line: boolean }> {
    let known = this.windows.get(sku);
    if (!known) {
      known = { window: (await this.read(sku)) ?? 'none' };
      this.windows.set(sku, known);
    }
    if (known.window === 'none') return { refusal: 'NO_SALE', line: false };
    const { startsMs, endsMs, line } = known.window;
    if (startsMs > 0 && now < startsMs - this.skewMarginMs) return { refusal: 'NOT_ACTIVE', line };
    if (endsMs > 0 && now >= endsMs + this.skewMarginMs) return { refusal: 'NOT_ACTIVE', line };
    return { refusal: null, line };
  }

  /** reserve.lua found no sale, or the sale closed: forget what this process believed. */
  forget(sku: string): void {
    this.windows.delete(sku);
  }
}
