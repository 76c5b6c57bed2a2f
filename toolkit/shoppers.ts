/**
 * Shoppers' traffic, shared by the fault suite, the rollout tests and the cluster suite: shoppers who buy
 * through either API (retrying with the same
 * Idempotency-Key when an API is down, as a real client would), and a payment provider that pays,
 * pays twice, pays the wrong amount, pays late, or pays before the order is persisted, retrying
 * every webhook until it gets a 2xx. Some shoppers cancel instead; every shopper with an order reads
 * it before and after. Every answer is recorded, and every HTTP attempt timed, so the checks can hold
 * the system to what it told its clients and to how long it took to say it.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { signWebhook } from './sign-webhook.js';
import { clientFor, type Answer } from './http-client.js';
import type { RequestKind, RequestRecord, SameKeyAnswers } from './traffic-records.js';

export interface TrafficPlan {
  sku: string;
  priceCents: number;
  shoppers: number;
  /** Purchase intents in flight at once, at most. */
  concurrency: number;
  /** Shoppers arriving per second: spreads the burst so that a fault lands in the middle of it. */
  arrivalsPerSecond: number;
  apiUrls: string[];
  tokenFor: (userId: string) => Promise<string>;
  webhookSecret: string;
  /** How long the order's payment window is: late payments wait past it. */
  paymentWindowMs: number;
  /** How long a client keeps retrying one request before it gives up. */
  retryForMs: number;
  /**
   * Shoppers who read their order every `everyMs` (for up to `forMs`) until it is no longer
   * PENDING, and only then pay or cancel (an early payer pays at once, while it is PENDING): what a
   * shopper waiting for the payment page does. Without it each shopper reads once before acting.
   */
  readUntilPayable?: { everyMs: number; forMs: number };
}

/**
 * The freeze-payment rounds' shoppers: each order's payments are sent at set times around its
 * payment deadline (see DEADLINE_PAYMENTS), while a server is frozen.
 */
export type DeadlinePaymentKind =
  | 'in-time'
  | 'in-time-close'
  | 'late'
  | 'very-late'
  | 'in-time-then-late'
  | 'two-in-time'
  | 'redelivered-in-time'
  | 'short-then-late'
  | 'none';

/**
 * When each kind sends what, relative to its order's payment deadline (negative: before it):
 * `short` pays a cent less than the order's total, `sameEvent` redelivers the previous event (the
 * provider's retry). Each order's payments go one after another, each after the previous answer.
 */
export const DEADLINE_PAYMENTS: Record<
  DeadlinePaymentKind,
  ReadonlyArray<{ afterDeadlineMs: number; short?: boolean; sameEvent?: boolean }>
> = {
  'in-time': [{ afterDeadlineMs: -6_000 }],
  'in-time-close': [{ afterDeadlineMs: -1_000 }],
  late: [{ afterDeadlineMs: 3_000 }],
  'very-late': [{ afterDeadlineMs: 30_000 }],
  'in-time-then-late': [{ afterDeadlineMs: -5_000 }, { afterDeadlineMs: 10_000 }],
  'two-in-time': [{ afterDeadlineMs: -7_000 }, { afterDeadlineMs: -3_000 }],
  'redelivered-in-time': [{ afterDeadlineMs: -4_000 }, { afterDeadlineMs: -2_000, sameEvent: true }],
  'short-then-late': [{ afterDeadlineMs: -4_000, short: true }, { afterDeadlineMs: 5_000 }],
  none: [],
};
const DEADLINE_PAYMENT_KINDS = Object.keys(DEADLINE_PAYMENTS) as DeadlinePaymentKind[];

/**
 * Pays each order as its kind (by index, cycling through DEADLINE_PAYMENTS) says, at its times
 * around the order's deadline, each clamped into `window` (from + 300 ms .. until − 3 s): every
 * payment is sent while the window lasts. Resolves once every payment has its final answer.
 */
