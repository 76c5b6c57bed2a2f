/**
 * The line benchmark's load generator (bench/line.ts): an HTTP pool over keep-alive connections that keeps at most
 * `connections` requests in flight (the rest wait in its queue, first in first out), and a min-heap of due times
 * that wakes each of 100,000 shoppers when its Retry-After says, with one timer armed for the earliest. Both are
 * built to cost the load generator little: it shares the machine's two cores with the servers it measures.
 */
import { Agent, request as httpRequest } from 'node:http';

export interface Answer {
  /** 0: no answer (connection error or timeout). */
  status: number;
  body: string;
  /** Retry-After in seconds, when the answer had one. */
  retryAfter: number | null;
  /** When the request went out on a connection, and when its answer was complete (ms, Date.now()). */
  sentAt: number;
  doneAt: number;
}

interface Job {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
  done: (answer: Answer) => void;
}

/** Requests over at most `connections` keep-alive connections to one origin; the others queue here. */
export class HttpPool {
  private readonly agent: Agent;
  private readonly host: string;
  private readonly port: number;
  private readonly queue: Array<Job | undefined> = [];
  private head = 0;
  private inFlight = 0;
  /** Requests sent and answered (any status) so far. */
  sent = 0;
  answered = 0;

  constructor(
    url: string,
    readonly connections: number,
    private readonly timeoutMs = 30_000,
  ) {
    const { hostname, port } = new URL(url);
    this.host = hostname;
    this.port = Number(port);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: connections,
      maxFreeSockets: connections,
      scheduling: 'fifo',
    });
  }

  /** Requests waiting for a connection. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Requests sent and not answered yet. */
  get busy(): number {
    return this.inFlight;
  }

  send(
    method: Job['method'],
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    done: (answer: Answer) => void,
    first = false,
  ): void {
    const job = { method, path, headers, body, done };
    // `first`: ahead of every request waiting (an admitted shopper's checkout does not wait behind others' polls).
    if (!first) this.queue.push(job);
    else if (this.head > 0) this.queue[--this.head] = job;
    else this.queue.unshift(job);
    this.pump();
  }

  /** The same as send(), as a promise. */
  fetch(method: Job['method'], path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
    return new Promise((resolve) => this.send(method, path, headers, body, resolve));
  }

  close(): void {
    this.agent.destroy();
  }

  private pump(): void {
    while (this.inFlight < this.connections && this.head < this.queue.length) {
      const job = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      this.dispatch(job);
    }
    // Compacted now and then, so the queue's array does not grow with every request ever sent.
    if (this.head > 4_096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private dispatch(job: Job): void {
    this.inFlight++;
    this.sent++;
    const sentAt = Date.now();
    let finished = false;
    const finish = (status: number, body: string, retryAfter: number | null) => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      this.answered++;
      job.done({ status, body, retryAfter, sentAt, doneAt: Date.now() });
      this.pump();
    };
    const headers: Record<string, string | number> = { ...job.headers };
    if (job.body !== undefined) headers['content-length'] = Buffer.byteLength(job.body);
    const req = httpRequest(
      { agent: this.agent, host: this.host, port: this.port, method: job.method, path: job.path, headers },
      (res) => {
        res.setEncoding('utf8');
        let text = '';
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const after = res.headers['retry-after'];
          const seconds = after === undefined ? NaN : Number(after);
          finish(res.statusCode ?? 0, text, Number.isFinite(seconds) ? seconds : null);
        });
        res.on('error', () => finish(0, '', null));
      },
    );
    req.setTimeout(this.timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => finish(0, '', null));
    req.end(job.body);
  }
}

/**
 * Due times of items 0..capacity-1, each with at most one pending: a binary min-heap in typed arrays (no object per
 * entry), so 100,000 shoppers' next polls cost a few MB and O(log n) each.
 */
export class DueHeap {
  private readonly due: Float64Array;
  private readonly item: Int32Array;
  private size = 0;

  constructor(capacity: number) {
    this.due = new Float64Array(capacity);
    this.item = new Int32Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** The earliest due time, or Infinity when empty. */
  peek(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : this.due[0]!;
  }

  push(at: number, item: number): void {
    if (this.size === this.due.length) throw new Error('DueHeap is full');
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.due[parent]! <= at) break;
      this.due[i] = this.due[parent]!;
      this.item[i] = this.item[parent]!;
      i = parent;
    }
    this.due[i] = at;
    this.item[i] = item;
  }

  /** Removes the earliest; its item and due time. */
  pop(): { item: number; at: number } {
    if (this.size === 0) throw new Error('DueHeap is empty');
    const top = { item: this.item[0]!, at: this.due[0]! };
    const lastDue = this.due[--this.size]!;
    const lastItem = this.item[this.size]!;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.size) break;
      const right = left + 1;
      const child = right < this.size && this.due[right]! < this.due[left]! ? right : left;
      if (this.due[child]! >= lastDue) break;
      this.due[i] = this.due[child]!;
      this.item[i] = this.item[child]!;
      i = child;
    }
    if (this.size > 0) {
      this.due[i] = lastDue;
      this.item[i] = lastItem;
    }
    return top;
  }
}

/**
 * Wakes each item at its due time: one timer, armed for the earliest due time, fires `wake(item, dueAt)` for every
 * item due (late ones first). Never fires an item twice per schedule() call.
 */
export class Scheduler {
  private readonly heap: DueHeap;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private stopped = false;
  private firing = false;

  constructor(
    capacity: number,
    private readonly wake: (item: number, dueAt: number) => void,
  ) {
    this.heap = new DueHeap(capacity);
  }

  get pending(): number {
    return this.heap.length;
  }

  schedule(at: number, item: number): void {
    this.heap.push(at, item);
    // While firing, the timer is armed once at the end for whatever is then earliest.
    if (!this.firing && at < this.armedFor) this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = this.heap.peek();
    if (this.armedFor === Number.POSITIVE_INFINITY) {
      this.timer = undefined;
      return;
    }
    this.timer = setTimeout(() => this.fire(), Math.max(0, this.armedFor - Date.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    // Those due now; a wake that schedules an item for now is taken on the next turn, not in this loop.
    let taken = 0;
    const limit = this.heap.length;
    this.firing = true;
    try {
      while (taken < limit && this.heap.peek() <= now) {
        const { item, at } = this.heap.pop();
        taken++;
        this.wake(item, at);
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }
}
