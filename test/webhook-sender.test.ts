/**
 * src/order-events/webhook-sender.ts against in-process receivers on loopback (no stack): what a merchant verifies
 * with the `standardwebhooks` library's own Webhook.verify (a rotation's two secrets, a retry past the 5-minute
 * tolerance on a fake clock), the address and https rules (refused with no connection reaching a listening receiver),
 * and how each answer, a silence and an endless body end. Every socket this file opens is checked before it
 * connects: one to an address off loopback fails the test instead of leaving the machine.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig, type AppConfig } from '../src/config/index.js';
import { productionSecrets } from './helpers/env.js';
import {
  AddressRule,
  MAX_RETRY_AFTER_MS,
  WEBHOOK_USER_AGENT,
  WebhookSender,
  retryAfterMs,
  type WebhookMessage,
  type WebhookSenderOptions,
} from '../src/order-events/webhook-sender.js';

/** Each test's own bound: every wait below is bounded by the sender's attempt timeout or a timer of its own. */
const TEST_TIMEOUT_MS = 20_000;
const LOOPBACK_RANGES = '127.0.0.0/8,::1/128';

// ---- the guard: no socket of this file connects off loopback ---------------------------------------------------

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
const isLoopback = (address: string) => LOOPBACK.check(address, net.isIP(address) === 6 ? 'ipv6' : 'ipv4');

/** Every outgoing connect this file's sockets made (the address, or the addresses its lookup answered). */
const connects: string[] = [];
/** Connects the guard stopped: an address off loopback, or a hostname without the sender's lookup. */
const stopped: string[] = [];

type ConnectArgs = Parameters<net.Socket['connect']>;
const realConnect = net.Socket.prototype.connect;

beforeAll(() => {
  vi.spyOn(net.Socket.prototype, 'connect').mockImplementation(function (this: net.Socket, ...args: ConnectArgs) {
    const first: unknown = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
    const options = (typeof first === 'object' && first !== null ? first : {}) as net.TcpSocketConnectOpts;
    const host = options.host ?? 'localhost';
    if (net.isIP(host) !== 0) {
      connects.push(host);
      if (!isLoopback(host)) {
        stopped.push(host);
        throw new Error(`test guard: a connect to ${host}, off loopback`);
      }
    } else if (!options.lookup) {
      stopped.push(host);
      throw new Error(`test guard: ${host} connected without the sender's lookup`);
    } else {
      const lookup = options.lookup;
      options.lookup = (hostname, lookupOptions, callback) =>
        lookup(hostname, lookupOptions, (err, address, family) => {
          const addresses = err ? [] : typeof address === 'string' ? [address] : address.map((a) => a.address);
          connects.push(...addresses);
          const off = addresses.filter((a) => !isLoopback(a));
          if (off.length > 0) {
            stopped.push(...off);
            callback(new Error(`test guard: ${hostname} would connect to ${off.join(', ')}`), '', 0);
          } else callback(err, address, family);
        });
    }
    return Reflect.apply(realConnect, this, args) as net.Socket;
  });
});

afterAll(() => vi.restoreAllMocks());

beforeEach(() => {
  connects.length = 0;
  stopped.length = 0;
});

afterEach(() => {
  expect(stopped, 'connects the guard stopped (an address off loopback)').toEqual([]);
});

// ---- receivers ---------------------------------------------------------------------------------------------------

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

interface Receiver {
  port: number;
  /** TCP connections accepted. */
  connections: number;
  received: Received[];
  url(host?: string, path?: string): string;
  close(): Promise<void>;
}

const receivers: Receiver[] = [];

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

