/**
 * The owner of a recorded payment until it is judged: delivers the stored event to its order and
 * writes the verdict on its row. Every path (the webhook's first try, this process's retries, the
 * sweep of payments other processes left, the reconciler's backstop) delivers the same payload,
 * read from the row, so the order judges the payment by the arrival time MySQL stamped on it
 * (docs/fault-tolerance.md, "A payment's path"). Deliveries are idempotent: the order's workflow
 * dedupes by event id, the row is settled only while still RECEIVED.
 */
import type { AppConfig } from '../config/index.js';
import type { PaymentRow, Store } from '../db/store.js';
import { boundBy, Deadline, type DependencyGuard } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import type { OrderClient } from '../orders/order-client.js';
import { orderNoTime } from '../orders/order-number.js';
import type { PaymentReceived, PaymentVerdict } from '../workflows/definitions.js';

/** How the owner loop paces itself; the defaults suit an API process. */
export interface DeliveryPacing {
  /** Deliveries under way at once (each holds one Update call). */
  concurrency: number;
  /** The bound of one delivery: the Update, or the reads of a closed order. */
  attemptMs: number;
  /** First retry after this, doubling up to maxBackoffMs. */
  firstBackoffMs: number;
  maxBackoffMs: number;
  /** How often payments still RECEIVED are read from MySQL, and how old they must be to be taken. */
  sweepEveryMs: number;
  sweepOlderThanMs: number;
}

export const DEFAULT_DELIVERY_PACING: DeliveryPacing = {
  concurrency: 16,
  attemptMs: 5_000,
  firstBackoffMs: 1_000,
  maxBackoffMs: 10_000,
  sweepEveryMs: 2_000,
  sweepOlderThanMs: 5_000,
};

export interface PaymentDeliveryDeps {
  /** The store as it is: every call here is bounded by `mysql` (the API's guard) or by `attemptMs`. */
  store: Store;
  orders: OrderClient;
  /** The API's MySQL guard: calls go through it whatever its breaker says, bounded by its timeout. */
  mysql?: DependencyGuard;
  /**
   * How old an order number must be before "no workflow and no row" means no such order: past it,
   * a checkout's start and the reconciler's FAILED row for an orphaned reservation are long done.
   */
  unknownOrderAfterMs: number;
  /** Told of every order a payment was delivered to, so this process's status reads see it at once. */
  changed?: (orderNo: string) => void;
  logger?: Pick<Logger, 'warn' | 'debug'>;
  pacing?: Partial<DeliveryPacing>;
}

interface Pending {
  row: PaymentRow;
  attempts: number;
  nextAt: number;
}

/** The payload every delivery sends: the stored event, with the time MySQL recorded it. */
export function storedPayment(row: PaymentRow): PaymentReceived {
  return { eventId: row.eventId, amountCents: row.amountCents, receivedAt: row.receivedAt.toISOString() };
}

export class PaymentDelivery {
  private readonly pacing: DeliveryPacing;
  private readonly pending = new Map<string, Pending>();
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private lastSweepAt = 0;
  private sweeping = false;
  private stopped = false;

  constructor(private readonly deps: PaymentDeliveryDeps) {
    this.pacing = { ...DEFAULT_DELIVERY_PACING, ...deps.pacing };
  }

  /**
   * The delivery of a process with this configuration: an order number with no workflow and no
   * row is judged ORDER_NOT_FOUND once it is older than RESERVATION_GRACE + RECONCILE_INTERVAL +
   * a minute, by when the reconciler has written a FAILED row for any reservation it was given.
   */
  static fromConfig(
    config: Pick<AppConfig, 'reservationGraceMs' | 'reconcileIntervalMs'>,
    deps: Omit<PaymentDeliveryDeps, 'unknownOrderAfterMs'>,
  ): PaymentDelivery {
    return new PaymentDelivery({ ...deps, unknownOrderAfterMs: config.reservationGraceMs + config.reconcileIntervalMs + 60_000 });
  }

  /** Payments this process is still trying to deliver. */
  get backlog(): number {
    return this.pending.size;
  }