export async function payAroundDeadlines(
  plan: TrafficPlan,
  orders: ReadonlyArray<{ orderNo: string; deadline: number }>,
  window: { from: number; until: number },
  result: TrafficResult,
): Promise<void> {
  await Promise.all(
    orders.map(async ({ orderNo, deadline }, index) => {
      const kind = DEADLINE_PAYMENT_KINDS[index % DEADLINE_PAYMENT_KINDS.length] ?? 'none';
      let eventId = '';
      for (const [step, payment] of DEADLINE_PAYMENTS[kind].entries()) {
        const at = Math.min(Math.max(deadline + payment.afterDeadlineMs, window.from + 300), window.until - 3_000);
        if (at > Date.now()) await sleep(at - Date.now());
        if (!payment.sameEvent) eventId = `evt-${orderNo}-${step}-${randomUUID().slice(0, 8)}`;
        await sendPayment(
          plan,
          { orderNo, eventId, amountCents: plan.priceCents - (payment.short ? 1 : 0), kind },
          result,
        );
      }
    }),
  );
}

/** What became of one purchase intent, as its client saw it. */
export interface IntentOutcome {
  userId: string;
  idempotencyKey: string;
  /**
   * The final answer: an order (202 accepted; for a waiting checkout also 201 persisted, or 409
   * ORDER_FAILED naming the order that failed), a 4xx refusal, or none (the client gave up).
   */
  answer:
    | { kind: 'accepted'; orderNo: string; status: number }
    | { kind: 'refused'; status: number; code: string }
    | { kind: 'gave-up'; lastError: string };
  attempts: number;
  /** Whether this shopper's checkouts sent `Prefer: wait=5` (the waiting checkout). */
  waited: boolean;
}

export type PaymentKind = 'pay' | 'pay-twice' | 'second-event' | 'wrong-amount-then-pay' | 'early' | 'late' | 'cancel';

/** One payment event the provider delivered (or gave up delivering), with the API's last answer. */
export interface DeliveredEvent {
  orderNo: string;
  eventId: string;
  amountCents: number;
  /** What the shopper meant by it (the freeze-payment rounds name theirs by when it is sent). */
  kind: PaymentKind | DeadlinePaymentKind;
  answer:
    | { status: 200 | 202; outcome: string }
    | { status: number; code: string }
    | { status: 'gave-up'; lastError: string };
}

/** One status read as its shopper saw it in the end (after retries): the order's status and where the API read it. */
export interface ReadRecord {
  orderNo: string;
  status: number | 'gave-up';
  /** Date.now() when the read (its first attempt) was sent. */
  sentAt: number;
  /** The order's status in a 200 answer. */
  orderStatus?: string;
  /** Where the answer came from (`source` of a 200 answer: workflow, database or stores). */
  source?: string;
}

export interface TrafficResult {
  intents: IntentOutcome[];
  events: DeliveredEvent[];
  cancels: Array<{ orderNo: string; status: number | 'gave-up' }>;
  reads: ReadRecord[];
  requests: RequestRecord[];
}

export interface RunningTraffic {
  /** Every purchase intent has its final answer (payments and cancels may still be flowing). */
  checkoutsDone: Promise<void>;
  /** Everything is done: checkouts, payments, cancels. */
  done: Promise<TrafficResult>;
  /** The result as it grows (for a canary that needs an order while the traffic runs). */
  sofar: TrafficResult;
}

/** A fixed mix, by shopper index: most pay, some misbehave, some cancel, some never pay (timeout). */
function kindOf(index: number): PaymentKind | 'none' {
  const mix: Array<PaymentKind | 'none'> = [
    'pay',
    'pay',
    'early',
    'pay-twice',
    'second-event',
    'wrong-amount-then-pay',
    'cancel',
    'late',
    'none',
    'pay',
  ];
  return mix[index % mix.length] ?? 'none';
}

export function runTraffic(plan: TrafficPlan): RunningTraffic {
  const result: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  const followUps: Promise<void>[] = [];
  let next = 0;
  const runId = randomUUID().slice(0, 8);
  const startedAt = Date.now();
  const worker = async () => {
    for (let index = next++; index < plan.shoppers; index = next++) {
      const arrival = startedAt + (index / plan.arrivalsPerSecond) * 1000;
      if (arrival > Date.now()) await sleep(arrival - Date.now());
      const userId = `chaos-${runId}-${index}`;
      // One shopper in four does not retry a checkout that failed (closes the tab): if the API died
      // between the reservation and the start, only the reconciler gives that unit back.
      // One shopper in three uses the waiting checkout (Prefer: wait=5), so both models share the burst.
      const intent = await buy(plan, userId, index % 4 === 3 ? 0 : plan.retryForMs, index % 3 === 0, result);
      result.intents.push(intent);
      if (intent.answer.kind === 'accepted')
        followUps.push(followUp(plan, intent.answer.orderNo, userId, kindOf(index), result));
    }
  };
  const checkoutsDone = Promise.all(Array.from({ length: plan.concurrency }, worker)).then(() => undefined);
  return { checkoutsDone, done: checkoutsDone.then(() => Promise.all(followUps)).then(() => result), sofar: result };
}

