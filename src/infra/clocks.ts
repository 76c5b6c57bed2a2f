/**
 * How far this process's clock is from Redis's and MySQL's, which judge the times it writes (reserve.lua's cutoff,
 * payment deadlines); a gated process is unready while its gate's clock is past half the margin.
 */

/** Round trips per measurement; the shortest is the most exact. */
const SAMPLES = 3;

export interface ClockOffset {
  /** The other clock minus this process's, in ms. */
  offsetMs: number;
  /** Half the sample's round trip: the offset is exact within this. */
  uncertaintyMs: number;
  measuredAt: number;
}

/** The clock whose distance gates readiness, and its margin. */
export interface ClockGate {
  source: string;
  label: string;
  marginMs: number;
  marginName: string;
}

/** A clock this process cannot ask (Temporal's): the other minus this one is at least `atLeastMs`. */
export interface ClockBound {
  atLeastMs: number;
  measuredAt: number;
}

/** How long a one-sided sample counts: the largest of the window is the tightest bound. */
const BOUND_WINDOW_MS = 60_000;

export class ClockWatch {
  private readonly last = new Map<string, ClockOffset>();
  private readonly bounds = new Map<string, ClockBound>();
  /** A hung server holds one query of this watch, not one per interval. */
  private readonly measuring = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Each other clock's time, in ms since the epoch. */
    private readonly sources: Readonly<Record<string, () => Promise<number>>>,
    private readonly gate?: ClockGate,
    private readonly intervalMs = 30_000,
  ) {}

  /** Resolves after the first round or `firstWithinMs`, whichever is first; a silent clock shows once it answers. */
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

  /** A source that never answered is absent. */
  offsets(): Record<string, ClockOffset> {
    return Object.fromEntries(this.last);
  }

  /** E.g. Temporal's clock, from when it scheduled an activity this process then ran. */
  observeAtLeast(source: string, atLeastMs: number, now = Date.now()): void {
    const last = this.bounds.get(source);
    if (!last || now - last.measuredAt > BOUND_WINDOW_MS || atLeastMs > last.atLeastMs)
      this.bounds.set(source, { atLeastMs, measuredAt: now });
  }

  /** A source not sampled yet is absent. */
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

  private async measure(source: string): Promise<void> {
    const read = this.sources[source]!;
    let best: ClockOffset | undefined;
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
    this.last.set(source, best!);
  }

  /** Why this process should take no traffic now, or null. */
  problem(): string | null {
    if (!this.gate) return null;
    const last = this.last.get(this.gate.source);
    if (!last) return null; // Not measured yet (the source down at start): its health check says so.
    const apart = Math.abs(last.offsetMs) + last.uncertaintyMs;
    if (apart <= this.gate.marginMs / 2) return null;
    return `clock: this process and ${this.gate.label} differ by ${Math.round(apart)} ms, more than half of ${this.gate.marginName} (${this.gate.marginMs} ms)`;
  }
}

/** As /readyz shows them. */
export type ShownClocks = ReturnType<typeof shownClocks>;

export function shownClocks(
  offsets: Readonly<Record<string, ClockOffset>>,
  bounds: Readonly<Record<string, ClockBound>> = {},
) {
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