  /**
   * Delivers one recorded payment by `deadline` and writes the verdict on its row. Null when it
   * could not be judged in time (the order did not answer, or is not known yet): the row stays
   * RECEIVED for the next try. Never throws.
   */
  async deliver(row: PaymentRow, deadline: Deadline): Promise<PaymentVerdict | null> {
    let verdict: PaymentVerdict | null;
    try {
      verdict = await this.deps.orders.pay(row.orderNo, storedPayment(row), deadline);
    } catch (err) {
      // One line per attempt would flood the log during an outage; the backlog gauge shows it.
      this.deps.logger?.debug({ eventId: row.eventId, orderNo: row.orderNo, err: describe(err) }, 'payment not delivered yet; retrying');
      return null;
    } finally {
      this.deps.changed?.(row.orderNo);
    }
    if (!verdict) {
      // No workflow and no row: a promised order not started yet (its starter starts it, then this
      // delivers), an order whose start is still on its way, or none at all.
      const madeAt = orderNoTime(row.orderNo);
      if (madeAt !== null && Date.now() - madeAt < this.deps.unknownOrderAfterMs) return null;
      const promised = await this.deps.orders.findPromise(row.orderNo, deadline).catch(() => undefined);
      if (promised !== null) return null;
      verdict = { outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_NOT_FOUND' };
    }
    const settled = verdict;
    try {
      await this.onMysql(deadline, () => this.deps.store.settleReceivedPayment(row.eventId, settled));
    } catch (err) {
      // The verdict stands (the workflow keeps it); the row is settled by the next delivery.
      this.deps.logger?.warn({ eventId: row.eventId, err: describe(err) }, 'payment judged but its row not settled yet');
    }
    return verdict;
  }

  /**
   * Delivers each payment, at most `concurrency` at once, each within `attemptMs`, so that one
   * order that does not answer holds up no other; starts no delivery once `budgetMs` has passed
   * (what is left stays RECEIVED for the next run). The reconciler's backstop.
   */
  async deliverAll(rows: readonly PaymentRow[], budgetMs = Number.POSITIVE_INFINITY): Promise<{ settled: number }> {
    let settled = 0;
    const queue = [...rows];
    const stopAt = Date.now() + budgetMs;
    const lanes = Array.from({ length: Math.min(this.pacing.concurrency, queue.length) }, async () => {
      for (let row = queue.shift(); row && Date.now() < stopAt; row = queue.shift()) {
        if ((await this.deliver(row, Deadline.in(this.pacing.attemptMs))) !== null) settled++;
      }
    });
    await Promise.all(lanes);
    return { settled };
  }

  /** Keeps delivering `row` from this process until it is judged (start() runs the retries). */
  retryLater(row: PaymentRow): void {
    if (this.stopped || this.pending.has(row.eventId)) return;
    this.pending.set(row.eventId, { row, attempts: 1, nextAt: Date.now() + this.backoff(1) });
  }

  /**
   * Runs the owner loop: due retries (up to `concurrency` at once) and, every `sweepEveryMs`, the
   * payments still RECEIVED that no process judged (one whose API died after recording it).
   */
  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => this.tick(), 250);
    this.timer.unref();
  }

  /** Stops the loop and waits for deliveries under way (each bounded by attemptMs). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    while (this.inFlight.size > 0 || this.sweeping) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  private tick(): void {
    const now = Date.now();
    if (!this.sweeping && now - this.lastSweepAt >= this.pacing.sweepEveryMs) {
      this.lastSweepAt = now;
      void this.sweep();
    }
    for (const [eventId, entry] of this.pending) {
      if (this.inFlight.size >= this.pacing.concurrency) break;
      if (entry.nextAt > now || this.inFlight.has(eventId)) continue;
      this.inFlight.add(eventId);
      void this.deliver(entry.row, Deadline.in(this.pacing.attemptMs)).then((verdict) => {
        this.inFlight.delete(eventId);
        if (verdict) {
          this.pending.delete(eventId);
          return;
        }
        entry.attempts++;
        entry.nextAt = Date.now() + this.backoff(entry.attempts);
      });
    }
  }

  private async sweep(): Promise<void> {
    this.sweeping = true;
    try {
      const before = new Date(Date.now() - this.pacing.sweepOlderThanMs);
      const rows = await this.onMysql(Deadline.in(this.pacing.attemptMs), () => this.deps.store.receivedPaymentsBefore(before, 500));
      const now = Date.now();
      for (const row of rows) if (!this.pending.has(row.eventId)) this.pending.set(row.eventId, { row, attempts: 0, nextAt: now });
    } catch {
      // MySQL is away: the next sweep reads them; the payments are safe in their rows.
    } finally {
      this.sweeping = false;
    }
  }

  /** 1 s, 2 s, 4 s … up to maxBackoffMs, with ±20 % jitter so retries of one outage spread out. */
  private backoff(attempts: number): number {
    const base = Math.min(this.pacing.maxBackoffMs, this.pacing.firstBackoffMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  private onMysql<T>(deadline: Deadline, call: () => Promise<T>): Promise<T> {
    if (this.deps.mysql) return this.deps.mysql.call(deadline, call, { evenWhenOpen: true });
    return boundBy(deadline, call);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 200) : String(err).slice(0, 200);
}
