/**
 * Payment webhook (POST /api/payments/webhook, its route below) → the order's workflow: record
 * first, acknowledge what is recorded, judge it by when it arrived (docs/fault-tolerance.md, "A
 * payment's path").
 *
 *   1. record    the event, once (its id is the primary key), whatever any breaker says, within
 *                MYSQL_TIMEOUT; MySQL stamps its arrival time. Not recorded: 503, the only answer
 *                the provider must retry. Where the order's row decides it (an order awaiting payment
 *                with no other payment in play, paid in full and in time; an order already sold), the
 *                same transaction judges it: APPLIED with the order PAID, or REFUND_REQUIRED, answered
 *                at once; after the commit the order's workflow gets the paymentApplied Signal, which
 *                the answer does not wait for (src/payments/delivery.ts).
 *   2. deliver   otherwise the stored event to its order within half of WRITE_DEADLINE: its verdict
 *                (APPLIED / REFUND_REQUIRED), or, not judged by then, 202 RECEIVED: the
 *                process's owner it was handed to keeps delivering it.
 * The provider retries until it gets a 2xx, so every step is idempotent: an event already judged
 * answers DUPLICATE, one still RECEIVED is delivered again.
 */
import type { AppConfig } from '../config/index.js';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { DeliveryLease, PaymentStore, RecordedPaymentEvent } from '../db/payments.js';
import type { PaymentRow } from '../db/rows.js';
import { Deadline, boundBy, type DependencyGuard, type DependencyGuards } from '../infra/dependency-guard.js';
import { Refusal } from '../infra/refusal.js';
import { inTrace, traceCarrier } from '../infra/tracing.js';
import {
  type RefundReason,
  type WebhookOutcome,
  orderNoTime,
  type PaymentReceived,
  type PaymentVerdict,
} from '../model/order-workflow.js';
import type { Logger } from '../infra/logger.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';
import type { OrderLookup } from '../order/lookup.js';

/** The webhook's answer: what became of the event, and why when it must be refunded. */
export interface WebhookAnswer {
  outcome: WebhookOutcome;
  refundReason?: RefundReason;
}

/** A payment event as a webhook hands it over: the generic one's, or a provider adapter's (with its ids). */
export type PaymentEvent = RecordedPaymentEvent;

/**
 * The record-first path of every payment, whichever provider's webhook brought it: the event is
 * recorded (once, by its id) whatever any breaker says, and judged there where the order's row decides it; else
 * handed to its owner (PaymentDelivery, below), which answers its verdict within half of WRITE_DEADLINE or keeps
 * delivering it.
 */
export class PaymentReceiver {
  constructor(
    private readonly deps: {
      config: Pick<AppConfig, 'webhookSecret' | 'deadlines'>;
      /** The store as it is: the recording goes through `guards.mysql` whatever its breaker says. */
      stores: { payments: Pick<PaymentStore, 'recordAndJudge'> };
      guards: Pick<DependencyGuards, 'mysql' | 'temporal' | 'workflows'>;
      delivery: PaymentDelivery;
    },
  ) {}

  /** Answered within MYSQL_TIMEOUT + WRITE_DEADLINE / 2, whatever hangs. */
  async handle(event: PaymentEvent): Promise<WebhookAnswer> {
    const { stores, guards, delivery, config } = this.deps;
    // Record first, asking nothing else before: once the row exists the payment cannot be lost.
    const { row, judged } = await guards.mysql.call(
      Deadline.in(config.deadlines.mysqlMs),
      () => stores.payments.recordAndJudge(event, 'webhook', delivery.webhookLease),
      { evenWhenOpen: true },
    );
    if (row.orderNo !== event.orderNo)
      throw new Refusal('INVALID_REQUEST', `event ${event.eventId} was already used for another order`);
    if (judged) return delivery.judged(row);
    if (row.outcome !== 'RECEIVED') return { outcome: 'DUPLICATE' };
    // The owner tries at once where the order can answer (with Temporal's or the workers' breaker
    // open it cannot) and keeps delivering after this answer if it has no verdict yet.
    const deliverNow = guards.temporal.closed && guards.workflows.closed;
    return (await delivery.take(row, { waitMs: config.deadlines.writeMs / 2, deliverNow })) ?? { outcome: 'RECEIVED' };
  }
}

