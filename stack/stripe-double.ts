/**
 * A stateful Stripe test double (stack/stripe-double.md): a loopback HTTP server in front of stripe-mock.
 *
 * stripe-mock knows Stripe's OpenAPI spec but keeps no state: it accepts every cancel, forgets
 * idempotency keys, never sends an event. Every request here is first forwarded to it, so Stripe's
 * parameter validation stays Stripe's own; its 2xx body is then the shape template that this double
 * overwrites with what it keeps: PaymentIntents, their charges, refunds, disputes, idempotent results,
 * events and their signed webhook deliveries. Endpoints it does not model are relayed as stripe-mock answers.
 *
 * On top, the faults a test needs: 5xx answers (before or after the side effect), requests that never
 * answer, Stripe's test-mode rate limit, and a webhook endpoint that gets events late, twice or out of order.
 */
import { createHmac, randomBytes } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type Stripe from 'stripe';

/** The version events are stamped with: the one the adapter pins (src/payments/providers/stripe/api.ts). */
export const STRIPE_DOUBLE_API_VERSION = '2026-10-28.endive';
/** The double's own test token: a bank debit that stays `processing` until settleProcessing() says how it ends. */
export const PROCESSING_PAYMENT_METHOD = 'pm_usBankAccount_processing';
/** Stripe keeps an idempotent result for 24 hours. */
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Test mode's limit: 25 requests per second. */
const TEST_MODE_RATE_LIMIT = 25;
/** Stripe retries for three days with exponential backoff; the same curve, in seconds, for tests. */
const DEFAULT_RETRY_SCHEDULE_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;

export type IntentOutcome = 'succeeded' | 'processing' | 'declined';
export type SettleOutcome = 'succeeded' | 'failed';
export type DisputeOutcome = 'won' | 'lost';

/** What the cardholder's bank disputes; unset: the whole charge, as `fraudulent`, due in Stripe's usual 7 days. */
export interface DisputeOptions {
  reason?: string;
  amount?: number;
  /** From now until `evidence_details.due_by`. */
  dueInMs?: number;
}

/** One request the double answered (or is still holding), as a test reads it. */
export interface StripeDoubleCall {
  method: string;
  /** The path with its query string. */
  path: string;
  idempotencyKey: string | undefined;
  /** The form body, decoded flat (`metadata[orderNo]` keys as Stripe's form encoding writes them). */
  form: Record<string, string>;
  /** The status answered; 0 while unanswered. */
  status: number;
  /** Answered from the idempotency key's stored result. */
  replayed: boolean;
}

export interface WebhookEndpoint {
  url: string;
  /** The endpoint's signing secret (whsec_...). */
  secret: string;
}

export interface WebhookDeliveryOptions {
  /** Each first delivery waits a random time in [min, max] ms. */
  delayMs?: [number, number];
  /** Probability (0..1) that an event is delivered a second time, independently. */
  duplicateRate?: number;
  /** Deliveries ready together are sent newest first. */
  reorder?: boolean;
  /** Waits before each retry of a non-2xx or timed-out attempt; the event is given up once it is used up. */
  retryScheduleMs?: number[];
  /** How long an attempt may take. */
  timeoutMs?: number;
}

/** One attempt to deliver an event. */
export interface WebhookDelivery {
  eventId: string;
  type: string;
  /** 1 for the first attempt of its chain. */
  attempt: number;
  /** The attempt belongs to the second, duplicate chain of the event. */
  duplicate: boolean;
  /** The receiver's status, or null when it did not answer. */
  status: number | null;
  error: string | null;
  /** When the attempt started (ms since the epoch). */
  at: number;
}

export interface StripeDoubleOptions {
  stripeMockUrl: string;
  /** 0 or unset: a free port. */
  port?: number;
  host?: '127.0.0.1';
  /** A token bucket over all requests; 0 turns it off. Default: 25, test mode's limit. */
  rateLimitPerSecond?: number;
  /** The status new refunds get; `pending` ones wait for settleRefund(). Default `succeeded`. */
  refundStatus?: 'succeeded' | 'pending';
  webhook?: WebhookEndpoint;
  delivery?: WebhookDeliveryOptions;
  /** Called with each call once answered. */
  log?: (call: StripeDoubleCall) => void;
  /** The clock of `created` stamps and idempotency expiry (ms); webhook timers and signatures use the real one. */
  now?: () => number;
}

export interface FailNextOptions {
  /** The side effect happens first (an intent is made, a refund issued); the caller still gets the 5xx. */
  executed?: boolean;
}

export interface StripeDouble {
  url: string;
  calls: StripeDoubleCall[];
  callsTo(method: string, prefix: string): StripeDoubleCall[];
  /** The next `count` requests to paths starting with `prefix` are answered `status` with Stripe's api_error body. */
  failNext(prefix: string, count: number, status?: number, options?: FailNextOptions): void;
  /** The next `count` requests to paths starting with `prefix` are never answered (until stop()). */
  hang(prefix: string, count: number): void;
  /** The shopper confirms: with a card that pays, one that is declined, or a bank debit that stays processing. */
  confirm(intentId: string, outcome: IntentOutcome): Stripe.PaymentIntent;
  /** The bank answers a processing debit. */
  settleProcessing(intentId: string, outcome: SettleOutcome): Stripe.PaymentIntent;
  /** The card network answers a pending refund. */
  settleRefund(refundId: string, outcome: SettleOutcome): Stripe.Refund;
  /** The cardholder's bank disputes a succeeded intent's charge: a chargeback in `needs_response`. */
  dispute(intentId: string, options?: DisputeOptions): Stripe.Dispute;
  /** The merchant's evidence is submitted: `needs_response` becomes `under_review`. */
  updateDispute(disputeId: string, status: 'under_review'): Stripe.Dispute;
  /** The card network decides an open dispute. */
  closeDispute(disputeId: string, outcome: DisputeOutcome): Stripe.Dispute;
  intent(id: string): Stripe.PaymentIntent | undefined;
  intents(): Stripe.PaymentIntent[];
  /** The intent's refunds, newest first. */
  refundsOf(intentId: string): Stripe.Refund[];
  /** Every dispute, newest first. */
  disputes(): Stripe.Dispute[];
  /** Every event, newest first. */
  events(): Stripe.Event[];
  deliveries: WebhookDelivery[];
  /** Events made from now on are delivered to this endpoint (null: to none). */
  setWebhook(url: string | null, secret?: string): void;
  pauseDelivery(): void;
  resumeDelivery(): void;
  /** Sends every pending delivery now, retries waiting included, even while paused. */
  deliverNow(): Promise<void>;
  /** Resolves once no delivery is waiting, ready or in flight (while paused, only after resume or deliverNow). */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

// ---- form bodies ------------------------------------------------------------------------------------

export type FormValue = string | FormValue[] | FormObject;
export interface FormObject {
  [key: string]: FormValue;
}

/** Stripe's bracket encoding (`metadata[k]=v`, `expand[0]=x`, `expand[]=x`, `created[gte]=1`) as nested values. */
export function parseStripeForm(params: URLSearchParams): FormObject {
  const root: FormObject = {};
  for (const [key, value] of params) {
    const open = key.indexOf('[');
    const segments =
      open > 0 && key.endsWith(']') ? [key.slice(0, open), ...key.slice(open + 1, -1).split('][')] : [key];
    // Keys are the caller's text: none may reach an object's prototype.
    if (segments.some((segment) => segment === '__proto__' || segment === 'constructor')) continue;
    let node = root;
    for (const [index, raw] of segments.entries()) {
      const segment = raw === '' ? String(Object.keys(node).length) : raw;
      if (index === segments.length - 1) {
        node[segment] = value;
        break;
      }
      const next = node[segment];
      if (typeof next === 'object' && !Array.isArray(next)) node = next;
      else node = node[segment] = {};
    }
  }
  return withArrays(root) as FormObject;
}

/** Objects whose keys are all indexes become arrays. */
function withArrays(value: FormValue): FormValue {
  if (typeof value === 'string' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  const entries = keys.map((key) => [key, withArrays(value[key]!)] as const);
  if (keys.length > 0 && keys.every((key) => /^\d+$/.test(key)))
    return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, item]) => item);
  return Object.fromEntries(entries);
}

