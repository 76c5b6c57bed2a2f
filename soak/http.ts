/**
 * What the soak makes of its answers (its HTTP is toolkit/http-client.ts): each answer's status and latency recorded by
 * request class in a bounded histogram, so that hours of load cost the load generator no more memory than minutes.
 */
import type { AnswerRecorder } from '../toolkit/http-client.js';
import type { RequestClassFigures } from './analysis.js';

/** Log-spaced buckets 2 % apart: percentiles within 2 %, a few hundred counters per class however long the run. */
const BUCKET_GROWTH = 1.02;
const LOG_GROWTH = Math.log(BUCKET_GROWTH);

export class LatencyHistogram {
  private readonly buckets = new Map<number, number>();
  count = 0;
  max = 0;

  record(ms: number): void {
    const bucket = Math.floor(Math.log1p(Math.max(0, ms)) / LOG_GROWTH);
    this.buckets.set(bucket, (this.buckets.get(bucket) ?? 0) + 1);
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  /** The upper bound of the bucket holding the p-th percentile (ms); null when empty. */
  percentile(p: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (const bucket of [...this.buckets.keys()].sort((a, b) => a - b)) {
      seen += this.buckets.get(bucket) ?? 0;
      if (seen >= rank) return Math.min(this.max, Math.expm1((bucket + 1) * LOG_GROWTH));
    }
    return this.max;
  }
}

export class RequestClass implements AnswerRecorder {
  readonly latency = new LatencyHistogram();
  readonly byStatus: Record<string, number> = {};
  errors = 0;
  late = 0;
  overDeadline = 0;

  constructor(
    readonly name: string,
    /** null: not the API's (no documented deadline). */
    readonly deadlineMs: number | null,
    private readonly slackMs: number,
  ) {}

  record(status: number | null, ms: number): void {
    this.latency.record(ms);
    const key = status === null ? 'error' : String(status);
    this.byStatus[key] = (this.byStatus[key] ?? 0) + 1;
    if (status === null) this.errors++;
    if (this.deadlineMs !== null) {
      if (ms > this.deadlineMs) this.overDeadline++;
      if (ms > this.deadlineMs + this.slackMs) this.late++;
    }
  }

  figures(): RequestClassFigures {
    const round = (n: number | null) => (n === null ? null : Math.round(n * 10) / 10);
    return {
      name: this.name,
      deadlineMs: this.deadlineMs,
      count: this.latency.count,
      byStatus: { ...this.byStatus },
      fiveXx: Object.entries(this.byStatus)
        .filter(([status]) => status.startsWith('5'))
        .reduce((sum, [, n]) => sum + n, 0),
      errors: this.errors,
      late: this.late,
      overDeadline: this.overDeadline,
      p50Ms: round(this.latency.percentile(50)),
      p99Ms: round(this.latency.percentile(99)),
      maxMs: round(this.latency.count > 0 ? this.latency.max : null),
    };
  }
}
