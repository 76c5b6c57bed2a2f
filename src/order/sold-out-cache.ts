import type { ChannelListener } from '../infra/redis-subscription.js';

/** A per-process sold-out flag per SKU, trusted while no newer stock-returned generation is seen. */
export class SoldOutCache {
  private readonly flags = new Map<string, { generation: number; until: number; probeUntil: number }>();
  private readonly returned = new Map<string, number>();
  private listening = false;

  /** Past `ttlMs`, one checkout (the probe) asks Redis for ≤ `probeMs`; the flag answers the rest meanwhile. */
  constructor(
    private readonly ttlMs = 1_000,
    private readonly probeMs = 2_000,
  ) {}

  /** How many SKUs are flagged (some perhaps expired, until asked about). */
  get flagged(): number {
    return this.flags.size;
  }

  /** Flagged: within its TTL, or past it while a probe asks Redis. */
  isSoldOut(sku: string, now = Date.now()): boolean {
    const flag = this.flags.get(sku);
    if (!flag) return false;
    if (flag.generation < (this.returned.get(sku) ?? 0)) {
      this.flags.delete(sku);
      return false;
    }
    return now < flag.until || now < flag.probeUntil;
  }

  /** True for the one checkout that renews an expired flag (no probe under way): it goes to Redis. */
  claimProbe(sku: string, now = Date.now()): boolean {
    const flag = this.flags.get(sku);
    if (!flag || now < flag.until || now < flag.probeUntil) return false;
    flag.probeUntil = now + this.probeMs;
    return true;
  }

  /** No SOLD_OUT: another answer drops the flag, none lets the next checkout probe (stock returns only via Redis). */
  probeEnded(sku: string, outcome: { saleAnswered: boolean }, now = Date.now()): void {
    const flag = this.flags.get(sku);
    if (!flag || now < flag.until) return;
    if (outcome.saleAnswered) this.flags.delete(sku);
    else flag.probeUntil = 0;
  }

  /** Called with the generation reserve.lua saw when it answered SOLD_OUT. */
  markSoldOut(sku: string, generation: number, now = Date.now()): void {
    // Without a live subscription a return could go unnoticed: then nothing is cached.
    if (!this.listening || generation < (this.returned.get(sku) ?? 0)) return;
    this.flags.set(sku, { generation, until: now + this.ttlMs, probeUntil: 0 });
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
