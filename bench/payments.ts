/**
 * The benchmark's payment phase (`npm run bench`, after ours' burst; `npm run bench -- --line`, after the line's
 * sale): the sale's winners pay within a spread (default: all within 120 s) while the rest of the window runs, the
 * way a sale's shoppers do. Each payment is one signed generic webhook, sent at a random time within the spread,
 * and its shopper's long-poll (`GET /api/orders/:orderNo?waitForChange=AWAITING_PAYMENT`) opened at the same time.
 *
 * It reports what a team sizing its launch asks of the money path:
 *   webhook      the provider's wait: request on the wire → answer (the generator's own queueing not counted); a
 *                5xx is sent again after its Retry-After, as a provider retries;
 *   to PAID      the shopper's wait: the webhook first sent → the long-poll answering PAID;
 *   CPU          API and worker CPU per payment (the webhook, its delivery and the shopper's long-poll), read from
 *                /proc without a profiler attached;
 *   cache        the worker's sticky cache over the phase (hits, misses, forced evictions, size), scraped from its
 *                Prometheus endpoint: a miss is an order replayed from its history to take its payment.
 *
 * With --provider stripe (the servers on PAYMENT_PROVIDER=stripe), each payment is instead its shopper's confirm of the
 * order's PaymentIntent at the Stripe double (the intent read from the order first, as the soak's payers do), and:
 *   webhook      the API's answer to each of the double's deliveries (every event type), timed by the tap in front of
 *                it (stack/webhook-tap.ts); the double retries a failed one on its own schedule;
 *   to PAID      the confirm sent → the long-poll answering PAID;
 *   confirm      the double's answer to the confirm (request on the wire → answer).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { parseCacheCounters, STICKY_CACHE_METRICS, type CacheCounters } from '../src/workers/cache-figures.js';
import type { Stores } from '../src/db/stores.js';
import type { RedisInventory } from '../src/redis/inventory.js';
import { HttpClient, type Answer } from '../toolkit/http-client.js';
import { confirmRequest, paymentIntentOf } from '../toolkit/shopper-requests.js';
import type { TappedDelivery } from '../stack/webhook-tap.js';
import type { BenchProvider } from './args.js';
import type { TemporalLogErrors } from './temporal-log.js';
import { describeEventsDelivery, type EventsDeliveryFigures } from './events-receiver.js';
import type { InternalErrorLogged } from '../stack/internal-errors.js';
import { Scheduler } from './line-client.js';
import { requestsPerPayment, scrapeTemporalRequests, type TemporalRequests } from './temporal-requests.js';
import { pct, round, sorted } from './stats.js';

/** An order awaiting payment, as the phase pays it: its shopper reads it, the webhook pays its total. */
export interface PayingOrder {
  orderNo: string;
  userId: string;
  totalCents: number;
}

export interface PaymentPhaseOptions {
  url: string;
  orders: readonly PayingOrder[];
  /** Every payment is sent at a uniformly random time within this many ms of the phase's start. */
  withinMs: number;
  webhookSecret: string;
  /** A bearer token of the shopper `userId` (their long-poll). */
  tokenOf: (userId: string) => Promise<string>;
  /** Names the webhook events of this run. */
  runId: string;
  /** The worker's Prometheus endpoint: its cache figures (of `taskQueue`) before and after the phase. */
  workerMetricsUrl?: string;
  taskQueue: string;
  /** Temporal's own Prometheus endpoint and the app's namespace: its requests by operation over the phase. */
  temporal?: { metricsUrl: string; namespace: string };
  /** CPU seconds so far per process (the benchmark's snapshot). */
  cpuSeconds: () => Record<string, number>;
  /** Resident memory in MB per process now: read at the phase's start (every order open) and end. */
  rssMb?: () => Record<string, number>;
  /** The soak's probe in the worker (BENCH_WORKER_PROBE_PORT): its heaps after a forced GC, every order open. */
  workerProbeUrl?: string;
  /** Connections for the webhooks (the provider's concurrency; Stripe: the confirms'); the long-polls get one each. */
  webhookConnections?: number;
  /** Pays through Stripe (the servers on PAYMENT_PROVIDER=stripe) instead of the generic webhook. */
  stripe?: StripePayments;
  /**
   * The sale's paid units as MySQL and Redis count them, and its order workflows still running: once the shoppers are
   * done, the phase waits (SETTLE_PATIENCE_MS at most) until every payment is PAID in MySQL, and then until it is sold
   * in Redis with no order's workflow running (each closed its order), and times both.
   */
  settling?: () => Promise<Settling>;
  say: (line: string) => void;
}