// ---- the card's payment signal -------------------------------------------------------------------
// A payment the order's row applied as it was recorded is told to the order's workflow as the paymentApplied Signal,
// then its row is marked told. The webhook sends it once after its commit, without waiting (PaymentDelivery.judged);
// the reconciler (a Temporal schedule) sends it again for rows still marked, so Temporal's retries own it. A repeat
// changes nothing: the workflow knows the payment by its id.

/** The payload every delivery and signal carries: the stored event, with the time MySQL recorded it. */
export function storedPayment(row: PaymentRow): PaymentReceived {
  return { eventId: row.eventId, amountCents: row.amountCents, receivedAt: row.receivedAt.toISOString() };
}

export interface PaymentSignalDeps {
  orders: Pick<OrderWorkflowClient, 'signalPaymentApplied'>;
  payments: Pick<PaymentStore, 'markTold'>;
  /** Runs a MySQL call within the caller's bounds (the API's guard); the call itself by default. */
  onMysql?: <T>(call: () => Promise<T>) => Promise<T>;
}

/**
 * Signals the workflow of the order `row` paid, then marks the row told; a workflow that has closed (or never ran)
 * read the row in its close, so its row is marked too. Throws when Temporal or MySQL did not answer: the row stays
 * marked for the reconciler.
 */
export async function signalAppliedPayment(
  deps: PaymentSignalDeps,
  row: PaymentRow,
  deadline: Deadline,
): Promise<'SIGNALLED' | 'NOT_RUNNING'> {
  const sent = await deps.orders.signalPaymentApplied(row.orderNo, storedPayment(row), deadline);
  const markTold = () => deps.payments.markTold(row.eventId);
  await (deps.onMysql ? deps.onMysql(markTold) : markTold());
  return sent;
}

/** How the owner loop paces itself; the defaults suit an API process. */
export interface DeliveryPacing {
  /** Deliveries under way at once (each holds one Update call). */
  concurrency: number;
  /** The bound of one delivery: the Update, or the reads of a closed order. */
  attemptMs: number;
  /** First retry after this, doubling up to maxBackoffMs. */
  firstBackoffMs: number;
  maxBackoffMs: number;
  /**
   * How long a row is its owner's (MySQL's clock): longer than an attempt and the longest backoff, since the owner
   * renews it before each retry. A dead owner's rows are swept by another once it ends.
   */
  leaseMs: number;
  /** How often rows whose lease is over are looked for, how old they must be, and how many are taken per look. */
  sweepEveryMs: number;
  sweepOlderThanMs: number;
  sweepBatch: number;
  /** The sweep takes no more while this many payments are this process's to deliver. */
  maxBacklog: number;
}

export const DEFAULT_DELIVERY_PACING: DeliveryPacing = {
  concurrency: 16,
  attemptMs: 5_000,
  firstBackoffMs: 1_000,
  maxBackoffMs: 10_000,
  leaseMs: 30_000,
  sweepEveryMs: 2_000,
  sweepOlderThanMs: 5_000,
  sweepBatch: 100,
  maxBacklog: 2_000,
};

/**
 * How far in the future an order number may be dated and still be one of ours: our processes' clocks agree within
 * seconds (NTP), so a payment naming an order made later than this cannot be for an order we made or will make.
 */
export const FUTURE_ORDER_MARGIN_MS = 10 * 60_000;

export interface PaymentDeliveryDeps {
  /** The store as it is: every call here is bounded by `mysql` (the API's guard) or by `attemptMs`. */
  stores: {
    payments: Pick<
      PaymentStore,
      'leaseDueDeliveries' | 'claimDelivery' | 'releaseDeliveries' | 'settleDelivery' | 'markTold'
    >;
  };
  orders: OrderWorkflowClient;
  /** Where a closed order's verdict and a promised order are found. */
  lookup: OrderLookup;
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
  /** This owner's name in the rows it leases (default: host, pid and a random part). */
  ownerId?: string;
}

