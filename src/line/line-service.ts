/** A sale's waiting line (docs/api.md, "The waiting line"): state in Redis, polls answered from this process's tick. */
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../infra/logger.js';
import { Refusal } from '../infra/refusal.js';
import type { LineSnapshot, PlaceRecord, RedisLine } from '../redis/line.js';
import { AdmissionTokens, type Admission, type AdmissionCheck } from './admission-token.js';
import type { LineView, PlaceState, PlaceView } from './line-views.js';

export type { LineView, PlaceState, PlaceView } from './line-views.js';
import {
  etaBand,
  withinRemainingUnits,
  fairRank,
  newSeed,
  refreshAfterSeconds,
  refreshBeforeStart,
  MAX_REFRESH_SECONDS,
} from './line-rules.js';

/** How often each API process admits and refreshes each line it serves. */
export const TICK_MS = 250;
/** A line nobody asked this process about for this long is no longer ticked here. */
const IDLE_MS = 60_000;

export interface LineSettings {
  admissionsPerSecond: number;
  admissionTtlSeconds: number;
  preQueueOpensAt?: string | undefined;
}

/** What the line reports as it goes (the API's metrics implement it). */
export interface LineObserver {
  joined(outcome: string): void;
  read(state: PlaceState): void;
  line(sku: string, snapshot: LineSnapshot, soldOutAfterSeconds: number | null): void;
  /** How far off the first wait this process told a place was, once it is admitted. */
  etaError(sku: string, seconds: number): void;
}

/** What this process knows of a shopper's place; `predicted`: the first admission time it told, and in which epoch. */
export type CachedPlace =
  | { kind: 'PRE_QUEUE' }
  | (Extract<PlaceRecord, { kind: 'PLACED' }> & { predicted?: { atMs: number; epoch: number; observed: boolean } });

interface Board {
  snapshot: LineSnapshot;
  /** This process's clock when the snapshot came (its `nowMs` is Redis's). */
  receivedAt: number;
  touchedAt: number;
}

type LineCalls = Pick<RedisLine, 'tick' | 'join' | 'place' | 'control' | 'seed' | 'define'>;

export class LineService {
  private readonly boards = new Map<string, Board>();
  /** Sales without a line (or without a sale), remembered a second so probing them costs a read a second. */
  private readonly noLine = new LRUCache<string, 'NO_SALE' | 'NO_LINE'>({ max: 10_000, ttl: 1_000 });
  private readonly places = new LRUCache<string, CachedPlace>({ max: 1_000_000 });
  private readonly seeds = new LRUCache<string, string>({ max: 10_000 });
  private readonly tokens: AdmissionTokens;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private stopped = false;

  constructor(
    private readonly deps: {
      /** Seen through the Redis guard: each call bounded by REDIS_TIMEOUT, behind its breaker. */
      line: LineCalls;
      jwtSecret: string;
      clockSkewMarginMs: number;
      observer: LineObserver;
      logger: Logger;
    },
  ) {
    this.tokens = new AdmissionTokens(deps.jwtSecret);
  }

  /** Starts this process's admission ticks: done by the first look at a line (stop() at shutdown). */
  private start(): void {
    if (this.stopped || this.timer) return;
    this.timer = setInterval(() => void this.tickAll(), TICK_MS);
    this.timer.unref();
  }

  /** Ends the ticks for good (at shutdown): a line looked at afterwards is read, not ticked. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The line's definition for a new sale (its seed drawn here); SalesService writes it with the sale. */
  static definitionFor(settings: LineSettings, startsAt: Date | null) {
    return {
      admissionsPerSecond: settings.admissionsPerSecond,
      admissionTtlMs: settings.admissionTtlSeconds * 1_000,
      preQueueOpensMs: settings.preQueueOpensAt ? Date.parse(settings.preQueueOpensAt) : 0,
      startsMs: startsAt?.getTime() ?? 0,
      ...newSeed(randomBytes(32)),
    };
  }