/** A receiver on every loopback address (dual-stack `::`), so that a connect to 127.0.0.1 or ::1 both count. */
async function startReceiver(handle: Handler, tls?: { key: string; cert: string }): Promise<Receiver> {
  const received: Received[] = [];
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ headers: req.headers, body });
      handle(req, res, body);
    });
  };
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  const receiver: Receiver = {
    port: 0,
    connections: 0,
    received,
    url: (host = '127.0.0.1', path = '/hooks/orders') =>
      `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${receiver.port}${path}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  server.on('connection', () => receiver.connections++);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '::', ipv6Only: false }, resolve);
  });
  receiver.port = (server.address() as AddressInfo).port;
  receivers.push(receiver);
  return receiver;
}

/** A merchant's endpoint: Webhook.verify with its secret, 204 when it verifies, 401 with the error when not. */
const verifying =
  (secret: string): Handler =>
  (req, res, body) => {
    try {
      new Webhook(secret).verify(body, req.headers as Record<string, string>);
      res.writeHead(204).end();
    } catch (err) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end((err as Error).message);
    }
  };

const answering =
  (status: number, headers: http.OutgoingHttpHeaders = {}, body = ''): Handler =>
  (_req, res) =>
    res.writeHead(status, headers).end(body);

// ---- the sender as the worker would build it ---------------------------------------------------------------------

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** The settings loadConfig makes of these variables; loopback allowed unless said otherwise. */
function settings(env: Record<string, string> = {}): AppConfig['webhookDelivery'] {
  return loadConfig({ EVENTS_ALLOWED_RANGES: LOOPBACK_RANGES, EVENTS_ATTEMPT_TIMEOUT_MS: '5000', ...env })
    .webhookDelivery;
}

const sender = (env: Record<string, string> = {}, options: WebhookSenderOptions = {}) =>
  new WebhookSender(settings(env), options);

/** Without the local stack's allowance: loopback is refused as in production. */
const strictSender = (options: WebhookSenderOptions = {}) => sender({ EVENTS_ALLOWED_RANGES: '' }, options);

/** A resolver standing in for DNS: each name's addresses, answered asynchronously as dns.lookup does. */
function resolver(table: Record<string, string[]>): LookupFunction {
  return (hostname, options, callback) => {
    setImmediate(() => {
      const answers = (table[hostname] ?? []).map((address) => ({ address, family: net.isIP(address) }));
      const first = answers[0];
      if (!first) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
      else if (options.all) callback(null, answers);
      else callback(null, first.address, first.family);
    });
  };
}

const event = { type: 'order.paid', orderNo: 'F20261127-000042', amountCents: 1999 };

function message(url: string, secrets: string[] = [newSecret()]): WebhookMessage {
  return { url, id: 'F20261127-000042.order.paid', body: JSON.stringify(event), secrets };
}

/** `promise`, or a rejection after `ms`: no wait here is unbounded. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---- signing ---------------------------------------------------------------------------------------------------

describe('signed as Standard Webhooks says, verified by the library a merchant uses', () => {
  it(
    'POSTs the JSON body with webhook-id, its timestamp and one v1 signature; the receiver verifies it',
    async () => {
      const secret = newSecret();
      const receiver = await startReceiver(verifying(secret));
      const clock = Date.now();
      const outcome = await sender({}, { now: () => clock }).send(message(receiver.url(), [secret]));

      expect(outcome).toMatchObject({ kind: 'delivered', status: 204 });
      const [request] = receiver.received;
      expect(request?.body).toBe(JSON.stringify(event));
      expect(request?.headers).toMatchObject({
        'content-type': 'application/json',
        'user-agent': WEBHOOK_USER_AGENT,
        'webhook-id': 'F20261127-000042.order.paid',
        'webhook-timestamp': String(Math.floor(clock / 1000)),
      });
      expect(request?.headers['user-agent']).toContain('flash-checkout');
      expect(request?.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'rotation: signed with the new secret and the old one, a receiver holding either verifies, one holding neither does not',
    async () => {
      const [current, previous, unrelated] = [newSecret(), newSecret(), newSecret()];
      const rotated = sender();
      const holdsCurrent = await startReceiver(verifying(current));
      const holdsPrevious = await startReceiver(verifying(previous));
      const holdsNeither = await startReceiver(verifying(unrelated));

      expect(await rotated.send(message(holdsCurrent.url(), [current, previous]))).toMatchObject({
        kind: 'delivered',
      });
      expect(await rotated.send(message(holdsPrevious.url(), [current, previous]))).toMatchObject({
        kind: 'delivered',
      });
      expect(await rotated.send(message(holdsNeither.url(), [current, previous]))).toMatchObject({
        kind: 'failed',
        status: 401,
      });
      expect(holdsCurrent.received[0]?.headers['webhook-signature']?.toString().split(' ')).toHaveLength(2);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a retry 6 minutes after the first attempt is signed at its own time and verifies; the first timestamp would not',
    async () => {
      const secret = newSecret();
      // The first attempt is made 6 minutes ago by the sender's clock; the merchant was down then.
      let clock = Date.now() - 6 * 60_000;
      const retrying = sender({}, { now: () => clock });
      let up = false;
      const receiver = await startReceiver((req, res, body) =>
        up ? verifying(secret)(req, res, body) : res.writeHead(503).end(),
      );

      expect(await retrying.send(message(receiver.url(), [secret]))).toMatchObject({ kind: 'slow_down', status: 503 });
      clock += 6 * 60_000;
      up = true;
      expect(await retrying.send(message(receiver.url(), [secret]))).toMatchObject({ kind: 'delivered', status: 204 });

      const [first, retry] = receiver.received;
      expect(retry?.headers['webhook-id']).toBe(first?.headers['webhook-id']);
      expect(Number(retry?.headers['webhook-timestamp']) - Number(first?.headers['webhook-timestamp'])).toBe(360);
      expect(retry?.headers['webhook-signature']).not.toBe(first?.headers['webhook-signature']);
      // Had the retry carried the first attempt's timestamp and signature, the merchant would refuse it.
      expect(() => new Webhook(secret).verify(first!.body, first!.headers as Record<string, string>)).toThrow(
        'Message timestamp too old',
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "https to a hostname (the injected resolver's), its certificate checked against the name",
    async () => {
      const secret = newSecret();
      const receiver = await startReceiver(verifying(secret), certificate);
      const secure = sender(
        { EVENTS_REQUIRE_HTTPS: 'true' },
        {
          lookup: resolver({ 'merchant.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] }),
          ca: certificate.cert,
        },
      );

      expect(await secure.send(message(receiver.url('merchant.test'), [secret]))).toMatchObject({
        kind: 'delivered',
      });
      // A name the certificate does not carry: a failed connection, not a delivery.
      const wrongName = await secure.send(message(receiver.url('other.test'), [secret]));
      expect(wrongName).toMatchObject({ kind: 'failed', status: null });
      expect(wrongName.kind === 'failed' && wrongName.reason).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
    },
    TEST_TIMEOUT_MS,
  );
});

// ---- the address rule --------------------------------------------------------------------------------------------

describe('no request forgery: refused addresses are never connected', () => {
  const listening: [string, (port: number) => string, Record<string, string[]>?][] = [
    ['an IPv4 loopback literal', (port) => `http://127.0.0.1:${port}/`],
    ['another IPv4 loopback literal', (port) => `http://127.1.2.3:${port}/`],
    ['an IPv6 loopback literal', (port) => `http://[::1]:${port}/`],
    ['an IPv4-mapped IPv6 literal, dotted', (port) => `http://[::ffff:127.0.0.1]:${port}/`],
    ['an IPv4-mapped IPv6 literal, hex', (port) => `http://[::ffff:7f00:1]:${port}/`],
    ['an IPv4-compatible IPv6 literal', (port) => `http://[::7f00:1]:${port}/`],
    ['a decimal IPv4 literal', (port) => `http://2130706433:${port}/`],
    ['localhost (the system resolver)', (port) => `http://localhost:${port}/`],
    ['a hostname resolving to loopback', (port) => `http://merchant.test:${port}/`, { 'merchant.test': ['127.0.0.1'] }],
    [
      'a hostname resolving to ::1 and 127.0.0.1',
      (port) => `http://both.test:${port}/`,
      { 'both.test': ['::1', '127.0.0.1'] },
    ],
    [
      'a hostname resolving to an IPv4-mapped loopback',
      (port) => `http://mapped.test:${port}/`,
      { 'mapped.test': ['::ffff:127.0.0.1'] },
    ],
  ];

  it.each(listening)(
    '%s: refused, no connection reaches the receiver listening there',
    async (_name, url, names) => {
      const receiver = await startReceiver(answering(204));
      const outcome = await strictSender(names ? { lookup: resolver(names) } : {}).send(message(url(receiver.port)));
      expect(outcome).toMatchObject({ kind: 'refused' });
      expect(outcome.kind === 'refused' && outcome.reason).toMatch(/loopback/);
      expect(receiver.connections).toBe(0);
      expect(connects).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a public address on a port other than the scheme's own: refused unless EVENTS_ALLOWED_RANGES allows it",
    async () => {
      const outcome = await strictSender({ lookup: resolver({ 'merchant.example': ['93.184.216.34'] }) }).send(
        message('https://merchant.example:8443/hooks'),
      );
      expect(outcome).toEqual({
        kind: 'refused',
        reason: expect.stringMatching(/port 8443 refused, only 443 \(or 80\)/),
      });
      expect(connects).toEqual([]);
      expect(new AddressRule([]).refusal('93.184.216.34', '')).toBeNull();
      expect(new AddressRule([]).refusal('93.184.216.34', '8443')).toMatch(/port 8443 refused/);
      expect(new AddressRule(['93.184.216.0/24']).refusal('93.184.216.34', '8443')).toBeNull();
    },
    TEST_TIMEOUT_MS,
  );

  const elsewhere: [string, string, string, Record<string, string[]>?][] = [
    ['the cloud metadata address', 'http://169.254.169.254/latest/meta-data/', 'linkLocal'],
    ['carrier-grade NAT', 'http://100.64.0.1/', 'carrierGradeNat'],
    ['private 10/8', 'http://10.0.0.1/', 'private'],
    ['private 172.16/12', 'http://172.31.255.254/', 'private'],
    ['private 192.168/16', 'http://192.168.1.1/', 'private'],
    ['unspecified', 'http://0.0.0.0/', 'unspecified'],
    ['broadcast', 'http://255.255.255.255/', 'broadcast'],
    ['multicast', 'http://224.0.0.251/', 'multicast'],
    ['documentation', 'http://192.0.2.10/', 'reserved'],
    ['reserved 240/4', 'http://240.0.0.1/', 'reserved'],
    ['IPv6 unspecified', 'http://[::]/', 'unspecified'],
    ['IPv6 link-local', 'http://[fe80::1]/', 'linkLocal'],
    ['IPv6 unique-local', 'http://[fd12:3456::1]/', 'uniqueLocal'],
    ['IPv6 multicast', 'http://[ff02::1]/', 'multicast'],
    ['IPv6 documentation', 'http://[2001:db8::1]/', 'reserved'],
    ['the metadata address, IPv4-mapped', 'http://[::ffff:169.254.169.254]/', 'linkLocal'],
    ['10.0.0.1, IPv4-mapped in hex', 'http://[::ffff:a00:1]/', 'private'],
    ['the metadata address through NAT64', 'http://[64:ff9b::a9fe:a9fe]/', 'linkLocal'],
    [
      'a hostname resolving to the metadata address',
      'http://metadata.test/',
      'linkLocal',
      { 'metadata.test': ['169.254.169.254'] },
    ],
    ['a hostname resolving to 10.0.0.1', 'http://intranet.test/', 'private', { 'intranet.test': ['10.0.0.1'] }],
  ];

  it.each(elsewhere)(
    '%s (%s): refused, naming the range, before any connect',
    async (_name, url, range, names) => {
      const outcome = await strictSender(names ? { lookup: resolver(names) } : {}).send(message(url));
      expect(outcome).toMatchObject({ kind: 'refused' });
      expect(outcome.kind === 'refused' && outcome.reason).toContain(`: ${range}, refused`);
      expect(connects).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "the operator's allowance: loopback reached when EVENTS_ALLOWED_RANGES lists it, as IPv4, IPv6 and IPv4-mapped",
    async () => {
      const receiver = await startReceiver(answering(200));
      const allowed = sender({ EVENTS_ALLOWED_RANGES: LOOPBACK_RANGES });
      for (const host of ['127.0.0.1', '::1', '::ffff:127.0.0.1'])
        expect(await allowed.send(message(receiver.url(host))), host).toMatchObject({ kind: 'delivered' });
      expect(receiver.connections).toBe(3);
      // ::1 alone allowed: IPv4 loopback is still refused.
      const v6Only = sender({ EVENTS_ALLOWED_RANGES: '::1/128' });
      expect(await v6Only.send(message(receiver.url('127.0.0.1')))).toMatchObject({ kind: 'refused' });
      expect(receiver.connections).toBe(3);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a hostname answering a refused and an allowed address is connected at the allowed one only',
    async () => {
      const receiver = await startReceiver(answering(204));
      const mixed = sender({}, { lookup: resolver({ 'mixed.test': ['10.0.0.1', '127.0.0.1'] }) });
      expect(await mixed.send(message(`http://mixed.test:${receiver.port}/`))).toMatchObject({ kind: 'delivered' });
      expect(connects).toEqual(['127.0.0.1']);
    },
    TEST_TIMEOUT_MS,
  );

  it('public unicast addresses pass the rule, in every spelling', () => {
    const rule = new AddressRule([]);
    for (const address of ['93.184.215.14', '2606:4700:4700::1111', '::ffff:93.184.215.14', '64:ff9b::5db8:d70e'])
      expect(rule.refusal(address), address).toBeNull();
    expect(rule.refusal('not-an-address')).toMatch(/not an IP address/);
  });
});

// ---- the https rule ----------------------------------------------------------------------------------------------

describe('https when the configuration requires it', () => {
  it(
    'http:// is refused when EVENTS_REQUIRE_HTTPS, with no connection (loopback allowed)',
    async () => {
      const receiver = await startReceiver(answering(204));
      const outcome = await sender({ EVENTS_REQUIRE_HTTPS: 'true' }).send(message(receiver.url()));
      expect(outcome).toEqual({ kind: 'refused', reason: expect.stringContaining('https is required') });
      expect(receiver.connections).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it('is required in production by default; false lifts it; development does not require it', () => {
    const production = productionSecrets();
    expect(loadConfig(production).webhookDelivery.requireHttps).toBe(true);
    expect(loadConfig({ ...production, EVENTS_REQUIRE_HTTPS: 'false' }).webhookDelivery.requireHttps).toBe(false);
    expect(loadConfig({}).webhookDelivery).toMatchObject({
      allowedRanges: [],
      requireHttps: false,
      attemptTimeoutMs: 15_000,
      retryPeriodMs: 3 * 86_400_000,
      retentionMs: 30 * 86_400_000,
    });
  });

  it('other schemes and what is no URL are refused', async () => {
    expect(await sender().send(message('ftp://127.0.0.1/'))).toMatchObject({ kind: 'refused' });
    expect(await sender().send(message('not a url'))).toMatchObject({ kind: 'refused', reason: 'not a URL' });
  });
});

// ---- answers -----------------------------------------------------------------------------------------------------

describe("the endpoint's answer, as an outcome", () => {
  it(
    'a redirect is a failure, its Location never followed',
    async () => {
      const target = await startReceiver(answering(204));
      const redirecting = await startReceiver(answering(301, { location: target.url() }, 'moved'));
      expect(await sender().send(message(redirecting.url()))).toMatchObject({
        kind: 'failed',
        status: 301,
        reason: 'redirect 301 not followed',
      });
      expect(target.connections).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '410: gone (the endpoint is to be disabled)',
    async () => {
      const receiver = await startReceiver(answering(410));
      expect(await sender().send(message(receiver.url()))).toMatchObject({ kind: 'gone', status: 410 });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '429 with Retry-After in seconds, and as an HTTP date counted from the sender clock',
    async () => {
      const clock = Math.floor(Date.now() / 1000) * 1000;
      const inSeconds = await startReceiver(answering(429, { 'retry-after': '120' }));
      const asDate = await startReceiver(answering(429, { 'retry-after': new Date(clock + 90_000).toUTCString() }));
      const tooLong = await startReceiver(answering(429, { 'retry-after': '86400' }));
      const clocked = sender({}, { now: () => clock });
      expect(await clocked.send(message(inSeconds.url()))).toMatchObject({
        kind: 'slow_down',
        status: 429,
        retryAfterMs: 120_000,
      });
      expect(await clocked.send(message(asDate.url()))).toMatchObject({ kind: 'slow_down', retryAfterMs: 90_000 });
      expect(await clocked.send(message(tooLong.url()))).toMatchObject({ retryAfterMs: MAX_RETRY_AFTER_MS });
    },
    TEST_TIMEOUT_MS,
  );

  it.each([502, 503, 504])(
    '%i without Retry-After: slow down, no delay given',
    async (status) => {
      const receiver = await startReceiver(answering(status));
      expect(await sender().send(message(receiver.url()))).toEqual({
        kind: 'slow_down',
        status,
        retryAfterMs: undefined,
        ms: expect.any(Number),
      });
    },
    TEST_TIMEOUT_MS,
  );

  it('Retry-After: seconds, dates, past dates, the cap, and what is neither', () => {
    const now = Date.parse('Fri, 27 Nov 2026 12:00:00 GMT');
    expect(retryAfterMs('0', now)).toBe(0);
    expect(retryAfterMs(' 30 ', now)).toBe(30_000);
    expect(retryAfterMs('Fri, 27 Nov 2026 12:05:00 GMT', now)).toBe(300_000);
    expect(retryAfterMs('Friday, 27-Nov-26 12:05:00 GMT', now)).toBe(300_000);
    expect(retryAfterMs('Fri, 27 Nov 2026 11:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('Sat, 28 Nov 2026 12:00:00 GMT', now)).toBe(MAX_RETRY_AFTER_MS);
    expect(retryAfterMs('99999999999999999999', now)).toBe(MAX_RETRY_AFTER_MS);
    for (const nonsense of [undefined, '', '-5', '1.5', 'soon', '2026-11-27T12:05:00Z'])
      expect(retryAfterMs(nonsense, now), String(nonsense)).toBeUndefined();
  });

  it(
    'any other status fails as its status alone: the body is not kept (it may be a service behind the name)',
    async () => {
      const receiver = await startReceiver(answering(500, {}, `{"error":"boom"}\n${'y'.repeat(5_000)}`));
      const outcome = await sender().send(message(receiver.url()));
      expect(outcome).toEqual({ kind: 'failed', status: 500, reason: 'answered 500', ms: expect.any(Number) });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a receiver that never answers: failed, a timeout, at the bound',
    async () => {
      const receiver = await startReceiver(() => {});
      const outcome = await sender({ EVENTS_ATTEMPT_TIMEOUT_MS: '1000' }).send(message(receiver.url()));
      expect(outcome).toMatchObject({ kind: 'failed', status: null, reason: 'timeout: no answer within 1000 ms' });
      const ms = outcome.kind === 'failed' ? outcome.ms : -1;
      expect(ms).toBeGreaterThanOrEqual(990);
      expect(ms).toBeLessThan(6_000);
      expect(receiver.received).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'an answer whose body stalls after its headers: its status decides at the bound',
    async () => {
      const receiver = await startReceiver((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
      });
      const outcome = await sender({ EVENTS_ATTEMPT_TIMEOUT_MS: '1000' }).send(message(receiver.url()));
      expect(outcome).toMatchObject({ kind: 'delivered', status: 200 });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'an endless body is read up to the bound only, then the socket is closed (long before the timeout)',
    async () => {
      let closed!: () => void;
      const socketClosed = new Promise<void>((resolve) => (closed = resolve));
      const receiver = await startReceiver((_req, res) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(16 * 1024, 'x');
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        res.on('close', closed);
        pump();
      });
      const outcome = await sender({ EVENTS_ATTEMPT_TIMEOUT_MS: '30000' }).send(message(receiver.url()));
      expect(outcome).toMatchObject({ kind: 'failed', status: 500, reason: 'answered 500' });
      expect(outcome.kind === 'failed' ? outcome.ms : Infinity).toBeLessThan(10_000);
      await within(5_000, "the receiver's socket closed", socketClosed);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a connection closed before any answer: failed, with the connection error',
    async () => {
      const hangingUp = net.createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => hangingUp.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = hangingUp.address() as AddressInfo;
        const outcome = await sender().send(message(`http://127.0.0.1:${port}/`));
        expect(outcome).toMatchObject({ kind: 'failed', status: null, reason: expect.stringMatching(/^connection: /) });
      } finally {
        await new Promise((resolve) => hangingUp.close(resolve));
      }
    },
    TEST_TIMEOUT_MS,
  );
});

// ---- configuration and mistakes ----------------------------------------------------------------------------------

describe('configuration and caller mistakes', () => {
  it('a bad CIDR in EVENTS_ALLOWED_RANGES stops the start, naming the variable and the range', () => {
    for (const bad of ['127.0.0.0/8,localhost', '10.0.0.0/33', '127.1/8', 'fe80::/129'])
      expect(() => loadConfig({ EVENTS_ALLOWED_RANGES: bad }), bad).toThrow(
        expect.objectContaining({
          constructor: ConfigError,
          message: expect.stringMatching(/EVENTS_ALLOWED_RANGES: not a CIDR range: "/),
        }),
      );
    expect(loadConfig({ EVENTS_ALLOWED_RANGES: ' 127.0.0.0/8 , ::1/128 ,' }).webhookDelivery.allowedRanges).toEqual([
      '127.0.0.0/8',
      '::1/128',
    ]);
  });

  it('EVENTS_ATTEMPT_TIMEOUT_MS is 1 to 30 s', () => {
    for (const bad of ['999', '30001', 'soon'])
      expect(() => loadConfig({ EVENTS_ATTEMPT_TIMEOUT_MS: bad }), bad).toThrow(/EVENTS_ATTEMPT_TIMEOUT_MS/);
    expect(loadConfig({ EVENTS_ATTEMPT_TIMEOUT_MS: '30000' }).webhookDelivery.attemptTimeoutMs).toBe(30_000);
  });

  it('throws for what only a caller gets wrong: no secret, a secret that is not whsec_, an id that is no header', async () => {
    const base = message('http://127.0.0.1:9/');
    await expect(sender().send({ ...base, secrets: [] })).rejects.toThrow(/at least one secret/);
    await expect(sender().send({ ...base, secrets: ['plain-secret'] })).rejects.toThrow(/whsec_/);
    await expect(sender().send({ ...base, secrets: ['whsec_***'] })).rejects.toThrow(/whsec_/);
    await expect(sender().send({ ...base, id: 'two words' })).rejects.toThrow(/webhook id/);
    expect(connects).toEqual([]);
  });
});

// ---- a certificate for the https receiver ------------------------------------------------------------------------

let certificate: { key: string; cert: string };
let certificateDir: string;

beforeAll(() => {
  certificateDir = mkdtempSync(join(tmpdir(), 'webhook-sender-'));
  const [key, cert] = [join(certificateDir, 'key.pem'), join(certificateDir, 'cert.pem')];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=merchant.test',
      '-addext',
      'subjectAltName=DNS:merchant.test',
    ],
    { stdio: 'ignore', timeout: 15_000 },
  );
  certificate = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
});

afterAll(() => rmSync(certificateDir, { recursive: true, force: true }));