interface Pending {
  row: PaymentRow;
  /** The lease's name in the row; renewed under it before each retry. */
  lease: string;
  /** Until when (this process's clock, with a margin) the lease is known to be held: no claim needed before then. */
  leasedUntil: number;
  attempts: number;
  nextAt: number;
  /** The webhook's trace (sampled requests only): the deliveries join it, as the one the webhook made would. */
  trace?: Record<string, string> | undefined;
}

/**
 * The one owner of a recorded payment until it is judged (docs/fault-tolerance.md, "A payment's path"): it
 * delivers the stored event to its order and writes the verdict on its row. A row is an owner's under a lease kept
 * in the row (MySQL's clock): the webhook records each payment already leased to its process and hands it over
 * (take); the owner tries at once, then retries with backoff (1 s doubling to 10 s), renewing the lease before each
 * retry, so no other process delivers it meanwhile. The sweep leases rows whose lease is over (a process that died,
 * rows the catch-up recorded), a page at a time, rows never tried first: rows that keep failing are due later and
 * never hide newer ones. Every delivery sends the payload read from the row, so the order judges the payment by the
 * arrival time MySQL stamped on it. Deliveries are idempotent: the workflow dedupes by event id, the row is settled
 * only while RECEIVED.
 */
export class PaymentDelivery {
  private readonly pacing: DeliveryPacing;
  private readonly pending = new Map<string, Pending>();
  private readonly inFlight = new Set<string>();
  /** Payment signals sent by the webhook and not answered yet: stop() waits for them. */
  private readonly signalling = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private lastSweepAt = 0;
  private sweeps = 0;
  private sweeping = false;
  private stopped = false;
  /** This owner's name; each lease is it plus a suffix (`/w` for the webhook's, `/<n>` per sweep). */
  readonly ownerId: string;

