/**
 * One signed attempt (`standardwebhooks`) at an order event; retries are the caller's. The address is judged as the
 * socket connects (`lookup`), unicast unless EVENTS_ALLOWED_RANGES (request-filtering-agent 3.2.1 passes ::7f00:1).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import ipaddr from 'ipaddr.js';
import { Webhook } from 'standardwebhooks';
import type { AppConfig } from '../config/index.js';

export type WebhookDeliverySettings = AppConfig['webhookDelivery'];

export const WEBHOOK_USER_AGENT = 'flash-checkout-webhooks/1.0 (order events)';
/** How much of an answer's body is read; the rest is never read (the socket is closed). */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** How much of an error's text an outcome keeps (the worker's view; an admin sees coarseReason's). */
const REASON_CHARS = 300;
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

const SLOW_DOWN_STATUSES = [429, 502, 503, 504] as const;
type SlowDownStatus = (typeof SLOW_DOWN_STATUSES)[number];

export interface WebhookMessage {
  url: string;
  /** `webhook-id`: the same on every attempt at this message. */
  id: string;
  /** The JSON body, sent and signed as these exact characters. */
  body: string;
  /** `whsec_…` secrets, one signature each: the endpoint's secret, and during a rotation's overlap the old one too. */
  secrets: readonly string[];
}

/** What one attempt came to; `ms` from the start of the attempt to its outcome. */
export type WebhookOutcome =
  /** A 2xx: the merchant has it. */
  | { kind: 'delivered'; status: number; ms: number }
  /** 410: the endpoint is gone; the caller disables it. */
  | { kind: 'gone'; status: 410; ms: number }
  /** 429, 502, 503, 504: try again later, not before `retryAfterMs` when the answer said (capped at an hour). */
  | { kind: 'slow_down'; status: SlowDownStatus; retryAfterMs: number | undefined; ms: number }
  /** Any other answer (a redirect, 4xx, 5xx: `status`), or none (a timeout, a connection error); no body kept. */
  | { kind: 'failed'; status: number | null; reason: string; ms: number }
  /** Not sent, not a byte: the address rule or the https rule, or not an http(s) URL. */
  | { kind: 'refused'; reason: string };

export interface WebhookSenderOptions {
  /** The clock each attempt's timestamp is read from (ms since the epoch), and Retry-After dates are counted from. */
  now?: () => number;
  /** Resolves a hostname as dns.lookup does (the default); each address it answers is judged before it is connected. */
  lookup?: LookupFunction;
  /** Certificate authorities trusted for https instead of Node's (a test's own). */
  ca?: string | Buffer;
}

/** Connection errors an admin is told of by kind; anything else is "connection failed". */
const CONNECTION_ERRORS: [RegExp, string][] = [
  [/^ECONNREFUSED$/, 'connection refused'],
  [/^(ECONNRESET|EPIPE|ECONNABORTED)$/, 'connection reset'],
  [/^(ENOTFOUND|EAI_AGAIN|EAI_NODATA|EAI_NONAME)$/, 'host name not found'],
  [/CERT|TLS|SSL/, 'TLS refused (certificate or handshake)'],
];

/** Only the kind: an address, resolver answer, error text or body would map what lies behind the endpoint's name. */
export function coarseReason(outcome: Exclude<WebhookOutcome, { kind: 'delivered' }>): string {
  switch (outcome.kind) {
    case 'gone':
      return '410 Gone: the endpoint was disabled';
    case 'slow_down':
      return `${outcome.status}: slowed down${outcome.retryAfterMs === undefined ? '' : ` (Retry-After ${Math.ceil(outcome.retryAfterMs / 1000)} s)`}`;
    case 'failed':
      if (outcome.status !== null) return outcome.reason;
      if (outcome.reason.startsWith(TIMEOUT)) return 'timeout: no answer within EVENTS_ATTEMPT_TIMEOUT_MS';
      return (
        CONNECTION_ERRORS.find(([code]) => code.test(outcome.reason.split(': ')[1] ?? ''))?.[1] ?? 'connection failed'
      );
    case 'refused':
      if (outcome.reason === HTTPS_REQUIRED) return outcome.reason;
      if (outcome.reason === NOT_A_URL || outcome.reason.startsWith(NOT_SENDABLE)) return 'not a URL it can send to';
      return 'address refused: not public, or a port other than 443 (80), outside EVENTS_ALLOWED_RANGES';
  }
}

const TIMEOUT = 'timeout:';
const HTTPS_REQUIRED = 'http:// refused: https is required (EVENTS_REQUIRE_HTTPS)';
const NOT_A_URL = 'not a URL';
const NOT_SENDABLE = 'not sendable:';

