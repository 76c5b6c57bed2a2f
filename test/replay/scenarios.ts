/**
 * Every path of OrderWorkflow, as scenarios that scripts/record-histories.ts plays against a real
 * worker to record one history each. The histories (test/replay/histories/<release>/) are replayed
 * by test/replay.test.ts.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OrderStatus, PaymentReceived } from '../../src/model/order-workflow.js';
import type { OrderWorkflow } from '../../src/workflows/order.js';

export interface ScenarioContext {
  handle: WorkflowHandle<typeof OrderWorkflow>;
  /** The order's total, the amount a correct payment carries. */
  total: number;
  pay(eventId: string, amountCents?: number): Promise<unknown>;
  /** A payment the workflow has accepted, its verdict still to come (`answered`). */
  payAccepted(eventId: string): Promise<{ answered: Promise<unknown> }>;
  cancel(): Promise<unknown>;
  statusIs(status: OrderStatus): Promise<unknown>;
  /** With paymentProvider: resolves once the order's payment is made at the provider (its state carries it). */
  paymentIntentMade(): Promise<unknown>;
  /** With paymentProvider: the shopper pays the order's intent at the provider; no webhook tells the order. */
  payAtProvider(): Promise<void>;
  /** With holdPersist: resolves once persistOrder has started and is held. */
  persistHeld(): Promise<void>;
  releasePersist(): void;
  /** With holdCancel: resolves once cancelUnpaidOrder has started and is held. */
  cancelHeld(): Promise<void>;
  releaseCancel(): void;
  /** With persistFails: resolves once persistOrder has failed this many times. */
  persistAttempts(atLeast: number): Promise<void>;
  /** Gives the order's reservation back behind the workflow's back (a lost or edited Redis record). */
  loseReservation(): Promise<void>;
  /** Records a payment as the webhook does (MySQL stamps its arrival) without delivering it: the stored event. */
  recordPayment(eventId: string, amountCents?: number): Promise<PaymentReceived>;
  /** Delivers a recorded payment as the API does: the `pay` Update with the stored event. */
  deliver(payment: PaymentReceived): Promise<unknown>;
  /** A full payment in time as the webhook takes it: recorded and applied by the order's row, then signalled. */
  payAtTheDoor(eventId: string): Promise<void>;
  /**
   * The order's payment deadline as its reservation gives it (ms since the epoch); once persisted it counts from then,
   * a few ms later.
   */
  deadline: number;
  /** With lateWorker: nothing of the order's queue runs until startWorker(). */
  stopWorker(): Promise<void>;
  startWorker(): Promise<void>;
}

export interface ReplayScenario {
  name: string;
  /** The order's payment window; short where the timer must fire while recording. */
  paymentWindow?: string;
  /** Delete the sale from MySQL first, so persistence fails for good. */
  saleGone?: boolean;
  holdPersist?: boolean;
  holdCancel?: boolean;
  /** persistOrder fails (MySQL down) on this many attempts (Infinity: all), so the order stays PENDING. */
  persistFails?: number;
  /** The reservation is released as unclaimed before the workflow starts (the API gave up on it). */
  releasedBeforeStart?: boolean;
  /** The order runs on a queue and worker of its own, which the scenario stops and starts (a late worker). */
  lateWorker?: boolean;
  /** Paid through a provider with an API (Stripe: the Stripe double while recording). */
  paymentProvider?: 'stripe';
  play(ctx: ScenarioContext): Promise<void>;
}

