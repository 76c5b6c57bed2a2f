/**
 * A sale's waiting line in Redis (src/line/ is its domain): places, admissions and the serving counter, each changed by
 * one line_*.lua script on keys hash-tagged by the sale (Redis Cluster). reserve.lua spends an admission.
 */
import type { RedisClient } from '../infra/redis.js';
import { defineScripts, saleKeys } from './redis-inventory.js';

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

export type LineState = 'PRE_QUEUE' | 'OPEN' | 'PAUSED' | 'SOLD_OUT' | 'CLOSED';

/** The line as one call of line_tick.lua left it (Redis's clock). */
export interface LineSnapshot {
  state: LineState;
  nowMs: number;
  /** Every position up to it is admitted. */
  served: number;
  /** Places taken (before the start: in the pre-queue). */
  length: number;
  admissionsPerSecond: number;
  paused: boolean;
  /** Bumped when an operator pauses or lowers the rate; `epochReason` says which. */
  epoch: number;
  epochReason: 'PAUSED' | 'RATE_LOWERED' | null;
  admitted: number;
  consumed: number;
  givenBack: number;
  available: number;
  reserved: number;
  startsMs: number;
  opensMs: number;
  /** When the line was put in front of its sale (Redis ms). */
  definedMs: number;
  /** The first time a tick found the sale's units gone (Redis ms); 0: never. */
  soldOutAtMs: number;
  admissionTtlMs: number;
  seedHash: string;
  /** Revealed once the sale has started; null before. */
  seed: string | null;
}

/** A shopper's place as line_place.lua reads it. */
export type PlaceRecord =
  | { kind: 'NONE' }
  | { kind: 'PRE_QUEUE' }
  /** `admittedAtMs`: 0 not admitted yet, -1 admitted and expired; `spent`: a checkout used its admission. */
  | { kind: 'PLACED'; position: number; admittedAtMs: number; spent: boolean };

interface LineCommands {
  lineDefine(sale: string, line: string, ...args: Array<string | number>): Promise<number>;
  lineJoin(
    sale: string,
    line: string,
    pre: string,
    places: string,
    batches: string,
    used: string,
    userId: string,
    fairRank: number,
  ): Promise<[string, number, number]>;
  lineTick(sale: string, line: string, pre: string, batches: string, use: string): Promise<Array<string | number>>;
  lineControl(line: string, paused: string, rate: string): Promise<Array<string | number>>;
  linePlace(
    line: string,
    pre: string,
    places: string,
    batches: string,
    used: string,
    userId: string,
  ): Promise<[string, number, number, number]>;
}

const SCRIPTS = {
  lineDefine: { file: 'line_define.lua', numberOfKeys: 2 },
  lineJoin: { file: 'line_join.lua', numberOfKeys: 6 },
  lineTick: { file: 'line_tick.lua', numberOfKeys: 5 },
  lineControl: { file: 'line_control.lua', numberOfKeys: 1 },
  linePlace: { file: 'line_place.lua', numberOfKeys: 5 },
} as const satisfies Record<keyof LineCommands, { file: string; numberOfKeys: number }>;

const LINE_STATES: ReadonlySet<string> = new Set<LineState>(['PRE_QUEUE', 'OPEN', 'PAUSED', 'SOLD_OUT', 'CLOSED']);

export class RedisLine {
  private readonly commands: LineCommands;

  constructor(private readonly redis: RedisClient) {
    defineScripts(redis, SCRIPTS);
    this.commands = redis as unknown as LineCommands;
  }

  /** Puts the line in front of the sale: true when created or already defined exactly so. */
  async define(sku: string, line: LineDefinition): Promise<boolean> {
    const k = saleKeys(sku);
    const created = await this.commands.lineDefine(
      k.sale,
      k.line,
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
    const [code, position, joined] = await this.commands.lineJoin(
      k.sale,
      k.line,
      k.linePre,
      k.linePlaces,
      k.lineBatches,
      k.lineUsed,
      userId,
      fairRank,
    );
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
    const reply = await this.commands.lineTick(k.sale, k.line, k.linePre, k.lineBatches, k.lineUse);
    const state = String(reply[0]);
    if (state === 'NO_SALE' || state === 'NO_LINE') return state;
    if (!LINE_STATES.has(state)) throw new Error(`line_tick.lua returned an unexpected state: ${state}`);
    const n = (i: number) => Number(reply[i] ?? 0);
    const reason = String(reply[7] ?? '');
    return {
      state: state as LineState,
      nowMs: n(1),
      served: n(2),
      length: n(3),
      admissionsPerSecond: n(4),
      paused: String(reply[5]) === '1',
      epoch: n(6),
      epochReason: reason === 'PAUSED' || reason === 'RATE_LOWERED' ? reason : null,
      admitted: n(8),
      consumed: n(9),
      givenBack: n(10),
      available: n(11),
      reserved: n(12),
      startsMs: n(13),
      seedHash: String(reply[14] ?? ''),
      seed: reply[15] ? String(reply[15]) : null,
      admissionTtlMs: n(16),
      opensMs: n(17),
      definedMs: n(18),
      soldOutAtMs: n(19),
    };
  }

  /** Pauses or resumes the line, or sets its rate; null when the sale has no line. */
  async control(
    sku: string,
    change: { paused?: boolean; admissionsPerSecond?: number },
  ): Promise<{ paused: boolean; admissionsPerSecond: number } | null> {
    const paused = change.paused === undefined ? '' : change.paused ? '1' : '0';
    const rate = change.admissionsPerSecond === undefined ? '' : String(change.admissionsPerSecond);
    const reply = await this.commands.lineControl(saleKeys(sku).line, paused, rate);
    if (reply.length === 0) return null;
    return { paused: String(reply[0]) === '1', admissionsPerSecond: Number(reply[1]) };
  }

  async place(sku: string, userId: string): Promise<PlaceRecord> {
    const k = saleKeys(sku);
    const [kind, position, admittedAt, spent] = await this.commands.linePlace(
      k.line,
      k.linePre,
      k.linePlaces,
      k.lineBatches,
      k.lineUsed,
      userId,
    );
    if (kind === 'NONE') return { kind };
    if (kind === 'PRE_QUEUE') return { kind };
    if (kind !== 'PLACED') throw new Error(`line_place.lua returned an unexpected kind: ${String(kind)}`);
    return {
      kind,
      position: Number(position),
      admittedAtMs: Number(admittedAt),
      spent: Number(spent) === 1,
    };
  }

  /** The pre-queue in rank order (userIds), for an audit after the start; at most `limit`. */
  async preQueue(sku: string, limit: number): Promise<string[]> {
    return this.redis.zrange(saleKeys(sku).linePre, 0, limit - 1);
  }
}