/** Refused by the address rule: the request never connected. */
class AddressRefused extends Error {}

/** Sends one attempt at a time; holds no state between attempts. */
export class WebhookSender {
  private readonly rule: AddressRule;
  private readonly now: () => number;

  constructor(
    private readonly settings: WebhookDeliverySettings,
    private readonly options: WebhookSenderOptions = {},
  ) {
    if (!(settings.attemptTimeoutMs > 0)) throw new Error('attemptTimeoutMs must be positive');
    this.rule = new AddressRule(settings.allowedRanges);
    this.now = options.now ?? Date.now;
  }

  /** One attempt; never throws but for a caller's mistake (no secret, a malformed one, an id that is no header). */
  async send(message: WebhookMessage): Promise<WebhookOutcome> {
    const signers = signersOf(message);
    const url = URL.parse(message.url);
    if (!url) return { kind: 'refused', reason: NOT_A_URL };
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      return { kind: 'refused', reason: `${NOT_SENDABLE} ${url.protocol} is not http(s)` };
    if (url.protocol === 'http:' && this.settings.requireHttps) return { kind: 'refused', reason: HTTPS_REQUIRED };
    // An IP literal is connected as written, without a lookup: judged here. (The URL parser has made it canonical.)
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) !== 0) {
      const refusal = this.rule.refusal(host, url.port);
      if (refusal) return { kind: 'refused', reason: refusal };
    }

    const timestamp = new Date(this.now());
    const headers = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(message.body)),
      'user-agent': WEBHOOK_USER_AGENT,
      'webhook-id': message.id,
      'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
      'webhook-signature': signers.map((signer) => signer.sign(message.id, timestamp, message.body)).join(' '),
    };
    return this.attempt(url, headers, message.body);
  }

  private attempt(url: URL, headers: Record<string, string>, body: string): Promise<WebhookOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const timeoutMs = this.settings.attemptTimeoutMs;
    return new Promise((resolve) => {
      let settled = false;
      let answer: { res: IncomingMessage; bytes: number } | null = null;
      const requestOptions: https.RequestOptions = {
        method: 'POST',
        headers,
        // A socket of its own, closed after the answer: nothing pooled, no proxy.
        agent: false,
        lookup: judgedLookup(this.options.lookup ?? (dnsLookup as LookupFunction), this.rule, url.port),
        ...(url.protocol === 'https:' && this.options.ca ? { ca: this.options.ca } : {}),
      };
      let request: http.ClientRequest;
      try {
        request = (url.protocol === 'https:' ? https : http).request(url, requestOptions);
      } catch (err) {
        // Node refused to make the request at all (a URL it cannot send to): nothing was sent.
        return resolve({
          kind: 'refused',
          reason: `${NOT_SENDABLE} ${(err as Error).message}`.slice(0, REASON_CHARS),
        });
      }
      const finish = (outcome: WebhookOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        request.destroy();
        resolve(outcome);
      };
      const failed = (reason: string) =>
        finish({
          kind: 'failed',
          status: null,
          reason: reason.slice(0, REASON_CHARS),
          ms: elapsed(),
        });
      // Once the status and headers are in, the status decides; the body read so far (bounded) is dropped.
      const answered = () => {
        if (answer) finish(outcomeOf(answer.res, elapsed(), this.now()));
      };
      const timer = setTimeout(
        () => (answer ? answered() : failed(`${TIMEOUT} no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof AddressRefused) finish({ kind: 'refused', reason: err.message });
        else if (answer) answered();
        else failed(`connection: ${err.code ?? err.name}: ${err.message}`);
      });
      request.on('response', (res) => {
        const read = (answer = { res, bytes: 0 });
        res.on('data', (chunk: Buffer) => {
          read.bytes += chunk.length;
          // Enough: the rest is never read (finish closes the socket).
          if (read.bytes >= MAX_RESPONSE_BYTES) answered();
        });
        for (const end of ['end', 'error', 'close']) res.on(end, answered);
      });
      request.end(body);
    });
  }
}

/** Each secret's signer; a missing or malformed secret or id is the caller's mistake, and throws. */
function signersOf(message: WebhookMessage): Webhook[] {
  if (!/^[\x21-\x7e]{1,255}$/.test(message.id))
    throw new Error('a webhook id is 1 to 255 printable ASCII characters without spaces');
  if (typeof message.body !== 'string') throw new Error('a webhook body is the JSON text to send');
  if (message.secrets.length === 0) throw new Error('a webhook needs at least one secret to sign with');
  return message.secrets.map((secret, index) => {
    if (!secret.startsWith('whsec_')) throw new Error(`webhook secret #${index + 1} is not a whsec_… secret`);
    try {
      return new Webhook(secret);
    } catch (err) {
      throw new Error(`webhook secret #${index + 1} is not a whsec_… secret: ${(err as Error).message}`);
    }
  });
}

function outcomeOf(res: IncomingMessage, ms: number, nowMs: number): WebhookOutcome {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return { kind: 'delivered', status, ms };
  if (status === 410) return { kind: 'gone', status, ms };
  if (isSlowDown(status))
    return { kind: 'slow_down', status, retryAfterMs: retryAfterMs(res.headers['retry-after'], nowMs), ms };
  const reason = status >= 300 && status < 400 ? `redirect ${status} not followed` : `answered ${status}`;
  return { kind: 'failed', status, reason, ms };
}

function isSlowDown(status: number): status is SlowDownStatus {
  return (SLOW_DOWN_STATUSES as readonly number[]).includes(status);
}

/** Retry-After (RFC 9110): delay-seconds or an HTTP-date from `nowMs` (past: 0), capped; undefined when neither. */
export function retryAfterMs(header: string | undefined, nowMs: number): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Math.min(Number(value) * 1000, MAX_RETRY_AFTER_MS);
  // IMF-fixdate and the obsolete RFC 850 form both end in GMT; asctime's (no zone) is not taken.
  const date = /GMT$/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, date - nowMs), MAX_RETRY_AFTER_MS);
}