const textOf = (form: FormObject, key: string): string | undefined => {
  const value = form[key];
  return typeof value === 'string' ? value : undefined;
};
const integerOf = (form: FormObject, key: string): number | undefined => {
  const value = textOf(form, key);
  return value !== undefined && /^-?\d+$/.test(value) ? Number(value) : undefined;
};
const stringsOf = (form: FormObject, key: string): string[] => {
  const value = form[key];
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
};
const stringMapOf = (form: FormObject, key: string): Record<string, string> => {
  const value = form[key];
  if (typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
  );
};

// ---- state --------------------------------------------------------------------------------------------

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

type IntentStatus =
  | 'requires_payment_method'
  | 'requires_confirmation'
  | 'requires_action'
  | 'processing'
  | 'requires_capture'
  | 'canceled'
  | 'succeeded';

/** docs.stripe.com/api/payment_intents/cancel; `processing` is cancellable there only "in rare cases": refused here. */
const CANCELLABLE: readonly IntentStatus[] = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'requires_capture',
];
/** The statuses Stripe's refusal to cancel lists, in its order (processing included, as Stripe says it). */
const CANCEL_MESSAGE_STATUSES = [
  'requires_payment_method',
  'requires_capture',
  'requires_confirmation',
  'requires_action',
  'processing',
];
const CONFIRMABLE: readonly IntentStatus[] = ['requires_payment_method', 'requires_confirmation', 'requires_action'];

/** Stripe's test cards that decline (docs.stripe.com/testing#declined-payments). */
const DECLINING_PAYMENT_METHODS: Record<string, { declineCode: string; message: string }> = {
  pm_card_chargeDeclined: { declineCode: 'generic_decline', message: 'Your card was declined.' },
  pm_card_visa_chargeDeclined: { declineCode: 'generic_decline', message: 'Your card was declined.' },
  pm_card_chargeDeclinedInsufficientFunds: {
    declineCode: 'insufficient_funds',
    message: 'Your card has insufficient funds.',
  },
  pm_card_visa_chargeDeclinedInsufficientFunds: {
    declineCode: 'insufficient_funds',
    message: 'Your card has insufficient funds.',
  },
};
const PAYING_CARD = 'pm_card_visa';
const DECLINED_CARD = 'pm_card_chargeDeclined';

interface IntentRecord {
  id: string;
  created: number;
  amount: number;
  currency: string;
  status: IntentStatus;
  clientSecret: string;
  metadata: Record<string, string>;
  description: string | null;
  paymentMethod: string | null;
  paymentMethodTypes: string[];
  automaticPaymentMethods: boolean;
  amountReceived: number;
  latestChargeId: string | null;
  lastPaymentError: JsonObject | null;
  canceledAt: number | null;
  cancellationReason: string | null;
  template: JsonObject;
}

interface ChargeRecord {
  id: string;
  created: number;
  intentId: string;
  amount: number;
  currency: string;
  status: 'pending' | 'succeeded' | 'failed';
  paymentMethod: string;
  /** Refunds not failed: pending or succeeded. */
  amountRefunded: number;
  failureCode: string | null;
  failureMessage: string | null;
  disputed: boolean;
}

interface RefundRecord {
  id: string;
  seq: number;
  created: number;
  intentId: string;
  chargeId: string;
  amount: number;
  currency: string;
  status: 'pending' | 'succeeded' | 'failed';
  metadata: Record<string, string>;
  reason: string | null;
  failureReason: string | null;
  template: JsonObject;
}

interface DisputeRecord {
  id: string;
  seq: number;
  created: number;
  intentId: string;
  chargeId: string;
  /** The charge was a card payment (else the double's bank debit). */
  card: boolean;
  amount: number;
  currency: string;
  reason: string;
  status: 'needs_response' | 'under_review' | DisputeOutcome;
  dueBy: number;
  hasEvidence: boolean;
  pastDue: boolean;
  submissionCount: number;
}

/** The window to respond varies by card network (docs.stripe.com/disputes/responding); 7 days is its short end. */
const DISPUTE_RESPONSE_SECONDS = 7 * 24 * 60 * 60;

/** The request that made an event: null for the shopper's bank (controls). */
interface EventOrigin {
  id: string | null;
  idempotency_key: string | null;
}

interface EventRecord {
  id: string;
  seq: number;
  type: string;
  created: number;
  object: JsonObject;
  previousAttributes: JsonObject | null;
  origin: EventOrigin;
  /** Endpoints that have not had a 2xx for it yet (0 or 1: one endpoint at most). */
  pendingWebhooks: number;
}

interface Answer {
  status: number;
  body: JsonObject;
}

function stripeError(
  status: number,
  error: { type: string; message: string; code?: string; param?: string } & JsonObject,
): Answer {
  return { status, body: { error } };
}

/** Stripe's invalid_request_error: 400 unless said otherwise. */
const invalidRequest = (code: string, message: string, extra: JsonObject = {}, status = 400): Answer =>
  stripeError(status, { type: 'invalid_request_error', code, message, ...extra });

const resourceMissing = (kind: string, id: string, param: string, status = 404): Answer =>
  invalidRequest('resource_missing', `No such ${kind}: '${id}'`, { param }, status);

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomToken(length: number): string {
  return [...randomBytes(length)].map((byte) => ALPHANUMERIC[byte % ALPHANUMERIC.length]).join('');
}
const newId = (prefix: string): string => `${prefix}_${randomToken(24)}`;

const formatAmount = (amount: number, currency: string): string =>
  currency === 'usd' ? `$${(amount / 100).toFixed(2)}` : `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;

// ---- webhook delivery -------------------------------------------------------------------------------------

interface PendingDelivery {
  event: EventRecord;
  endpoint: WebhookEndpoint;
  attempt: number;
  duplicate: boolean;
}

/** Stripe's webhook sender for one double: signed POSTs, retried on a schedule, bounded by stop(). */
class WebhookSender {
  readonly deliveries: WebhookDelivery[] = [];
  private readonly waiting = new Map<NodeJS.Timeout, PendingDelivery>();
  private readonly ready: PendingDelivery[] = [];
  private readonly inFlight = new Set<AbortController>();
  private idleWaiters: (() => void)[] = [];
  private wakeUp: NodeJS.Immediate | null = null;
  private pumping = false;
  private paused = false;
  private stopped = false;

  constructor(
    private readonly options: WebhookDeliveryOptions,
    private readonly render: (event: EventRecord) => JsonObject,
    private readonly onDelivered: (event: EventRecord) => void,
  ) {}

  enqueue(event: EventRecord, endpoint: WebhookEndpoint): void {
    this.schedule({ event, endpoint, attempt: 0, duplicate: false }, this.firstDelay());
    if (Math.random() < (this.options.duplicateRate ?? 0))
      this.schedule({ event, endpoint, attempt: 0, duplicate: true }, this.firstDelay());
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.wake();
  }

  async deliverNow(): Promise<void> {
    for (const [timer, delivery] of this.waiting) {
      clearTimeout(timer);
      this.ready.push(delivery);
    }
    this.waiting.clear();
    const batch = this.ready.splice(0);
    if (this.options.reorder) batch.reverse();
    for (const delivery of batch) {
      if (this.stopped) break;
      await this.send(delivery);
    }
    this.notifyIfIdle();
  }

  settled(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.waiting.keys()) clearTimeout(timer);
    this.waiting.clear();
    this.ready.length = 0;
    if (this.wakeUp) clearImmediate(this.wakeUp);
    for (const controller of this.inFlight) controller.abort(new Error('stopped'));
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private firstDelay(): number {
    const [min, max] = this.options.delayMs ?? [0, 0];
    return min + Math.random() * Math.max(0, max - min);
  }

  private schedule(delivery: PendingDelivery, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.ready.push(delivery);
      this.wake();
      return;
    }
    const timer = setTimeout(() => {
      this.waiting.delete(timer);
      this.ready.push(delivery);
      this.wake();
    }, delayMs);
    this.waiting.set(timer, delivery);
  }

  /** On the next turn, so that events made by one request are ready together (and reorderable). */
  private wake(): void {
    if (this.wakeUp || this.stopped) return;
    this.wakeUp = setImmediate(() => {
      this.wakeUp = null;
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.paused && !this.stopped) {
        const next = this.options.reorder ? this.ready.pop() : this.ready.shift();
        if (!next) break;
        await this.send(next);
      }
    } finally {
      this.pumping = false;
      this.notifyIfIdle();
    }
  }

  private async send(delivery: PendingDelivery): Promise<void> {
    delivery.attempt++;
    const payload = JSON.stringify(this.render(delivery.event), null, 2);
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    this.inFlight.add(controller);
    const at = Date.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      const answer = await fetch(delivery.endpoint.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          'stripe-signature': signPayload(payload, delivery.endpoint.secret, Math.floor(Date.now() / 1000)),
        },
        body: payload,
        signal: controller.signal,
      });
      await answer.arrayBuffer();
      status = answer.status;
    } catch (err) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
      error = reason instanceof Error ? reason.message : String(reason);
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(controller);
    }
    if (this.stopped) return;
    const { event, attempt, duplicate } = delivery;
    this.deliveries.push({ eventId: event.id, type: event.type, attempt, duplicate, status, error, at });
    if (status !== null && status >= 200 && status < 300) {
      this.onDelivered(event);
      return;
    }
    const retryIn = (this.options.retryScheduleMs ?? DEFAULT_RETRY_SCHEDULE_MS)[attempt - 1];
    if (retryIn !== undefined) this.schedule(delivery, retryIn);
  }

  private idle(): boolean {
    return this.waiting.size === 0 && this.ready.length === 0 && !this.pumping && this.inFlight.size === 0;
  }

  private notifyIfIdle(): void {
    if (this.idle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** Stripe's signature header: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>` (docs.stripe.com/webhooks). */