  constructor(private readonly deps: PaymentDeliveryDeps) {
    this.pacing = { ...DEFAULT_DELIVERY_PACING, ...deps.pacing };
    this.ownerId = (deps.ownerId ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`).slice(0, 48);
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
    return new PaymentDelivery({
      ...deps,
      unknownOrderAfterMs: config.reservationGraceMs + config.reconcileIntervalMs + 60_000,
    });
  }

  /** The lease a webhook records a payment under: this process delivers it. */
  get webhookLease(): DeliveryLease {
    return { owner: `${this.ownerId}/w`, leaseMs: this.pacing.leaseMs };
  }

  /** Payments this process is still trying to deliver. */
  get backlog(): number {
    return this.pending.size;
  }

  /**
   * Delivers one RECEIVED payment by `deadline` and settles its row with the verdict its order gave. Null when the
   * order did not answer in time, or is not known yet: the row stays as it is for the next try. Never throws.
   */
  async deliver(row: PaymentRow, deadline: Deadline): Promise<PaymentVerdict | null> {
    let verdict: PaymentVerdict | null;
    const madeAt = orderNoTime(row.orderNo);
    if (madeAt !== null && madeAt - Date.now() > FUTURE_ORDER_MARGIN_MS) {
      // Dated later than any clock of ours could be: no order of ours has, or will have, this number.
      verdict = { outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_NOT_FOUND' };
      return this.settle(row, verdict, deadline);
    }
    try {
      // No running workflow: judged from what MySQL recorded of the closed order, if any.
      verdict =
        (await this.deps.orders.pay(row.orderNo, storedPayment(row), deadline)) ??
        (await this.deps.lookup.verdictOfClosedOrder(row.orderNo, row.eventId, deadline));
    } catch (err) {
      // One line per attempt would flood the log during an outage; the backlog gauge shows it.
      this.deps.logger?.debug(
        { eventId: row.eventId, orderNo: row.orderNo, err: describe(err) },
        'payment not delivered yet; retrying',
      );
      return null;
    } finally {
      this.deps.changed?.(row.orderNo);
    }
    if (!verdict) {
      // No workflow and no row: a promised order not started yet (its starter starts it, then this
      // delivers), an order whose start is still on its way, or none at all.
      if (madeAt !== null && Date.now() - madeAt < this.deps.unknownOrderAfterMs) return null;
      const promised = await this.deps.lookup.findPromise(row.orderNo, deadline).catch(() => undefined);
      if (promised !== null) return null;
      verdict = { outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_NOT_FOUND' };
    }
    return this.settle(row, verdict, deadline);
  }

  /** Writes the verdict on a RECEIVED row; the verdict stands even if the write fails. */
  private async settle(row: PaymentRow, verdict: PaymentVerdict, deadline: Deadline): Promise<PaymentVerdict> {
    try {
      await this.onMysql(deadline, () => this.deps.stores.payments.settleDelivery(row.eventId, verdict));
    } catch (err) {
      // The verdict stands (the workflow keeps it); the row is settled by the next delivery.
      this.deps.logger?.warn(
        { eventId: row.eventId, err: describe(err) },
        'payment judged but its row not settled yet',
      );
    }
    return verdict;
  }

  /**
   * Takes a recorded payment over until it is judged: one delivery at once unless `deliverNow` is
   * false (the order cannot answer now), then retries. The verdict if it came within `waitMs`;
   * null when the owner is still delivering, or when another owner holds the row's lease (it delivers it).
   */
  async take(row: PaymentRow, options: { waitMs: number; deliverNow: boolean }): Promise<PaymentVerdict | null> {
    const lease = this.webhookLease.owner;
    if (row.deliveryOwner !== lease) {
      // Recorded earlier (a retried webhook): this process delivers it only once it holds the lease, which the
      // owner loop claims first; another owner's live lease makes the claim fail, and that owner delivers it.
      this.retryLater(row, lease, 0);
      return null;
    }
    const verdict = options.deliverNow ? await this.deliver(row, Deadline.in(options.waitMs)) : null;
    if (!verdict) this.retryLater(row, lease, this.backoff(1));
    return verdict;
  }

  /**
   * A payment the webhook's recording judged (PaymentStore.recordAndJudge): its order's readers are told now, and the
   * workflow of an order it paid gets the paymentApplied Signal, sent without waiting (the reconciler sends it again
   * if this one fails). Answers the verdict the webhook gives.
   */
  judged(row: PaymentRow): WebhookAnswer {
    this.deps.changed?.(row.orderNo);
    if (row.tellWorkflow && !this.stopped) {
      const deadline = Deadline.in(this.pacing.attemptMs);
      const { orders, stores } = this.deps;
      const onMysql = <T>(call: () => Promise<T>) => this.onMysql(deadline, call);
      const signalling = signalAppliedPayment({ orders, payments: stores.payments, onMysql }, row, deadline);
      this.signalling.add(signalling);
      signalling
        .catch((err: unknown) =>
          this.deps.logger?.debug(
            { eventId: row.eventId, orderNo: row.orderNo, err: describe(err) },
            'payment signal not sent; the reconciler sends it',
          ),
        )
        .finally(() => this.signalling.delete(signalling));
    }
    if (row.outcome === 'APPLIED') return { outcome: 'APPLIED' };
    return {
      outcome: 'REFUND_REQUIRED',
      refundReason: (row.refundReason ?? 'ORDER_NOT_AWAITING_PAYMENT') as RefundReason,
    };
  }

  /** Keeps delivering `row` until it is settled, first in `delayMs` (the loop's retries each claim the lease). */
  private retryLater(row: PaymentRow, lease: string, delayMs: number): void {
    if (this.stopped || this.pending.has(row.eventId)) return;
    this.pending.set(row.eventId, {
      row,
      lease,
      leasedUntil: 0,
      attempts: 1,
      nextAt: Date.now() + delayMs,
      trace: traceCarrier(),
    });
  }

  /**
   * Until when a lease taken at `takenAt` (this process's clock, before the call that took it) is surely held: MySQL
   * stamped it later than that, so a tenth of its length is left as a margin for the two clocks' difference.
   */
  private freshLeaseUntil(takenAt = Date.now()): number {
    return takenAt + this.pacing.leaseMs * 0.9;
  }

  /**
   * Runs the owner loop: due retries (up to `concurrency` at once) and, every `sweepEveryMs`, the
   * payments still RECEIVED whose lease is over (one whose API died after recording it).
   */
  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => this.tick(), 250);
    this.timer.unref();
  }

  /**
   * Stops the loop, waits for deliveries under way (each bounded by attemptMs) and their calls to Temporal, and gives
   * this owner's rows back (due at once for another process's sweep).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    while (this.inFlight.size > 0 || this.sweeping) await new Promise((resolve) => setTimeout(resolve, 50));
    await Promise.allSettled([...this.signalling]);
    // An Update given up on at its deadline runs on in the client until its gRPC deadline, a moment later.
    await this.deps.orders.untilCallsEnd(this.pacing.attemptMs);
    if (this.pending.size > 0)
      await this.onMysql(Deadline.in(this.pacing.attemptMs), () =>
        this.deps.stores.payments.releaseDeliveries(this.ownerId),
      ).catch(() => undefined);
    this.pending.clear();
  }

  private tick(): void {
    const now = Date.now();
    if (!this.sweeping && now - this.lastSweepAt >= this.pacing.sweepEveryMs) {
      this.lastSweepAt = now;
      void this.sweep();
    }
    for (const [eventId, entry] of this.pending) {
      if (this.inFlight.size >= this.pacing.concurrency) return;
      if (entry.nextAt > now || this.inFlight.has(eventId)) continue;
      this.inFlight.add(eventId);
      void this.retry(entry).then((outcome) => {
        this.inFlight.delete(eventId);
        if (outcome !== 'RETRY') {
          this.pending.delete(eventId);
          return;
        }
        entry.attempts++;
        entry.nextAt = Date.now() + this.backoff(entry.attempts);
      });
    }
  }

  /**
   * One more try at a row this owner holds: its lease renewed first (lost: another owner has it, or it was settled),
   * unless this is the first try of a row leased a moment ago (swept) and surely held.
   */
  private async retry(entry: Pending): Promise<'JUDGED' | 'LOST' | 'RETRY'> {
    const deadline = Deadline.in(this.pacing.attemptMs);
    if (entry.attempts > 0 || Date.now() >= entry.leasedUntil) {
      let held: boolean;
      const claimedUntil = this.freshLeaseUntil();
      try {
        held = await this.onMysql(deadline, () =>
          this.deps.stores.payments.claimDelivery(entry.row.eventId, {
            owner: entry.lease,
            leaseMs: this.pacing.leaseMs,
          }),
        );
      } catch {
        return 'RETRY'; // MySQL away: the lease may lapse meanwhile; the next claim says whose it is
      }
      if (!held) return 'LOST';
      entry.leasedUntil = claimedUntil;
    }
    return (await inTrace(entry.trace, () => this.deliver(entry.row, deadline))) ? 'JUDGED' : 'RETRY';
  }

  private async sweep(): Promise<void> {
    if (this.pending.size >= this.pacing.maxBacklog) return;
    this.sweeping = true;
    const lease = `${this.ownerId}/${++this.sweeps}`;
    const takenAt = Date.now();
    try {
      const rows = await this.onMysql(Deadline.in(this.pacing.attemptMs), () =>
        this.deps.stores.payments.leaseDueDeliveries(
          { owner: lease, leaseMs: this.pacing.leaseMs },
          this.pacing.sweepOlderThanMs,
          this.pacing.sweepBatch,
        ),
      );
      const now = Date.now();
      const leasedUntil = this.freshLeaseUntil(takenAt);
      for (const row of rows)
        if (!this.pending.has(row.eventId))
          this.pending.set(row.eventId, { row, lease, leasedUntil, attempts: 0, nextAt: now });
    } catch {
      // MySQL is away: the next sweep leases them; the payments are safe in their rows.
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
