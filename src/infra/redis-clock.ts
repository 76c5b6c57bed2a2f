/**
 * How far this process's clock is from Redis's. reserve.lua judges a checkout's cutoff (written by
 * this process's clock) by Redis's clock (TIME), so the two must agree within the margin kept back
 * for it (CLOCK_SKEW_MARGIN): measured at start-up and every `intervalMs`, and the API reports
 * itself unready while the difference (with the measurement's own uncertainty) exceeds half of it.
 */
import type { RedisClient } from './redis.js';

/** Round trips per measurement: the one with the shortest round trip is the most exact. */
const SAMPLES = 3;

export interface ClockOffset {
  /** Redis's clock minus this process's, in ms. */
  offsetMs: number;
  /** Half the round trip of the sample it comes from: the offset is exact within this. */
  uncertaintyMs: number;
  measuredAt: number;
}

export class RedisClockWatch {
  private last: ClockOffset | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly marginMs: number,
    private readonly intervalMs = 30_000,
  ) {}

  /** Measures now, then every interval (not keeping the process alive). */
  start(): void {
    void this.measure().catch(() => undefined);
    this.timer = setInterval(() => void this.measure().catch(() => undefined), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async measure(): Promise<ClockOffset> {
    let best: ClockOffset | null = null;
    for (let i = 0; i < SAMPLES; i++) {
      const sentAt = Date.now();
      const [seconds, micros] = await this.redis.time();
      const answeredAt = Date.now();
      const redisMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      const sample = { offsetMs: redisMs - (sentAt + answeredAt) / 2, uncertaintyMs: (answeredAt - sentAt) / 2, measuredAt: answeredAt };
      if (!best || sample.uncertaintyMs < best.uncertaintyMs) best = sample;
    }
    this.last = best;
    return best as ClockOffset;
  }

  /** Why this process should take no checkouts now, or null: clocks apart by more than half the margin. */
  problem(): string | null {
    const last = this.last;
    if (!last) return null; // Not measured yet (Redis down at start): the Redis check says so.
    const apart = Math.abs(last.offsetMs) + last.uncertaintyMs;
    if (apart <= this.marginMs / 2) return null;
    return `clock: this process and Redis differ by ${Math.round(apart)} ms, more than half of CLOCK_SKEW_MARGIN (${this.marginMs} ms)`;
  }
}