/** The Stripe double as the phase uses it (bench/processes.ts, startStripeProvider). */
export interface StripePayments {
  /** Where shoppers confirm their PaymentIntents. */
  url: string;
  secretKey: string;
  /** Gets every delivery of the double the API answered, from now on; undefined: stops. */
  observe: (sink: ((delivery: TappedDelivery) => void) | undefined) => void;
}

export interface LatencyFigures {
  count: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface CacheFigures {
  hits: number;
  misses: number;
  /** hits / (hits + misses) over the phase; null without a workflow task. */
  hitRate: number | null;
  forcedEvictions: number;
  sizeBefore: number | null;
  sizeAfter: number | null;
}

export interface PaymentPhaseResult {
  /** How the orders were paid; absent in results written before --provider: generic. */
  provider?: BenchProvider;
  payments: number;
  withinSeconds: number;
  /** What was offered (payments / spread) and what the generator achieved (first to last webhook, or confirm, sent). */
  offeredPerSecond: number;
  sentPerSecond: number;
  /** When the last webhook (Stripe: confirm) was sent, epoch ms. */
  lastSentAtMs?: number;
  webhook: LatencyFigures;
  /**
   * Webhook answers by `<status> <outcome or code>` (e.g. `200 APPLIED`, `202 RECEIVED`); Stripe's by
   * `<status> <event type> <outcome or code>` (e.g. `200 payment_intent.succeeded APPLIED`).
   */
  webhookAnswers: Record<string, number>;
  /** Webhooks sent again after a 5xx or no answer, as the provider retries (Stripe: an event delivered again). */
  webhooksResent: number;
  /**
   * The shoppers' long-poll answers by `<status> <order status or error code>` (e.g. `200 PAID`, `503 UNAVAILABLE`):
   * a refusal costs its shopper the Retry-After. Absent in older results.
   */
  pollAnswers?: Record<string, number>;
  toPaid: LatencyFigures;
  /** Stripe: the double's answers to the shoppers' confirms, and their count by status. */
  confirm?: LatencyFigures;
  confirmAnswers?: Record<string, number>;
  /** Stripe: orders whose PaymentIntent never showed in their reads (not confirmed; counted not PAID). */
  withoutIntent?: number;
  /** Orders not read PAID within the phase's patience (60 s after their webhook). */
  notPaid: number;
  /** CPU milliseconds per payment, per process, over the whole phase (until the last order read PAID). */
  cpuMsPerPayment: Record<string, number>;
  /**
   * The same until every paid order's workflow had closed it (none running, every unit sold in Redis), the work its
   * workflow does after its shopper reads PAID included; absent without `settling`, or in older results.
   */
  cpuMsPerPaymentToClose?: Record<string, number>;
  /**
   * Requests to Temporal's frontend per payment over the same span, by operation, as the server counted them (its
   * `service_requests`): what each payment costs Temporal. Absent without Temporal's metrics, or in older results.
   */
  temporalRequestsPerPayment?: TemporalRequests;
  cache: CacheFigures | null;
  /** Resident memory per process (MB) when the phase began, every order still open, and when it ended. */
  rssMbAtStart?: Record<string, number>;
  rssMbAtEnd?: Record<string, number>;
  /** The worker's heaps after a forced GC at the phase's start (MB): its main isolate and its workflow thread's. */
  workerHeapMbAtStart?: WorkerHeaps;
  /** The same at the phase's end, every paid order closed and so out of the cache. */
  workerHeapMbAtEnd?: WorkerHeaps;
  /**
   * The workflow threads' heap over the orders cached, at the phase's start, in KB: what one cached order costs the
   * worker at most (the threads' own baseline, ~10-20 MB, counted in).
   */
  workerHeapKbPerCachedOrder?: number;
  /**
   * Seconds from the last webhook (Stripe: confirm) sent until MySQL held every paid order as PAID (nothing lost,
   * however late its shopper would have read it); null: not within SETTLE_PATIENCE_MS. Absent in older results.
   */
  allPaidAfterSeconds?: number | null;
  /**
   * The same until Redis counted every paid order's unit sold: each order's workflow had closed it (confirmed its
   * reservation). Absent in older results.
   */
  allClosedAfterSeconds?: number | null;
  /** What Temporal's dev server logged at error level during the phase (absent on the cluster and in older results). */
  temporalLog?: TemporalLogErrors;
  /** --events-receiver's run: what the subscribed receiver got, and the delivery's Temporal work per order. */
  events?: EventsDeliveryFigures;
  /** What the API logged of each 500 it answered during the phase. */
  internalErrors?: InternalErrorLogged[];
  /** What went wrong beside the figures (paymentPhaseFaults); the run failed for it. */
  faults?: string[];
}

export interface WorkerHeaps {
  main: number;
  workflowThreads: number[];
}

/** How long a shopper waits for PAID after the webhook before the phase counts the order as not paid. */
const PAID_PATIENCE_MS = 60_000;
/** The long-poll's own bound (docs/api.md: 1..25 s); re-opened until PAID or the patience ends. */
const LONG_POLL_SECONDS = 25;
/** Stripe: orders whose intent is read at once before the phase (each reader re-reads its order every 2 s). */
const INTENT_READERS = 32;
/** Stripe: the double's deliveries are over once none was answered for this long (at most DELIVERIES_PATIENCE_MS). */
const DELIVERIES_QUIET_MS = 1_000;
const DELIVERIES_PATIENCE_MS = 15_000;

/** Every order of `sku` awaiting payment, with its shopper (a page at a time). */
export async function awaitingOrders(stores: Stores, sku: string): Promise<PayingOrder[]> {
  const orders: PayingOrder[] = [];
  let beforeOrderNo: string | undefined;
  for (;;) {
    const page = await stores.reports.ordersPage({
      sku,
      status: 'AWAITING_PAYMENT',
      limit: 1_000,
      ...(beforeOrderNo ? { beforeOrderNo } : {}),
    });
    for (const row of page) orders.push({ orderNo: row.orderNo, userId: row.userId, totalCents: row.totalCents });
    if (page.length < 1_000) return orders;
    beforeOrderNo = page[page.length - 1]!.orderNo;
  }
}

export function latencyFigures(values: number[]): LatencyFigures {
  const s = sorted(values);
  return {
    count: values.length,
    p50Ms: round(pct(s, 50)),
    p90Ms: round(pct(s, 90)),
    p99Ms: round(pct(s, 99)),
    maxMs: round(pct(s, 100)),
  };
}

/** The worker's sticky cache in one scrape of its metrics: the counters (src/workers/cache-figures.ts) and the size. */
export function cacheReading(metricsText: string, taskQueue: string): CacheCounters & { size: number } {
  const size = new RegExp(`^${STICKY_CACHE_METRICS.size}\\{[^}]*task_queue="${taskQueue}"[^}]*\\}\\s+(\\S+)`, 'm').exec(
    metricsText,
  );
  return { ...parseCacheCounters(metricsText, taskQueue), size: Number(size?.[1] ?? NaN) };
}

async function scrapeCache(
  url: string | undefined,
  taskQueue: string,
): Promise<ReturnType<typeof cacheReading> | null> {
  if (!url) return null;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return response.ok ? cacheReading(await response.text(), taskQueue) : null;
  } catch {
    return null;
  }
}