export const REPLAY_SCENARIOS: readonly ReplayScenario[] = [
  {
    name: 'stripe-paid',
    paymentProvider: 'stripe',
    async play(ctx) {
      await ctx.paymentIntentMade();
      await ctx.pay('evt-stripe-paid');
    },
  },
  {
    name: 'stripe-payment-timeout',
    paymentProvider: 'stripe',
    paymentWindow: '3s',
    async play(ctx) {
      await ctx.paymentIntentMade();
    },
  },
  {
    // The cancel at the deadline is refused; the intent, read again, says succeeded: PAID (the intent decides).
    name: 'stripe-paid-before-close',
    paymentProvider: 'stripe',
    paymentWindow: '3s',
    async play(ctx) {
      await ctx.paymentIntentMade();
      await ctx.payAtProvider();
      await ctx.statusIs('PAID');
    },
  },
  {
    name: 'stripe-shopper-cancel',
    paymentProvider: 'stripe',
    async play(ctx) {
      await ctx.paymentIntentMade();
      await ctx.cancel();
    },
  },
  {
    name: 'paid',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.pay('evt-paid');
    },
  },
  {
    name: 'paid-by-signal',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.payAtTheDoor('evt-paid-by-signal');
      await ctx.statusIs('PAID');
    },
  },
  {
    name: 'paid-by-signal-while-the-worker-is-away',
    // The Signal waits in the history; the returning worker runs it with the order's next task.
    lateWorker: true,
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.stopWorker();
      await ctx.payAtTheDoor('evt-paid-by-signal-late');
      await sleep(500);
      await ctx.startWorker();
      await ctx.statusIs('PAID');
    },
  },
  {
    name: 'payment-timeout',
    paymentWindow: '2s',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
    },
  },
  {
    name: 'shopper-cancel',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.cancel();
    },
  },
  {
    name: 'operator-cancel',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.handle.cancel();
    },
  },
  {
    name: 'operator-cancel-while-pending',
    persistFails: Number.POSITIVE_INFINITY,
    async play(ctx) {
      await ctx.persistAttempts(5);
      // The payment is judged once the order is persisted or failed: here, by the cancel.
      const payment = await ctx.payAccepted('evt-pending-paid');
      await ctx.handle.cancel();
      await payment.answered;
    },
  },
  {
    name: 'reservation-released-before-claim',
    releasedBeforeStart: true,
    async play() {},
  },
  {
    name: 'reservation-lost-before-payment',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.loseReservation();
      await ctx.pay('evt-lost');
    },
  },
  {
    name: 'operator-cancel-during-payment',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.pay('evt-then-cancel');
      await ctx.handle.cancel();
    },
  },
  {
    name: 'persist-failure',
    saleGone: true,
    async play() {},
  },
  {
    name: 'early-payment',
    // The first attempts fail (MySQL briefly down); from the fifth on, retries wait on a durable
    // timer, and the payment arrives then, while the order is still PENDING.
    persistFails: 5,
    async play(ctx) {
      await ctx.persistAttempts(5);
      await ctx.pay('evt-early');
    },
  },
  {
    name: 'duplicate-payment',
    // Delivered together, the worker away meanwhile: an order closes in the task that applies its payment,
    // so the duplicate and the second payment must reach it in that same task.
    lateWorker: true,
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.stopWorker();
      const verdicts = [ctx.pay('evt-dup-a'), ctx.pay('evt-dup-a'), ctx.pay('evt-dup-b')];
      await sleep(500);
      await ctx.startWorker();
      await Promise.all(verdicts);
    },
  },
  {
    name: 'late-payment',
    paymentWindow: '2s',
    holdCancel: true,
    async play(ctx) {
      await ctx.cancelHeld();
      await ctx.pay('evt-late');
      ctx.releaseCancel();
    },
  },
  {
    name: 'wrong-amount',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.pay('evt-short', ctx.total - 1);
      await ctx.pay('evt-right');
    },
  },
  // ---- judged by when the payment was recorded ------------------------------------------------
  {
    name: 'in-time-payment-found-at-timeout',
    // Recorded in time, never delivered: the timer fires, cancelUnpaidOrder finds it and pays the order.
    paymentWindow: '2s',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.recordPayment('evt-found');
    },
  },
  {
    name: 'in-time-payment-and-timer-in-one-task',
    paymentWindow: '3s',
    lateWorker: true,
    play: (ctx) => payWithTheTimer(ctx, 'evt-one-task-in-time', 'before the deadline'),
  },
  {
    name: 'late-payment-and-timer-in-one-task',
    paymentWindow: '3s',
    lateWorker: true,
    play: (ctx) => payWithTheTimer(ctx, 'evt-one-task-late', 'after the deadline'),
  },
  {
    name: 'in-time-payment-while-cancelling',
    // The timer fired first (one task); the payment recorded in time arrives while the order looks
    // for payments (another), waits for that, and is applied.
    paymentWindow: '2s',
    holdCancel: true,
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      const payment = await ctx.recordPayment('evt-while-cancelling');
      await ctx.cancelHeld();
      // The Update waits for the task that runs cancelUnpaidOrder, which finds the payment, pays the order and
      // closes it: the Update is then aborted with the workflow, and the API judges the payment from MySQL (APPLIED).
      const verdict = ctx.deliver(payment).catch((err: unknown) => {
        if (!(err instanceof Error && /closing workflow/.test(err.message))) throw err;
      });
      await sleep(500);
      ctx.releaseCancel();
      await verdict;
    },
  },
];

/**
 * A payment recorded `recorded` and delivered together with the timer's firing: the worker is
 * stopped across the deadline, the Update waits in Temporal beside the fired timer, and the worker
 * started again gets both in one workflow task.
 */
async function payWithTheTimer(
  ctx: ScenarioContext,
  eventId: string,
  recorded: 'before the deadline' | 'after the deadline',
): Promise<void> {
  await ctx.statusIs('AWAITING_PAYMENT');
  const inTime = recorded === 'before the deadline' ? await ctx.recordPayment(eventId) : undefined;
  await ctx.stopWorker();
  await sleep(Math.max(0, ctx.deadline + 1_000 - Date.now()));
  const verdict = ctx.deliver(inTime ?? (await ctx.recordPayment(eventId)));
  await sleep(500);
  await ctx.startWorker();
  await verdict;
}
