/**
 * A per-process "sold out" flag per SKU, so that once a sale is gone the flood of late shoppers is
 * answered from memory instead of Redis. It never hides stock given back: release.lua bumps the
 * sale's stock-returned generation and publishes it, and a flag is only trusted while no higher
 * generation has been seen. A short TTL and a full reset whenever the subscription (re)connects
 * cover a notification that could have been missed.
 *
 * The notifications come through the process's one Redis subscription (src/infra/redis-subscription.ts).
 */
import type { ChannelListener } from '../infra/redis-subscription.js';

export class SoldOutCache {
  private readonly flags = new Map<string, { generation: number; until: number }>();
  private readonly returned = new Map<string, number>();
  private listening = false;

  constructor(private readonly ttlMs = 1_000) {}

  isSoldOut(sku: string, now = Date.now()): boolean {
    const flag = this.flags.get(sku);
    if (!flag) return false;
    if (now >= flag.until || flag.generation < (this.returned.get(sku) ?? 0)) {
      this.flags.delete(sku);
      return false;
    }
    return true;
  }

  /** Called with the generation reserve.lua saw when it answered SOLD_OUT. */
  markSoldOut(sku: string, generation: number, now = Date.now()): void {
    // Without a live subscription a return could go unnoticed: then nothing is cached.
    if (!this.listening || generation < (this.returned.get(sku) ?? 0)) return;
    this.flags.set(sku, { generation, until: now + this.ttlMs });
  }

  stockReturned(sku: string, generation: number): void {
    this.returned.set(sku, Math.max(generation, this.returned.get(sku) ?? 0));
    this.flags.delete(sku);
  }

  setListening(listening: boolean): void {
    this.listening = listening;
    this.flags.clear();
  }

  /** What this cache needs from the process's Redis subscription (src/infra/redis-subscription.ts). */
  listener(): ChannelListener {
    return {
      message: (message) => {
        const [sku, generation] = message.split('\n');
        if (sku && generation) this.stockReturned(sku, Number(generation));
      },
      listening: (live) => this.setListening(live),
    };
  }
}