/**
 * One shopper's checkout of one unit, retried with the same Idempotency-Key for up to `retryForMs`
 * (0: a single attempt); `waited`: with `Prefer: wait=5`. Its attempts are added to `result.requests`.
 * `idempotencyKey`: an earlier intent's, to ask again (a fresh one by default).
 */
export async function buy(
  plan: TrafficPlan,
  userId: string,
  retryForMs: number,
  waited: boolean,
  result: TrafficResult,
  idempotencyKey = `intent-${randomUUID()}`,
): Promise<IntentOutcome> {
  const token = await plan.tokenFor(userId);
  const call = await retrying({ ...plan, retryForMs }, waited ? 'checkout-wait' : 'checkout', result, (api) =>
    clientFor(api).request('POST', '/api/checkout', {
      headers: {
        authorization: `Bearer ${token}`,
        'idempotency-key': idempotencyKey,
        ...(waited ? { prefer: 'wait=5' } : {}),
      },
      json: { sku: plan.sku, quantity: 1 },
      timeoutMs: 10_000,
    }),
  );
  if (call.status === 'gave-up')
    return {
      userId,
      idempotencyKey,
      answer: { kind: 'gave-up', lastError: call.lastError },
      attempts: call.attempts,
      waited,
    };
  const body = call.body as { orderNo?: string; error?: { code?: string; details?: { orderNo?: string } } };
  // A failed order is still an order the client was told about: its FAILED row must exist.
  const orderNo =
    call.status === 202 || call.status === 201
      ? body.orderNo
      : body.error?.code === 'ORDER_FAILED'
        ? body.error.details?.orderNo
        : undefined;
  const answer: IntentOutcome['answer'] = orderNo
    ? { kind: 'accepted', orderNo, status: call.status }
    : { kind: 'refused', status: call.status, code: body.error?.code ?? 'UNKNOWN' };
  return { userId, idempotencyKey, answer, attempts: call.attempts, waited };
}

/**
 * Every shopper whose checkout was accepted asks again with the same Idempotency-Key, once the sale
 * is quiet (after a failover, a restore): the answer must name the same order. Orders Redis lost
 * with writes it had acknowledged (`lost`) are left out: their keys were lost with them.
 */
export async function sameKeySameOrder(
  plan: TrafficPlan,
  traffic: TrafficResult,
  lost: ReadonlySet<string> = new Set(),
): Promise<SameKeyAnswers> {
  const scratch: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  const mismatches: SameKeyAnswers['mismatches'] = [];
  const accepted = traffic.intents.flatMap((intent) =>
    intent.answer.kind === 'accepted' && !lost.has(intent.answer.orderNo)
      ? [{ intent, orderNo: intent.answer.orderNo }]
      : [],
  );
  for (let i = 0; i < accepted.length; i += 16) {
    await Promise.all(
      accepted.slice(i, i + 16).map(async ({ intent, orderNo }) => {
        const again = await buy(plan, intent.userId, 30_000, false, scratch, intent.idempotencyKey);
        const answered = again.answer.kind === 'accepted' ? again.answer.orderNo : JSON.stringify(again.answer);
        if (answered !== orderNo)
          mismatches.push({ key: intent.idempotencyKey, userId: intent.userId, first: orderNo, now: answered });
      }),
    );
  }
  return { asked: accepted.length, mismatches };
}

/**
 * The shopper reads the order, does what its kind says (pay, misbehave, cancel or nothing), and
 * reads it again; with plan.readUntilPayable, reads it until it is no longer PENDING before acting
 * (an early payer pays first, then reads).
 */