async function probeHeaps(url: string | undefined): Promise<WorkerHeaps | undefined> {
  if (!url) return undefined;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const answer = (await response.json()) as { heapUsed: number; threadsHeapUsed: number[] };
    const mb = (bytes: number) => round(bytes / 1_048_576, 1);
    return { main: mb(answer.heapUsed), workflowThreads: answer.threadsHeapUsed.map(mb) };
  } catch {
    return undefined;
  }
}

/** Runs the phase: every order paid once, at its random time within the spread, and read until PAID. */
export async function payWithinSpread(options: PaymentPhaseOptions): Promise<PaymentPhaseResult> {
  const { url, orders, withinMs, webhookSecret, runId, say, stripe } = options;
  const n = orders.length;
  // Tokens first: signing 15,000 of them must not run inside the measured phase.
  const tokens = await Promise.all(orders.map((order) => options.tokenOf(order.userId)));
  // Stripe: each order's PaymentIntent before the phase too (the workflows open them at the servers' Stripe rate).
  const intents = stripe ? await intentsOf(url, orders, tokens, say) : [];
  const webhooks = new HttpClient(url, { connections: options.webhookConnections ?? 128, timeoutMs: 30_000 });
  const confirms = stripe
    ? new HttpClient(stripe.url, { connections: options.webhookConnections ?? 128, timeoutMs: 30_000 })
    : undefined;
  // One connection per shopper waiting: a long-poll holds its connection until the order changes.
  const polls = new HttpClient(url, { connections: Math.min(4_096, n), timeoutMs: (LONG_POLL_SECONDS + 10) * 1_000 });
  const webhookMs: number[] = [];
  const toPaidMs: number[] = [];
  const confirmMs: number[] = [];
  const answers: Record<string, number> = {};
  const pollAnswers: Record<string, number> = {};
  const confirmAnswers: Record<string, number> = {};
  let notPaid = 0;
  let resent = 0;
  let finished = 0;
  let firstSentAt = Number.POSITIVE_INFINITY;
  let lastSentAt = 0;
  let allDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const finish = () => {
    if (++finished === n) allDone();
  };

  // Stripe: the double's deliveries as the tap times them; those of earlier orders (their intents' creation) before
  // the phase are waited out, not counted.
  let measuring = false;
  let lastDeliveryAt = Date.now();
  const eventsSeen = new Set<string>();
  stripe?.observe((delivery) => {
    lastDeliveryAt = Date.now();
    if (!measuring) return;
    webhookMs.push(delivery.ms);
    const event = eventOf(delivery.event);
    if (eventsSeen.has(event.id)) resent++;
    else eventsSeen.add(event.id);
    const outcome = delivery.status === null ? 'NO_ANSWER' : outcomeOf(delivery.answer);
    const key = `${delivery.status ?? 0} ${event.type} ${outcome}`;
    answers[key] = (answers[key] ?? 0) + 1;
  });
  const deliveriesQuiet = async () => {
    const until = Date.now() + DELIVERIES_PATIENCE_MS;
    while (Date.now() - lastDeliveryAt < DELIVERIES_QUIET_MS && Date.now() < until) await sleep(100);
  };
  if (stripe) await deliveriesQuiet();

  const cacheBefore = await scrapeCache(options.workerMetricsUrl, options.taskQueue);
  const temporalBefore = await scrapeTemporalRequests(options.temporal?.metricsUrl, options.temporal?.namespace ?? '');
  const rssMbAtStart = options.rssMb?.();
  const workerHeapMbAtStart = await probeHeaps(options.workerProbeUrl);
  const cpuBefore = options.cpuSeconds();
  const startedAt = Date.now();
  measuring = true;
  say(
    `payment phase: ${n} payments${stripe ? ' through Stripe' : ''} within ${(withinMs / 1_000).toFixed(0)} s ` +
      `(${fmtRate(n, withinMs)}/s offered)`,
  );

  /**
   * One shopper's wait for PAID: its long-poll until PAID (pollUntilPaid), timed from its payment's first send; counted
   * once both the poll and the payment's sending are over. `over(false)`: nothing to wait for, the poll stops.
   */
  const journey = (i: number) => {
    const order = orders[i]!;
    const auth = { authorization: `Bearer ${tokens[i]!}` };
    const pollPath = `/api/orders/${order.orderNo}?waitForChange=AWAITING_PAYMENT&timeoutSeconds=${LONG_POLL_SECONDS}`;
    let sentAt: number | undefined;
    let paidAt: number | undefined;
    let pollsOver = false;
    let sendOver = false;
    let givesUpAt = Date.now() + PAID_PATIENCE_MS;
    const settle = () => {
      if (!pollsOver || !sendOver) return;
      if (paidAt !== undefined && sentAt !== undefined) toPaidMs.push(Math.max(0, paidAt - sentAt));
      else notPaid++;
      finish();
    };
    pollUntilPaid(
      polls,
      pollPath,
      auth,
      () => givesUpAt,
      (at) => {
        paidAt = at;
        pollsOver = true;
        settle();
      },
      pollAnswers,
    );
    return {
      givesUpAt: () => givesUpAt,
      sent(answer: Answer) {
        sentAt ??= answer.sentAt;
        firstSentAt = Math.min(firstSentAt, answer.sentAt);
        lastSentAt = Math.max(lastSentAt, answer.sentAt);
      },
      over(paying: boolean) {
        if (!paying) givesUpAt = 0;
        sendOver = true;
        settle();
      },
    };
  };

  const pay = (i: number) => {
    const order = orders[i]!;
    const body = JSON.stringify({
      eventId: `evt_bench_${runId}_${order.orderNo}`,
      type: 'payment.succeeded',
      orderNo: order.orderNo,
      amountCents: order.totalCents,
    });
    const headers = {
      'content-type': 'application/json',
      'payment-signature': signWebhook(webhookSecret, body),
    };
    const shopper = journey(i);
    // A 5xx or no answer is the provider's cue to send it again (here after Retry-After, 1 s by default): the
    // payment counts from its first send, each answer's latency on its own.
    const sendWebhook = () =>
      webhooks.send('POST', '/api/payments/webhook', headers, body, (answer: Answer) => {
        shopper.sent(answer);
        webhookMs.push(answer.doneAt - answer.sentAt);
        const key = `${answer.status} ${answer.status === 0 ? 'NO_ANSWER' : outcomeOf(answer.body)}`;
        answers[key] = (answers[key] ?? 0) + 1;
        if ((answer.status === 0 || answer.status >= 500) && Date.now() < shopper.givesUpAt()) {
          resent++;
          setTimeout(sendWebhook, (answer.retryAfter ?? 1) * 1_000);
          return;
        }
        shopper.over(true);
      });
    sendWebhook();
  };

  /** Stripe: the shopper confirms at the double, which pays the intent and sends its events to the API. */
  const confirm = (i: number, pool: HttpClient, secretKey: string) => {
    const intentId = intents[i];
    if (!intentId) {
      notPaid++;
      finish();
      return;
    }
    const request = confirmRequest(intentId, secretKey);
    const shopper = journey(i);
    pool.send('POST', request.path, request.headers, request.body, (answer: Answer) => {
      shopper.sent(answer);
      confirmMs.push(answer.doneAt - answer.sentAt);
      const key = answer.status === 0 ? '0 NO_ANSWER' : String(answer.status);
      confirmAnswers[key] = (confirmAnswers[key] ?? 0) + 1;
      // Not confirmed, nothing to wait for: the shopper's long-poll stops at its next answer. Not sent again: a
      // shopper's browser does not retry a confirm.
      shopper.over(answer.status === 200);
    });
  };

  const scheduler = new Scheduler(n, (i) => (stripe && confirms ? confirm(i, confirms, stripe.secretKey) : pay(i)));
  for (let i = 0; i < n; i++) scheduler.schedule(startedAt + Math.random() * withinMs, i);
  const progress = setInterval(
    () =>
      say(
        stripe
          ? `  payments: ${confirmMs.length}/${n} confirmed, ${webhookMs.length} webhooks answered, ` +
              `${toPaidMs.length} read PAID, ${polls.busy} waiting`
          : `  payments: ${webhookMs.length}/${n} answered, ${toPaidMs.length} read PAID, ${polls.busy} waiting`,
      ),
    10_000,
  );
  try {
    if (n > 0) await done;
    // Stripe: the payments' last events (a charge's after its intent's) are the phase's too.
    if (stripe) await deliveriesQuiet();
  } finally {
    clearInterval(progress);
    scheduler.stop();
    webhooks.close();
    confirms?.close();
    polls.close();
    stripe?.observe(undefined);
  }
  const cpuAfter = options.cpuSeconds();
  const rssMbAtEnd = options.rssMb?.();
  const workerHeapMbAtEnd = await probeHeaps(options.workerProbeUrl);
  const cacheAfter = await scrapeCache(options.workerMetricsUrl, options.taskQueue);
  const settled = options.settling
    ? await settle(options.settling, n - intents.filter((intentId) => intentId === null).length, lastSentAt)
    : undefined;
  const temporalAfter = await scrapeTemporalRequests(options.temporal?.metricsUrl, options.temporal?.namespace ?? '');
  const perPayment = (after: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(after).map(([name, seconds]) => [
        name,
        round(n === 0 ? 0 : ((seconds - (cpuBefore[name] ?? 0)) * 1_000) / n, 2),
      ]),
    );
  const cpuMsPerPayment = perPayment(cpuAfter);
  let cache: CacheFigures | null = null;
  if (cacheBefore && cacheAfter) {
    const hits = cacheAfter.hits - cacheBefore.hits;
    const misses = cacheAfter.misses - cacheBefore.misses;
    cache = {
      hits,
      misses,
      hitRate: hits + misses === 0 ? null : round(hits / (hits + misses), 3),
      forcedEvictions: cacheAfter.forcedEvictions - cacheBefore.forcedEvictions,
      sizeBefore: cacheBefore.size,
      sizeAfter: cacheAfter.size,
    };
  }
  return {
    provider: stripe ? 'stripe' : 'generic',
    payments: n,
    withinSeconds: withinMs / 1_000,
    offeredPerSecond: round(n / (withinMs / 1_000), 1),
    sentPerSecond: round(n <= 1 ? n : ((n - 1) * 1_000) / Math.max(1, lastSentAt - firstSentAt), 1),
    lastSentAtMs: lastSentAt,
    webhook: latencyFigures(webhookMs),
    webhookAnswers: answers,
    webhooksResent: resent,
    pollAnswers,
    toPaid: latencyFigures(toPaidMs),
    ...(stripe
      ? {
          confirm: latencyFigures(confirmMs),
          confirmAnswers,
          withoutIntent: intents.filter((intentId) => intentId === null).length,
        }
      : {}),
    notPaid,
    cpuMsPerPayment,
    ...(settled
      ? {
          allPaidAfterSeconds: settled.paidAfterSeconds,
          allClosedAfterSeconds: settled.closedAfterSeconds,
          cpuMsPerPaymentToClose: perPayment(options.cpuSeconds()),
        }
      : {}),
    ...(temporalBefore && temporalAfter
      ? { temporalRequestsPerPayment: requestsPerPayment(temporalBefore, temporalAfter, n) }
      : {}),
    cache,
    ...(rssMbAtStart ? { rssMbAtStart } : {}),
    ...(workerHeapMbAtStart ? { workerHeapMbAtStart } : {}),
    ...(rssMbAtEnd ? { rssMbAtEnd } : {}),
    ...(workerHeapMbAtEnd ? { workerHeapMbAtEnd } : {}),
    ...(workerHeapMbAtStart && cacheBefore?.size
      ? { workerHeapKbPerCachedOrder: kbPerOrder(workerHeapMbAtStart, cacheBefore.size) }
      : {}),
  };
}