export function signPayload(payload: string, secret: string, timestamp: number): string {
  const signature = createHmac('sha256', secret).update(`${timestamp}.${payload}`, 'utf8').digest('hex');
  return `t=${timestamp},v1=${signature}`;
}

// ---- the double ------------------------------------------------------------------------------------------

interface Fault {
  prefix: string;
  left: number;
  status: number;
  executed: boolean;
}

interface StoredResult {
  state: 'running' | 'done';
  fingerprint: string;
  at: number;
  status: number;
  body: string;
  requestId: string;
}

interface ApiRequest {
  method: string;
  pathname: string;
  query: FormObject;
  form: FormObject;
  origin: EventOrigin;
  /** stripe-mock's 2xx body for the request. */
  template: JsonObject;
}

type Handler = (request: ApiRequest, id: string) => Answer;

class StripeDoubleServer {
  readonly calls: StripeDoubleCall[] = [];
  readonly sender: WebhookSender;
  private readonly intents = new Map<string, IntentRecord>();
  private readonly charges = new Map<string, ChargeRecord>();
  private readonly refunds = new Map<string, RefundRecord>();
  private readonly disputes = new Map<string, DisputeRecord>();
  private readonly events: EventRecord[] = [];
  private readonly idempotent = new Map<string, StoredResult>();
  private readonly faults: Fault[] = [];
  private readonly hangs: { prefix: string; left: number }[] = [];
  private readonly held = new Set<ServerResponse>();
  private readonly agent = new Agent({ keepAlive: true });
  private readonly target: URL;
  private readonly now: () => number;
  private readonly bucket: { tokens: number; at: number } | null;
  private webhook: WebhookEndpoint | null;
  private seq = 0;
  private stopped = false;
  private readonly routes: { method: string; path: RegExp; handle: Handler }[];

  constructor(
    private readonly options: StripeDoubleOptions,
    private readonly chargeTemplate: JsonObject,
    private readonly disputeTemplate: JsonObject,
  ) {
    this.target = new URL(options.stripeMockUrl);
    this.now = options.now ?? Date.now;
    const rate = options.rateLimitPerSecond ?? TEST_MODE_RATE_LIMIT;
    this.bucket = rate > 0 ? { tokens: rate, at: performance.now() } : null;
    this.webhook = options.webhook ?? null;
    this.sender = new WebhookSender(
      options.delivery ?? {},
      (event) => this.renderEvent(event),
      (event) => (event.pendingWebhooks = 0),
    );
    this.routes = [
      { method: 'POST', path: /^\/v1\/payment_intents$/, handle: (r) => this.createIntent(r) },
      { method: 'GET', path: /^\/v1\/payment_intents$/, handle: (r) => this.listIntents(r) },
      { method: 'GET', path: /^\/v1\/payment_intents\/([^/]+)$/, handle: (r, id) => this.retrieveIntent(r, id) },
      { method: 'POST', path: /^\/v1\/payment_intents\/([^/]+)\/confirm$/, handle: (r, id) => this.apiConfirm(r, id) },
      { method: 'POST', path: /^\/v1\/payment_intents\/([^/]+)\/cancel$/, handle: (r, id) => this.cancel(r, id) },
      { method: 'GET', path: /^\/v1\/charges\/([^/]+)$/, handle: (_r, id) => this.retrieveCharge(id) },
      { method: 'POST', path: /^\/v1\/refunds$/, handle: (r) => this.createRefund(r) },
      { method: 'GET', path: /^\/v1\/refunds$/, handle: (r) => this.listRefunds(r) },
      { method: 'GET', path: /^\/v1\/refunds\/([^/]+)$/, handle: (_r, id) => this.retrieveRefund(id) },
      { method: 'GET', path: /^\/v1\/disputes$/, handle: (r) => this.listDisputes(r) },
      { method: 'GET', path: /^\/v1\/disputes\/([^/]+)$/, handle: (_r, id) => this.retrieveDispute(id) },
      { method: 'GET', path: /^\/v1\/events$/, handle: (r) => this.listEvents(r) },
      { method: 'GET', path: /^\/v1\/events\/([^/]+)$/, handle: (_r, id) => this.retrieveEvent(id) },
    ];
  }

  // ---- the HTTP front ----

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://double');
    const method = req.method ?? 'GET';
    const call: StripeDoubleCall = {
      method,
      path: req.url ?? '/',
      idempotencyKey: headerOf(req.headers, 'idempotency-key'),
      form: Object.fromEntries(new URLSearchParams(body)),
      status: 0,
      replayed: false,
    };
    this.calls.push(call);
    res.on('finish', () => this.options.log?.(call));
    const requestId = `req_${randomToken(14)}`;
    const reply = (answer: { status: number; body: string }, headers: Record<string, string> = {}): void => {
      call.status = answer.status;
      res.writeHead(answer.status, {
        'content-type': 'application/json',
        'request-id': requestId,
        'stripe-version': headerOf(req.headers, 'stripe-version') ?? STRIPE_DOUBLE_API_VERSION,
        ...(call.idempotencyKey && method === 'POST' ? { 'idempotency-key': call.idempotencyKey } : {}),
        ...headers,
      });
      res.end(answer.body);
    };
    const json = (answer: Answer): { status: number; body: string } => ({
      status: answer.status,
      body: JSON.stringify(answer.body, null, 2),
    });

    if (url.pathname.startsWith('/_double/')) return reply(json(this.control(method, url.pathname, body)));

    const apiKey = secretKeyOf(headerOf(req.headers, 'authorization'));
    if (!apiKey) return reply(json(unauthorized(headerOf(req.headers, 'authorization'))));
    if (!this.takeToken()) return reply(json(invalidRequest('rate_limit', RATE_LIMITED_MESSAGE, {}, 429)));
    const hang = this.hangs.find((h) => h.left > 0 && call.path.startsWith(h.prefix));
    if (hang) {
      hang.left--;
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }

    // Idempotency applies to POSTs; "sending idempotency keys in GET and DELETE requests has no effect".
    const storeKey = method === 'POST' && call.idempotencyKey ? `${apiKey}\u0000${call.idempotencyKey}` : null;
    const fingerprint = `${method} ${url.pathname} ${[...new URLSearchParams(body)]
      .map((p) => p.join('='))
      .sort()
      .join('&')}`;
    if (storeKey) {
      const stored = this.idempotent.get(storeKey);
      if (stored && this.now() - stored.at < IDEMPOTENCY_TTL_MS) {
        if (stored.state === 'running')
          return reply(
            json(stripeError(409, { type: 'idempotency_error', message: inProgressMessage(call.idempotencyKey!) })),
          );
        if (stored.fingerprint !== fingerprint)
          return reply(
            json(stripeError(400, { type: 'idempotency_error', message: reusedKeyMessage(call.idempotencyKey!) })),
          );
        call.replayed = true;
        return reply(stored, { 'idempotent-replayed': 'true', 'original-request': stored.requestId });
      }
      this.idempotent.set(storeKey, { state: 'running', fingerprint, at: this.now(), status: 0, body: '', requestId });
    }
    const settle = (answer: { status: number; body: string }): void => {
      if (storeKey) this.idempotent.set(storeKey, { state: 'done', fingerprint, at: this.now(), requestId, ...answer });
      reply(answer);
    };
    const forget = (answer: { status: number; body: string }, headers?: Record<string, string>): void => {
      if (storeKey) this.idempotent.delete(storeKey);
      reply(answer, headers);
    };

    const fault = this.faults.find((f) => f.left > 0 && call.path.startsWith(f.prefix));
    if (fault) fault.left--;
    const faultAnswer =
      fault && json(stripeError(fault.status, { type: 'api_error', message: injectedMessage(fault) }));
    if (faultAnswer && !fault.executed) return settle(faultAnswer);