/** The socket's `lookup`: the resolver's answer less each refused address (none left: refused): judged is connected. */
function judgedLookup(resolve: LookupFunction, rule: AddressRule, port: string): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const answers: LookupAddress[] =
        typeof address === 'string' ? [{ address, family: family ?? isIP(address) }] : address;
      const refusals: string[] = [];
      const allowed = answers.filter((answer) => {
        const refusal = rule.refusal(answer.address, port);
        if (refusal) refusals.push(refusal);
        return refusal === null;
      });
      const first = allowed[0];
      if (!first)
        return callback(new AddressRefused(`${hostname} resolves to ${refusals.join('; ') || 'no address'}`), '', 0);
      if (options.all) callback(null, allowed);
      else callback(null, first.address, first.family);
    });
  };
}

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** IPv6 carrying IPv4 is judged as that IPv4; ports but 443/80 only in EVENTS_ALLOWED_RANGES: they'd probe services. */
export class AddressRule {
  private readonly allowed: [Address, number][];

  constructor(allowedRanges: readonly string[]) {
    this.allowed = allowedRanges.map((range) => ipaddr.parseCIDR(range));
  }

  /** `port`: the URL's, '' when it is the scheme's own (the URL parser drops a default port). */
  refusal(address: string, port = ''): string | null {
    if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
    const parsed = ipaddr.parse(address);
    const carried = carriedIPv4(parsed);
    const judged = carried ?? parsed;
    const inRange = (ip: Address, [network, bits]: [Address, number]) =>
      ip.kind() === network.kind() && ip.match(network, bits);
    if (this.allowed.some((range) => inRange(judged, range) || inRange(parsed, range))) return null;
    const shown = carried ? `${address} (IPv4 ${carried.toString()})` : address;
    const range = judged.range();
    if (range === 'unicast')
      return port === ''
        ? null
        : `${shown}: port ${port} refused, only 443 (or 80) outside the ranges an operator allows (EVENTS_ALLOWED_RANGES)`;
    return `${shown}: ${range}, refused (an operator may allow its range: EVENTS_ALLOWED_RANGES)`;
  }
}

/** The IPv4 address an IPv6 one leads to: IPv4-mapped, IPv4-compatible (deprecated), NAT64's well-known prefix. */
function carriedIPv4(address: Address): ipaddr.IPv4 | null {
  if (address.kind() !== 'ipv6') return null;
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
  const bytes = v6.toByteArray();
  const prefix = bytes.slice(0, 12);
  const low = bytes.slice(12);
  const zeros = (values: number[]) => values.every((value) => value === 0);
  // ::/128 and ::1/128 are themselves (unspecified, loopback).
  const compatible = zeros(prefix) && !(zeros(low.slice(0, 3)) && (low[3] ?? 0) <= 1);
  const nat64 =
    prefix[0] === 0x00 && prefix[1] === 0x64 && prefix[2] === 0xff && prefix[3] === 0x9b && zeros(prefix.slice(4));
  return compatible || nat64 ? new ipaddr.IPv4(low) : null;
}