async function followUp(
  plan: TrafficPlan,
  orderNo: string,
  userId: string,
  kind: PaymentKind | 'none',
  result: TrafficResult,
): Promise<void> {
  const polling = plan.readUntilPayable;
  if (polling && kind === 'early') await act(plan, orderNo, userId, kind, result);
  let last = await read(plan, orderNo, userId, result);
  if (polling) {
    const until = Date.now() + polling.forMs;
    while (last.status !== 200 || last.orderStatus === 'PENDING') {
      if (Date.now() + polling.everyMs > until) break;
      await sleep(polling.everyMs);
      last = await read(plan, orderNo, userId, result);
    }
    if (kind === 'early') return;
  }
  if (kind === 'none') return;
  await act(plan, orderNo, userId, kind, result);
  await read(plan, orderNo, userId, result);
}

async function read(plan: TrafficPlan, orderNo: string, userId: string, result: TrafficResult): Promise<ReadRecord> {
  const token = await plan.tokenFor(userId);
  const sentAt = Date.now();
  const call = await retrying(
    plan,
    'read',
    result,
    (api) =>
      clientFor(api).request('GET', `/api/orders/${orderNo}`, {
        headers: { authorization: `Bearer ${token}` },
        timeoutMs: 10_000,
      }),
    orderNo,
  );
  const body = call.status === 200 ? (call.body as { status?: string; source?: string } | undefined) : undefined;
  const record: ReadRecord = {
    orderNo,
    status: call.status,
    sentAt,
    ...(body?.status ? { orderStatus: body.status } : {}),
    ...(body?.source ? { source: body.source } : {}),
  };
  result.reads.push(record);
  return record;
}

/**
 * One payment event, delivered as the provider does: signed anew for each attempt and retried (on
 * either API) until an answer other than a 5xx; its last answer is added to `result.events`.
 */
export async function sendPayment(
  plan: TrafficPlan,
  event: { orderNo: string; eventId: string; amountCents: number; kind: DeliveredEvent['kind'] },
  result: TrafficResult,
): Promise<DeliveredEvent> {
  const { orderNo, eventId, amountCents, kind } = event;
  const body = JSON.stringify({ eventId, type: 'payment.succeeded', orderNo, amountCents });
  // The provider signs each delivery anew (the signature carries its time).
  const call = await retrying(
    plan,
    'webhook',
    result,
    (api) =>
      clientFor(api).request('POST', '/api/payments/webhook', {
        headers: { 'content-type': 'application/json', 'payment-signature': signWebhook(plan.webhookSecret, body) },
        body,
        timeoutMs: 15_000,
      }),
    orderNo,
  );
  const answer: DeliveredEvent['answer'] =
    call.status === 'gave-up'
      ? call
      : call.status === 200 || call.status === 202
        ? { status: call.status, outcome: String((call.body as { outcome?: string }).outcome) }
        : { status: call.status, code: (call.body as { error?: { code?: string } }).error?.code ?? 'UNKNOWN' };
  const delivered: DeliveredEvent = { orderNo, eventId, amountCents, kind, answer };
  result.events.push(delivered);
  return delivered;
}

async function act(
  plan: TrafficPlan,
  orderNo: string,
  userId: string,
  kind: PaymentKind,
  result: TrafficResult,
): Promise<void> {
  const pay = async (eventId: string, amountCents: number) => {
    await sendPayment(plan, { orderNo, eventId, amountCents, kind }, result);
  };
  const event = () => `evt-${orderNo}-${randomUUID().slice(0, 8)}`;
  const price = plan.priceCents;
  switch (kind) {
    case 'early':
      return pay(event(), price); // at once: often before the order is persisted
    case 'pay':
      await sleep(200 + Math.random() * 1_500);
      return pay(event(), price);
    case 'pay-twice': {
      await sleep(300 + Math.random() * 1_000);
      const eventId = event();
      await pay(eventId, price);
      return pay(eventId, price); // the provider's duplicate delivery
    }
    case 'second-event':
      await sleep(300 + Math.random() * 1_000);
      await pay(event(), price);
      return pay(event(), price); // a second, different charge: to be refunded
    case 'wrong-amount-then-pay':
      await sleep(300 + Math.random() * 1_000);
      await pay(event(), price - 1);
      return pay(event(), price);
    case 'late':
      await sleep(plan.paymentWindowMs + 2_000);
      return pay(event(), price); // after the timer fired: to be refunded
    case 'cancel': {
      await sleep(300 + Math.random() * 1_000);
      const token = await plan.tokenFor(userId);
      const call = await retrying(
        plan,
        'cancel',
        result,
        (api) =>
          clientFor(api).request('POST', `/api/orders/${orderNo}/cancel`, {
            headers: { authorization: `Bearer ${token}` },
            timeoutMs: 15_000,
          }),
        orderNo,
      );
      result.cancels.push({ orderNo, status: call.status });
    }
  }
}

