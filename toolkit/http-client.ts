/**
 * The support code's one HTTP client: the benchmark's load, the soak's shoppers, the fault suite's traffic, the
 * tests' calls and the tools' checks. HTTP/1.1 over keep-alive sockets to one origin, at most `connections` requests
 * in flight (the rest wait in its queue, first in first out), every request bounded by a deadline, so that a hung
 * server shows as answers that never came rather than a stuck caller.
 *
 * The HTTP itself is undici's: one undici Client per connection, one request on it at a time, driven through
 * `dispatch` with a small handler per request. The load generator shares the machine's two cores with the servers it
 * measures, and this is undici's cheapest path: on a loopback burst of 20,000 requests over 32 connections undici's
 * `request()` spent 35 µs of CPU per request, a Pool's `dispatch` 21.5, a Client per connection 21 (autocannon 31,
 * the hand-written HTTP this replaced 14). The queue is kept here, in front of undici, because undici's cannot put a
 * request first; a Client is handed a request only when it has none, so the cap and the order are exact.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Client, type Dispatcher } from 'undici';

/**
 * Why a request got no answer: `timeout`, none within its deadline; `refused`, it never reached the server (no
 * connection, a request that could not be sent, or the client was closed); `dropped`, the connection was lost before
 * the answer was complete.
 */
export type NoAnswerKind = 'timeout' | 'refused' | 'dropped';

export interface Answer {
  /** The HTTP status; 0 when there was no answer (`failure` says why). */
  readonly status: number;
  /** The body as sent (UTF-8); empty when there was no answer. */
  readonly body: string;
  /** The body parsed as JSON, on first read; undefined when empty or not JSON. */
  readonly json: unknown;
  /** Names in lower case, parsed on first read; a repeated header's values joined with ', ' (set-cookie: a list). */
  readonly headers: IncomingHttpHeaders;
  /** Retry-After in seconds, when the answer had one. */
  readonly retryAfter: number | null;
  /** Date.now() when the request went out on a connection (its wait in the queue not counted). */
  readonly sentAt: number;
  /** sentAt + ms: when the answer was complete, or given up. */
  readonly doneAt: number;
  /** From going out to the complete answer (or its failure), in ms. */
  readonly ms: number;
  /** Null for an answer; what happened otherwise. */
  readonly failure: { kind: NoAnswerKind; message: string } | null;
}

/** Where a caller counts its answers by status and latency (the soak's request classes); null: no answer. */
export interface AnswerRecorder {
  record(status: number | null, ms: number): void;
}

export interface HttpClientOptions {
  /** Requests in flight at once, and so sockets open, at most; the others wait in the queue. Default: no limit. */
  connections?: number;
  /** Each request's deadline unless it names its own, counted from when it goes out (default 30 s). */
  timeoutMs?: number;
  /** Sent with every request (a request's own headers win). */
  headers?: OutgoingHttpHeaders;
}

export interface RequestOptions {
  headers?: OutgoingHttpHeaders;
  /** Sent as it is. */
  body?: string;
  /** Sent as JSON, with Content-Type: application/json unless the headers name one. */
  json?: unknown;
  timeoutMs?: number;
  /** Ahead of every request waiting in the queue. */
  first?: boolean;
}

/** The headers as undici hands them over: a repeated header's values in a list. */
type UndiciHeaders = Record<string, string | string[] | undefined>;

const NO_HEADERS: IncomingHttpHeaders = Object.freeze({});
const UNPARSED = Symbol('unparsed');
/** Errors of a connection that never reached the server. */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);
/** undici's own deadlines (off here: each request's deadline is the client's), should one fire all the same. */
const TIMED_OUT = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
/** Headers the client sends itself (undici from the origin and the body). */
const CLIENT_HEADER = /^(host|content-length)$/i;
/**
 * One request at a time per connection; an idle one kept 4 s, or its server's Keep-Alive hint less a second (as node's
 * agent does). undici's own deadlines off (0): each request's is kept here, from when it goes out to its answer.
 */
const CONNECTION_OPTIONS: Client.Options = {
  pipelining: 1,
  keepAliveTimeout: 4_000,
  keepAliveTimeoutThreshold: 1_000,
  headersTimeout: 0,
  bodyTimeout: 0,
};

