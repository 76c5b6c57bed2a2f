import { LRUCache } from 'lru-cache';
import type { SaleWindow } from '../inventory/redis-inventory.js';

/** Why a checkout for this sale is refused before it reaches Redis's writes; null when it may try. */
export type WindowRefusal = 'NO_SALE' | 'NOT_ACTIVE' | null;

/**
 * Each sale's window as last read, at most once per `ttlMs` per SKU (no sale too: a made-up SKU costs a read a second).
 * Within `skewMarginMs` of a bound it says "try", and reserve.lua decides by Redis's clock.
 */
export class SaleWindows {
  private readonly windows: LRUCache<string, { window: SaleWindow | 'none' }>;

  constructor(
    private readonly read: (sku: string) => Promise<SaleWindow | null>,
    private readonly skewMarginMs: number,
    ttlMs = 1_000,
    maxSales = 10_000,
  ) {
    this.windows = new LRUCache({ max: maxSales, ttl: ttlMs });
  }

  /**
   * The refusal (NO_SALE, NOT_ACTIVE, or null: open, or too close to a bound to tell here) and whether the sale has a
   * waiting line, from one reading of the window; a read that fails throws.
   */
  async check(sku: string, now = Date.now()): Promise<{ refusal: WindowRefusal; line: boolean }> {
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