type Call =
  { status: number; body: unknown; attempts: number } | { status: 'gave-up'; lastError: string; attempts: number };

/** One attempt as retrying() judges it: an answer (its text parsed as JSON when it has one), or none. */
type Attempt =
  | {
      answered: true;
      sentAt: number;
      ms: number;
      status: number;
      text: string;
      body: unknown;
      jsonError: string | null;
      retryAfterMs: number;
    }
  | { answered: false; sentAt: number; ms: number; outcome: 'timeout' | 'error'; message: string };

/**
 * Sends a request to one API after another until one answers with something other than a 5xx,
 * for at most plan.retryForMs, with backoff (honouring Retry-After up to the backoff's cap): what a
 * well-behaved client or payment provider does. Every attempt is recorded in `result.requests`,
 * with the order it was about (`orderNo`, else the one its answer names) and an error's code.
 * `send` makes the attempt on the API given, through toolkit/http-client.ts.
 */
export async function retrying(
  plan: TrafficPlan,
  kind: RequestKind,
  result: TrafficResult,
  send: (api: string) => Promise<Answer>,
  orderNo?: string,
): Promise<Call> {
  const deadline = Date.now() + plan.retryForMs;
  let attempts = 0;
  let lastError = '';
  for (let delay = 200; ; delay = Math.min(delay * 2, 2_000)) {
    const api = plan.apiUrls[(attempts + Math.floor(Math.random() * plan.apiUrls.length)) % plan.apiUrls.length] ?? '';
    attempts++;
    let pause = delay;
    const attempt = await attemptOn(api, send);
    if (!attempt.answered) {
      result.requests.push({
        kind,
        sentAt: attempt.sentAt,
        ms: attempt.ms,
        outcome: attempt.outcome,
        ...(orderNo ? { orderNo } : {}),
      });
      lastError = attempt.message;
    } else {
      const named = attempt.body as
        { orderNo?: string; error?: { code?: string; details?: { orderNo?: string } } } | undefined;
      const about = orderNo ?? named?.orderNo ?? named?.error?.details?.orderNo;
      result.requests.push({
        kind,
        sentAt: attempt.sentAt,
        ms: attempt.ms,
        outcome: attempt.status,
        ...(named?.error?.code ? { code: named.error.code } : {}),
        ...(about ? { orderNo: about } : {}),
      });
      if (attempt.jsonError !== null) lastError = attempt.jsonError;
      else if (attempt.status < 500) return { status: attempt.status, body: attempt.body, attempts };
      else {
        lastError = `${attempt.status} ${attempt.text.slice(0, 200)}`;
        if (attempt.retryAfterMs > 0) pause = Math.min(Math.max(delay, attempt.retryAfterMs), 2_000);
      }
    }
    if (Date.now() + pause > deadline) return { status: 'gave-up', lastError, attempts };
    await sleep(pause);
  }
}

/**
 * One attempt on `api`, as `send` answered it. A send that throws (a token it could not make) counts as no answer, so
 * that the attempt is recorded and retried.
 */
async function attemptOn(api: string, send: (api: string) => Promise<Answer>): Promise<Attempt> {
  const sentAt = Date.now();
  const started = performance.now();
  let reply: Answer;
  try {
    reply = await send(api);
  } catch (err) {
    return {
      answered: false,
      sentAt,
      ms: performance.now() - started,
      outcome: 'error',
      message:
        err instanceof Error
          ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}`
          : String(err),
    };
  }
  if (reply.failure)
    return {
      answered: false,
      sentAt: reply.sentAt,
      ms: reply.ms,
      outcome: reply.failure.kind === 'timeout' ? 'timeout' : 'error',
      message: reply.failure.message,
    };
  const body = reply.json;
  return {
    answered: true,
    sentAt: reply.sentAt,
    ms: reply.ms,
    status: reply.status,
    text: reply.body,
    body,
    jsonError: reply.body !== '' && body === undefined ? `not JSON: ${reply.body.slice(0, 200)}` : null,
    retryAfterMs: (reply.retryAfter ?? 0) * 1_000,
  };
}
