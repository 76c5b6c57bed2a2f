/** A sale's waiting line in Redis (domain: src/line/): one line_*.lua script per change, keys hash-tagged by sale. */
import type { RedisClient } from '../infra/redis.js';
import { luaScripts, saleKeys } from './layout.js';

export interface LineDefinition {
  admissionsPerSecond: number;
  admissionTtlMs: number;
  /** Epoch ms; 0: joins are taken from the sale's creation. */
  preQueueOpensMs: number;
  /** The sale's start (epoch ms; 0: none, so no pre-queue). */
  startsMs: number;
  /** Secret until the start; `seedHash` (its SHA-256) is public from the first moment. */
  seed: string;
  seedHash: string;
}

export type JoinResult =
  | { outcome: 'PRE_QUEUE'; joined: boolean }
  | { outcome: 'PLACED'; position: number; joined: boolean }
  | { outcome: 'NOT_OPEN'; opensMs: number }
  | { outcome: 'NO_SALE' | 'NO_LINE' | 'CLOSED' };

const LINE_STATES = ['PRE_QUEUE', 'OPEN', 'PAUSED', 'SOLD_OUT', 'CLOSED'] as const;
export type LineState = (typeof LINE_STATES)[number];

/** A shopper's place as line_place.lua reads it. */
export type PlaceRecord =
  | { kind: 'NONE' }
  | { kind: 'PRE_QUEUE' }
  /** `admittedAtMs`: 0 not admitted yet, -1 admitted and expired; `spent`: a checkout used its admission. */
  | { kind: 'PLACED'; position: number; admittedAtMs: number; spent: boolean };

export class RedisLine {
  private readonly scripts;

  constructor(private readonly redis: RedisClient) {
    this.scripts = luaScripts(redis, {
      lineDefine: 'line_define.lua',
      lineJoin: 'line_join.lua',
      lineTick: 'line_tick.lua',
      lineControl: 'line_control.lua',
      linePlace: 'line_place.lua',
    });
  }

  /** Puts the line in front of the sale: true when created or already defined exactly so. */
  async define(sku: string, line: LineDefinition): Promise<boolean> {
    const k = saleKeys(sku);
    const created = await this.scripts.lineDefine(
      [k.sale, k.line],
      line.admissionsPerSecond,
      line.admissionTtlMs,
      line.preQueueOpensMs,
      line.startsMs,
      line.seed,
      line.seedHash,
    );
    return created === 1 || created === 2;
  }

  /** The line's secret seed (the API ranks the pre-queue with it); null when the sale has no line. */
  async seed(sku: string): Promise<string | null> {
    return this.redis.hget(saleKeys(sku).line, 'seed');
  }

  async join(sku: string, userId: string, fairRank: number): Promise<JoinResult> {
    const k = saleKeys(sku);
    const [code, position, joined] = (await this.scripts.lineJoin(
      [k.sale, k.line, k.linePre, k.linePlaces, k.lineBatches, k.lineUsed],
      userId,
      fairRank,
    )) as [string, number, number];
    switch (code) {
      case 'PRE_QUEUE':
        return { outcome: code, joined: Number(joined) === 1 };
      case 'PLACED':
        return { outcome: code, position: Number(position), joined: Number(joined) === 1 };
      case 'NOT_OPEN':
        return { outcome: code, opensMs: Number(position) };
      case 'NO_SALE':
      case 'NO_LINE':
      case 'CLOSED':
        return { outcome: code };
      default:
        throw new Error(`line_join.lua returned an unexpected code: ${String(code)}`);
    }
  }

  /** Admits the shoppers due and answers the line (or that there is no such sale, or no line in front of it). */
  async tick(sku: string): Promise<LineSnapshot | 'NO_SALE' | 'NO_LINE'> {
    const k = saleKeys(sku);
    const reply = (await this.scripts.lineTick([k.sale, k.line, k.linePre, k.lineBatches, k.lineUse])) as unknown[];
    const state = String(reply[0]);
    if (state === 'NO_SALE' || state === 'NO_LINE') return state;
    if (!(LINE_STATES as readonly string[]).includes(state))
      throw new Error(`line_tick.lua returned an unexpected state: ${state}`);
    return snapshotOf(state as LineState, reply);
  }

  /** Pauses or resumes the line, or sets its rate; null when the sale has no line. */
  async control(sku: string, change: { paused?: boolean; admissionsPerSecond?: number }) {
    const paused = change.paused === undefined ? '' : change.paused ? '1' : '0';
    const rate = change.admissionsPerSecond === undefined ? '' : String(change.admissionsPerSecond);
    const reply = (await this.scripts.lineControl([saleKeys(sku).line], paused, rate)) as unknown[];
    if (reply.length === 0) return null;
    return { paused: String(reply[0]) === '1', admissionsPerSecond: Number(reply[1]) };
  }

  async place(sku: string, userId: string): Promise<PlaceRecord> {
    const k = saleKeys(sku);
    const [kind, position, admittedAt, spent] = (await this.scripts.linePlace(
      [k.line, k.linePre, k.linePlaces, k.lineBatches, k.lineUsed],
      userId,
    )) as [string, number, number, number];
    if (kind === 'NONE' || kind === 'PRE_QUEUE') return { kind };
    if (kind !== 'PLACED') throw new Error(`line_place.lua returned an unexpected kind: ${String(kind)}`);
    return { kind, position: Number(position), admittedAtMs: Number(admittedAt), spent: Number(spent) === 1 };
  }
}

/** The line as one call of line_tick.lua left it (Redis's clock). */
function snapshotOf(state: LineState, reply: unknown[]) {
  const n = (i: number) => Number(reply[i] ?? 0);
  const reason = String(reply[7] ?? '');
  return {
    state,
    nowMs: n(1),
    /** Every position up to it is admitted. */
    served: n(2),
    /** Places taken (before the start: in the pre-queue). */
    length: n(3),
    admissionsPerSecond: n(4),
    paused: String(reply[5]) === '1',
    /** Bumped when an operator pauses or lowers the rate; `epochReason` says which. */
    epoch: n(6),
    epochReason: (['PAUSED', 'RATE_LOWERED'] as const).find((known) => known === reason) ?? null,
    admitted: n(8),
    consumed: n(9),
    givenBack: n(10),
    available: n(11),
    reserved: n(12),
    startsMs: n(13),
    seedHash: String(reply[14] ?? ''),
    /** Revealed once the sale has started; null before. */
    seed: reply[15] ? String(reply[15]) : null,
    admissionTtlMs: n(16),
    opensMs: n(17),
    /** When the line was put in front of its sale (Redis ms). */
    definedMs: n(18),
    /** The first time a tick found the sale's units gone (Redis ms); 0: never. */
    soldOutAtMs: n(19),
  };
}
export type LineSnapshot = ReturnType<typeof snapshotOf>;