type Failure = NonNullable<Answer['failure']>;
type Code = Error & { code?: unknown };

class ReceivedAnswer implements Answer {
  readonly doneAt: number;
  private parsedJson: unknown = UNPARSED;
  private parsedHeaders: IncomingHttpHeaders | undefined;

  constructor(
    readonly status: number,
    readonly body: string,
    /** The answer's headers as undici parsed them, in node's form on first read. */
    private readonly received: UndiciHeaders | undefined,
    readonly retryAfter: number | null,
    readonly sentAt: number,
    readonly ms: number,
    readonly failure: Failure | null,
  ) {
    this.doneAt = sentAt + ms;
  }

  get headers(): IncomingHttpHeaders {
    this.parsedHeaders ??= this.received === undefined ? NO_HEADERS : nodeHeaders(this.received);
    return this.parsedHeaders;
  }

  get json(): unknown {
    if (this.parsedJson === UNPARSED) {
      try {
        this.parsedJson = this.body === '' ? undefined : (JSON.parse(this.body) as unknown);
      } catch {
        this.parsedJson = undefined;
      }
    }
    return this.parsedJson;
  }
}

function noAnswer(sentAt: number, ms: number, kind: NoAnswerKind, message: string): Answer {
  return new ReceivedAnswer(0, '', undefined, null, sentAt, ms, { kind, message });
}

/** As node's IncomingMessage gives them: a repeated header joined with ', ', set-cookie always a list. */
function nodeHeaders(received: UndiciHeaders): IncomingHttpHeaders {
  const headers: Record<string, string | string[]> = {};
  for (const name in received) {
    const value = received[name];
    if (value === undefined || name === '__proto__') continue;
    if (name === 'set-cookie') headers[name] = typeof value === 'string' ? [value] : value;
    else headers[name] = typeof value === 'string' ? value : value.join(', ');
  }
  return headers;
}

/** The defaults under the request's own headers, without those the client sends itself; as given when it can. */
function requestHeaders(defaults: OutgoingHttpHeaders | undefined, own: OutgoingHttpHeaders): OutgoingHttpHeaders {
  let clean = true;
  for (const name in own) if ((name.length === 4 || name.length === 14) && CLIENT_HEADER.test(name)) clean = false;
  if (clean && defaults === undefined) return own;
  const headers = { ...defaults, ...own };
  for (const name in headers) if (CLIENT_HEADER.test(name)) delete headers[name];
  return headers;
}

/** Rethrown outside undici's callbacks, which would otherwise take a caller's exception for the request's failure. */
function rethrow(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}

function onDeadline(job: Job): void {
  job.deadline();
}

/** What a request tells its client: it is over, and whether its connection can carry another. */
interface JobOwner {
  settle(job: Job, answer: Answer, reusable: boolean): void;
}

/** One request: what to send, and undici's handler of its answer. */
class Job implements Dispatcher.DispatchHandler {
  sentAt = 0;
  /** The connection it went out on. */
  connection: Client | undefined;
  private started = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Set once undici writes the request: until then it never reached the server. */
  private controller: Dispatcher.DispatchController | undefined;
  /** Answered (or given up): whatever undici says later is not heard. */
  private over = false;
  private status = 0;
  private received: UndiciHeaders | undefined;
  private firstPart: Buffer | undefined;
  private parts: Buffer[] | undefined;

  constructor(
    private readonly owner: JobOwner,
    readonly method: string,
    readonly path: string,
    readonly headers: OutgoingHttpHeaders,
    readonly body: string | undefined,
    readonly timeoutMs: number,
    readonly done: (answer: Answer) => void,
  ) {}

  /** Handed to its connection now: sentAt and the deadline run from here (a connection still opening counts in it). */
  start(): void {
    this.sentAt = Date.now();
    this.started = performance.now();
    this.timer = setTimeout(onDeadline, this.timeoutMs, this);
  }