  /** Takes the shopper's place (the same one however often, from any device) and answers it. */
  async join(sku: string, userId: string): Promise<PlaceView> {
    const board = await this.board(sku);
    const seed = await this.seedOf(sku);
    const joined = await this.deps.line.join(sku, userId, fairRank(seed, userId));
    const key = placeKey(sku, userId);
    const taken = joined.outcome === 'PLACED' || joined.outcome === 'PRE_QUEUE';
    this.deps.observer.joined(taken ? (joined.joined ? 'JOINED' : 'ALREADY') : joined.outcome);
    switch (joined.outcome) {
      case 'NO_SALE':
        throw noSale(sku);
      case 'NO_LINE':
        throw noLine(sku);
      case 'CLOSED':
        throw new Refusal('SALE_NOT_ACTIVE', `the sale for ${sku} has ended; its line takes nobody`);
      case 'NOT_OPEN': {
        const opensAt = new Date(joined.opensMs).toISOString();
        const seconds = Math.max(1, Math.ceil((joined.opensMs - Date.now()) / 1_000));
        throw new Refusal('LINE_NOT_OPEN', `the line for ${sku} opens at ${opensAt}`, { opensAt }, seconds);
      }
      case 'PRE_QUEUE':
        this.places.set(key, { kind: 'PRE_QUEUE' });
        break;
      case 'PLACED': {
        // A new place, or one kept: what it holds beyond its position is read when it matters.
        const known = this.places.get(key);
        const kept = known?.kind === 'PLACED' && known.position === joined.position;
        if (!kept) this.places.set(key, { kind: 'PLACED', position: joined.position, admittedAtMs: 0, spent: false });
      }
    }
    return this.answer(sku, userId, board);
  }

  /** The shopper's place: from this process's memory, except the first read after the start and while admitted. */
  async read(sku: string, userId: string): Promise<PlaceView> {
    return this.answer(sku, userId, await this.board(sku));
  }

  /** The line as anyone may read it. */
  async view(sku: string): Promise<LineView> {
    return viewOf(sku, await this.board(sku));
  }

  /** An operator pauses or resumes the line, or sets its rate; the answer is the line after it. */
  async control(sku: string, change: { paused?: boolean; admissionsPerSecond?: number }): Promise<LineView> {
    await this.board(sku);
    const changed = await this.deps.line.control(sku, change);
    if (!changed) throw noLine(sku);
    return viewOf(sku, await this.refresh(sku));
  }

  /** A checkout's admission, verified; with an Idempotency-Key an expired one passes (its order is answered first). */
  checkAdmission(token: string, expected: { sku: string; userId: string }, retryWithKey: boolean): AdmissionCheck {
    const grace = retryWithKey ? Number.POSITIVE_INFINITY : this.deps.clockSkewMarginMs;
    return this.tokens.verify(token, expected, Date.now(), grace);
  }

  private async answer(sku: string, userId: string, board: Board): Promise<PlaceView> {
    const place = await this.placeOf(sku, userId, board);
    const view = placeView(sku, userId, board, place, Date.now(), (admission) => this.tokens.sign(admission));
    this.observeEta(board, place, view);
    this.deps.observer.read(view.state);
    return view;
  }

  /** The place from memory, read again only when Redis knows more: at the start, and while it is admitted. */
  private async placeOf(sku: string, userId: string, board: Board): Promise<CachedPlace> {
    const key = placeKey(sku, userId);
    const known = this.places.get(key);
    const { snapshot } = board;
    const stale =
      !known ||
      (known.kind === 'PRE_QUEUE' && snapshot.state !== 'PRE_QUEUE') ||
      (known.kind === 'PLACED' && known.position <= snapshot.served && !known.spent && known.admittedAtMs !== -1);
    if (!stale) return known;
    const record = await this.deps.line.place(sku, userId);
    const place = cachedOf(record, known);
    if (!place) {
      this.places.delete(key);
      throw new Refusal('NOT_IN_LINE', `you have no place in the line for ${sku}; join it first`);
    }
    this.places.set(key, place);
    return place;
  }

