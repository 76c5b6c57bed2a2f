/**
 * Every path of OrderWorkflow, and the main ones of EndpointDeliveryWorkflow, as scenarios that
 * scripts/record-histories.ts plays against a real worker to record one history each. The histories
 * (test/replay/histories/<release>/) are replayed by test/replay.test.ts.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OrderStatus } from '../../src/model/order-workflow.js';
import type { OrderWorkflow } from '../../src/workflows/order.js';

export interface ScenarioContext {
  handle: WorkflowHandle<typeof OrderWorkflow>;
  /** The order's total, the amount a correct payment carries. */
  total: number;
  /**
   * A payment as the webhook takes it: recorded and decided by the order's row, then (if the row applied it) the
   * paymentApplied Signal.
   */
  pay(eventId: string, amountCents?: number): Promise<unknown>;
  cancel(): Promise<unknown>;
  statusIs(status: OrderStatus): Promise<unknown>;
  /** With paymentProvider: resolves once the order's payment is made at the provider (its state carries it). */
  paymentIntentMade(): Promise<unknown>;
  /** With paymentProvider: the shopper pays the order's intent at the provider; no webhook tells the order. */
  payAtProvider(): Promise<void>;
  /** With holdPersist: resolves once persistOrder has started and is held. */
  persistHeld(): Promise<void>;
  releasePersist(): void;
  /** With holdCancel: resolves once the close asked to cancel has started and is held. */
  cancelHeld(): Promise<void>;
  releaseCancel(): void;
  /** With persistFails: resolves once persistOrder has failed this many times. */
  persistAttempts(atLeast: number): Promise<void>;
  /** Gives the order's reservation back behind the workflow's back (a lost or edited Redis record). */
  loseReservation(): Promise<void>;
  /** A payment recorded and decided by the order's row whose Signal was lost (the close reads the row). */
  recordPayment(eventId: string): Promise<void>;
  /** A paymentApplied Signal sent by hand (the Web UI, the CLI) with no payment behind it. */
  signalWithoutPayment(): Promise<void>;
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
      await ctx.statusIs('PAID');
    },
  },
  {
    name: 'paid-while-the-worker-is-away',
    // The Signal waits in the history; the returning worker runs it with the order's next task.
    lateWorker: true,
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.stopWorker();
      await ctx.pay('evt-paid-late');
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
    // The row applied a payment whose Signal was lost: the cancel asks the row, is refused, and the order closes PAID.
    name: 'shopper-cancel-after-payment',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.recordPayment('evt-before-cancel');
      await ctx.cancel().then(
        () => {
          throw new Error('the cancel after a payment was accepted');
        },
        (err: unknown) => {
          if (!(err instanceof Error && /NOT_CANCELLABLE|Update failed/i.test(`${err.message} ${String(err.cause)}`)))
            throw err;
        },
      );
      await ctx.statusIs('PAID');
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
      // No row yet: the payment waits RECEIVED, and the FAILED row the cancel writes refunds it (ORDER_FAILED).
      await ctx.pay('evt-pending-paid');
      await ctx.handle.cancel();
    },
  },
  {
    // A Signal sent by hand with no payment behind it: the row, asked, still awaits payment; the timer cancels it.
    name: 'signal-without-payment',
    paymentWindow: '3s',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.signalWithoutPayment();
      await ctx.statusIs('CANCELLED');
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
    // timer, and the payment arrives then, while the order is still PENDING: the row applies it as it is written.
    persistFails: 5,
    async play(ctx) {
      await ctx.persistAttempts(5);
      await ctx.pay('evt-early');
    },
  },
  {
    name: 'duplicate-payment',
    // The worker away meanwhile: the row applies the first, refunds the second; the duplicate changes nothing.
    lateWorker: true,
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.stopWorker();
      for (const eventId of ['evt-dup-a', 'evt-dup-a', 'evt-dup-b']) await ctx.pay(eventId);
      await sleep(500);
      await ctx.startWorker();
      await ctx.statusIs('PAID');
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
    // Applied by the row, its Signal lost: the timer fires, the close finds the order sold and it closes PAID.
    paymentWindow: '2s',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.recordPayment('evt-found');
    },
  },
  {
    name: 'in-time-payment-and-timer-in-one-task',
    // The worker stopped across the deadline: the Signal of a payment applied in time and the fired timer reach it
    // in one workflow task.
    paymentWindow: '3s',
    lateWorker: true,
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.stopWorker();
      await ctx.pay('evt-one-task-in-time');
      await sleep(Math.max(0, ctx.deadline + 1_000 - Date.now()));
      await ctx.startWorker();
      await ctx.statusIs('PAID');
    },
  },
];

export interface DeliveryScenarioContext {
  /** Pays a new order of the recording's sale: its order.paid is owed to the endpoint; resolves with the event's id. */
  writeEvent(): Promise<string>;
  /** Resolves once the receiver has accepted the event (answered it 2xx). */
  received(eventId: string): Promise<void>;
  /** The wake Signal (an operator resent an event, rotated a secret), landing wherever the run is. */
  wake(): Promise<void>;
  /** The operator disables the endpoint and wakes its workflow: the next round ends it. */
  disable(): Promise<void>;
}

/** A path of EndpointDeliveryWorkflow, recorded beside the order's (the same folder, the same replay test). */
export interface DeliveryReplayScenario {
  name: string;
  /** What the endpoint answers the `seen`-th request of an event (default 204). */
  answer?: (seen: number) => { status: number; headers?: Record<string, string> };
  play(ctx: DeliveryScenarioContext): Promise<void>;
}

export const DELIVERY_REPLAY_SCENARIOS: readonly DeliveryReplayScenario[] = [
  {
    name: 'delivery-delivered-then-disabled',
    async play(ctx) {
      await ctx.received(await ctx.writeEvent());
      await ctx.wake();
      await ctx.received(await ctx.writeEvent());
      await ctx.disable();
    },
  },
  {
    name: 'delivery-slowed-down',
    // 429 with Retry-After: the round halts, the workflow waits on its timer until the pause ends, then delivers.
    answer: (seen) => (seen === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 204 }),
    async play(ctx) {
      await ctx.received(await ctx.writeEvent());
      await ctx.disable();
    },
  },
  {
    name: 'delivery-endpoint-gone',
    // 410 Gone: the endpoint is disabled and the run ends by itself.
    answer: () => ({ status: 410 }),
    async play(ctx) {
      await ctx.writeEvent();
    },
  },
];
