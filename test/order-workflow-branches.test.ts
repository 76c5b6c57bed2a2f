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
import type { Activities } from '../src/activities/order.js';
import type { PaymentActivities, ProviderClose } from '../src/activities/payments.js';
import type { RefundActivities } from '../src/activities/refunds.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import {
  awaitPersistedUpdate,
  cancelUpdate,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentAppliedSignal,
  providerTaskQueue,
  REFUND_WORKFLOW_TYPE,
  refundWorkflowId,
  statusQuery,
  type CloseRequest,
  type RefundRunOutcome,
  type CloseVerdict,
  type OrderInput,
  type PaymentReceived,
} from '../src/model/order-workflow.js';
import type { OrderWorkflow } from '../src/workflows/order.js';
import { bundleEntries } from '../src/workers/bundle.js';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { startTimeSkippingEnvironment, timeSkippingCodecConfig } from './helpers/time-skipping.js';

/** What one order's activities answer; anything not scripted succeeds. */
interface Script {
  persist?: (attempt: number) => Promise<void>;
  /** A payment that came before the order's row, which the row applied as the persist wrote it. */
  applied?: PaymentReceived;
  /** Redis no longer holds the units: the close of a paid order fails it (the one close's own step). */
  unitsLost?: boolean;
  /** The provider's answer to making the order's payment (default: a PaymentIntent at once). */
  openPayment?: (attempt: number) => Promise<void>;
  /** What each closing of the order's intents finds, in turn (the last repeats; default: CANCELED). */
  closePayment?: ProviderClose[];
}

/**
 * The order's row as the one close (OrderStore.close) keeps it: paid once a payment was applied, then final as the
 * first decisive close left it. The stub answers as the row would: a payment first, whatever was asked.
 */
interface StubRow {
  paid: boolean;
  verdict?: CloseVerdict;
}

const scripts = new Map<string, Script>();
/** What each refund's activity answers, in turn (the last repeats), and how often it was asked. */
const refundAnswers = new Map<string, Array<RefundRunOutcome | Error>>();
const refundAsks = new Map<string, number>();
const rows = new Map<string, StubRow>();
const calls = new Map<string, string[]>();
const persistAttempts = new Map<string, number>();
const openAttempts = new Map<string, number>();

function record(orderNo: string, call: string): void {
  calls.set(orderNo, [...(calls.get(orderNo) ?? []), call]);
}

function rowOf(orderNo: string): StubRow {
  let row = rows.get(orderNo);
  if (!row) rows.set(orderNo, (row = { paid: scripts.get(orderNo)?.applied !== undefined }));
  return row;
}

/** The row's answer to a close: a final row answers as it ended; a paid one PAID (FAILED for units Redis lost). */
function closeAsTheRow(orderNo: string, request: CloseRequest): CloseVerdict {
  const row = rowOf(orderNo);
  if (row.verdict) return row.verdict;
  if (row.paid || request.kind === 'RESERVATION_LOST') {
    if (request.kind !== 'RESERVATION_LOST' && !scripts.get(orderNo)?.unitsLost)
      return (row.verdict = { outcome: 'PAID', status: 'PAID', paidAt: '2026-11-28T00:00:00.000Z' });
    return (row.verdict = { outcome: 'FAILED', reason: 'ReservationLost: Redis no longer holds the units' });
  }
  if (request.kind === 'PAYMENT') return { outcome: 'OPEN' };
  if (request.kind === 'CANCEL') return (row.verdict = { outcome: 'CANCELLED', reason: request.reason });
  return (row.verdict = { outcome: 'FAILED', reason: request.reason });
}