  /** The line's state as this process knows it; the first look at a line asks Redis (and starts ticking it here). */
  private async board(sku: string): Promise<Board> {
    const board = this.boards.get(sku);
    if (board) {
      board.touchedAt = Date.now();
      return board;
    }
    const none = this.noLine.get(sku);
    if (none) throw none === 'NO_SALE' ? noSale(sku) : noLine(sku);
    return this.refresh(sku);
  }

  private async refresh(sku: string): Promise<Board> {
    const snapshot = await this.deps.line.tick(sku);
    if (snapshot === 'NO_SALE' || snapshot === 'NO_LINE') {
      this.boards.delete(sku);
      this.noLine.set(sku, snapshot);
      throw snapshot === 'NO_SALE' ? noSale(sku) : noLine(sku);
    }
    return this.record(sku, snapshot);
  }

  private record(sku: string, snapshot: LineSnapshot): Board {
    const before = this.boards.get(sku);
    const board: Board = { snapshot, receivedAt: Date.now(), touchedAt: before?.touchedAt ?? Date.now() };
    this.boards.set(sku, board);
    this.start();
    // From the sale's start (or, without one, from the line's creation) to when the line first found it sold out.
    const startedAt = snapshot.startsMs > 0 ? snapshot.startsMs : snapshot.definedMs;
    const soldOutAfter = snapshot.soldOutAtMs > 0 ? Math.max(0, (snapshot.soldOutAtMs - startedAt) / 1_000) : null;
    this.deps.observer.line(sku, snapshot, soldOutAfter);
    return board;
  }

  /** Every line asked about lately: admit who is due and learn the line's state (one script call each). */
  private async tickAll(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const now = Date.now();
      for (const [sku, board] of this.boards) {
        if (now - board.touchedAt > IDLE_MS) {
          this.boards.delete(sku);
          continue;
        }
        await this.refresh(sku).catch((err: unknown) => {
          // Redis away: the last state stands (places do not move); the breaker says the rest.
          if (!(err instanceof Refusal)) this.deps.logger.debug({ err, sku }, 'line tick failed');
        });
      }
    } finally {
      this.ticking = false;
    }
  }

  private async seedOf(sku: string): Promise<string> {
    let seed = this.seeds.get(sku);
    if (seed === undefined) {
      seed = (await this.deps.line.seed(sku)) ?? '';
      if (seed) this.seeds.set(sku, seed);
    }
    return seed;
  }

  /** The first wait told to a place against when it was admitted (the dashboard's ETA error). */
  private observeEta(board: Board, place: CachedPlace, view: PlaceView): void {
    if (place.kind !== 'PLACED') return;
    const { snapshot } = board;
    if (view.state === 'WAITING' && view.eta && place.predicted?.epoch !== snapshot.epoch) {
      // In Redis's clock, which admissions are stamped with: the snapshot's time plus what passed here since.
      const redisNow = snapshot.nowMs + (Date.now() - board.receivedAt);
      place.predicted = { atMs: redisNow + view.eta.minSeconds * 1_000, epoch: snapshot.epoch, observed: false };
    } else if (view.state === 'ADMITTED' && place.predicted && !place.predicted.observed && place.admittedAtMs > 0) {
      place.predicted.observed = true;
      this.deps.observer.etaError(view.sku, Math.abs(place.admittedAtMs - place.predicted.atMs) / 1_000);
    }
  }
}

function cachedOf(record: PlaceRecord, known: CachedPlace | undefined): CachedPlace | null {
  if (record.kind !== 'PLACED') return record.kind === 'NONE' ? null : record;
  const predicted = known?.kind === 'PLACED' && known.position === record.position ? known.predicted : undefined;
  return { ...record, ...(predicted ? { predicted } : {}) };
}