/**
 * The shopper's long-poll until PAID: opened again at its bound (still awaiting payment) or after a refusal's
 * Retry-After, until `givesUpAt()`; `over` gets when PAID was read, or undefined.
 */
function pollUntilPaid(
  polls: HttpClient,
  path: string,
  auth: Record<string, string>,
  givesUpAt: () => number,
  over: (paidAt: number | undefined) => void,
  answers: Record<string, number>,
): void {
  const poll = () =>
    polls.send('GET', path, auth, undefined, (answer: Answer) => {
      const key = `${answer.status} ${answer.status === 0 ? 'NO_ANSWER' : (statusOf(answer.body) ?? outcomeOf(answer.body))}`;
      answers[key] = (answers[key] ?? 0) + 1;
      if (answer.status === 200 && statusOf(answer.body) === 'PAID') return over(answer.doneAt);
      if (Date.now() < givesUpAt()) {
        // Still awaiting payment (the long-poll's bound), or refused for a moment (503 with Retry-After): again.
        if (answer.status === 200) return poll();
        setTimeout(poll, (answer.retryAfter ?? 1) * 1_000);
        return;
      }
      over(undefined);
    });
  poll();
}

/**
 * Stripe: each order's PaymentIntent id as its shopper's page reads it (paymentIntentOf), INTENT_READERS orders at a
 * time; null for one that never showed. Patience: a minute, plus 20 ms an order (half the 100/s the
 * servers may call Stripe at: bench/processes.ts).
 */
