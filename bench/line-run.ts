/**
 * The line benchmark's main run (bench/line.ts): N shoppers join a sale's line at times spread evenly over the join
 * window (some before the sale's start), each then reads its place whenever its Retry-After says, checks out with
 * its admission once admitted, and stops there or at the first SOLD_OUT. Everything each shopper saw is kept in
 * typed arrays (one slot per shopper), for bench/line-report.ts to turn into figures.
 */
import type { Answer, HttpClient } from '../toolkit/http-client.js';
import { Scheduler } from './line-client.js';

/** What a shopper saw last: still waiting (0), or done: checked out (1), told sold out (2), anything else (3). */
export const ACTIVE = 0;
export const CHECKED_OUT = 1;
export const SOLD_OUT = 2;
export const OTHER = 3;

interface PlaceAnswer {
  state: string;
  preQueue: boolean;
  position: number | null;
  eta: { minSeconds: number; maxSeconds: number } | null;
  admission: { token: string; expiresAt: string } | null;
  refreshAfterSeconds: number | null;
}

/** Per shopper, index i: shopper `userIds[i]`, joining at `joinDueAt[i]`. */
export class ShopperLog {
  readonly joinDueAt: Float64Array;
  readonly joinSentAt: Float64Array;
  readonly joinDoneAt: Float64Array;
  readonly preQueue: Uint8Array;
  readonly position: Int32Array;
  /** The first wait told (when the answer arrived, and its band). */
  readonly firstEtaAt: Float64Array;
  readonly firstEtaMin: Float64Array;
  readonly firstEtaMax: Float64Array;
  /** The last wait told, for "it never rose". */
  readonly lastEtaMin: Float64Array;
  /** The last answer that left the shopper waiting: when it arrived, its Retry-After, and when its read went out. */
  readonly lastWaitAt: Float64Array;
  readonly lastRetryAfter: Float64Array;
  readonly lastWaitSentAt: Float64Array;
  readonly admittedSeenAt: Float64Array;
  readonly admittedPosition: Int32Array;
  readonly soldOutSeenAt: Float64Array;
  readonly soldOutSentAt: Float64Array;
  readonly finishedAt: Float64Array;
  readonly outcome: Uint8Array;
  readonly reads: Int32Array;

  constructor(readonly size: number) {
    this.joinDueAt = new Float64Array(size);
    this.joinSentAt = new Float64Array(size);
    this.joinDoneAt = new Float64Array(size);
    this.preQueue = new Uint8Array(size);
    this.position = new Int32Array(size);
    this.firstEtaAt = new Float64Array(size);
    this.firstEtaMin = new Float64Array(size);
    this.firstEtaMax = new Float64Array(size);
    this.lastEtaMin = new Float64Array(size).fill(-1);
    this.lastWaitAt = new Float64Array(size);
    this.lastRetryAfter = new Float64Array(size);
    this.lastWaitSentAt = new Float64Array(size);
    this.admittedSeenAt = new Float64Array(size);
    this.admittedPosition = new Int32Array(size);
    this.soldOutSeenAt = new Float64Array(size);
    this.soldOutSentAt = new Float64Array(size);
    this.finishedAt = new Float64Array(size);
    this.outcome = new Uint8Array(size);
    this.reads = new Int32Array(size);
  }
}

export interface LineRunResult {
  log: ShopperLog;
  joinsBeganAt: number;
  /** When the last join was answered, and when the last shopper was done (or the deadline). */
  joinsDoneAt: number;
  doneAt: number;
  /** False when the deadline came first: some shoppers were still waiting. */
  complete: boolean;
  /** Latencies (ms): join (sent to answered), join from its arrival time (the client's queue included), read. */
  joinMs: number[];
  joinFromArrivalMs: number[];
  readMs: number[];
  /** How late each poll went out after its Retry-After was due (the load generator's own lag, its queue included). */
  pollLagMs: number[];
  checkoutMs: number[];
  /** Answers that were not 200 (join, read) or not 202 (checkout), by `<kind> <status> <code>`. */
  refusals: Record<string, number>;
  /** Final states other than checked out and sold out, by state. */
  otherStates: Record<string, number>;
  accepted: string[];
  firstWinAt: number;
  lastWinAt: number;
  /** A shopper shown two different admitted positions; a position admitted to two shoppers. */
  shoppersAdmittedTwice: number;
  positionsAdmittedTwice: number;
  /** A shopper's wait (eta.minSeconds) told higher than the one before. */
  etaRises: number;
  positionChanges: number;
  /** Reads and checkouts answered by the time the last join was. */
  readsAtJoinsDone: number;
  checkoutsAtJoinsDone: number;
  reads: number;
  checkouts: number;
}