/** The workflow's activities, answering from each order's script and stub row instead of the stores. */
const stubs: Pick<Activities, 'persistOrder' | 'closeOrder'> & PaymentActivities & RefundActivities = {
  async refundPayment({ eventId }) {
    refundAsks.set(eventId, (refundAsks.get(eventId) ?? 0) + 1);
    const answers = refundAnswers.get(eventId) ?? [];
    const answer = (answers.length > 1 ? answers.shift() : answers[0]) ?? 'REFUNDED';
    if (answer instanceof Error) throw answer;
    return answer;
  },
  async persistOrder(order) {
    const attempt = (persistAttempts.get(order.orderNo) ?? 0) + 1;
    persistAttempts.set(order.orderNo, attempt);
    await scripts.get(order.orderNo)?.persist?.(attempt);
    record(order.orderNo, 'persistOrder');
    const applied = scripts.get(order.orderNo)?.applied;
    return { paymentDeadline: order.paymentDeadline, ...(applied ? { applied } : {}) };
  },
  async closeOrder({ order, request }) {
    record(order.orderNo, `closeOrder:${request.kind}${request.kind === 'CANCEL' ? `:${request.reason}` : ''}`);
    return closeAsTheRow(order.orderNo, request);
  },
  async openPayment(payment) {
    const attempt = (openAttempts.get(payment.orderNo) ?? 0) + 1;
    openAttempts.set(payment.orderNo, attempt);
    await scripts.get(payment.orderNo)?.openPayment?.(attempt);
    record(payment.orderNo, `openPayment:${payment.provider}:${payment.amountCents}`);
    return { id: `pi_${payment.orderNo}` };
  },
  async closePayment(payment) {
    record(payment.orderNo, `closePayment:${payment.paymentIntentId ?? 'by-key'}`);
    const answers = scripts.get(payment.orderNo)?.closePayment ?? [];
    const answer = (answers.length > 1 ? answers.shift() : answers[0]) ?? { state: 'CANCELED' };
    // A succeeded intent's payment is recorded and applied by the row before closePayment answers.
    if (answer.state === 'SUCCEEDED') rowOf(payment.orderNo).paid = true;
    return answer;
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
    workflowsPath: bundleEntries().workflows,
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

/** The row applies a payment (as the webhook's transaction does); its Signal is not sent (lost, or not yet). */
const applyInRow = (input: OrderInput) => void (rowOf(input.orderNo).paid = true);
/** A payment the order's row applied, as the webhook then tells the workflow: the paymentApplied Signal. */
const pay = async (handle: WorkflowHandle<typeof OrderWorkflow>, input: OrderInput, p: PaymentReceived) => {
  applyInRow(input);
  await handle.signal(paymentAppliedSignal, p);
};
const callsOf = (input: OrderInput) => calls.get(input.orderNo) ?? [];
const notCancellable = async (update: Promise<unknown>) => {
  const refused = await update.catch((err: unknown) => err);
  expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(/^NOT_CANCELLABLE/);
};

describe('OrderWorkflow branches (time-skipping server, stub activities)', () => {
  it('a payment the row applied, signalled: the one close finds it paid; a repeat Signal changes nothing', async () => {
    const { handle, input } = await startOrder();
    expect((await handle.executeUpdate(awaitPersistedUpdate)).status).toBe('AWAITING_PAYMENT');
    const applied = payment(input, 'evt-signalled', 60_000);
    await pay(handle, input, applied);
    // Again (a Signal sent twice): asked again at most, answered as the row ended.
    await handle.signal(paymentAppliedSignal, applied);
    const state = await handle.result();
    expect(state).toMatchObject({ status: 'PAID', paidAt: '2026-11-28T00:00:00.000Z' });
    expect(state).not.toHaveProperty('payments');
    // The close is a local activity: one whose task a Signal interrupts may run again (idempotent).
    expect(new Set(callsOf(input))).toEqual(new Set(['persistOrder', 'closeOrder:PAYMENT']));
  });

  it('a Signal with no payment behind it (sent by hand) sells nothing: the row says still payable, the wait goes on', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    await handle.signal(paymentAppliedSignal, payment(input, 'evt-made-up', 1_000));
    await expect.poll(() => callsOf(input)).toContain('closeOrder:PAYMENT');
    expect((await handle.query(statusQuery)).status).toBe('AWAITING_PAYMENT');
    // Even a payload that is no payment at all only wakes the order to ask.
    await handle.signal(paymentAppliedSignal, { nonsense: true } as unknown as PaymentReceived);
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
    expect(callsOf(input).at(-1)).toBe('closeOrder:CANCEL:PAYMENT_TIMEOUT');
  });

  it('a signalled payment before the persist’s answer: asked once persisted; PAID', async () => {
    let persisted!: () => void;
    const held = new Promise<void>((resolve) => (persisted = resolve));
    const { handle, input } = await startOrder({ persist: () => held });
    await pay(handle, input, payment(input, 'evt-early-signal', 1_000));
    persisted();
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:PAYMENT']);
  });

  it('a payment that came before the row, applied as the persist wrote it: asked at once; PAID', async () => {
    const early = { eventId: 'evt-before-the-row', amountCents: 1_000, receivedAt: new Date().toISOString() };
    const { handle, input } = await startOrder({ applied: early });
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:PAYMENT']);
  });

  it('no payment: the deadline asks the row to cancel it (the close gives the units back)', async () => {
    const { handle, input } = await startOrder();
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:CANCEL:PAYMENT_TIMEOUT']);
  });

  it('a payment the row applied whose Signal was lost pays it when the deadline asks', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    applyInRow(input);
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:CANCEL:PAYMENT_TIMEOUT']);
  });

  it('the shopper cancels: the Update answers once the row cancelled it; USER_CANCELLED', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    expect(await handle.executeUpdate(cancelUpdate)).toMatchObject({
      status: 'CANCELLED',
      cancelReason: 'USER_CANCELLED',
    });
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'USER_CANCELLED' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:CANCEL:USER_CANCELLED']);
  });

  it('a cancel after a payment the row applied (its Signal not handled yet) is refused NOT_CANCELLABLE; PAID', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    applyInRow(input);
    await notCancellable(handle.executeUpdate(cancelUpdate));
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:CANCEL:USER_CANCELLED']);
    // Closed: the workflow takes no more Updates.
    await expect(handle.executeUpdate(cancelUpdate)).rejects.toThrow();
  });

  it('an operator cancels the workflow: the row cancels it as OPERATOR_CANCELLED, the workflow shows cancelled', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(await handle.query(statusQuery)).toMatchObject({ status: 'CANCELLED', cancelReason: 'OPERATOR_CANCELLED' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:CANCEL:OPERATOR_CANCELLED']);
  });

  it('an operator cancels a paid order (its Signal not handled yet): the row says PAID, the workflow completes PAID', async () => {
    const { handle, input } = await startOrder();
    await handle.executeUpdate(awaitPersistedUpdate);
    applyInRow(input);
    await handle.cancel();
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:CANCEL:OPERATOR_CANCELLED']);
  });

  it('persistence failing for good: the row fails it (a FAILED row where none was written)', async () => {
    const { handle, input } = await startOrder({
      persist: () =>
        Promise.reject(ApplicationFailure.nonRetryable('sale SKU-STUB does not exist in MySQL', 'SaleNotFound')),
    });
    const state = await handle.result();
    expect(state).toMatchObject({
      status: 'FAILED',
      failureReason: 'SaleNotFound: sale SKU-STUB does not exist in MySQL',
    });
    expect(callsOf(input)).toEqual(['closeOrder:FAIL']);
  });

  // Defect 1 of "One close" (red on 7b2150e: PERSISTING → PAYMENT_APPLIED, then no move to FAILING; the task failed
  // and was retried for ever, the row PAID and the unit held).
  it('a Signal during the persist, then the persist fails for good (its first attempt committed): the row says PAID', async () => {
    let attempts = 0;
    const { handle, input } = await startOrder({
      persist: async () => {
        attempts++;
        if (attempts === 1) {
          // The first attempt wrote the row, a payment was applied to it and signalled; then the attempt's answer is
          // lost and every retry fails for good.
          applyInRow(input);
          await handle.signal(paymentAppliedSignal, payment(input, 'evt-during-persist', 1_000));
          throw new Error('connect ECONNRESET');
        }
        throw ApplicationFailure.nonRetryable('order was persisted for another shopper', 'OrderConflict');
      },
    });
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    // A local activity whose task the Signal interrupted may run again (idempotent).
    expect(new Set(callsOf(input))).toEqual(new Set(['closeOrder:FAIL']));
  });

  it('a Signal handled while the persist retries on a durable timer, then the persist fails for good: PAID', async () => {
    let attempts = 0;
    const { handle, input } = await startOrder({
      persist: async () => {
        attempts++;
        if (attempts === 1) {
          applyInRow(input);
          await handle.signal(paymentAppliedSignal, payment(input, 'evt-while-persisting', 1_000));
        }
        // 200, 400, 800 ms in the worker, then 1.6 s on a durable timer: the Signal's task comes in between.
        if (attempts < 6) throw new Error('connect ECONNREFUSED');
        throw ApplicationFailure.nonRetryable('order was persisted for another shopper', 'OrderConflict');
      },
    });
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(new Set(callsOf(input))).toEqual(new Set(['closeOrder:FAIL']));
  });

  it("an operator cancels during the persist's retries after a payment was applied: the row says PAID", async () => {
    let attempts = 0;
    const { handle, input } = await startOrder({
      persist: async () => {
        attempts++;
        if (attempts === 1) applyInRow(input);
        throw new Error('connect ECONNREFUSED');
      },
    });
    await expect.poll(() => persistAttempts.get(input.orderNo) ?? 0).toBeGreaterThan(2);
    await handle.signal(paymentAppliedSignal, payment(input, 'evt-while-retrying', 1_000));
    await handle.cancel();
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    expect(new Set(callsOf(input))).toEqual(new Set(['closeOrder:FAIL']));
  });

  it('a transient persistence failure is retried, then the order is payable', async () => {
    const { handle, input } = await startOrder({
      persist: (attempt) => (attempt < 3 ? Promise.reject(new Error('ECONNREFUSED')) : Promise.resolve()),
    });
    expect((await handle.executeUpdate(awaitPersistedUpdate)).status).toBe('AWAITING_PAYMENT');
    expect(persistAttempts.get(input.orderNo)).toBe(3);
    await handle.cancel();
  });

  it('a payment whose units are gone from Redis: the close fails the order, its payment owed back', async () => {
    const { handle, input } = await startOrder({ unitsLost: true });
    await handle.executeUpdate(awaitPersistedUpdate);
    await pay(handle, input, payment(input, 'evt-lost', 1_000));
    const state = await handle.result();
    expect(state).toMatchObject({ status: 'FAILED', failureReason: expect.stringMatching(/^ReservationLost/) });
    expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:PAYMENT']);
  });

  describe('paid through a provider with an API (Stripe)', () => {
    const stripe = { paymentProvider: 'stripe' } as const;

    it("makes the order's payment once persisted; the state carries its id, never a client secret; paid: nothing to close", async () => {
      const { handle, input } = await startOrder({}, stripe);
      await handle.executeUpdate(awaitPersistedUpdate);
      await expect
        .poll(async () => (await handle.query(statusQuery)).paymentIntent)
        .toEqual({ id: `pi_${input.orderNo}` });
      await pay(handle, input, payment(input, 'evt-1', 60_000));
      expect(await handle.result()).toMatchObject({ status: 'PAID', paymentProvider: 'stripe' });
      expect(callsOf(input)).toEqual(['persistOrder', 'openPayment:stripe:1000', 'closeOrder:PAYMENT']);
    });

    it('the deadline closes the door: the intent is cancelled first, then the row asked', async () => {
      const { handle, input } = await startOrder({}, stripe);
      expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
      expect(callsOf(input)).toEqual([
        'persistOrder',
        'openPayment:stripe:1000',
        `closePayment:pi_${input.orderNo}`,
        'closeOrder:CANCEL:PAYMENT_TIMEOUT',
      ]);
    });

    it('paid a second before the deadline (the cancel refused, the intent succeeded, the row applied it): PAID', async () => {
      const intentPayment = { eventId: 'pi_paid', amountCents: 1_000, receivedAt: new Date().toISOString() };
      const { handle, input } = await startOrder(
        { closePayment: [{ state: 'SUCCEEDED', payment: intentPayment }] },
        stripe,
      );
      expect(await handle.result()).toMatchObject({ status: 'PAID' });
      expect(callsOf(input)).toEqual([
        'persistOrder',
        'openPayment:stripe:1000',
        `closePayment:pi_${input.orderNo}`,
        'closeOrder:CANCEL:PAYMENT_TIMEOUT',
      ]);
    });

    it('an intent still processing keeps the unit; its webhook then pays the order', async () => {
      const { handle, input } = await startOrder({ closePayment: [{ state: 'PROCESSING' }] }, stripe);
      await handle.executeUpdate(awaitPersistedUpdate);
      await env.sleep(WINDOW_MS + 1_000);
      await expect.poll(() => callsOf(input).includes(`closePayment:pi_${input.orderNo}`)).toBe(true);
      // Its webhook, after the deadline: the row applies it (Stripe's state, not our clock), and signals.
      await pay(handle, input, payment(input, 'evt-bank-debit', WINDOW_MS + 600_000));
      expect(await handle.result()).toMatchObject({ status: 'PAID' });
      expect(callsOf(input)).not.toContain('closeOrder:CANCEL:PAYMENT_TIMEOUT');
      expect(callsOf(input).at(-1)).toBe('closeOrder:PAYMENT');
    });

    it('an intent still processing that then fails: read again, cancelled, and only then the row asked', async () => {
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
        'closeOrder:CANCEL:PAYMENT_TIMEOUT',
      ]);
    });

    it('a provider away for the whole window: cancelled on time, the payment closed by its key', async () => {
      const { handle, input } = await startOrder(
        { openPayment: () => Promise.reject(new Error('connect ECONNREFUSED stripe')) },
        stripe,
      );
      expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'PAYMENT_TIMEOUT' });
      expect(openAttempts.get(input.orderNo)).toBeGreaterThan(3);
      expect(callsOf(input).slice(-2)).toEqual(['closePayment:by-key', 'closeOrder:CANCEL:PAYMENT_TIMEOUT']);
    });

    it('the provider refuses to make the payment: the row fails the order (the close gives its units back)', async () => {
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
      expect(callsOf(input)).toEqual(['persistOrder', 'closeOrder:FAIL']);
    });

    it('the shopper cancels: the cancel is taken at once; the payment is closed at the provider first, then the row', async () => {
      const { handle, input } = await startOrder({}, stripe);
      await handle.executeUpdate(awaitPersistedUpdate);
      await expect.poll(async () => (await handle.query(statusQuery)).paymentIntent?.id).toBe(`pi_${input.orderNo}`);
      expect((await handle.executeUpdate(cancelUpdate)).status).toBe('AWAITING_PAYMENT');
      expect(await handle.result()).toMatchObject({ status: 'CANCELLED', cancelReason: 'USER_CANCELLED' });
      expect(callsOf(input)).toEqual([
        'persistOrder',
        'openPayment:stripe:1000',
        `closePayment:pi_${input.orderNo}`,
        'closeOrder:CANCEL:USER_CANCELLED',
      ]);
    });
  });

  describe('RefundWorkflow', () => {
    const refund = async (answers: Array<RefundRunOutcome | Error>) => {
      const eventId = `evt-refund-${randomUUID()}`;
      refundAnswers.set(eventId, answers);
      const handle = await env.client.workflow.start(REFUND_WORKFLOW_TYPE, {
        workflowId: refundWorkflowId(eventId),
        taskQueue,
        args: [{ eventId }],
      });
      return { eventId, result: handle.result() as Promise<RefundRunOutcome> };
    };

    it('asks once, and ends with what the provider said', async () => {
      const { eventId, result } = await refund(['REFUNDED']);
      expect(await result).toBe('REFUNDED');
      expect(refundAsks.get(eventId)).toBe(1);
    });

    it('a refund still under way is read again on a durable timer until the provider ends it', async () => {
      const { eventId, result } = await refund(['REFUND_REQUESTED', 'REFUND_REQUESTED', 'REFUND_FAILED']);
      expect(await result).toBe('REFUND_FAILED');
      expect(refundAsks.get(eventId)).toBe(3);
    });

    it('a provider that does not answer is asked again by Temporal until it does', async () => {
      const { eventId, result } = await refund([new Error('connect ECONNREFUSED stripe'), 'REFUNDED']);
      expect(await result).toBe('REFUNDED');
      expect(refundAsks.get(eventId)).toBe(2);
    });
  });
});