async function intentsOf(
  url: string,
  orders: readonly PayingOrder[],
  tokens: readonly string[],
  say: (line: string) => void,
): Promise<Array<string | null>> {
  const api = new HttpClient(url);
  const intents: Array<string | null> = orders.map(() => null);
  const giveUpAt = Date.now() + 60_000 + orders.length * 20;
  const startedAt = Date.now();
  let next = 0;
  const reader = async () => {
    while (next < orders.length) {
      const i = next++;
      const path = `/api/orders/${encodeURIComponent(orders[i]!.orderNo)}`;
      intents[i] = await paymentIntentOf(api, path, { authorization: `Bearer ${tokens[i]!}` }, giveUpAt);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(INTENT_READERS, orders.length) }, reader));
  } finally {
    api.close();
  }
  const missing = intents.filter((intentId) => intentId === null).length;
  say(
    `payment phase: ${orders.length - missing} PaymentIntents read ` +
      `in ${((Date.now() - startedAt) / 1_000).toFixed(1)} s` +
      (missing > 0 ? `; ${missing} never showed (not confirmed, counted not PAID)` : ''),
  );
  return intents;
}

const kbPerOrder = (heaps: WorkerHeaps, cached: number) =>
  round((heaps.workflowThreads.reduce((sum, mb) => sum + mb, 0) * 1_024) / cached, 1);