  /**
   * The deadline passed: answered `timeout` now. A request sent is aborted (undici closes its socket, the connection
   * opens a new one for the next); one still waiting for its connection to open is not sent, that connection dropped.
   */
  deadline(): void {
    if (this.over) return;
    // A timer may fire up to a loop turn early (libuv's clock is cached): wait the rest.
    const left = this.started + this.timeoutMs - performance.now();
    if (left > 0) {
      this.timer = setTimeout(onDeadline, Math.ceil(left), this);
      return;
    }
    const message = `no answer within ${this.timeoutMs} ms`;
    // Over before the abort, whose error undici hands straight back to onResponseError.
    this.over = true;
    this.controller?.abort(new Error(message));
    this.finish(
      noAnswer(this.sentAt, performance.now() - this.started, 'timeout', message),
      this.controller !== undefined,
    );
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: UndiciHeaders): void {
    // 1xx: an interim answer (103 Early Hints); the real one follows. (An unasked-for 100 Continue undici takes for a
    // broken connection: `dropped`.)
    if (status < 200) return;
    this.status = status;
    this.received = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.firstPart === undefined) this.firstPart = chunk;
    else (this.parts ??= [this.firstPart]).push(chunk);
  }

  onResponseEnd(): void {
    if (this.over) return;
    const body = this.parts
      ? Buffer.concat(this.parts).toString('utf8')
      : this.firstPart
        ? this.firstPart.toString('utf8')
        : '';
    const hint = this.received?.['retry-after'];
    // Number() ignores the spaces around a value; an HTTP date is not a number of seconds.
    const seconds = hint === undefined ? Number.NaN : Number(typeof hint === 'string' ? hint : hint[hint.length - 1]);
    const ms = performance.now() - this.started;
    const answer = new ReceivedAnswer(
      this.status,
      body,
      this.received,
      Number.isFinite(seconds) ? seconds : null,
      this.sentAt,
      ms,
      null,
    );
    try {
      this.finish(answer, true);
    } catch (err) {
      rethrow(err);
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.over) return;
    const code = (err as Code).code;
    const kind: NoAnswerKind =
      this.controller === undefined || (typeof code === 'string' && NOT_CONNECTED.has(code))
        ? 'refused'
        : typeof code === 'string' && TIMED_OUT.has(code)
          ? 'timeout'
          : 'dropped';
    const message = `${typeof code === 'string' ? code : err.name}: ${err.message}`;
    try {
      this.finish(noAnswer(this.sentAt, performance.now() - this.started, kind, message), true);
    } catch (thrown) {
      rethrow(thrown);
    }
  }

  private finish(answer: Answer, reusable: boolean): void {
    this.over = true;
    clearTimeout(this.timer);
    this.firstPart = undefined;
    this.parts = undefined;
    this.owner.settle(this, answer, reusable);
  }
}

/** Requests to one origin over keep-alive connections; never throws: every request gets an Answer. */
export class HttpClient {
  private readonly origin: string;
  /** Every connection (a Client: one socket, opened again when needed), and those free (the last used last). */
  private readonly open = new Set<Client>();
  private readonly idle: Client[] = [];
  private readonly connections: number;
  private readonly timeoutMs: number;
  private readonly defaultHeaders: OutgoingHttpHeaders | undefined;
  private readonly queue: Array<Job | undefined> = [];
  private head = 0;
  private inFlight = 0;
  /** pump() is running: a request answered within it (one undici refuses at once) does not start another. */
  private pumping = false;
  private closed = false;
  private readonly owner: JobOwner = { settle: (job, answer, reusable) => this.settle(job, answer, reusable) };
  /** Requests sent and answered (any status, or none) so far. */
  sent = 0;
  answered = 0;

  constructor(baseUrl: string, options: HttpClientOptions = {}) {
    const { protocol, origin } = new URL(baseUrl);
    if (protocol !== 'http:') throw new Error(`HttpClient speaks plain HTTP only, not ${protocol} (${baseUrl})`);
    this.connections = options.connections ?? Number.POSITIVE_INFINITY;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.defaultHeaders =
      options.headers && Object.keys(options.headers).length > 0 ? { ...options.headers } : undefined;
    this.origin = origin;
  }

  /** Requests waiting for a connection. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Requests sent and not answered yet. */
  get busy(): number {
    return this.inFlight;
  }

