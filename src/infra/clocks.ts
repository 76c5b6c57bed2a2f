/**
 * How far this process's clock is from the clocks it is compared with: Redis's (reserve.lua judges
 * a checkout's cutoff, written by the API's clock, by Redis's TIME; the reconciler judges a
 * reservation's age by it) and MySQL's (it stamps payment deadlines and arrivals, which the arrival
 * rule compares). Measured at start-up and every `intervalMs`, shown in /readyz; a process whose
 * writes another clock judges (the API against Redis) is unready while they differ by more than half
 * the margin kept back for it.
 */

/** Round trips per measurement: the one with the shortest round trip is the most exact. */
const SAMPLES = 3;

export interface ClockOffset {
  /** The other clock minus this process's, in ms. */
  offsetMs: number;
  /** Half the round trip of the sample it comes from: the offset is exact within this. */
  uncertaintyMs: number;
  measuredAt: number;
}

/** Asks another clock for its time, in ms since the epoch. */
export type ClockReading = () => Promise<number>;

/** One clock whose distance to this process's gates readiness, and the margin it must stay within. */
export interface ClockGate {
  source: string;
  label: string;
  marginMs: number;
  marginName: string;
}

/** A clock this process cannot ask (Temporal's), seen from one side: it is at least `atLeastMs` from this process's. */
export interface ClockBound {
  /** The other clock minus this process's is at least this, in ms (the largest sample of the window). */
  atLeastMs: number;
  measuredAt: number;
}

/** How long a one-sided sample counts: the largest of the window is the tightest bound. */
const BOUND_WINDOW_MS = 60_000;

export class ClockWatch {
  private readonly last = new Map<string, ClockOffset>();
  private readonly bounds = new Map<string, ClockBound>();
  /** Sources being measured now: a hung server holds one query of this watch, not one per interval. */
  private readonly measuring = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sources: Readonly<Record<string, ClockReading>>,
    private readonly gate?: ClockGate,
    private readonly intervalMs = 30_000,
  ) {}

  /**
   * Measures now, then every interval (not keeping the process alive). Resolves once the first
   * round is in, or after `firstWithinMs` (a clock that does not answer is shown once it does).
   */
  async start(firstWithinMs = 2_000): Promise<void> {
    this.timer = setInterval(() => void this.measureAll(), this.intervalMs);
    this.timer.unref();
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, firstWithinMs)));
    await Promise.race([this.measureAll(), waited]).finally(() => clearTimeout(timer));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Each source's last offset; a source that never answered is absent. */
  offsets(): Record<string, ClockOffset> {
    return Object.fromEntries(this.last);
  }

  /**
   * Records a one-sided sample of a clock this process cannot ask: the other minus this process's
   * is at least `atLeastMs` (Temporal's, from when it scheduled an activity this process then ran).
   */
  observeAtLeast(source: string, atLeastMs: number, now = Date.now()): void {
    const last = this.bounds.get(source);
    if (!last || now - last.measuredAt > BOUND_WINDOW_MS || atLeastMs > last.atLeastMs)
      this.bounds.set(source, { atLeastMs, measuredAt: now });
  }

  /** Each one-sided source's bound; one not sampled yet is absent. */
  lowerBounds(): Record<string, ClockBound> {
    return Object.fromEntries(this.bounds);
  }

  async measureAll(): Promise<void> {
    // A source down now keeps its last offset: its own health check says it is down.
    await Promise.allSettled(
      Object.keys(this.sources)
        .filter((source) => !this.measuring.has(source))
        .map(async (source) => {
          this.measuring.add(source);
          try {
            await this.measure(source);
          } finally {
            this.measuring.delete(source);
          }
        }),
    );
  }

  async measure(source: string): Promise<ClockOffset> {
    const read = this.sources[source];
    if (!read) throw new Error(`no clock named ${source}`);
    let best: ClockOffset | null = null;
    for (let i = 0; i < SAMPLES; i++) {
      const sentAt = Date.now();
      const theirs = await read();
      const answeredAt = Date.now();
      const sample = {
        offsetMs: theirs - (sentAt + answeredAt) / 2,
        uncertaintyMs: (answeredAt - sentAt) / 2,
        measuredAt: answeredAt,
      };
      if (!best || sample.uncertaintyMs < best.uncertaintyMs) best = sample;
    }
    this.last.set(source, best as ClockOffset);
    return best as ClockOffset;
  }

  /** Why this process should take no traffic now, or null: the gating clock apart by more than half the margin. */
  problem(): string | null {
    if (!this.gate) return null;
    const last = this.last.get(this.gate.source);
    if (!last) return null; // Not measured yet (the source down at start): its health check says so.
    const apart = Math.abs(last.offsetMs) + last.uncertaintyMs;
    if (apart <= this.gate.marginMs / 2) return null;
    return `clock: this process and ${this.gate.label} differ by ${Math.round(apart)} ms, more than half of ${this.gate.marginName} (${this.gate.marginMs} ms)`;
  }
}

/** An offset as /readyz shows it: whole milliseconds, and when it was measured. */
export interface ShownClockOffset {
  offsetMs: number;
  uncertaintyMs: number;
  measuredAt: string;
}

/** A one-sided bound as /readyz shows it. */
export interface ShownClockBound {
  atLeastMs: number;
  measuredAt: string;
}

export function shownClocks(
  offsets: Readonly<Record<string, ClockOffset>>,
  bounds: Readonly<Record<string, ClockBound>> = {},
): Record<string, ShownClockOffset | ShownClockBound> {
  return {
    ...Object.fromEntries(
      Object.entries(offsets).map(([source, o]) => [
        source,
        {
          offsetMs: Math.round(o.offsetMs),
          uncertaintyMs: Math.ceil(o.uncertaintyMs),
          measuredAt: new Date(o.measuredAt).toISOString(),
        },
      ]),
    ),
    ...Object.fromEntries(
      Object.entries(bounds).map(([source, b]) => [
        source,
        { atLeastMs: Math.floor(b.atLeastMs), measuredAt: new Date(b.measuredAt).toISOString() },
      ]),
    ),
  };
}