/** How long after the last payment the benchmark waits for every paid order to be PAID in MySQL. */
const SETTLE_PATIENCE_MS = 10 * 60_000;

/**
 * Waits until the sale counts `paid` units PAID in MySQL and sold in Redis (each one's workflow closed its order), at
 * most SETTLE_PATIENCE_MS: seconds from `lastSentAt` until each, null for one not reached. Payments answered 202 are
 * delivered by the API's owner loop, and those judged as they were recorded are told to their workflows by it: this
 * is when the last of them landed.
 */
async function settle(
  settling: () => Promise<Settling>,
  paid: number,
  lastSentAt: number,
): Promise<{ paidAfterSeconds: number | null; closedAfterSeconds: number | null }> {
  const giveUpAt = Date.now() + SETTLE_PATIENCE_MS;
  const since = () => round(Math.max(0, Date.now() - lastSentAt) / 1_000, 1);
  let paidAfterSeconds: number | null = null;
  for (;;) {
    const { paidInMysql, soldInRedis, runningWorkflows } = await settling().catch(() => ({
      paidInMysql: 0,
      soldInRedis: 0,
      runningWorkflows: Infinity,
    }));
    if (paidAfterSeconds === null && paidInMysql >= paid) paidAfterSeconds = since();
    if (paidAfterSeconds !== null && soldInRedis >= paid && runningWorkflows === 0)
      return { paidAfterSeconds, closedAfterSeconds: since() };
    if (Date.now() > giveUpAt) return { paidAfterSeconds, closedAfterSeconds: null };
    await sleep(1_000);
  }
}

