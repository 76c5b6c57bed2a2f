/**
 * Every branch of OrderWorkflow on Temporal's time-skipping test server with stub activities: no
 * Redis, no MySQL, the 30-minute window skipped in milliseconds. Each order scripts what its
 * activities answer; the test checks the order's end state and which activities ran, in order.
 * test/order-workflow.test.ts runs the same workflow with the real activities against the stores.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities, UnpaidOrderClosed } from '../src/activities/order.js';
import type { PaymentActivities, ProviderClose } from '../src/activities/payments.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import {
  awaitPersistedUpdate,
  cancelUpdate,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentAppliedSignal,
  payUpdate,
  providerTaskQueue,
  statusQuery,
  type OrderInput,
  type PaymentReceived,
  type PaymentVerdict,
} from '../src/model/order-workflow.js';
import type { OrderWorkflow } from '../src/workflows/order.js';
import { WORKFLOWS_PATH } from '../src/workers/bundle.js';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { startTimeSkippingEnvironment, timeSkippingCodecConfig } from './helpers/time-skipping.js';

/** What one order's activities answer; anything not scripted succeeds. */
interface Script {
  persist?: (attempt: number) => Promise<void>;
  cancelUnpaid?: UnpaidOrderClosed;
  confirm?: string;
  /** A payment that came before the order's row, which the row applied as the persist wrote it. */
  applied?: PaymentReceived;
  /** The provider's answer to making the order's payment (default: a PaymentIntent at once). */
  openPayment?: (attempt: number) => Promise<void>;
  /** What each closing of the order's intents finds, in turn (the last repeats; default: CANCELED). */
  closePayment?: ProviderClose[];
  /** The row's verdict on a payment the previous build's API delivers (default: APPLIED). */
  deliveredVerdict?: PaymentVerdict;
}

const scripts = new Map<string, Script>();
const calls = new Map<string, string[]>();
const persistAttempts = new Map<string, number>();
const openAttempts = new Map<string, number>();

function record(orderNo: string, call: string): void {
  calls.set(orderNo, [...(calls.get(orderNo) ?? []), call]);
}

/** The workflow's activities, answering from each order's script instead of the stores. */
const stubs: Activities & PaymentActivities = {
  async persistOrder(order) {
    const attempt = (persistAttempts.get(order.orderNo) ?? 0) + 1;
    persistAttempts.set(order.orderNo, attempt);
    await scripts.get(order.orderNo)?.persist?.(attempt);
    record(order.orderNo, 'persistOrder');
    const applied = scripts.get(order.orderNo)?.applied;
    return { paymentDeadline: order.paymentDeadline, ...(applied ? { applied } : {}) };
  },
  async decideDeliveredPayment(payment) {
    record(payment.orderNo, `decideDeliveredPayment:${payment.eventId}`);
    return scripts.get(payment.orderNo)?.deliveredVerdict ?? { outcome: 'APPLIED' };
  },
  async recordOrderFailure(order) {
    record(order.orderNo, `recordOrderFailure:${order.reason.split(':')[0]}`);
  },
  async cancelUnpaidOrder(cancel): Promise<UnpaidOrderClosed> {
    record(cancel.orderNo, `cancelUnpaidOrder:${cancel.reason}`);
    return scripts.get(cancel.orderNo)?.cancelUnpaid ?? { outcome: 'CANCELLED', reason: cancel.reason };
  },
  async releaseReservation(reservation) {
    record(reservation.orderNo, 'releaseReservation');
    return 'RELEASED';
  },
  async confirmReservation(reservation) {
    record(reservation.orderNo, 'confirmReservation');
    return scripts.get(reservation.orderNo)?.confirm ?? 'CONFIRMED';
  },
  async openPayment(payment) {
    const attempt = (openAttempts.get(payment.orderNo) ?? 0) + 1;
    openAttempts.set(payment.orderNo, attempt);
    await scripts.get(payment.orderNo)?.openPayment?.(attempt);
    record(payment.orderNo, `openPayment:${payment.provider}:${payment.amountCents}`);
    return { id: `pi_${payment.orderNo}`, clientSecret: `pi_${payment.orderNo}_secret_x` };
  },
  async closePayment(payment) {
    record(payment.orderNo, `closePayment:${payment.paymentIntentId ?? 'by-key'}`);
    const answers = scripts.get(payment.orderNo)?.closePayment ?? [];
    return (answers.length > 1 ? answers.shift() : answers[0]) ?? { state: 'CANCELED' };
  },
};

