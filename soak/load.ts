/**
 * The soak's steady load: journeys starting at `rate` a second, each a shopper's through the API as a page makes it.
 * The shoppers come back: a pool of `shoppers`, each with one token for the whole run, as signed-in shoppers keep
 * theirs (the API caches verified tokens by the token: a new one per checkout would be a cache filling for hours).
 *
 *
 *   checkout      POST /api/checkout with an Idempotency-Key; WAIT_SHARE of them with `Prefer: wait=WAIT_SECONDS`
 *   until placed  long-polls (`waitForChange=PENDING`) until AWAITING_PAYMENT
 *   then, by lot  PAY_SHARE pay: after a think time, a status read for the PaymentIntent (reads again until it shows),
 *                 the card confirmed at Stripe (the double, which sends Stripe's signed events to the API), long-polls
 *                 until PAID;
 *                 CANCEL_SHARE cancel after a think time (POST …/cancel), long-poll until CANCELLED;
 *                 the rest read their order once and long-poll until the payment window closes it (CANCELLED)
 *
 * Every answer is recorded by class against its documented deadline (soak/http.ts); an order that does not end as its
 * shopper acted (a paid order not PAID, a checkout refused, …) is counted as amiss, with its reason.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpClient, type Answer, type RequestOptions } from '../toolkit/http-client.js';
import { confirmRequest, paymentIntentOf } from '../toolkit/shopper-requests.js';
import { RequestClass } from './http.js';

export const WAIT_SHARE = 0.2;
export const WAIT_SECONDS = 5;
export const PAY_SHARE = 0.4;
export const CANCEL_SHARE = 0.1;
/** A shopper's token is renewed after this long (tokens are issued for 12 h). */
const TOKEN_RENEWAL_MS = 6 * 3_600_000;
/** The long-polls' timeoutSeconds. */
export const LONG_POLL_SECONDS = 20;

export const REQUEST_CLASSES = [
  'checkout',
  'checkout-wait',
  'read',
  'long-poll',
  'cancel',
  'webhook',
  'stripe-confirm',
] as const;
export type RequestClassName = (typeof REQUEST_CLASSES)[number];

export interface Deadlines {
  checkoutMs: number;
  readMs: number;
  writeMs: number;
  redisMs: number;
}

/**
 * Each class's documented bound (docs/api.md, docs/operations.md): a checkout CHECKOUT_DEADLINE (plus its wait), a
 * read READ_DEADLINE, a long-poll its timeout plus one read, a cancel WRITE_DEADLINE plus its count of cancels (one
 * Redis call), Stripe's webhook its budget check (one Redis call) plus WRITE_DEADLINE, as the fault suite bounds them
 * (chaos/gray.ts). Stripe's own confirm has none of ours.
 */
export function deadlinesOf(d: Deadlines): Record<RequestClassName, number | null> {
  return {
    checkout: d.checkoutMs,
    'checkout-wait': WAIT_SECONDS * 1_000 + d.checkoutMs,
    read: d.readMs,
    'long-poll': LONG_POLL_SECONDS * 1_000 + d.readMs,
    cancel: d.writeMs + d.redisMs,
    webhook: d.redisMs + d.writeMs,
    'stripe-confirm': null,
  };
}

export interface LoadOptions {
  apiUrl: string;
  /** The Stripe double, where shoppers confirm their PaymentIntents. */
  stripeUrl: string;
  stripeSecretKey: string;
  rate: number;
  /** The pool's size: journey n is shopper n modulo it. */
  shoppers: number;
  paymentWindowMs: number;
  deadlines: Deadlines;
  slackMs: number;
  /**
   * Cancels a shopper makes in one sale at most (MAX_CANCELS_PER_SHOPPER - 1: at the limit its next checkout would be
   * refused); a shopper there lets its order time out instead.
   */
  cancelsPerShopperPerSale: number;
  /** Signs a shopper's token. */
  issueToken(userId: string): Promise<string>;
  /** The sale shoppers buy from now. */
  currentSku(): string;
  runId: string;
}

