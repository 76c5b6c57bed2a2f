/**
 * What both Stripe rounds (stripe-late-sale, stripe-webhook-drop) use: how the double delivers Stripe's webhooks in
 * the suite, a tap recording each answer of the API's Stripe webhook, shoppers' reads of their orders, and the waits
 * for every order to close and for Stripe's deliveries to settle.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type { ShopperAuth } from '../../src/api/auth.js';
import { orderWorkflowId } from '../../src/model/order-workflow.js';
import type { StripeDouble } from '../../stack/stripe-double.js';
import { waitFor } from '../../stack/wait-for.js';
import { startWebhookTap, type TappedDelivery } from '../../stack/webhook-tap.js';
import { clientFor } from '../../toolkit/http-client.js';
import { retrying, type TrafficPlan, type TrafficResult } from '../../toolkit/shoppers.js';
import { step, type Step } from './round.js';
import { round1 } from './steps.js';

/** How the double delivers Stripe's webhooks in this round: 1 to 5 minutes late, some twice, out of order. */
export const STRIPE_LATE_DELIVERY = {
  delayMs: [60_000, 300_000] as [number, number],
  duplicateRate: 0.3,
  reorder: true,
};

/** One delivery of Stripe's webhook as the API answered it (the tap in front of the API records it). */
export interface TapAnswer {
  eventId: string;
  type: string;
  /** The event's object's id (the PaymentIntent's, for payment_intent.*). */
  objectId: string;
  status: number;
  outcome: string;
  at: number;
}

/**
 * Waits until no order of `orderNos` has a running workflow (every one paid, or closed at its deadline), up to
 * `timeoutMs`; the orders still running then (none once every one closed).
 */
export async function ordersStillRunning(
  temporal: Client,
  orderNos: readonly string[],
  wait: { what: string; timeoutMs: number; intervalMs: number },
): Promise<string[]> {
  const running = async () => {
    const described = await Promise.all(
      orderNos.map(async (orderNo) => ({
        orderNo,
        status: (await temporal.workflow.getHandle(orderWorkflowId(orderNo)).describe()).status.name,
      })),
    );
    return described.filter((d) => d.status === 'RUNNING').map((d) => d.orderNo);
  };
  return waitFor(
    async () => {
      const left = await running();
      return left.length === 0 ? left : false;
    },
    { what: wait.what, timeoutMs: wait.timeoutMs, intervalMs: wait.intervalMs },
  ).catch(running);
}

/** The least and the most of `values`, to a tenth (null when there are none). */
export function minMax(values: number[]): { min: number; max: number } | null {
  if (values.length === 0) return null;
  return { min: round1(Math.min(...values)), max: round1(Math.max(...values)) };
}

/** Whether the double has no delivery waiting, ready or in flight within `timeoutMs` (and stays so a moment). */
export async function settledWithin(double: StripeDouble, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) return false;
    const timer = new AbortController();
    const settled = await Promise.race([
      double.settled().then(() => true),
      sleep(left, false, { signal: timer.signal }).catch(() => false),
    ]);
    timer.abort();
    if (!settled) return false;
    // An answer can make a new event (a refund asked, say): settled only if nothing new came.
    const before = double.deliveries.length;
    await sleep(1_000);
    if (double.deliveries.length === before) {
      const again = await Promise.race([double.settled().then(() => true), sleep(10, false)]);
      if (again) return true;
    }
  }
}

/** What the step below reads and writes of a Stripe round's state. */
export interface AwaitsStripeDeliveries {
  stripe: { double: StripeDouble };
  p: { deliveriesTimeoutMs: number };
  suite: { say(line: string): void };
  /** When every order had closed: the deliveries are timed from then. */
  closedAt: number;
  deliveriesSettled: boolean;
  settledSeconds: number;
}

/** A Stripe round's step: every delivery of Stripe's ends (bounded), then refunds it must not start get time to. */
export function stripeDeliveriesSettled<S extends AwaitsStripeDeliveries>(): Step<S> {
  return step<S>("Stripe's deliveries settled", async (s) => {
    s.deliveriesSettled = await settledWithin(s.stripe.double, s.p.deliveriesTimeoutMs);
    s.settledSeconds = Math.round((Date.now() - s.closedAt) / 1000);
    s.suite.say(
      `deliveries ${s.deliveriesSettled ? 'settled' : 'NOT settled'} ${s.settledSeconds} s after every order closed`,
    );
    // The reconciler (every 3 s here) would start a REFUND_REQUIRED row's refund: give it the time to (it should not).
    await sleep(5_000);
  });
}

/** The Stripe double delivers to this tap in front of `apiUrl`'s Stripe webhook, which records each answer. */
export async function tapStripeWebhook(
  apiUrl: string,
): Promise<{ url: string; answers: TapAnswer[]; stop(): Promise<void> }> {
  const answers: TapAnswer[] = [];
  const tap = await startWebhookTap(apiUrl, '/api/payments/stripe', undefined, (delivery) =>
    answers.push(tapAnswerOf(delivery)),
  );
  return { url: tap.url, answers, stop: () => tap.close() };
}

function tapAnswerOf({ event: body, status, answer, at }: TappedDelivery): TapAnswer {
  let event: { id?: string; type?: string; data?: { object?: { id?: string } } } = {};
  let outcome = '';
  try {
    event = JSON.parse(body) as typeof event;
    const parsed = JSON.parse(answer) as { outcome?: string; error?: { code?: string } };
    outcome = parsed.outcome ?? parsed.error?.code ?? '';
  } catch {
    outcome = outcome || 'unparsed';
  }
  // No answer from the API is the tap's own 502 (code TAP), as the double was answered.
  return {
    eventId: event.id ?? '',
    type: event.type ?? '',
    objectId: event.data?.object?.id ?? '',
    status: status ?? 502,
    outcome,
    at,
  };
}

/** Reads orders as their shoppers do (retried across APIs): status, the PaymentIntent shown, the deadline. */
export function orderViews(
  plan: TrafficPlan,
  result: TrafficResult,
  auth: ShopperAuth,
): (orderNo: string, userId: string) => Promise<{ status?: string; intentId?: string; deadline?: number }> {
  return async (orderNo, userId) => {
    const read = await retrying(plan, 'read', result, async (api) =>
      clientFor(api).request('GET', `/api/orders/${orderNo}`, {
        headers: { authorization: `Bearer ${await auth.issue(userId)}` },
        timeoutMs: 5_000,
      }),
    );
    const body = (read.status === 200 ? read.body : {}) as {
      status?: string;
      paymentDeadline?: string;
      paymentIntent?: { id: string };
    };
    return {
      status: body.status,
      intentId: body.paymentIntent?.id,
      deadline: body.paymentDeadline ? Date.parse(body.paymentDeadline) : undefined,
    };
  };
}