/** What the phase waits for once the shoppers are done. */
export interface Settling {
  paidInMysql: number;
  soldInRedis: number;
  /** The sale's order workflows still running (visibility: a moment behind). */
  runningWorkflows: number;
}

/**
 * What went wrong in the phase, beside its figures (each fails the run): a webhook answered 5xx (a provider refused,
 * which only an unrecorded payment may be), an order not read PAID, the money not all PAID in MySQL, the orders not all
 * closed by their workflows, Temporal's server logging errors.
 */
export function paymentPhaseFaults(result: PaymentPhaseResult): string[] {
  const faults: string[] = [];
  const refused = Object.entries(result.webhookAnswers)
    .filter(([key]) => /^5\d\d /.test(key) || key.startsWith('0 '))
    .reduce((sum, [, count]) => sum + count, 0);
  if (refused > 0) faults.push(`${refused} webhooks answered 5xx or not at all`);
  if (result.notPaid > 0) faults.push(`${result.notPaid} orders never read PAID`);
  if (result.allPaidAfterSeconds === null) faults.push('not every payment PAID in MySQL');
  if (result.allClosedAfterSeconds === null) faults.push('not every order closed by its workflow');
  if (result.temporalLog && result.temporalLog.errors + result.temporalLog.sqliteInterrupted > 0)
    faults.push(`Temporal's server logged ${result.temporalLog.errors + result.temporalLog.sqliteInterrupted} errors`);
  return faults;
}