let env: TestWorkflowEnvironment;
let worker: Worker;
let providerWorker: Worker;
let running: Promise<unknown>;
const taskQueue = `order-branches-${randomUUID()}`;

beforeAll(async () => {
  env = await startTimeSkippingEnvironment();
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    // The environment's client encrypts: the worker reads and writes with the same codec.
    dataConverter: temporalDataConverter(timeSkippingCodecConfig),
    activities: stubs,
  });
  // The provider's requests have their own queue (paced at the provider's rate in production).
  providerWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: providerTaskQueue(taskQueue),
    dataConverter: temporalDataConverter(timeSkippingCodecConfig),
    activities: { openPayment: stubs.openPayment, closePayment: stubs.closePayment },
  });
  running = Promise.all([worker.run(), providerWorker.run()]);
});

afterAll(async () => {
  worker?.shutdown();
  providerWorker?.shutdown();
  await running;
  await env?.teardown();
});

const WINDOW_MS = 30 * 60_000;

async function startOrder(
  script: Script = {},
  options: { paymentProvider?: 'stripe' } = {},
): Promise<{ handle: WorkflowHandle<typeof OrderWorkflow>; input: OrderInput }> {
  const orderNo = newOrderNo();
  scripts.set(orderNo, script);
  const input: OrderInput = {
    orderNo,
    sku: 'SKU-STUB',
    userId: 'shopper',
    quantity: 1,
    unitPriceCents: 1_000,
    createdAt: new Date(await env.currentTimeMs()).toISOString(),
    paymentWindow: '30m',
    ...options,
  };
  const handle = await env.client.workflow.start<typeof OrderWorkflow>(ORDER_WORKFLOW_TYPE, {
    workflowId: orderWorkflowId(orderNo),
    taskQueue,
    args: [input],
  });
  return { handle, input };
}

/** A payment recorded `atMs` after the order was reserved (the window is 30 minutes). */
function payment(input: OrderInput, eventId: string, atMs: number, amountCents = 1_000): PaymentReceived {
  return { eventId, amountCents, receivedAt: new Date(Date.parse(input.createdAt) + atMs).toISOString() };
}

/** A payment the order's row applied, as the webhook then tells the workflow: the paymentApplied Signal. */
const pay = (handle: WorkflowHandle<typeof OrderWorkflow>, p: PaymentReceived) =>
  handle.signal(paymentAppliedSignal, p);
const callsOf = (input: OrderInput) => calls.get(input.orderNo) ?? [];