type Fate = 'pay' | 'cancel' | 'timeout';

/** The statuses a journey waits for at its end (the workflow never changes them; Stripe's later events aside). */
const FINAL = new Set(['PAID', 'CANCELLED', 'FAILED', 'DISPUTED', 'REFUNDED']);

interface OrderAnswer {
  orderNo: string;
  status: string;
  cancelReason?: string;
  paymentIntent?: { id: string } | null;
}

/**
 * API requests one checkout brings, on average, by the journey's shares: the checkout, a long-poll until placed (not
 * for a waiting checkout), a payer's read and long-poll, a canceller's cancel and long-poll, a timed-out order's read
 * and long-polls through its window, and Stripe's events at the webhook (created for every intent; charge and intent
 * succeeded for a payment; cancelled otherwise). Sizes the planted leak; the soak reports the measured rate too.
 */
export function apiRequestsPerCheckout(paymentWindowMs: number): number {
  const timeoutShare = 1 - PAY_SHARE - CANCEL_SHARE;
  const webhooks = 1 + PAY_SHARE * 2 + (1 - PAY_SHARE) * 1;
  return (
    1 +
    (1 - WAIT_SHARE) +
    PAY_SHARE * 2 +
    CANCEL_SHARE * 2 +
    timeoutShare * (1 + Math.ceil(paymentWindowMs / (LONG_POLL_SECONDS * 1_000))) +
    webhooks
  );
}

/** How many arrivals are due in total `elapsedMs` into the load: the tick's catch-up, never a burst. */
export function arrivalsDue(elapsedMs: number, rate: number): number {
  return Math.floor((elapsedMs / 1_000) * rate);
}

export class SoakLoad {
  readonly classes: Record<RequestClassName, RequestClass>;
  /** Accepted order numbers (202 or 201) by SKU, for the invariants. */
  readonly acceptedBySku = new Map<string, string[]>();
  accepted = 0;
  started = 0;
  ended = 0;
  /** How journeys ended: `<fate> → <final status>`, or `refused <status> <code>`. */
  readonly endings: Record<string, number> = {};
  amiss = 0;
  /** A few of the amiss journeys, with what happened, for the report. */
  readonly amissExamples: string[] = [];
  private readonly api: HttpClient;
  private readonly stripe: HttpClient;
  private ticker: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly tokens = new Map<number, { token: Promise<string>; issuedAt: number }>();
  /** Cancels per shopper in the current sale. */
  private cancels = { sku: '', byShopper: new Map<number, number>() };

  constructor(private readonly options: LoadOptions) {
    const deadlines = deadlinesOf(options.deadlines);
    this.classes = Object.fromEntries(
      REQUEST_CLASSES.map((name) => [name, new RequestClass(name, deadlines[name], options.slackMs)]),
    ) as Record<RequestClassName, RequestClass>;
    // No connection cap: a long-poll holds its connection for up to LONG_POLL_SECONDS.
    this.api = new HttpClient(options.apiUrl);
    this.stripe = new HttpClient(options.stripeUrl);
  }

  /** Starts the arrivals: checked every 50 ms, each due shopper started at once. */
  start(): void {
    const t0 = Date.now();
    this.ticker = setInterval(() => {
      const due = arrivalsDue(Date.now() - t0, this.options.rate);
      while (this.started < due) this.launch(this.started++);
    }, 50);
  }