/** The answer to a read, from the line's state and the place: the one place the states are decided. */
export function placeView(
  sku: string,
  userId: string,
  board: { snapshot: LineSnapshot },
  place: CachedPlace,
  nowMs: number,
  sign: (admission: Admission) => string,
): PlaceView {
  const { snapshot } = board;
  const base: PlaceView = {
    sku,
    state: 'WAITING',
    preQueue: false,
    position: null,
    ahead: null,
    waitTimeKnown: false,
    eta: null,
    admissionsPerSecond: snapshot.admissionsPerSecond,
    lineLength: snapshot.length,
    servedThrough: snapshot.served,
    startsAt: iso(snapshot.startsMs),
    admission: null,
    etaEpoch: snapshot.epoch,
    etaRaisedBy: snapshot.epochReason,
    refreshAfterSeconds: MAX_REFRESH_SECONDS,
    unitsMayComeBack: false,
  };
  if (snapshot.state === 'CLOSED') return { ...base, state: 'CLOSED', refreshAfterSeconds: null };
  if (place.kind === 'PRE_QUEUE') {
    const refresh = refreshBeforeStart(snapshot.startsMs - nowMs, spreadOf(userId));
    return { ...base, preQueue: true, refreshAfterSeconds: refresh };
  }
  const placed = { ...base, position: place.position };
  if (place.spent) return { ...placed, state: 'CHECKED_OUT', refreshAfterSeconds: null };
  if (snapshot.state === 'SOLD_OUT') return { ...placed, state: 'SOLD_OUT', unitsMayComeBack: snapshot.reserved > 0 };
  if (place.position <= snapshot.served) {
    const expiresAtMs = place.admittedAtMs + snapshot.admissionTtlMs;
    if (place.admittedAtMs <= 0 || nowMs >= expiresAtMs)
      return { ...placed, state: 'EXPIRED', refreshAfterSeconds: null };
    const token = sign({ sku, userId, position: place.position, expiresAtMs });
    return {
      ...placed,
      state: 'ADMITTED',
      ahead: 0,
      waitTimeKnown: true,
      eta: { minSeconds: 0, maxSeconds: 0 },
      admission: { token, expiresAt: new Date(expiresAtMs).toISOString() },
      refreshAfterSeconds: Math.min(MAX_REFRESH_SECONDS, Math.max(1, Math.ceil((expiresAtMs - nowMs) / 1_000))),
    };
  }
  const ahead = place.position - snapshot.served - 1;
  if (snapshot.state === 'PAUSED') return { ...placed, state: 'PAUSED', ahead };
  if (snapshot.state === 'PRE_QUEUE') return { ...placed, ahead };
  const eta = etaBand(ahead, snapshot.admissionsPerSecond);
  const refresh = refreshAfterSeconds(eta.minSeconds);
  // Behind the units left: its turn comes only with units coming back, so no band is promised until one holds.
  if (!withinRemainingUnits(ahead, snapshot))
    return { ...placed, ahead, unitsMayComeBack: true, refreshAfterSeconds: refresh };
  return { ...placed, ahead, waitTimeKnown: true, eta, refreshAfterSeconds: refresh };
}

function viewOf(sku: string, board: Board): LineView {
  const { snapshot } = board;
  return {
    sku,
    state: snapshot.state,
    length: snapshot.length,
    servedThrough: snapshot.served,
    admissionsPerSecond: snapshot.admissionsPerSecond,
    admissionTtlSeconds: snapshot.admissionTtlMs / 1_000,
    preQueueOpensAt: iso(snapshot.opensMs),
    startsAt: iso(snapshot.startsMs),
    paused: snapshot.paused,
    epoch: snapshot.epoch,
    epochReason: snapshot.epochReason,
    admitted: snapshot.admitted,
    consumed: snapshot.consumed,
    givenBack: snapshot.givenBack,
    seedHash: snapshot.seedHash,
    seed: snapshot.seed,
    soldOutAt: iso(snapshot.soldOutAtMs),
  };
}

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
const placeKey = (sku: string, userId: string) => `${sku}\n${userId}`;
/** A shopper's fixed share of the spread of first reads after the start (0 to 1), from their id. */
function spreadOf(userId: string): number {
  let hash = 0;
  for (let i = 0; i < userId.length; i++) hash = (hash * 31 + userId.charCodeAt(i)) >>> 0;
  return (hash % 1_000) / 1_000;
}
const noSale = (sku: string) => new Refusal('SKU_NOT_FOUND', `no sale for sku ${sku}`);
const noLine = (sku: string) => new Refusal('NO_LINE', `the sale for ${sku} has no waiting line: check out directly`);