describe('OrderWorkflow branches (time-skipping server, stub activities)', () => {
  it('a payment the row applied, signalled: followed, not judged; confirm in Redis only (PAID is the row’s); a repeat changes nothing', async () => {
    const { handle, input } = await startOrder();
    expect((await handle.executeUpdate(awaitPersistedUpdate)).status).toBe('AWAITING_PAYMENT');
    const applied = payment(input, 'evt-signalled', 60_000);
    await handle.signal(paymentAppliedSignal, applied);
    // Again (the reconciler's, after the webhook's own): the payment is known by its id.
    await handle.signal(paymentAppliedSignal, applied);
    const state = await handle.result();
    expect(state).toMatchObject({ status: 'PAID', payments: [{ eventId: 'evt-signalled', outcome: 'APPLIED' }] });
    expect(state.payments).toHaveLength(1);
    // No markPaid. confirmReservation is a local activity: one whose task a Signal interrupts may run again
    // (at least once, and idempotent: ALREADY_CONFIRMED).
    expect(new Set(callsOf(input))).toEqual(new Set(['persistOrder', 'confirmReservation']));
  });

  it('the previous build’s API delivers a payment as the pay Update: the row decides once persisted, its verdict answered and followed', async () => {
    const refused = await startOrder({
      deliveredVerdict: { outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' },
    });
    expect(
      await refused.handle.executeUpdate(payUpdate, { args: [payment(refused.input, 'evt-short', 1_000, 999)] }),
    ).toEqual({ outcome: 'REFUND_REQUIRED', refundReason: 'AMOUNT_MISMATCH' });
    expect((await refused.handle.query(statusQuery)).status).toBe('AWAITING_PAYMENT');
    await refused.handle.cancel();

    const { handle, input } = await startOrder();
    expect(await handle.executeUpdate(payUpdate, { args: [payment(input, 'evt-by-update', 1_000)] })).toEqual({
      outcome: 'APPLIED',
    });
    expect(await handle.result()).toMatchObject({ status: 'PAID', payments: [{ eventId: 'evt-by-update' }] });
    expect(callsOf(input).slice(0, 2)).toEqual(['persistOrder', 'decideDeliveredPayment:evt-by-update']);
  });

  it('a signalled payment before the persist’s answer: followed once persisted; PAID', async () => {
    let persisted!: () => void;
    const held = new Promise<void>((resolve) => (persisted = resolve));
    const { handle, input } = await startOrder({ persist: () => held });
    await handle.signal(paymentAppliedSignal, payment(input, 'evt-early-signal', 1_000));
    persisted();
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(callsOf(input)).toEqual(['persistOrder', 'confirmReservation']);
  });

  it('a payment that came before the row, applied as the persist wrote it: followed; PAID', async () => {
    const early = { eventId: 'evt-before-the-row', amountCents: 1_000, receivedAt: new Date().toISOString() };
    const { handle, input } = await startOrder({ applied: early });
    expect(await handle.result()).toMatchObject({
      status: 'PAID',
      payments: [{ eventId: 'evt-before-the-row', outcome: 'APPLIED' }],
    });
    expect(callsOf(input)).toEqual(['persistOrder', 'confirmReservation']);
  });

  it('no payment: the deadline cancels it and gives the units back', async () => {
    const { handle, input } = await startOrder();
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
    expect(callsOf(input)).toEqual(['persistOrder', 'cancelUnpaidOrder:PAYMENT_TIMEOUT', 'releaseReservation']);
  });

  it('a payment the row applied whose Signal was lost pays it when the deadline looks', async () => {
    const { handle, input } = await startOrder();
    const found = payment(input, 'evt-found', WINDOW_MS - 1);
    scripts.set(input.orderNo, { cancelUnpaid: { outcome: 'PAID_IN_TIME', payment: found } });
    const state = await handle.result();
    expect(state).toMatchObject({ status: 'PAID', payments: [{ eventId: 'evt-found', outcome: 'APPLIED' }] });
    expect(callsOf(input)).toEqual(['persistOrder', 'cancelUnpaidOrder:PAYMENT_TIMEOUT', 'confirmReservation']);
  });

  it('the shopper cancels: the row is cancelled first (its verdict), then the units given back; USER_CANCELLED', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    await handle.executeUpdate(cancelUpdate);
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'USER_CANCELLED' });
    expect(callsOf(input)).toEqual(['persistOrder', 'cancelUnpaidOrder:USER_CANCELLED', 'releaseReservation']);
  });

  it('a cancel after a payment the row applied (its Signal not handled yet) is refused NOT_CANCELLABLE; PAID', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    const applied = payment(input, 'evt-before-the-cancel', 1_000);
    scripts.set(input.orderNo, { cancelUnpaid: { outcome: 'PAID_IN_TIME', payment: applied } });
    const refused = await handle.executeUpdate(cancelUpdate).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(/^NOT_CANCELLABLE/);
    expect(await handle.result()).toMatchObject({
      status: 'PAID',
      payments: [{ eventId: 'evt-before-the-cancel', outcome: 'APPLIED' }],
    });
    expect(callsOf(input)).toEqual(['persistOrder', 'cancelUnpaidOrder:USER_CANCELLED', 'confirmReservation']);
    // Closed: another cancel is refused by the validator.
    await expect(handle.executeUpdate(cancelUpdate)).rejects.toThrow();
  });

  it('an operator cancels the workflow: CANCELLED as OPERATOR_CANCELLED, the workflow shows cancelled', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(await handle.query(statusQuery)).toMatchObject({ status: 'CANCELLED', cancelReason: 'OPERATOR_CANCELLED' });
    expect(callsOf(input)).toEqual(['persistOrder', 'cancelUnpaidOrder:OPERATOR_CANCELLED', 'releaseReservation']);
  });

  it('persistence failing for good: FAILED, recorded, units released', async () => {
    const { handle, input } = await startOrder({
      persist: () =>
        Promise.reject(ApplicationFailure.nonRetryable('sale SKU-STUB does not exist in MySQL', 'SaleNotFound')),
    });
    const state = await handle.result();
    expect(state).toMatchObject({
      status: 'FAILED',
      failureReason: 'SaleNotFound: sale SKU-STUB does not exist in MySQL',
    });
    expect(callsOf(input)).toEqual(['recordOrderFailure:SaleNotFound', 'releaseReservation']);
  });

  it('a transient persistence failure is retried, then the order is payable', async () => {
    const { handle, input } = await startOrder({
      persist: (attempt) => (attempt < 3 ? Promise.reject(new Error('ECONNREFUSED')) : Promise.resolve()),
    });
    expect((await handle.executeUpdate(awaitPersistedUpdate)).status).toBe('AWAITING_PAYMENT');
    expect(persistAttempts.get(input.orderNo)).toBe(3);
    await handle.cancel();
  });

  it('a payment whose units are gone from Redis fails the order and is refunded ORDER_FAILED', async () => {
    const { handle, input } = await startOrder({ confirm: 'NOT_FOUND' });
    await handle.executeUpdate(awaitPersistedUpdate);
    await pay(handle, payment(input, 'evt-lost', 1_000));
    const state = await handle.result();
    expect(state).toMatchObject({ status: 'FAILED', failureReason: expect.stringMatching(/^ReservationLost/) });
    expect(state.payments).toEqual([
      { eventId: 'evt-lost', amountCents: 1_000, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' },
    ]);
    // recordOrderFailure turns the applied payment to be refunded in the row (ORDER_FAILED).
    expect(callsOf(input)).toEqual([
      'persistOrder',
      'confirmReservation',
      'recordOrderFailure:ReservationLost',
      'releaseReservation',
    ]);
  });

  describe('paid through a provider with an API (Stripe)', () => {
    const stripe = { paymentProvider: 'stripe' } as const;

    it("makes the order's payment once persisted; the state carries its id, never a client secret; paid: nothing to close", async () => {
      const { handle, input } = await startOrder({}, stripe);
      await handle.executeUpdate(awaitPersistedUpdate);
      // The stub answers a client secret too, as an activity of a build before payload encryption did.
      await expect
        .poll(async () => (await handle.query(statusQuery)).paymentIntent)
        .toEqual({ id: `pi_${input.orderNo}` });
      await pay(handle, payment(input, 'evt-1', 60_000));
      expect(await handle.result()).toMatchObject({ status: 'PAID', paymentProvider: 'stripe' });
      expect(callsOf(input)).toEqual(['persistOrder', 'openPayment:stripe:1000', 'confirmReservation']);
    });

    it('the deadline closes the door: the intent is cancelled first, then the order, then the unit released', async () => {
      const { handle, input } = await startOrder({}, stripe);
      expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
      expect(callsOf(input)).toEqual([
        'persistOrder',
        'openPayment:stripe:1000',
        `closePayment:pi_${input.orderNo}`,
        'cancelUnpaidOrder:PAYMENT_TIMEOUT',
        'releaseReservation',
      ]);
    });

    it('paid a second before the deadline (the cancel refused, the intent succeeded, the row applied it): PAID', async () => {
      const intentPayment = { eventId: 'pi_paid', amountCents: 1_000, receivedAt: new Date().toISOString() };
      const { handle, input } = await startOrder(
        { closePayment: [{ state: 'SUCCEEDED', payment: intentPayment }] },
        stripe,
      );
      expect(await handle.result()).toMatchObject({
        status: 'PAID',
        payments: [{ eventId: 'pi_paid', outcome: 'APPLIED' }],
      });
      expect(callsOf(input)).toEqual([
        'persistOrder',
        'openPayment:stripe:1000',
        `closePayment:pi_${input.orderNo}`,
        'confirmReservation',
      ]);
    });

    it('an intent still processing keeps the unit; its webhook then pays the order', async () => {
      const { handle, input } = await startOrder({ closePayment: [{ state: 'PROCESSING' }] }, stripe);
      await handle.executeUpdate(awaitPersistedUpdate);
      await env.sleep(WINDOW_MS + 1_000);
      await expect.poll(() => callsOf(input).includes(`closePayment:pi_${input.orderNo}`)).toBe(true);
      // Its webhook, after the deadline: the row applies it (Stripe's state, not our clock), and signals.
      await pay(handle, payment(input, 'evt-bank-debit', WINDOW_MS + 600_000));
      expect(await handle.result()).toMatchObject({ status: 'PAID' });
      expect(callsOf(input)).not.toContain('releaseReservation');
      expect(callsOf(input)).not.toContain('cancelUnpaidOrder:PAYMENT_TIMEOUT');
    });

    it('an intent still processing that then fails: read again, cancelled, and only then the unit released', async () => {
      const { handle, input } = await startOrder(
        { closePayment: [{ state: 'PROCESSING' }, { state: 'PROCESSING' }, { state: 'CANCELED' }] },
        stripe,
      );
      expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
      expect(callsOf(input)).toEqual([
        'persistOrder',
        'openPayment:stripe:1000',
        `closePayment:pi_${input.orderNo}`,
        `closePayment:pi_${input.orderNo}`,
        `closePayment:pi_${input.orderNo}`,
        'cancelUnpaidOrder:PAYMENT_TIMEOUT',
        'releaseReservation',
      ]);
    });

    it('a provider away for the whole window: cancelled on time, the payment closed by its key', async () => {
      const { handle, input } = await startOrder(
        { openPayment: () => Promise.reject(new Error('connect ECONNREFUSED stripe')) },
        stripe,
      );
      expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
      expect(openAttempts.get(input.orderNo)).toBeGreaterThan(3);
      expect(callsOf(input)).toContain('closePayment:by-key');
      expect(callsOf(input)).toContain('releaseReservation');
    });

    it('the provider refuses to make the payment: the order fails and gives its units back', async () => {
      const { handle, input } = await startOrder(
        {
          openPayment: () =>
            Promise.reject(
              ApplicationFailure.nonRetryable('Stripe refused the request: amount too small', 'PaymentRefused'),
            ),
        },
        stripe,
      );
      expect(await handle.result()).toMatchObject({
        status: 'FAILED',
        failureReason: 'PaymentRefused: Stripe refused the request: amount too small',
      });
      expect(callsOf(input)).toEqual(['persistOrder', 'recordOrderFailure:PaymentRefused', 'releaseReservation']);
    });

    it('the shopper cancels: the payment is closed at the provider first, and only then the row', async () => {
      const { handle, input } = await startOrder({}, stripe);
      await handle.executeUpdate(awaitPersistedUpdate);
      await expect.poll(async () => (await handle.query(statusQuery)).paymentIntent?.id).toBe(`pi_${input.orderNo}`);
      await handle.executeUpdate(cancelUpdate);
      expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'USER_CANCELLED' });
      expect(callsOf(input)).toEqual([
        'persistOrder',
        'openPayment:stripe:1000',
        `closePayment:pi_${input.orderNo}`,
        'cancelUnpaidOrder:USER_CANCELLED',
        'releaseReservation',
      ]);
    });
  });
});