    let upstream: { status: number; headers: IncomingHttpHeaders; body: string };
    try {
      upstream = await this.forward(req, body);
    } catch (err) {
      const message = `stripe-mock did not answer: ${err instanceof Error ? err.message : String(err)}`;
      return forget(json(stripeError(502, { type: 'api_error', message })));
    }
    if (this.stopped) return;
    if (upstream.status < 200 || upstream.status >= 300) {
      // Stripe's validation refused it: the endpoint never started, so the key stores nothing.
      const headers = { 'content-type': headerOf(upstream.headers, 'content-type') ?? 'application/json' };
      return forget({ status: upstream.status, body: upstream.body }, headers);
    }
    let answer: { status: number; body: string } | null;
    try {
      answer = this.model(method, url, body, upstream.body, {
        id: requestId,
        idempotency_key: call.idempotencyKey ?? null,
      });
    } catch (err) {
      // A bug of the double, not a Stripe answer: nothing is kept under the key.
      return forget(json(stripeError(500, { type: 'api_error', message: `Stripe double failed: ${String(err)}` })));
    }
    settle(faultAnswer ?? answer ?? { status: upstream.status, body: upstream.body });
  }

  private model(method: string, url: URL, body: string, upstreamBody: string, origin: EventOrigin) {
    for (const route of this.routes) {
      const match = route.method === method ? route.path.exec(url.pathname) : null;
      if (!match) continue;
      const template = parseObject(upstreamBody);
      const request: ApiRequest = {
        method,
        pathname: url.pathname,
        query: parseStripeForm(url.searchParams),
        form: parseStripeForm(new URLSearchParams(body)),
        origin,
        template,
      };
      const answer = route.handle(request, decodeURIComponent(match[1] ?? ''));
      return { status: answer.status, body: JSON.stringify(answer.body, null, 2) };
    }
    return null;
  }

  private forward(
    req: IncomingMessage,
    body: string,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    const headers: IncomingHttpHeaders = { ...req.headers, host: this.target.host };
    delete headers['idempotency-key'];
    // Stripe takes a bodiless POST (`curl -X POST .../cancel`); stripe-mock wants its content type said.
    if (req.method === 'POST' && !headers['content-type'])
      headers['content-type'] = 'application/x-www-form-urlencoded';
    return new Promise((resolve, reject) => {
      const upstream = httpRequest(
        {
          host: this.target.hostname,
          port: this.target.port,
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
        },
        (answer) => {
          readBody(answer).then(
            (text) => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: text }),
            reject,
          );
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });
  }

  private takeToken(): boolean {
    if (!this.bucket) return true;
    const rate = this.options.rateLimitPerSecond ?? TEST_MODE_RATE_LIMIT;
    const now = performance.now();
    this.bucket.tokens = Math.min(rate, this.bucket.tokens + ((now - this.bucket.at) / 1000) * rate);
    this.bucket.at = now;
    if (this.bucket.tokens < 1) return false;
    this.bucket.tokens -= 1;
    return true;
  }

  // ---- PaymentIntents ----

  private createIntent(request: ApiRequest): Answer {
    const { form } = request;
    const id = newId('pi');
    const paymentMethod = textOf(form, 'payment_method') ?? null;
    const paymentMethodTypes = stringsOf(form, 'payment_method_types');
    const intent: IntentRecord = {
      id,
      created: this.seconds(),
      amount: integerOf(form, 'amount') ?? 0,
      currency: (textOf(form, 'currency') ?? 'usd').toLowerCase(),
      status: paymentMethod ? 'requires_confirmation' : 'requires_payment_method',
      clientSecret: `${id}_secret_${randomToken(25)}`,
      metadata: stringMapOf(form, 'metadata'),
      description: textOf(form, 'description') ?? null,
      paymentMethod,
      paymentMethodTypes: paymentMethodTypes.length > 0 ? paymentMethodTypes : ['card'],
      automaticPaymentMethods: paymentMethodTypes.length === 0,
      amountReceived: 0,
      latestChargeId: null,
      lastPaymentError: null,
      canceledAt: null,
      cancellationReason: null,
      template: request.template,
    };
    this.intents.set(id, intent);
    this.emit('payment_intent.created', this.renderIntent(intent), request.origin);
    if (textOf(form, 'confirm') === 'true')
      return this.confirmIntent(intent, paymentMethod, request.origin, expandsOf(request));
    return { status: 200, body: this.renderIntent(intent, expandsOf(request)) };
  }

  private listIntents(request: ApiRequest): Answer {
    const newestFirst = [...this.intents.values()].reverse();
    return listPage(newestFirst, request.query, '/v1/payment_intents', 'payment_intent', (i) => this.renderIntent(i));
  }

  private retrieveIntent(request: ApiRequest, id: string): Answer {
    const intent = this.intents.get(id);
    if (!intent) return resourceMissing('payment_intent', id, 'intent');
    return { status: 200, body: this.renderIntent(intent, expandsOf(request)) };
  }

  private apiConfirm(request: ApiRequest, id: string): Answer {
    const intent = this.intents.get(id);
    if (!intent) return resourceMissing('payment_intent', id, 'intent');
    return this.confirmIntent(
      intent,
      textOf(request.form, 'payment_method') ?? null,
      request.origin,
      expandsOf(request),
    );
  }

  private confirmIntent(
    intent: IntentRecord,
    paymentMethod: string | null,
    origin: EventOrigin,
    expand: string[] = [],
  ): Answer {
    if (!CONFIRMABLE.includes(intent.status)) return this.unexpectedState(intent, 'confirm', CONFIRMABLE);
    const method = paymentMethod ?? intent.paymentMethod;
    if (!method)
      return invalidRequest(
        'payment_intent_unexpected_state',
        "You cannot confirm this PaymentIntent because it's missing a payment method. Update the PaymentIntent with a payment method and then confirm it again.",
        { param: 'payment_method', payment_intent: this.renderIntent(intent) },
      );
    intent.paymentMethod = method;
    intent.lastPaymentError = null;
    const decline = DECLINING_PAYMENT_METHODS[method];
    const charge = this.newCharge(
      intent,
      method,
      decline ? 'failed' : method === PROCESSING_PAYMENT_METHOD ? 'pending' : 'succeeded',
    );
    if (decline) {
      charge.failureCode = 'card_declined';
      charge.failureMessage = decline.message;
      const error: JsonObject = {
        type: 'card_error',
        code: 'card_declined',
        decline_code: decline.declineCode,
        message: decline.message,
        charge: charge.id,
        doc_url: 'https://docs.stripe.com/error-codes/card-declined',
      };
      this.failIntent(intent, error, origin);
      return { status: 402, body: { error: { ...error, payment_intent: this.renderIntent(intent) } } };
    }
    if (charge.status === 'pending') {
      intent.status = 'processing';
      this.emit('charge.pending', this.renderCharge(charge), origin);
      this.emit('payment_intent.processing', this.renderIntent(intent), origin);
    } else this.succeedIntent(intent, charge, origin);
    return { status: 200, body: this.renderIntent(intent, expand) };
  }

  private succeedIntent(intent: IntentRecord, charge: ChargeRecord, origin: EventOrigin): void {
    charge.status = 'succeeded';
    intent.status = 'succeeded';
    intent.amountReceived = intent.amount;
    this.emit('charge.succeeded', this.renderCharge(charge), origin);
    this.emit('payment_intent.succeeded', this.renderIntent(intent), origin);
  }

  private failIntent(intent: IntentRecord, error: JsonObject, origin: EventOrigin): void {
    const charge = intent.latestChargeId ? this.charges.get(intent.latestChargeId) : undefined;
    if (charge) {
      charge.status = 'failed';
      this.emit('charge.failed', this.renderCharge(charge), origin);
    }
    intent.status = 'requires_payment_method';
    intent.lastPaymentError = { ...error, payment_method: { id: intent.paymentMethod, object: 'payment_method' } };
    this.emit('payment_intent.payment_failed', this.renderIntent(intent), origin);
  }

  private cancel(request: ApiRequest, id: string): Answer {
    const intent = this.intents.get(id);
    if (!intent) return resourceMissing('payment_intent', id, 'intent');
    if (!CANCELLABLE.includes(intent.status)) return this.unexpectedState(intent, 'cancel', CANCEL_MESSAGE_STATUSES);
    intent.status = 'canceled';
    intent.canceledAt = this.seconds();
    intent.cancellationReason = textOf(request.form, 'cancellation_reason') ?? null;
    this.emit('payment_intent.canceled', this.renderIntent(intent), request.origin);
    return { status: 200, body: this.renderIntent(intent, expandsOf(request)) };
  }

  /** Stripe's refusal of an action the intent's status does not allow; `listed` as Stripe's message lists them. */
  private unexpectedState(intent: IntentRecord, action: 'cancel' | 'confirm', listed: readonly string[]): Answer {
    return invalidRequest(
      'payment_intent_unexpected_state',
      `You cannot ${action} this PaymentIntent because it has a status of ${intent.status}. ` +
        `Only a PaymentIntent with one of the following statuses may be ${action === 'cancel' ? 'canceled' : 'confirmed'}: ${listed.join(', ')}.`,
      { payment_intent: this.renderIntent(intent) },
    );
  }

  private newCharge(intent: IntentRecord, paymentMethod: string, status: ChargeRecord['status']): ChargeRecord {
    const charge: ChargeRecord = {
      id: newId('ch'),
      created: this.seconds(),
      intentId: intent.id,
      amount: intent.amount,
      currency: intent.currency,
      status,
      paymentMethod,
      amountRefunded: 0,
      failureCode: null,
      failureMessage: null,
      disputed: false,
    };
    this.charges.set(charge.id, charge);
    intent.latestChargeId = charge.id;
    return charge;
  }

  private retrieveCharge(id: string): Answer {
    const charge = this.charges.get(id);
    return charge ? { status: 200, body: this.renderCharge(charge) } : resourceMissing('charge', id, 'charge');
  }

  // ---- refunds ----

  private createRefund(request: ApiRequest): Answer {
    const { form } = request;
    const chargeParam = textOf(form, 'charge');
    const intentId =
      textOf(form, 'payment_intent') ?? (chargeParam ? this.charges.get(chargeParam)?.intentId : undefined);
    if (!textOf(form, 'payment_intent') && !chargeParam)
      return invalidRequest(
        'parameter_missing',
        'One of the following params should be provided for this request: payment_intent or charge.',
      );
    const intent = intentId ? this.intents.get(intentId) : undefined;
    if (!intent)
      return chargeParam && !intentId
        ? resourceMissing('charge', chargeParam, 'charge', 400)
        : resourceMissing('payment_intent', intentId ?? '', 'payment_intent', 400);
    const charge = intent.latestChargeId ? this.charges.get(intent.latestChargeId) : undefined;
    if (intent.status !== 'succeeded' || !charge || charge.status !== 'succeeded')
      return invalidRequest(
        'payment_intent_unexpected_state',
        `This PaymentIntent (${intent.id}) does not have a successful charge to refund.`,
        { param: 'payment_intent' },
      );
    // A chargeback already took the money back: Stripe refuses to refund it a second time.
    if (charge.disputed)
      return invalidRequest('charge_disputed', `Charge ${charge.id} has been charged back; cannot issue a refund.`);
    const remaining = charge.amount - charge.amountRefunded;
    if (remaining <= 0)
      return invalidRequest('charge_already_refunded', `Charge ${charge.id} has already been refunded.`);
    const amount = form.amount === undefined ? remaining : integerOf(form, 'amount');
    if (amount === undefined || amount < 1)
      return invalidRequest('parameter_invalid_integer', 'This value must be greater than or equal to 1.', {
        param: 'amount',
      });
    if (amount > remaining)
      return invalidRequest(
        'amount_too_large',
        `Refund amount (${formatAmount(amount, charge.currency)}) is greater than unrefunded amount on charge (${formatAmount(remaining, charge.currency)})`,
        { param: 'amount' },
      );
    const refund: RefundRecord = {
      id: newId('re'),
      seq: ++this.seq,
      created: this.seconds(),
      intentId: intent.id,
      chargeId: charge.id,
      amount,
      currency: charge.currency,
      status: this.options.refundStatus ?? 'succeeded',
      metadata: stringMapOf(form, 'metadata'),
      reason: textOf(form, 'reason') ?? null,
      failureReason: null,
      template: request.template,
    };
    this.refunds.set(refund.id, refund);
    charge.amountRefunded += amount;
    this.emit('refund.created', this.renderRefund(refund), request.origin);
    this.emit('charge.refunded', this.renderCharge(charge), request.origin);
    return { status: 200, body: this.renderRefund(refund) };
  }

  private listRefunds(request: ApiRequest): Answer {
    const intentId = textOf(request.query, 'payment_intent');
    const chargeId = textOf(request.query, 'charge');
    const newestFirst = [...this.refunds.values()]
      .filter((r) => (!intentId || r.intentId === intentId) && (!chargeId || r.chargeId === chargeId))
      .sort((a, b) => b.seq - a.seq);
    return listPage(newestFirst, request.query, '/v1/refunds', 'refund', (r) => this.renderRefund(r));
  }

  private retrieveRefund(id: string): Answer {
    const refund = this.refunds.get(id);
    return refund ? { status: 200, body: this.renderRefund(refund) } : resourceMissing('refund', id, 'refund');
  }

  // ---- disputes ----

  private listDisputes(request: ApiRequest): Answer {
    const intentId = textOf(request.query, 'payment_intent');
    const chargeId = textOf(request.query, 'charge');
    const newestFirst = this.disputesNewestFirst().filter(
      (d) => (!intentId || d.intentId === intentId) && (!chargeId || d.chargeId === chargeId),
    );
    return listPage(newestFirst, request.query, '/v1/disputes', 'dispute', (d) => this.renderDispute(d));
  }

  private retrieveDispute(id: string): Answer {
    const dispute = this.disputes.get(id);
    return dispute ? { status: 200, body: this.renderDispute(dispute) } : resourceMissing('dispute', id, 'dispute');
  }

  private disputesNewestFirst(): DisputeRecord[] {
    return [...this.disputes.values()].sort((a, b) => b.seq - a.seq);
  }

  // ---- events ----

  private emit(
    type: string,
    object: JsonObject,
    origin: EventOrigin,
    previousAttributes: JsonObject | null = null,
  ): void {
    const event: EventRecord = {
      id: newId('evt'),
      seq: ++this.seq,
      type,
      created: this.seconds(),
      object,
      previousAttributes,
      origin,
      pendingWebhooks: this.webhook ? 1 : 0,
    };
    this.events.push(event);
    if (this.webhook) this.sender.enqueue(event, this.webhook);
  }

  private listEvents(request: ApiRequest): Answer {
    const { query } = request;
    const types = [...stringsOf(query, 'type'), ...stringsOf(query, 'types')].map(
      (pattern) => new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`),
    );
    const success = textOf(query, 'delivery_success');
    const created = query.created;
    const inRange = (seconds: number): boolean => {
      if (typeof created === 'string') return seconds === Number(created);
      if (typeof created !== 'object' || Array.isArray(created)) return true;
      const bound = (key: string) => integerOf(created, key);
      const [gt, gte, lt, lte] = [bound('gt'), bound('gte'), bound('lt'), bound('lte')];
      return (
        (gt === undefined || seconds > gt) &&
        (gte === undefined || seconds >= gte) &&
        (lt === undefined || seconds < lt) &&
        (lte === undefined || seconds <= lte)
      );
    };
    const newestFirst = [...this.events]
      .reverse()
      .filter(
        (e) =>
          (types.length === 0 || types.some((pattern) => pattern.test(e.type))) &&
          (success === undefined || (success === 'true') === (e.pendingWebhooks === 0)) &&
          inRange(e.created),
      );
    return listPage(newestFirst, query, '/v1/events', 'event', (e) => this.renderEvent(e));
  }

  private retrieveEvent(id: string): Answer {
    const event = this.events.find((e) => e.id === id);
    return event ? { status: 200, body: this.renderEvent(event) } : resourceMissing('event', id, 'id');
  }

  // ---- rendering: stripe-mock's template, overwritten with the state ----

  renderIntent(intent: IntentRecord, expand: string[] = []): JsonObject {
    const charge = intent.latestChargeId ? this.charges.get(intent.latestChargeId) : undefined;
    return {
      ...structuredClone(intent.template),
      id: intent.id,
      object: 'payment_intent',
      amount: intent.amount,
      amount_capturable: 0,
      amount_received: intent.amountReceived,
      automatic_payment_methods: intent.automaticPaymentMethods ? { enabled: true } : null,
      canceled_at: intent.canceledAt,
      cancellation_reason: intent.cancellationReason,
      capture_method: 'automatic',
      client_secret: intent.clientSecret,
      confirmation_method: 'automatic',
      created: intent.created,
      currency: intent.currency,
      customer: null,
      description: intent.description,
      last_payment_error: intent.lastPaymentError,
      latest_charge: charge ? (expand.includes('latest_charge') ? this.renderCharge(charge) : charge.id) : null,
      livemode: false,
      metadata: { ...intent.metadata },
      next_action: null,
      payment_method: intent.paymentMethod,
      payment_method_configuration_details: null,
      payment_method_types: [...intent.paymentMethodTypes],
      processing: null,
      review: null,
      shipping: null,
      status: intent.status,
      transfer_data: null,
    };
  }

  renderCharge(charge: ChargeRecord): JsonObject {
    const rendered: JsonObject = {
      ...structuredClone(this.chargeTemplate),
      id: charge.id,
      object: 'charge',
      amount: charge.amount,
      amount_captured: charge.status === 'succeeded' ? charge.amount : 0,
      amount_refunded: charge.amountRefunded,
      balance_transaction: null,
      captured: charge.status === 'succeeded',
      created: charge.created,
      currency: charge.currency,
      customer: null,
      description: null,
      failure_code: charge.failureCode,
      failure_message: charge.failureMessage,
      livemode: false,
      metadata: {},
      paid: charge.status === 'succeeded',
      payment_intent: charge.intentId,
      payment_method: charge.paymentMethod,
      refunded: charge.amountRefunded >= charge.amount,
      disputed: charge.disputed,
      shipping: null,
      status: charge.status,
      transfer_data: null,
    };
    // Not included by default in current API versions (expandable): left out rather than stale.
    delete rendered.refunds;
    return rendered;
  }

  renderRefund(refund: RefundRecord): JsonObject {
    return {
      ...structuredClone(refund.template),
      id: refund.id,
      object: 'refund',
      amount: refund.amount,
      balance_transaction: null,
      charge: refund.chargeId,
      created: refund.created,
      currency: refund.currency,
      metadata: { ...refund.metadata },
      payment_intent: refund.intentId,
      reason: refund.reason,
      status: refund.status,
      ...(refund.failureReason ? { failure_reason: refund.failureReason } : {}),
    };
  }

  renderDispute(dispute: DisputeRecord): JsonObject {
    const template = structuredClone(this.disputeTemplate);
    const rendered: JsonObject = {
      ...template,
      id: dispute.id,
      object: 'dispute',
      amount: dispute.amount,
      balance_transactions: [],
      charge: dispute.chargeId,
      created: dispute.created,
      currency: dispute.currency,
      // stripe-mock's sample claims Visa CE 3.0 eligibility, which the double does not model.
      enhanced_eligibility_types: [],
      evidence_details: {
        ...objectOf(template.evidence_details),
        due_by: dispute.dueBy,
        has_evidence: dispute.hasEvidence,
        past_due: dispute.pastDue,
        submission_count: dispute.submissionCount,
      },
      is_charge_refundable: false,
      livemode: false,
      metadata: {},
      payment_intent: dispute.intentId,
      // A chargeback, not an inquiry (stripe-mock's sample); 10.4 is Visa's card-absent fraud code.
      payment_method_details: {
        card: {
          brand: 'visa',
          case_type: 'chargeback',
          network: 'visa',
          network_reason_code: dispute.reason === 'fraudulent' ? '10.4' : null,
        },
        type: 'card',
      },
      reason: dispute.reason,
      status: dispute.status,
    };
    // The double's bank debit is no card: no card details rather than made-up ones.
    if (!dispute.card) delete rendered.payment_method_details;
    return rendered;
  }

  renderEvent(event: EventRecord): JsonObject {
    return {
      id: event.id,
      object: 'event',
      api_version: STRIPE_DOUBLE_API_VERSION,
      created: event.created,
      data: {
        object: structuredClone(event.object),
        ...(event.previousAttributes ? { previous_attributes: event.previousAttributes } : {}),
      },
      livemode: false,
      pending_webhooks: event.pendingWebhooks,
      request: { ...event.origin },
      type: event.type,
    };
  }

  // ---- controls: the shopper, their bank, the card network ----

  controlConfirm(intentId: string, outcome: IntentOutcome): JsonObject {
    const method = { succeeded: PAYING_CARD, declined: DECLINED_CARD, processing: PROCESSING_PAYMENT_METHOD }[outcome];
    const answer = this.confirmIntent(this.intentOrThrow(intentId), method, CONTROL_ORIGIN);
    if (answer.status !== 200 && answer.status !== 402) throw new Error(errorMessageOf(answer));
    return this.renderIntent(this.intentOrThrow(intentId));
  }

  settleProcessing(intentId: string, outcome: SettleOutcome): JsonObject {
    const intent = this.intentOrThrow(intentId);
    const charge = intent.latestChargeId ? this.charges.get(intent.latestChargeId) : undefined;
    if (intent.status !== 'processing' || !charge)
      throw new Error(`PaymentIntent ${intentId} is ${intent.status}, not processing: nothing to settle`);
    if (outcome === 'succeeded') this.succeedIntent(intent, charge, CONTROL_ORIGIN);
    else {
      charge.failureCode = 'insufficient_funds';
      charge.failureMessage = "The customer's account has insufficient funds to cover this payment.";
      this.failIntent(
        intent,
        { type: 'card_error', code: 'insufficient_funds', message: charge.failureMessage, charge: charge.id },
        CONTROL_ORIGIN,
      );
    }
    return this.renderIntent(intent);
  }

  settleRefund(refundId: string, outcome: SettleOutcome): JsonObject {
    const refund = this.refunds.get(refundId);
    if (!refund) throw new Error(`No such refund: '${refundId}'`);
    if (refund.status !== 'pending')
      throw new Error(`Refund ${refundId} is ${refund.status}, not pending: nothing to settle`);
    refund.status = outcome;
    if (outcome === 'failed') {
      // The money goes back to the merchant's balance: the charge is refundable again by that much.
      refund.failureReason = 'expired_or_canceled_card';
      const charge = this.charges.get(refund.chargeId);
      if (charge) charge.amountRefunded -= refund.amount;
    }
    this.emit('refund.updated', this.renderRefund(refund), CONTROL_ORIGIN, { status: 'pending' });
    if (outcome === 'failed') this.emit('refund.failed', this.renderRefund(refund), CONTROL_ORIGIN);
    return this.renderRefund(refund);
  }

  openDispute(intentId: string, options: DisputeOptions): JsonObject {
    const intent = this.intentOrThrow(intentId);
    const charge = intent.latestChargeId ? this.charges.get(intent.latestChargeId) : undefined;
    if (intent.status !== 'succeeded' || !charge || charge.status !== 'succeeded')
      throw new Error(`PaymentIntent ${intentId} is ${intent.status}, not succeeded: it has no charge to dispute`);
    // One chargeback per charge: a second would take the same money back twice.
    if (charge.disputed) throw new Error(`Charge ${charge.id} of ${intentId} is already disputed`);
    const amount = options.amount ?? charge.amount;
    if (!Number.isInteger(amount) || amount < 1 || amount > charge.amount)
      throw new Error(`A dispute's amount must be an integer from 1 to the charge's ${charge.amount}, not ${amount}`);
    const created = this.seconds();
    const dispute: DisputeRecord = {
      id: newId('dp'),
      seq: ++this.seq,
      created,
      intentId,
      chargeId: charge.id,
      card: charge.paymentMethod !== PROCESSING_PAYMENT_METHOD,
      amount,
      currency: charge.currency,
      reason: options.reason ?? 'fraudulent',
      status: 'needs_response',
      dueBy:
        options.dueInMs === undefined
          ? created + DISPUTE_RESPONSE_SECONDS
          : Math.floor((this.now() + options.dueInMs) / 1000),
      hasEvidence: false,
      pastDue: false,
      submissionCount: 0,
    };
    this.disputes.set(dispute.id, dispute);
    charge.disputed = true;
    this.emit('charge.dispute.created', this.renderDispute(dispute), CONTROL_ORIGIN);
    this.emit('charge.dispute.funds_withdrawn', this.renderDispute(dispute), CONTROL_ORIGIN);
    return this.renderDispute(dispute);
  }

  /** The merchant submits evidence (as the Dashboard or `POST /v1/disputes/:id` with `submit` would). */
  updateDispute(disputeId: string, status: 'under_review'): JsonObject {
    const dispute = this.disputeOrThrow(disputeId);
    if (status !== 'under_review') throw new Error(`A dispute can only be updated to under_review, not ${status}`);
    if (dispute.status !== 'needs_response')
      throw new Error(`Dispute ${disputeId} is ${dispute.status}, not needs_response: no evidence to submit`);
    const before: JsonObject = { has_evidence: dispute.hasEvidence, submission_count: dispute.submissionCount };
    const pastDue = dispute.pastDue;
    dispute.status = 'under_review';
    dispute.hasEvidence = true;
    dispute.submissionCount++;
    // Stripe's past_due: the evidence came after due_by.
    dispute.pastDue = this.seconds() > dispute.dueBy;
    if (dispute.pastDue !== pastDue) before.past_due = pastDue;
    this.emit('charge.dispute.updated', this.renderDispute(dispute), CONTROL_ORIGIN, {
      status: 'needs_response',
      evidence_details: before,
    });
    return this.renderDispute(dispute);
  }

  closeDispute(disputeId: string, outcome: DisputeOutcome): JsonObject {
    const dispute = this.disputeOrThrow(disputeId);
    if (outcome !== 'won' && outcome !== 'lost') throw new Error(`outcome must be won or lost, not ${String(outcome)}`);
    if (dispute.status === 'won' || dispute.status === 'lost')
      throw new Error(`Dispute ${disputeId} is already closed (${dispute.status})`);
    const previous = dispute.status;
    dispute.status = outcome;
    this.emit('charge.dispute.closed', this.renderDispute(dispute), CONTROL_ORIGIN, { status: previous });
    // Won: the withdrawn amount comes back; lost: it stays with the cardholder.
    if (outcome === 'won') this.emit('charge.dispute.funds_reinstated', this.renderDispute(dispute), CONTROL_ORIGIN);
    return this.renderDispute(dispute);
  }

  allDisputes(): JsonObject[] {
    return this.disputesNewestFirst().map((d) => this.renderDispute(d));
  }

  private disputeOrThrow(id: string): DisputeRecord {
    const dispute = this.disputes.get(id);
    if (!dispute) throw new Error(`No such dispute: '${id}'`);
    return dispute;
  }

  intentOrThrow(id: string): IntentRecord {
    const intent = this.intents.get(id);
    if (!intent) throw new Error(`No such payment_intent: '${id}'`);
    return intent;
  }

  allIntents(): IntentRecord[] {
    return [...this.intents.values()];
  }

  refundsOf(intentId: string): JsonObject[] {
    return [...this.refunds.values()]
      .filter((r) => r.intentId === intentId)
      .sort((a, b) => b.seq - a.seq)
      .map((r) => this.renderRefund(r));
  }

  allEvents(): JsonObject[] {
    return [...this.events].reverse().map((e) => this.renderEvent(e));
  }

  failNext(prefix: string, count: number, status: number, executed: boolean): void {
    this.faults.push({ prefix, left: count, status, executed });
  }

  hang(prefix: string, count: number): void {
    this.hangs.push({ prefix, left: count });
  }

  setWebhook(endpoint: WebhookEndpoint | null): void {
    this.webhook = endpoint;
  }

  stop(): void {
    this.stopped = true;
    this.sender.stop();
    for (const res of this.held) res.destroy();
    this.agent.destroy();
  }

  /** HTTP controls, for a shell walk-through: the bank and the card network (settle, dispute), the webhook queue. */
  private control(method: string, pathname: string, body: string): Answer {
    const form = parseStripeForm(new URLSearchParams(body));
    const failure = (message: string, status = 400): Answer =>
      stripeError(status, { type: 'invalid_request_error', message });
    const run = (act: () => JsonObject): Answer => {
      try {
        return { status: 200, body: act() };
      } catch (err) {
        return failure(err instanceof Error ? err.message : String(err));
      }
    };
    if (method === 'GET' && pathname === '/_double/deliveries')
      return { status: 200, body: { object: 'list', data: this.sender.deliveries.map((d) => ({ ...d })) } };
    const post = (pattern: RegExp): string[] | null => {
      const match = method === 'POST' ? pattern.exec(pathname) : null;
      return match && match.slice(1).map((part) => decodeURIComponent(part));
    };
    const outcome = textOf(form, 'outcome');

    const settle = post(/^\/_double\/(payment_intents|refunds)\/([^/]+)\/settle$/);
    if (settle) {
      const [kind, id] = settle as [string, string];
      if (outcome !== 'succeeded' && outcome !== 'failed') return failure('outcome must be succeeded or failed');
      return run(() => (kind === 'refunds' ? this.settleRefund(id, outcome) : this.settleProcessing(id, outcome)));
    }
    const dispute = post(/^\/_double\/payment_intents\/([^/]+)\/dispute$/);
    if (dispute) {
      const amount = integerOf(form, 'amount');
      const dueInMs = integerOf(form, 'due_in_ms');
      if (form.amount !== undefined && amount === undefined) return failure('amount must be an integer');
      if (form.due_in_ms !== undefined && dueInMs === undefined) return failure('due_in_ms must be an integer');
      const reason = textOf(form, 'reason');
      return run(() => this.openDispute(dispute[0]!, { reason, amount, dueInMs }));
    }
    const update = post(/^\/_double\/disputes\/([^/]+)\/update$/);
    if (update) {
      const status = textOf(form, 'status');
      if (status !== 'under_review') return failure('status must be under_review');
      return run(() => this.updateDispute(update[0]!, status));
    }
    const close = post(/^\/_double\/disputes\/([^/]+)\/close$/);
    if (close) {
      if (outcome !== 'won' && outcome !== 'lost') return failure('outcome must be won or lost');
      return run(() => this.closeDispute(close[0]!, outcome));
    }
    return failure(`Unrecognized request URL (${method}: ${pathname}).`, 404);
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}

const CONTROL_ORIGIN: EventOrigin = { id: null, idempotency_key: null };

function listPage<T extends { id: string }>(
  newestFirst: T[],
  query: FormObject,
  url: string,
  kind: string,
  render: (item: T) => JsonObject,
): Answer {
  const limit = Math.min(100, Math.max(1, integerOf(query, 'limit') ?? 10));
  const after = textOf(query, 'starting_after');
  const before = textOf(query, 'ending_before');
  let candidates = newestFirst;
  for (const [param, cursor] of [['starting_after', after] as const, ['ending_before', before] as const]) {
    if (cursor === undefined) continue;
    const index = candidates.findIndex((item) => item.id === cursor);
    if (index < 0) return resourceMissing(kind, cursor, param, 400);
    candidates = param === 'starting_after' ? candidates.slice(index + 1) : candidates.slice(0, index);
  }
  const data = before !== undefined && after === undefined ? candidates.slice(-limit) : candidates.slice(0, limit);
  return { status: 200, body: { object: 'list', data: data.map(render), has_more: candidates.length > limit, url } };
}

const expandsOf = (request: ApiRequest): string[] => [
  ...stringsOf(request.query, 'expand'),
  ...stringsOf(request.form, 'expand'),
];

/**
 * The secret test key a request authenticates with: Bearer, or HTTP Basic with the key as the user
 * and no password (`curl -u sk_test_…:`), both as Stripe takes them (docs.stripe.com/api/authentication).
 */
function secretKeyOf(authorization: string | undefined): string | undefined {
  const bearer = /^Bearer (sk_test_\S+)$/.exec(authorization ?? '')?.[1];
  if (bearer) return bearer;
  const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization ?? '')?.[1];
  const user = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':')[0] : undefined;
  return user && /^sk_test_\S+$/.test(user) ? user : undefined;
}

function unauthorized(authorization: string | undefined): Answer {
  const message = authorization
    ? `Invalid API Key provided: ${authorization.replace(/^Bearer\s+/, '').slice(0, 12)}***`
    : "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').";
  return stripeError(401, { type: 'invalid_request_error', message });
}

const RATE_LIMITED_MESSAGE =
  'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.';

const reusedKeyMessage = (key: string): string =>
  `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`;

const inProgressMessage = (key: string): string =>
  `There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${key}. Please try again later.`;

const injectedMessage = (fault: Fault): string =>
  `An error occurred with our connection to Stripe (injected by the Stripe double${fault.executed ? ' after the request was executed' : ''}).`;

/** A JSON value as an object: `{}` when it is none. */
const objectOf = (value: Json | undefined): JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {};

function errorMessageOf(answer: Answer): string {
  const error = answer.body.error;
  return typeof error === 'object' && error !== null && !Array.isArray(error) && typeof error.message === 'string'
    ? error.message
    : `status ${answer.status}`;
}

function parseObject(text: string): JsonObject {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`stripe-mock answered a non-object: ${text.slice(0, 200)}`);
  return parsed as JsonObject;
}

function headerOf(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function readBody(stream: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

/** Starts the double on loopback, in front of a running stripe-mock. */
export async function startStripeDouble(options: StripeDoubleOptions): Promise<StripeDouble> {
  // A charge and a dispute as stripe-mock shapes them: the templates of those the double renders
  // (controls make them, with no request to take stripe-mock's shape from), and a readiness check.
  const template = async (path: string): Promise<JsonObject> => {
    const probe = await fetch(new URL(path, options.stripeMockUrl), {
      headers: { authorization: 'Bearer sk_test_stripedouble' },
      signal: AbortSignal.timeout(5_000),
    });
    if (!probe.ok) throw new Error(`stripe-mock at ${options.stripeMockUrl} answered ${probe.status} to GET ${path}`);
    return parseObject(await probe.text());
  };
  const chargeTemplate = await template('/v1/charges/ch_template');
  const double = new StripeDoubleServer(options, chargeTemplate, await template('/v1/disputes/dp_template'));
  const server: Server = createServer((req, res) => {
    double.handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { type: 'api_error', message: `Stripe double failed: ${String(err)}` } }));
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const { calls, sender } = double;
  const asIntent = (object: JsonObject) => object as unknown as Stripe.PaymentIntent;
  const asRefund = (object: JsonObject) => object as unknown as Stripe.Refund;
  const asDispute = (object: JsonObject) => object as unknown as Stripe.Dispute;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    calls,
    callsTo: (method, prefix) => calls.filter((c) => c.method === method && c.path.startsWith(prefix)),
    failNext: (prefix, count, status = 500, failOptions = {}) =>
      double.failNext(prefix, count, status, failOptions.executed ?? false),
    hang: (prefix, count) => double.hang(prefix, count),
    confirm: (intentId, outcome) => asIntent(double.controlConfirm(intentId, outcome)),
    settleProcessing: (intentId, outcome) => asIntent(double.settleProcessing(intentId, outcome)),
    settleRefund: (refundId, outcome) => asRefund(double.settleRefund(refundId, outcome)),
    dispute: (intentId, disputeOptions = {}) => asDispute(double.openDispute(intentId, disputeOptions)),
    updateDispute: (disputeId, status) => asDispute(double.updateDispute(disputeId, status)),
    closeDispute: (disputeId, outcome) => asDispute(double.closeDispute(disputeId, outcome)),
    intent: (id) => {
      const record = double.allIntents().find((i) => i.id === id);
      return record && asIntent(double.renderIntent(record));
    },
    intents: () => double.allIntents().map((i) => asIntent(double.renderIntent(i))),
    refundsOf: (intentId) => double.refundsOf(intentId).map(asRefund),
    disputes: () => double.allDisputes().map(asDispute),
    events: () => double.allEvents().map((e) => e as unknown as Stripe.Event),
    deliveries: sender.deliveries,
    setWebhook: (url, secret) => {
      if (url !== null && !secret) throw new Error('a webhook endpoint needs its signing secret');
      double.setWebhook(url === null ? null : { url, secret: secret! });
    },
    pauseDelivery: () => sender.pause(),
    resumeDelivery: () => sender.resume(),
    deliverNow: () => sender.deliverNow(),
    settled: () => sender.settled(),
    stop() {
      stopping ??= (async () => {
        double.stop();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return stopping;
    },
  };
}

/**
 * The double as a process: STRIPE_MOCK_URL (required), STRIPE_DOUBLE_PORT, STRIPE_DOUBLE_RATE_LIMIT, and
 * STRIPE_DOUBLE_WEBHOOK_URL with STRIPE_WEBHOOK_SECRET for deliveries. Stops on SIGTERM or SIGINT.
 */
export async function runStripeDoubleProcess(env: NodeJS.ProcessEnv = process.env): Promise<StripeDouble> {
  if (!env.STRIPE_MOCK_URL) throw new Error('STRIPE_MOCK_URL (the stripe-mock to stand in front of) is required');
  const webhookUrl = env.STRIPE_DOUBLE_WEBHOOK_URL;
  if (webhookUrl && !env.STRIPE_WEBHOOK_SECRET)
    throw new Error('STRIPE_DOUBLE_WEBHOOK_URL needs STRIPE_WEBHOOK_SECRET');
  const double = await startStripeDouble({
    stripeMockUrl: env.STRIPE_MOCK_URL,
    port: Number(env.STRIPE_DOUBLE_PORT ?? 0),
    ...(env.STRIPE_DOUBLE_RATE_LIMIT ? { rateLimitPerSecond: Number(env.STRIPE_DOUBLE_RATE_LIMIT) } : {}),
    ...(webhookUrl ? { webhook: { url: webhookUrl, secret: env.STRIPE_WEBHOOK_SECRET! } } : {}),
  });
  console.log(`stripe-double listening on ${double.url} in front of ${env.STRIPE_MOCK_URL}`);
  const stop = (): void => void double.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return double;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runStripeDoubleProcess().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