/**
 * Runs the line: joins at their arrival times, polls at their Retry-After, checkouts on admission. Calls
 * `onJoinsDone` as the last join is answered (the caller reads the CPU there) and resolves once every shopper is
 * done, or at `deadline` (ms).
 */
export function runLine(options: {
  pool: HttpClient;
  sku: string;
  tokens: readonly string[];
  joinsBeganAt: number;
  joinMs: number;
  /** Shoppers still waiting this long after the last join was answered are given up on; and all at `hardDeadline`. */
  afterJoinsMs: number;
  hardDeadline: number;
  onJoinsDone?: () => void;
}): Promise<LineRunResult> {
  const { pool, sku, tokens, joinsBeganAt, joinMs } = options;
  const n = tokens.length;
  const log = new ShopperLog(n);
  const linePath = `/api/sales/${encodeURIComponent(sku)}/line`;
  const mePath = `${linePath}/me`;
  const checkoutBody = JSON.stringify({ sku, quantity: 1 });
  const auth = tokens.map((token) => ({ authorization: `Bearer ${token}` }));
  const result: Omit<LineRunResult, 'log' | 'joinsBeganAt' | 'joinsDoneAt' | 'doneAt' | 'complete'> = {
    joinMs: [],
    joinFromArrivalMs: [],
    readMs: [],
    pollLagMs: [],
    checkoutMs: [],
    refusals: {},
    otherStates: {},
    accepted: [],
    firstWinAt: 0,
    lastWinAt: 0,
    shoppersAdmittedTwice: 0,
    positionsAdmittedTwice: 0,
    etaRises: 0,
    positionChanges: 0,
    readsAtJoinsDone: 0,
    checkoutsAtJoinsDone: 0,
    reads: 0,
    checkouts: 0,
  };
  const admittedBy = new Map<number, number>();
  const retries = new Uint8Array(n);
  let joined = 0;
  let done = 0;
  let joinsDoneAt = 0;
  let finish!: (complete: boolean) => void;
  const finished = new Promise<boolean>((resolve) => (finish = resolve));

  const count = (kind: string, answer: Answer) => {
    const key = `${kind} ${answer.status} ${codeOf(answer.body)}`;
    result.refusals[key] = (result.refusals[key] ?? 0) + 1;
  };
  const end = (i: number, outcome: number, at: number) => {
    if (log.outcome[i] !== ACTIVE) return;
    log.outcome[i] = outcome;
    log.finishedAt[i] = at;
    if (++done === n) finish(true);
  };
  /** A refused join or read: asked again after its Retry-After (at most 5 times), else the shopper gives up. */
  const retry = (i: number, answer: Answer) => {
    if (retries[i]! >= 5 || answer.status === 404 || answer.status === 401 || answer.status === 403) {
      result.otherStates[`refused ${answer.status}`] = (result.otherStates[`refused ${answer.status}`] ?? 0) + 1;
      end(i, OTHER, answer.doneAt);
      return;
    }
    retries[i]!++;
    scheduler.schedule(answer.doneAt + (answer.retryAfter ?? 1) * 1_000, i);
  };

  const onPlace = (i: number, answer: Answer, isJoin: boolean) => {
    if (isJoin) {
      log.joinSentAt[i] = answer.sentAt;
      log.joinDoneAt[i] = answer.doneAt;
      result.joinMs.push(answer.doneAt - answer.sentAt);
      result.joinFromArrivalMs.push(answer.doneAt - log.joinDueAt[i]!);
      if (answer.status === 200 && ++joined === n) {
        joinsDoneAt = answer.doneAt;
        result.readsAtJoinsDone = result.reads;
        result.checkoutsAtJoinsDone = result.checkouts;
        options.onJoinsDone?.();
      }
    } else {
      result.reads++;
      result.readMs.push(answer.doneAt - answer.sentAt);
    }
    if (answer.status !== 200) {
      count(isJoin ? 'join' : 'read', answer);
      // A refused join is asked again as a join.
      if (isJoin) log.joinSentAt[i] = 0;
      retry(i, answer);
      return;
    }
    log.reads[i]!++;
    const view = JSON.parse(answer.body) as PlaceAnswer;
    if (isJoin && view.preQueue) log.preQueue[i] = 1;
    if (view.position !== null) {
      if (log.position[i] !== 0 && log.position[i] !== view.position) result.positionChanges++;
      log.position[i] = view.position;
    }
    switch (view.state) {
      case 'WAITING':
      case 'PAUSED': {
        if (view.eta) {
          if (log.firstEtaAt[i] === 0) {
            log.firstEtaAt[i] = answer.doneAt;
            log.firstEtaMin[i] = view.eta.minSeconds;
            log.firstEtaMax[i] = view.eta.maxSeconds;
          }
          if (log.lastEtaMin[i]! >= 0 && view.eta.minSeconds > log.lastEtaMin[i]!) result.etaRises++;
          log.lastEtaMin[i] = view.eta.minSeconds;
        }
        const after = answer.retryAfter ?? view.refreshAfterSeconds ?? 1;
        log.lastWaitAt[i] = answer.doneAt;
        log.lastRetryAfter[i] = after;
        log.lastWaitSentAt[i] = answer.sentAt;
        scheduler.schedule(answer.doneAt + after * 1_000, i);
        return;
      }
      case 'ADMITTED': {
        const position = view.position ?? 0;
        if (log.admittedSeenAt[i] === 0) {
          log.admittedSeenAt[i] = answer.doneAt;
          log.admittedPosition[i] = position;
        } else if (log.admittedPosition[i] !== position) result.shoppersAdmittedTwice++;
        const holder = admittedBy.get(position);
        if (holder === undefined) admittedBy.set(position, i);
        else if (holder !== i) result.positionsAdmittedTwice++;
        checkout(i, view.admission?.token ?? '');
        return;
      }
      case 'SOLD_OUT':
        log.soldOutSeenAt[i] = answer.doneAt;
        log.soldOutSentAt[i] = answer.sentAt;
        end(i, SOLD_OUT, answer.doneAt);
        return;
      default:
        result.otherStates[view.state] = (result.otherStates[view.state] ?? 0) + 1;
        end(i, OTHER, answer.doneAt);
    }
  };

  /**
   * The admitted shopper's checkout, with an Idempotency-Key of its own: a 503 (Redis did not reserve, or did not
   * answer in time) or a lost connection is asked again with the same key after its Retry-After, at most 5 times, as
   * a shopper holding a valid admission would (an admission left unspent holds its unit until it expires).
   */
  const checkout = (i: number, admission: string, attempt = 0) => {
    pool.send(
      'POST',
      '/api/checkout',
      {
        ...auth[i]!,
        'content-type': 'application/json',
        'admission-token': admission,
        'idempotency-key': `line-bench-${i}`,
      },
      checkoutBody,
      (answer) => {
        result.checkouts++;
        result.checkoutMs.push(answer.doneAt - answer.sentAt);
        if (answer.status === 202) {
          result.accepted.push((JSON.parse(answer.body) as { orderNo: string }).orderNo);
          result.lastWinAt = answer.doneAt;
          if (!result.firstWinAt) result.firstWinAt = answer.doneAt;
          end(i, CHECKED_OUT, answer.doneAt);
          return;
        }
        count('checkout', answer);
        if ((answer.status === 503 || answer.status === 0) && attempt < 5) {
          setTimeout(() => checkout(i, admission, attempt + 1), (answer.retryAfter ?? 1) * 1_000);
          return;
        }
        end(i, OTHER, answer.doneAt);
      },
      true,
    );
  };

  const scheduler = new Scheduler(n, (i, dueAt) => {
    if (log.outcome[i] !== ACTIVE) return;
    if (log.joinSentAt[i] === 0) {
      // The pool sends in the order asked, so the joins go out in the order of i: shopper i is the i-th to arrive.
      pool.send('POST', linePath, auth[i]!, undefined, (answer) => onPlace(i, answer, true));
      // Marked at once (the real send time is set on the answer), so that the shopper joins once.
      log.joinSentAt[i] = dueAt;
      return;
    }
    pool.send('GET', mePath, auth[i]!, undefined, (answer) => {
      result.pollLagMs.push(answer.sentAt - dueAt);
      onPlace(i, answer, false);
    });
  });

  for (let i = 0; i < n; i++) {
    log.joinDueAt[i] = joinsBeganAt + (i * joinMs) / n;
    scheduler.schedule(log.joinDueAt[i]!, i);
  }
  const timer = setInterval(() => {
    const now = Date.now();
    if (now > options.hardDeadline || (joinsDoneAt > 0 && now > joinsDoneAt + options.afterJoinsMs)) finish(false);
  }, 1_000);
  return finished.then((complete) => {
    clearInterval(timer);
    scheduler.stop();
    const doneAt = Date.now();
    return { log, joinsBeganAt, joinsDoneAt: joinsDoneAt || doneAt, doneAt, complete, ...result };
  });
}

export function codeOf(body: string): string {
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? 'no code';
  } catch {
    return 'not JSON';
  }
}
