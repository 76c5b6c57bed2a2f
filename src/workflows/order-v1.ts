/**
 * OrderWorkflow as it was before reservation ownership and Updates (patch
 * ORDER_PATCHES.decideThenClose): orders that started on this code replay it. Frozen: change
 * nothing here that changes the workflow's commands; delete it once no such order can be running
 * (30 minutes after every worker runs the new code, plus the retention of its history).
 *
 *   persistOrder ──fails for good──▶ recordOrderFailure + releaseReservation ─▶ FAILED
 *        │ ok
 *        ▼
 *   AWAITING_PAYMENT ── payment ─▶ markPaid + confirmReservation ─▶ PAID
 *        │ timer / cancel
 *        ▼
 *   cancelOrder + releaseReservation ─▶ CANCELLED
 *
 * The seeds' failure classes and where they end here:
 *  - order lost between Redis and MySQL: the reservation and this workflow are started together by
 *    the API, and persistOrder retries until it succeeds or compensation gives the stock back;
 *  - payment before the order is persisted: the signal is kept and applied once persistence succeeds;
 *  - payment after cancellation: recorded as REFUND_REQUIRED, never applied;
 *  - duplicate payments: deduplicated by the provider's event id.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import {
  cancelOrderSignal,
  isCancellable,
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  paymentReceivedSignal,
  statusQuery,
  pendingOrderState,
  type CancelReason,
  type OrderInput,
  type OrderState,
  type PaymentReceived,
  type RefundReason,
} from '../order/contract.js';

/**
 * The activities v1 calls, handed in by OrderWorkflow: its proxies have the options v1 was written
 * with (persistOrder a local activity giving up after 10 attempts, the closing ones retrying
 * without limit), so the replayed commands are the same.
 */
export type OrderActivitiesV1 = Pick<
  Activities,
  'persistOrder' | 'markPaid' | 'cancelOrder' | 'recordOrderFailure' | 'recordRefundRequired' | 'releaseReservation' | 'confirmReservation'
>;

export async function orderWorkflowV1(input: OrderInput, activities: OrderActivitiesV1): Promise<OrderState> {
  const { persistOrder, markPaid, cancelOrder, recordOrderFailure, releaseReservation, confirmReservation } = activities;
  // The deadline runs from the reservation, so a slow start never gives the shopper extra time.
  const state = pendingOrderState(input);
  const paymentDeadline = state.paymentDeadline;
  let acceptedPayment: PaymentReceived | undefined;
  let cancelRequested = false;
  /** Set as soon as the order's fate is decided, before the closing activities run. */
  let decided = false;
  const refundsToRecord: Array<PaymentReceived & { reason: RefundReason }> = [];

  setHandler(statusQuery, () => state);

  setHandler(paymentReceivedSignal, (payment) => {
    if (state.payments.some((p) => p.eventId === payment.eventId)) return; // provider retry: already handled
    const refund = (reason: RefundReason) => {
      state.payments.push({ ...payment, outcome: 'REFUND_REQUIRED', refundReason: reason });
      refundsToRecord.push({ ...payment, reason });
    };
    if (acceptedPayment) return refund('ALREADY_PAID');
    if (decided || (state.status !== 'PENDING' && state.status !== 'AWAITING_PAYMENT')) return refund('ORDER_NOT_AWAITING_PAYMENT');
    if (payment.amountCents !== state.totalCents) return refund('AMOUNT_MISMATCH');
    // Accepted even while PENDING: it is applied once persistence succeeds.
    acceptedPayment = payment;
    state.payments.push({ ...payment, outcome: 'APPLIED' });
  });

  setHandler(cancelOrderSignal, () => {
    if (!decided && isCancellable(state)) cancelRequested = true;
  });

  const setStatus = (status: OrderState['status']) => {
    state.status = status;
    upsertSearchAttributes([{ key: ORDER_STATUS_SEARCH_ATTRIBUTE, value: status }]);
  };

  try {
    // ---- persist ------------------------------------------------------------------------------
    try {
      await persistOrder({ ...input, paymentDeadline });
    } catch (err) {
      decided = true;
      state.failureReason = describeFailure(err);
      log.warn('persistOrder failed for good; releasing the reservation', { orderNo: input.orderNo, reason: state.failureReason });
      await CancellationScope.nonCancellable(async () => {
        await recordOrderFailure({ ...input, paymentDeadline, reason: state.failureReason ?? 'unknown' });
        await releaseReservation({ sku: input.sku, orderNo: input.orderNo });
      });
      if (acceptedPayment) {
        state.payments = state.payments.map((p) =>
          p.eventId === acceptedPayment?.eventId ? { ...p, outcome: 'REFUND_REQUIRED', refundReason: 'ORDER_FAILED' } : p,
        );
        refundsToRecord.push({ ...acceptedPayment, reason: 'ORDER_FAILED' });
      }
      setStatus('FAILED');
      return await finish(state, refundsToRecord, activities);
    }
    setStatus('AWAITING_PAYMENT');

    // ---- wait for payment, cancellation or the deadline (a durable timer) -----------------------
    // At least 1 ms: a zero timeout would mean "no timer" to some SDK versions.
    const remainingMs = Math.max(1, Date.parse(paymentDeadline) - Date.now());
    await condition(() => acceptedPayment !== undefined || cancelRequested, remainingMs);
    decided = true;

    if (acceptedPayment) {
      const paidAt = new Date().toISOString();
      await markPaid({ orderNo: input.orderNo, eventId: acceptedPayment.eventId, amountCents: acceptedPayment.amountCents, paidAt });
      await confirmReservation({ sku: input.sku, orderNo: input.orderNo });
      state.paidAt = paidAt;
      setStatus('PAID');
    } else {
      await closeCancelled(state, cancelRequested ? 'USER_CANCELLED' : 'PAYMENT_TIMEOUT');
    }
    return await finish(state, refundsToRecord, activities);
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // The workflow itself was cancelled (an operator in the Web UI): still give the stock back.
    decided = true;
    await CancellationScope.nonCancellable(async () => {
      if (state.status === 'PENDING') {
        await recordOrderFailure({ ...input, paymentDeadline, reason: 'workflow cancelled' });
        await releaseReservation({ sku: input.sku, orderNo: input.orderNo });
        state.failureReason = 'workflow cancelled';
        setStatus('FAILED');
      } else if (state.status === 'AWAITING_PAYMENT') {
        await closeCancelled(state, 'USER_CANCELLED');
      }
      await finish(state, refundsToRecord, activities);
    });
    throw err;
  }

  async function closeCancelled(order: OrderState, reason: CancelReason): Promise<void> {
    await cancelOrder({ orderNo: order.orderNo, reason, cancelledAt: new Date().toISOString() });
    await releaseReservation({ sku: order.sku, orderNo: order.orderNo });
    order.cancelReason = reason;
    setStatus('CANCELLED');
  }
}

/** Records every payment that was not applied, including any that arrive while doing so. */
async function finish(
  state: OrderState,
  refunds: Array<PaymentReceived & { reason: RefundReason }>,
  { recordRefundRequired }: OrderActivitiesV1,
): Promise<OrderState> {
  while (refunds.length > 0) {
    const refund = refunds.shift();
    if (refund) await recordRefundRequired({ orderNo: state.orderNo, eventId: refund.eventId, amountCents: refund.amountCents, reason: refund.reason });
  }
  log.info('order closed', { orderNo: state.orderNo, status: state.status, workflowId: workflowInfo().workflowId });
  return state;
}

function describeFailure(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  return cause instanceof Error ? cause.message : String(cause);
}
