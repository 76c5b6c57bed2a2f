/**
 * Every path of OrderWorkflow, as scenarios that scripts/record-histories.ts plays against a real
 * worker to record one history each. The histories (test/replay/histories/<version>/) are replayed
 * by test/replay.test.ts.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { OrderStatus } from '../../src/workflows/definitions.js';
import type { OrderWorkflow } from '../../src/workflows/order.js';

export interface ScenarioContext {
  handle: WorkflowHandle<typeof OrderWorkflow>;
  /** The order's total, the amount a correct payment carries. */
  total: number;
  pay(eventId: string, amountCents?: number): Promise<unknown>;
  cancel(): Promise<unknown>;
  statusIs(status: OrderStatus): Promise<unknown>;
  /** With holdPersist: resolves once persistOrder has started and is held. */
  persistHeld(): Promise<void>;
  releasePersist(): void;
  /** With holdCancel: resolves once cancelOrder has started and is held. */
  cancelHeld(): Promise<void>;
  releaseCancel(): void;
}

export interface ReplayScenario {
  name: string;
  /** The order's payment window; short where the timer must fire while recording. */
  paymentWindow?: string;
  /** Delete the sale from MySQL first, so persistence fails for good. */
  saleGone?: boolean;
  holdPersist?: boolean;
  holdCancel?: boolean;
  play(ctx: ScenarioContext): Promise<void>;
}

export const REPLAY_SCENARIOS: readonly ReplayScenario[] = [
  {
    name: 'paid',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.pay('evt-paid');
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
    holdPersist: true,
    async play(ctx) {
      await ctx.persistHeld();
      await ctx.pay('evt-pending-paid');
      await ctx.handle.cancel();
      ctx.releasePersist();
    },
  },
  {
    name: 'persist-failure',
    saleGone: true,
    async play() {},
  },
  {
    name: 'early-payment',
    holdPersist: true,
    async play(ctx) {
      await ctx.persistHeld();
      await ctx.pay('evt-early');
      ctx.releasePersist();
    },
  },
  {
    name: 'duplicate-payment',
    async play(ctx) {
      await ctx.statusIs('AWAITING_PAYMENT');
      await ctx.pay('evt-dup-a');
      await ctx.pay('evt-dup-a');
      await ctx.pay('evt-dup-b');
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
];