  /**
   * One request, its answer to `done`: the load generators' form (no promise, no options object). `first`: ahead of
   * every request waiting (an admitted shopper's checkout does not wait behind others' polls).
   */
  send(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    body: string | undefined,
    done: (answer: Answer) => void,
    first = false,
    timeoutMs = this.timeoutMs,
  ): void {
    if (this.closed) return done(noAnswer(Date.now(), 0, 'refused', 'the client was closed'));
    const job = new Job(this.owner, method, path, headers, body, timeoutMs, done);
    if (!first) this.queue.push(job);
    else if (this.head > 0) this.queue[--this.head] = job;
    else this.queue.unshift(job);
    this.pump();
  }

  /** One request as a promise; it always resolves. */
  request(method: string, path: string, options: RequestOptions = {}): Promise<Answer> {
    let headers = options.headers ?? {};
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type'))
        headers = { ...headers, 'content-type': 'application/json' };
    }
    return new Promise((resolve) =>
      this.send(method, path, headers, body, resolve, options.first ?? false, options.timeoutMs ?? this.timeoutMs),
    );
  }

  /** Closes every connection: requests in flight end `dropped`, those waiting and any later `refused`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiting = this.queue.splice(this.head);
    this.queue.length = 0;
    this.head = 0;
    // undici fails what it holds with this error: `dropped` if it was sent, `refused` if not.
    const closed = Object.assign(new Error('the client was closed'), { code: 'ECLOSED' });
    for (const connection of this.open) connection.destroy(closed, () => {});
    this.open.clear();
    this.idle.length = 0;
    for (const job of waiting) job?.done(noAnswer(Date.now(), 0, 'refused', 'the client was closed'));
  }

  /** A request is over: its answer to the caller, its connection to the next one waiting (or dropped). */
  private settle(job: Job, answer: Answer, reusable: boolean): void {
    this.inFlight--;
    this.answered++;
    const connection = job.connection!;
    if (this.closed) {
      // close() destroyed it already.
    } else if (reusable) this.idle.push(connection);
    else {
      this.open.delete(connection);
      connection.destroy(null, () => {});
    }
    job.done(answer);
    this.pump();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.head < this.queue.length && this.inFlight < this.connections && !this.closed) {
        const job = this.queue[this.head]!;
        this.queue[this.head++] = undefined;
        this.inFlight++;
        this.sent++;
        let connection = this.idle.pop();
        if (connection === undefined) {
          connection = new Client(this.origin, CONNECTION_OPTIONS);
          this.open.add(connection);
        }
        job.connection = connection;
        job.start();
        // A request undici cannot send (a header that would split it) is answered within this call, `refused`.
        connection.dispatch(
          {
            method: job.method,
            path: job.path,
            headers: requestHeaders(this.defaultHeaders, job.headers),
            body: job.body ?? null,
          },
          job,
        );
      }
    } finally {
      this.pumping = false;
    }
    // Compacted now and then, so that the queue's array does not grow with every request ever sent.
    if (this.head > 4_096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}

const shared = new Map<string, HttpClient>();

/**
 * A process-wide client of `baseUrl`'s origin (no connection limit, 30 s deadline unless a request names one), for
 * callers that send now and then and never close it: checks, readiness probes, tests.
 */
export function clientFor(baseUrl: string): HttpClient {
  const origin = new URL(baseUrl).origin;
  let client = shared.get(origin);
  if (!client) {
    client = new HttpClient(origin);
    shared.set(origin, client);
  }
  return client;
}

/** One request to an absolute URL, through its origin's shared client (clientFor). */
export function httpCall(method: string, url: string, options: RequestOptions = {}): Promise<Answer> {
  const { pathname, search } = new URL(url);
  return clientFor(url).request(method, `${pathname}${search}`, options);
}

/** A 2xx answer (fetch's `ok`). */
export function isOk(answer: Answer): boolean {
  return answer.status >= 200 && answer.status < 300;
}

/** Whether a GET of `url` answers 2xx within `timeoutMs`: a readiness probe, never hanging on a hung server. */
export async function answersOk(url: string, timeoutMs = 5_000): Promise<boolean> {
  return isOk(await httpCall('GET', url, { timeoutMs }));
}