  /** No more arrivals; the journeys under way go on. */
  stop(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  get open(): number {
    return this.inFlight.size;
  }

  /** Resolves true once every journey ended, false after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.inFlight.size > 0 && Date.now() < until) await sleep(250);
    return this.inFlight.size === 0;
  }

  close(): void {
    this.stop();
    this.api.close();
    this.stripe.close();
  }

  private launch(n: number): void {
    const journey = this.journey(n)
      .catch((err: unknown) => this.amissBecause(`journey ${n} threw: ${String(err)}`))
      .finally(() => {
        this.ended++;
        this.inFlight.delete(journey);
      });
    this.inFlight.add(journey);
  }

  private end(label: string): void {
    this.endings[label] = (this.endings[label] ?? 0) + 1;
  }

  private amissBecause(what: string): void {
    this.amiss++;
    if (this.amissExamples.length < 20) this.amissExamples.push(what);
  }

  private async journey(n: number): Promise<void> {
    const { runId, paymentWindowMs } = this.options;
    const sku = this.options.currentSku();
    const shopper = n % this.options.shoppers;
    let signed = this.tokens.get(shopper);
    // Signed in again well before the token's 12 h expiry, as a shopper's session is renewed.
    if (!signed || Date.now() - signed.issuedAt > TOKEN_RENEWAL_MS) {
      signed = { token: this.options.issueToken(`soak-${runId}-u${shopper}`), issuedAt: Date.now() };
      this.tokens.set(shopper, signed);
    }
    const token = await signed.token;
    const auth = { authorization: `Bearer ${token}` };
    const waiting = Math.random() < WAIT_SHARE;
    const lot = Math.random();
    let fate: Fate = lot < PAY_SHARE ? 'pay' : lot < PAY_SHARE + CANCEL_SHARE ? 'cancel' : 'timeout';
    if (fate === 'cancel') {
      if (this.cancels.sku !== sku) this.cancels = { sku, byShopper: new Map() };
      const cancelled = this.cancels.byShopper.get(shopper) ?? 0;
      if (cancelled >= this.options.cancelsPerShopperPerSale) fate = 'timeout';
      else this.cancels.byShopper.set(shopper, cancelled + 1);
    }
    // Every journey ends within its window and a margin; past it, it is given up and counted amiss.
    const giveUpAt = Date.now() + paymentWindowMs + 180_000;

    const checkout = await this.call(
      this.api,
      'POST',
      '/api/checkout',
      this.classes[waiting ? 'checkout-wait' : 'checkout'],
      {
        headers: {
          ...auth,
          'idempotency-key': `soak-${runId}-${n}`,
          ...(waiting ? { prefer: `wait=${WAIT_SECONDS}` } : {}),
        },
        json: { sku, quantity: 1 },
      },
    );
    if (checkout.status !== 202 && checkout.status !== 201) {
      const label = `refused ${statusOf(checkout)} ${codeOf(checkout)}`;
      this.end(label);
      this.amissBecause(`checkout ${n}: ${label}`);
      return;
    }
    const placed = checkout.json as OrderAnswer;
    this.accepted++;
    const ofSku = this.acceptedBySku.get(sku) ?? [];
    ofSku.push(placed.orderNo);
    this.acceptedBySku.set(sku, ofSku);
    const path = `/api/orders/${encodeURIComponent(placed.orderNo)}`;

    let order =
      placed.status === 'PENDING'
        ? await this.waitUntil(path, auth, 'PENDING', (status) => status !== 'PENDING', giveUpAt)
        : placed;
    if (!order || order.status !== 'AWAITING_PAYMENT') {
      this.end(`${fate} → ${order?.status ?? 'unfinished'} before payment`);
      this.amissBecause(`${placed.orderNo}: ${order?.status ?? 'still PENDING'} instead of AWAITING_PAYMENT`);
      return;
    }

    let expected: { status: string; reason?: string };
    if (fate === 'pay') {
      await sleep(thinkMs(Math.min(20_000, paymentWindowMs / 3)));
      const intentId = await paymentIntentOf(this.api, path, auth, giveUpAt, this.classes.read);
      if (!intentId) {
        this.end('pay → no PaymentIntent');
        this.amissBecause(`${placed.orderNo}: its PaymentIntent never showed`);
        return;
      }
      const { path: confirmPath, headers, body } = confirmRequest(intentId, this.options.stripeSecretKey);
      const confirm = await this.call(this.stripe, 'POST', confirmPath, this.classes['stripe-confirm'], {
        headers,
        body,
      });
      if (confirm.status !== 200) {
        this.end(`pay → confirm ${statusOf(confirm)}`);
        this.amissBecause(
          `${placed.orderNo}: Stripe's confirm answered ${statusOf(confirm)} ${confirm.body.slice(0, 200)}`,
        );
        return;
      }
      expected = { status: 'PAID' };
    } else if (fate === 'cancel') {
      await sleep(thinkMs(Math.min(15_000, paymentWindowMs / 4)));
      const cancel = await this.call(this.api, 'POST', `${path}/cancel`, this.classes.cancel, { headers: auth });
      if (cancel.status !== 202) {
        this.end(`cancel → ${statusOf(cancel)} ${codeOf(cancel)}`);
        this.amissBecause(`${placed.orderNo}: cancel answered ${statusOf(cancel)} ${cancel.body.slice(0, 200)}`);
        return;
      }
      expected = { status: 'CANCELLED', reason: 'USER_CANCELLED' };
    } else {
      // The page refreshed once, then waits for the window to close.
      const read = await this.call(this.api, 'GET', path, this.classes.read, { headers: auth });
      if (read.status === 200) order = read.json as OrderAnswer;
      expected = { status: 'CANCELLED', reason: 'PAYMENT_TIMEOUT' };
    }
    const final = FINAL.has(order.status)
      ? order
      : await this.waitUntil(path, auth, order.status, (status) => FINAL.has(status), giveUpAt);
    this.end(`${fate} → ${final?.status ?? 'unfinished'}`);
    if (!final || final.status !== expected.status || (expected.reason && final.cancelReason !== expected.reason))
      this.amissBecause(
        `${placed.orderNo} (${fate}): ${final ? `${final.status}${final.cancelReason ? ` ${final.cancelReason}` : ''}` : 'never ended'}, expected ${expected.status}${expected.reason ? ` ${expected.reason}` : ''}`,
      );
  }

  /**
   * One request, its answer recorded in its class. The client gives up after 30 s unless told otherwise (recorded as
   * no answer): well past any deadline, so that a hung server shows as errors rather than a stuck load generator.
   */
  private async call(
    client: HttpClient,
    method: string,
    path: string,
    into: RequestClass,
    options: RequestOptions,
  ): Promise<Answer> {
    const answer = await client.request(method, path, { timeoutMs: 30_000, ...options });
    into.record(answer.failure ? null : answer.status, answer.ms);
    return answer;
  }

  /**
   * Long-polls from the status last seen until `done` accepts the order's status; null once `giveUpAt` passes. A status
   * read from the stores (the workflow slow to answer) may show an earlier status: the wait goes on from it.
   */
  private async waitUntil(
    path: string,
    auth: Record<string, string>,
    seen: string,
    done: (status: string) => boolean,
    giveUpAt: number,
  ): Promise<OrderAnswer | null> {
    let last = seen;
    while (Date.now() < giveUpAt) {
      const answer = await this.call(
        this.api,
        'GET',
        `${path}?waitForChange=${last}&timeoutSeconds=${LONG_POLL_SECONDS}`,
        this.classes['long-poll'],
        { headers: auth, timeoutMs: LONG_POLL_SECONDS * 1_000 + 30_000 },
      );
      if (answer.status === 200) {
        const order = answer.json as OrderAnswer;
        if (done(order.status)) return order;
        last = order.status;
      } else {
        await sleep(1_000); // as Retry-After says (503), or a moment after no answer
      }
    }
    return null;
  }
}

function thinkMs(maxMs: number): number {
  const minMs = Math.min(2_000, maxMs);
  return minMs + Math.random() * (maxMs - minMs);
}

function codeOf(answer: Answer): string {
  return (answer.json as { error?: { code?: string } } | undefined)?.error?.code ?? '';
}

/** The status for a label: the number, or 'no answer'. */
function statusOf(answer: Answer): string {
  return answer.failure ? 'no answer' : String(answer.status);
}