/** One line of the phase's figures, for the benchmark's log. */
export function describePaymentPhase(result: PaymentPhaseResult): string {
  const { webhook, toPaid, cache, confirm } = result;
  return (
    `${result.payments} payments at ${result.sentPerSecond}/s: ` +
    (confirm
      ? `through Stripe, confirm p50 ${confirm.p50Ms} / p99 ${confirm.p99Ms} ms (${Object.entries(
          result.confirmAnswers ?? {},
        )
          .map(([key, count]) => `${key} ${count}`)
          .join(', ')}), ${result.withoutIntent ?? 0} without an intent; `
      : '') +
    `webhook p50 ${webhook.p50Ms} / p99 ${webhook.p99Ms} ms ` +
    `(${Object.entries(result.webhookAnswers)
      .map(([key, count]) => `${key} ${count}`)
      .join(', ')}); PAID p50 ${toPaid.p50Ms} / p99 ${toPaid.p99Ms} ms, ${result.notPaid} not PAID` +
    (result.pollAnswers
      ? ` (long-polls: ${Object.entries(result.pollAnswers)
          .map(([key, count]) => `${key} ${count}`)
          .join(', ')})`
      : '') +
    '; ' +
    `CPU ms per payment ${Object.entries(result.cpuMsPerPayment)
      .map(([name, ms]) => `${name} ${ms}`)
      .join(', ')}` +
    (cache
      ? `; cache hit rate ${cache.hitRate ?? '—'} (${cache.hits} hits, ${cache.misses} misses, ${cache.forcedEvictions} evicted, size ${cache.sizeBefore} → ${cache.sizeAfter})`
      : '') +
    (result.workerHeapKbPerCachedOrder === undefined
      ? ''
      : `; workflow threads' heap ${result.workerHeapKbPerCachedOrder} KB per cached order (after a GC)`) +
    (result.allPaidAfterSeconds === undefined
      ? ''
      : result.allPaidAfterSeconds === null
        ? `; NOT all PAID in MySQL ${SETTLE_PATIENCE_MS / 60_000} min after the last payment`
        : `; all PAID in MySQL ${result.allPaidAfterSeconds} s after the last payment was sent`) +
    (result.allClosedAfterSeconds === undefined
      ? ''
      : result.allClosedAfterSeconds === null
        ? `; NOT all closed by their workflows ${SETTLE_PATIENCE_MS / 60_000} min after the last payment`
        : `; all closed by their workflows after ${result.allClosedAfterSeconds} s, CPU ms per payment until then ` +
          Object.entries(result.cpuMsPerPaymentToClose ?? {})
            .map(([name, ms]) => `${name} ${ms}`)
            .join(', ')) +
    (result.temporalRequestsPerPayment
      ? `; Temporal requests per payment ${Object.entries(result.temporalRequestsPerPayment)
          .map(([operation, count]) => `${operation} ${count}`)
          .join(', ')}`
      : '') +
    (result.temporalLog && result.temporalLog.errors + result.temporalLog.sqliteInterrupted > 0
      ? `; Temporal's dev server logged ${result.temporalLog.errors} errors` +
        (result.temporalLog.sqliteInterrupted > 0
          ? ` and ${result.temporalLog.sqliteInterrupted} 'interrupted (9)': its SQLite wedged, NOT COMPARABLE`
          : '') +
        ` (${Object.entries(result.temporalLog.kinds ?? {})
          .map(([kind, { count }]) => `${count} × ${kind}`)
          .join('; ')})`
      : '') +
    (result.events ? `; ${describeEventsDelivery(result.events)}` : '') +
    (result.internalErrors
      ? `; 500s logged: ${result.internalErrors.map((e) => `${e.method} ${e.path}: ${e.error} at ${e.stack?.[0] ?? '?'}`).join(' | ')}`
      : '')
  );
}

const fmtRate = (n: number, ms: number) => (n / (ms / 1_000)).toFixed(1);

function statusOf(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { status?: string }).status;
  } catch {
    return undefined;
  }
}

/** A Stripe event's id and type, from the body the double delivered. */
function eventOf(body: string): { id: string; type: string } {
  try {
    const parsed = JSON.parse(body) as { id?: string; type?: string };
    return { id: parsed.id ?? '?', type: parsed.type ?? '?' };
  } catch {
    return { id: '?', type: '?' };
  }
}

function outcomeOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { outcome?: string; error?: { code?: string }; code?: string };
    return parsed.outcome ?? parsed.error?.code ?? parsed.code ?? '?';
  } catch {
    return '?';
  }
}

/** The sale's paid units in MySQL and Redis, and its running order workflows (PaymentPhaseOptions.settling). */
export function saleSettling(
  stores: Stores,
  inventory: RedisInventory,
  sku: string,
  runningWorkflows: (sku: string) => Promise<number>,
): () => Promise<Settling> {
  return async () => {
    const [figures, sale, running] = await Promise.all([
      stores.reports.saleStockFigures(sku),
      inventory.getSale(sku),
      runningWorkflows(sku),
    ]);
    return { paidInMysql: figures?.units.PAID ?? 0, soldInRedis: sale?.sold ?? 0, runningWorkflows: running };
  };
}
