/**
 * Stock of the flash sales in Redis: one atomic lua/ script per state change, so the invariants of
 * docs/fault-tolerance.md hold without locks; a SKU's keys share the hash tag `{sku}` (one cluster slot per script).
 */
import { redisClockMs, type RedisClient } from '../infra/redis.js';
import { orderNoTime, type OrderInput } from '../model/order-workflow.js';
import { lineKeysOf, luaScripts, saleKeys, pipelineKeys } from './layout.js';

/** A sale that took a reservation lately (it marks itself active about once a second). */
export interface ActiveSale {
  sku: string;
  lastReservedAtMs: number;
}

/** Since when a sale holding the order has been active: it marks itself ~1/s, so ≤ 2 s before; null: not our number. */
export function activeSince(orderNo: string): number | null {
  const madeAt = orderNoTime(orderNo);
  return madeAt === null ? null : madeAt - 2_000;
}

export interface SaleDefinition {
  sku: string;
  stock: number;
  perUserLimit: number;
  priceCents: number;
  startsAt?: Date | null;
  endsAt?: Date | null;
}

export interface ReserveRequest {
  orderNo: string;
  sku: string;
  userId: string;
  quantity: number;
  /** Scoped to (user, SKU); omitted or empty means none. */
  idempotencyKey?: string;
  /** The record's reservedAtMs (the order's createdAt; default now); the sale's window is judged by Redis's clock. */
  nowMs?: number;
  /** Cancelled orders after which the shopper may not check out in this sale again (0 or absent: no limit). */
  maxCancels?: number;
  /** Redis-clock ms past which the script reserves nothing (LATE): the caller's answer could not carry it. */
  cutoffMs?: number;
  /** The shopper's line admission, spent with the reservation (the caller checked its signature, owner and SKU). */
  admissionPosition?: number;
  /** `handoffMs`: the caller's own start's head start on the starter (0: polling); absent: none (benchmarks). */
  promise?: { input: Omit<OrderInput, 'unitPriceCents'>; handoffMs: number; trace?: TraceCarrier };
}

/** W3C trace headers a pending start carries from its checkout to its start (src/infra/tracing.ts, traceCarrier). */
export type TraceCarrier = Record<string, string>;

/** A pending start as the starter takes it: the workflow input, and the checkout's trace if it was sampled. */
export type Promised = ReturnType<typeof parsePromised>;

export type ReserveResult =
  | { outcome: 'RESERVED'; orderNo: string; priceCents: number }
  /** The (user, key) or order number seen before: its order, and its reservation and start input while they exist. */
  | {
      outcome: 'DUPLICATE';
      orderNo: string;
      priceCents: number;
      reservation: Reservation | null;
      startInput: OrderInput | null;
    }
  /** The script ran after the request's cutoff: nothing was reserved. */
  | { outcome: 'LATE' }
  /** `generation` counts the sale's stock returns; see SoldOutCache. */
  | { outcome: 'SOLD_OUT'; generation: number }
  /** `heldBy`: the orders holding the user's units (those reserved since the sale recorded them). */
  | { outcome: 'LIMIT_EXCEEDED'; heldBy: string[] }
  | { outcome: 'NO_SALE' | 'NOT_ACTIVE' | 'TOO_MANY_CANCELS' }
  /** A sale with a line: no admission, or not this shopper's place now, or expired, or already spent. */
  | { outcome: 'NOT_ADMITTED' | 'ADMISSION_INVALID' | 'ADMISSION_EXPIRED' | 'ADMISSION_USED' };

export type ReserveOutcome = ReserveResult['outcome'];

/** Where release.lua announces returned stock: `<sku>\n<generation>`. */
export const STOCK_RETURNED_CHANNEL = 'flash:stock-returned';

/**
 * 'owner': the workflow, once claimed (`forget`: final, record dropped); 'unclaimed': the API or reconciler, only an
 * unclaimed one. `orderFailed`: FAILED for our reason, not the shopper's: units back even if sold, admission reusable.
 */
export type ReleaseMode = ({ as: 'owner'; forget?: boolean } | { as: 'unclaimed'; reservedBeforeMs?: number }) & {
  orderFailed?: boolean;
};

export type SaleStock = Required<SaleDefinition> & { available: number; reserved: number; sold: number };

/** A sale's window as reserve.lua judges it (by Redis's clock): epoch ms, 0 = no bound, the end exclusive. */
export type SaleWindow = NonNullable<Awaited<ReturnType<RedisInventory['saleWindow']>>>;

const RESERVE_OUTCOMES = [
  'RESERVED',
  'DUPLICATE',
  'LATE',
  'NO_SALE',
  'NOT_ACTIVE',
  'TOO_MANY_CANCELS',
  'LIMIT_EXCEEDED',
  'SOLD_OUT',
  'NOT_ADMITTED',
  'ADMISSION_INVALID',
  'ADMISSION_EXPIRED',
  'ADMISSION_USED',
] as const satisfies readonly ReserveOutcome[];
const RELEASE_OUTCOMES = ['RELEASED', 'ALREADY_RELEASED', 'SOLD', 'NOT_FOUND', 'CLAIMED', 'TOO_RECENT'] as const;
const CLAIM_OUTCOMES = ['CLAIMED', 'ALREADY_CLAIMED', 'RECLAIMED', 'SOLD', 'RELEASED', 'NOT_FOUND'] as const;
const ADOPT_OUTCOMES = ['ADOPTED', 'EXISTS', 'NO_STOCK', 'OVER_LIMIT', 'NO_SALE'] as const;
const CONFIRM_OUTCOMES = ['CONFIRMED', 'ALREADY_CONFIRMED', 'RELEASED', 'NOT_FOUND'] as const;
const STATES = { R: 'RESERVED', C: 'CLAIMED', S: 'SOLD', X: 'RELEASED' } as const;

/** reserve.lua's answer: code, order number, price, reservation record, generation, start input, holding orders. */
type ReserveReply = [string, string, string | null, string, number?, string?, string?];

/** 0 means "no bound" to the scripts: a real bound must never be 0, nor anything before 2000. */
const EARLIEST_BOUND_MS = Date.parse('2000-01-01T00:00:00Z');

export function toEpochMs(date: Date | null | undefined): number {
  if (!date) return 0;
  const ms = date.getTime();
  if (!Number.isFinite(ms) || ms < EARLIEST_BOUND_MS)
    throw new RangeError(`a sale window bound must be a time after 2000: ${String(date)}`);
  return ms;
}

function fromEpochMs(value: string | undefined): Date | null {
  const ms = Number(value ?? 0);
  return ms > 0 ? new Date(ms) : null;
}

function expectOutcome<T extends string>(allowed: readonly T[], value: unknown, script: string): T {
  if (!allowed.includes(value as T))
    throw new Error(`${script} returned an unexpected reply: ${JSON.stringify(value)}`);
  return value as T;
}

export class RedisInventory {
  private readonly scripts;
  private readonly pipeline: { activeSales: string; wake: string };

  /** `taskQueue`: the pipeline whose sales this registers and whose starter its reserves wake. */
  constructor(
    private readonly redis: RedisClient,
    taskQueue: string,
  ) {
    this.pipeline = pipelineKeys(taskQueue);
    this.scripts = luaScripts(redis, {
      inventoryReserve: 'reserve.lua',
      inventoryRelease: 'release.lua',
      inventoryConfirm: 'confirm.lua',
      inventoryClaim: 'claim.lua',
      inventoryAdopt: 'adopt.lua',
    });
  }

  /** Takes stock for one checkout, atomically with the per-user limit and the idempotency key. */
  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    const k = saleKeys(req.sku);
    const reply = await this.scripts.inventoryReserve(
      [k.sale, k.users, k.reservations, k.idempotency, k.cancels, k.pending, k.inputs, k.holds, ...lineKeysOf(k)],
      req.orderNo,
      req.userId,
      req.quantity,
      Math.floor(req.nowMs ?? Date.now()),
      req.idempotencyKey ?? '',
      req.maxCancels ?? 0,
      Math.floor(req.cutoffMs ?? 0),
      req.promise
        ? JSON.stringify(req.promise.trace ? { ...req.promise.input, trace: req.promise.trace } : req.promise.input)
        : '',
      Math.max(0, Math.floor(req.promise?.handoffMs ?? 0)),
      req.promise ? this.pipeline.wake : '',
      req.sku,
      req.admissionPosition === undefined ? '' : String(req.admissionPosition),
    );
    if (!Array.isArray(reply)) throw new Error(`reserve.lua returned an unexpected reply: ${JSON.stringify(reply)}`);
    const [code, orderNo, price, record, generation, startInput, heldBy] = reply as ReserveReply;
    const outcome = expectOutcome(RESERVE_OUTCOMES, code, 'reserve.lua');
    if (outcome === 'RESERVED' || outcome === 'DUPLICATE') {
      if (typeof orderNo !== 'string' || orderNo === '')
        throw new Error(`reserve.lua returned ${outcome} without an order number`);
      const priceCents = Number(price ?? 0);
      if (outcome === 'RESERVED') return { outcome, orderNo, priceCents };
      return {
        outcome,
        orderNo,
        priceCents,
        reservation: record ? parseReservation(record) : null,
        startInput: startInput ? parsePromised(startInput).input : null,
      };
    }
    if (outcome === 'SOLD_OUT') return { outcome, generation: Number(generation ?? 0) };
    if (outcome === 'LIMIT_EXCEEDED') return { outcome, heldBy: heldBy ? heldBy.split(' ').filter(Boolean) : [] };
    return { outcome };
  }

  /** As the order's row says; idempotent. Only the owner undoes a sale (`orderFailed`); 'unclaimed' spares CLAIMED. */
  async release(sku: string, orderNo: string, mode: ReleaseMode = { as: 'owner' }) {
    const k = saleKeys(sku);
    const unclaimed = mode.as === 'unclaimed' ? mode : undefined;
    const reply = await this.scripts.inventoryRelease(
      [k.sale, k.users, k.reservations, k.pending, k.inputs, k.holds, ...lineKeysOf(k)],
      orderNo,
      sku,
      mode.as,
      Math.floor(unclaimed?.reservedBeforeMs ?? 0),
      mode.as === 'owner' && mode.forget ? '1' : '0',
      mode.orderFailed ? '1' : '0',
    );
    return expectOutcome(RELEASE_OUTCOMES, reply, 'release.lua');
  }

  /** The workflow takes its reservation (R -> C) before persisting; one Redis lost is retaken if units remain. */
  async claim(order: {
    sku: string;
    orderNo: string;
    userId: string;
    quantity: number;
    reservedAtMs: number;
    /** The checkout's key, restored with a reservation Redis lost (RECLAIMED). */
    idempotencyKey?: string | undefined;
  }) {
    const k = saleKeys(order.sku);
    const reply = await this.scripts.inventoryClaim(
      [k.sale, k.users, k.reservations, k.pending, k.idempotency, k.holds],
      order.orderNo,
      order.userId,
      order.quantity,
      Math.floor(order.reservedAtMs),
      order.idempotencyKey ?? '',
    );
    return expectOutcome(CLAIM_OUTCOMES, reply, 'claim.lua');
  }

  /** Re-creates a reservation Redis lost but MySQL holds units for, with holding and key; available stays >= 0. */
  async adopt(
    sku: string,
    order: {
      orderNo: string;
      userId: string;
      quantity: number;
      state: 'CLAIMED' | 'SOLD';
      reservedAtMs: number;
      idempotencyKey?: string | null;
    },
  ) {
    const k = saleKeys(sku);
    const reply = await this.scripts.inventoryAdopt(
      [k.sale, k.users, k.reservations, k.idempotency, k.holds],
      order.orderNo,
      order.userId,
      order.quantity,
      order.state === 'SOLD' ? 'S' : 'C',
      Math.floor(order.reservedAtMs),
      order.idempotencyKey ?? '',
    );
    return expectOutcome(ADOPT_OUTCOMES, reply, 'adopt.lua');
  }

  /** One HSCAN page of reservation records (about `count`; cursor '0' when done); records may repeat across pages. */
  async scanReservations(sku: string, cursor: string, count: number) {
    const [next, flat] = await this.redis.hscan(saleKeys(sku).reservations, cursor, 'COUNT', count);
    const reservations: Array<Reservation & { orderNo: string }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      reservations.push({ orderNo: flat[i] as string, ...parseReservation(flat[i + 1] as string) });
    return { cursor: next, reservations };
  }

  async getReservations(sku: string, orderNos: readonly string[]): Promise<Array<Reservation | null>> {
    if (orderNos.length === 0) return [];
    const records = await this.redis.hmget(saleKeys(sku).reservations, ...orderNos);
    return records.map((record) => (record === null ? null : parseReservation(record)));
  }

  /** Turns a reservation into sold units; idempotent, and refuses a reservation already released. */
  async confirm(sku: string, orderNo: string) {
    const k = saleKeys(sku);
    const reply = await this.scripts.inventoryConfirm([k.sale, k.reservations, k.pending, k.inputs], orderNo);
    return expectOutcome(CONFIRM_OUTCOMES, reply, 'confirm.lua');
  }

  async getSale(sku: string): Promise<SaleStock | null> {
    const h = await this.redis.hgetall(saleKeys(sku).sale);
    if (h.stock === undefined) return null;
    return {
      sku,
      stock: Number(h.stock),
      available: Number(h.available ?? 0),
      reserved: Number(h.reserved ?? 0),
      sold: Number(h.sold ?? 0),
      perUserLimit: Number(h.limit ?? 0),
      priceCents: Number(h.price ?? 0),
      startsAt: fromEpochMs(h.starts),
      endsAt: fromEpochMs(h.ends),
    };
  }

  /** When the sale is open, and if a line (src/line/) admits to it; null: Redis has no such sale. Writes nothing. */
  async saleWindow(sku: string) {
    const [stock, starts, ends, line] = await this.redis.hmget(saleKeys(sku).sale, 'stock', 'starts', 'ends', 'line');
    if (stock === null) return null;
    return { startsMs: Number(starts ?? 0), endsMs: Number(ends ?? 0), line: line === '1' };
  }

  async getReservation(sku: string, orderNo: string): Promise<Reservation | null> {
    const record = await this.redis.hget(saleKeys(sku).reservations, orderNo);
    return record === null ? null : parseReservation(record);
  }

  /** Re-maps (user, key) to `orderNo` after Redis lost it, unless it names another order; field as reserve.lua's. */
  async restoreKey(sku: string, idempotency: { userId: string; key: string; orderNo: string }): Promise<void> {
    await this.restoreKeys(sku, [idempotency]);
  }

  /** restoreKey for many orders of the sale in one round trip; how many keys were missing (and are now set). */
  async restoreKeys(sku: string, keys: ReadonlyArray<{ userId: string; key: string; orderNo: string }>) {
    if (keys.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const { userId, key, orderNo } of keys)
      pipeline.hsetnx(saleKeys(sku).idempotency, `${Buffer.byteLength(userId, 'utf8')}:${userId}\n${key}`, orderNo);
    const replies = (await pipeline.exec()) ?? [];
    return replies.filter(([err, set]) => !err && set === 1).length;
  }

  /** How many checkout keys the sale maps to orders (every key ever used: none is forgotten). */
  keyCount(sku: string): Promise<number> {
    return this.redis.hlen(saleKeys(sku).idempotency);
  }

  /** Redis's clock (TIME), in ms: the one reservations are judged by, whatever this process's says. */
  clockMs(): Promise<number> {
    return redisClockMs(this.redis);
  }

  /** The sale took a reservation at `atMs` (never moves its mark back). */
  async markSaleActive(sku: string, atMs = Date.now()): Promise<void> {
    await this.redis.zadd(this.pipeline.activeSales, 'GT', Math.floor(atMs), sku);
  }

  get wakeChannel(): string {
    return this.pipeline.wake;
  }

  async activeSales(sinceMs: number): Promise<ActiveSale[]> {
    const flat = await this.redis.zrangebyscore(this.pipeline.activeSales, Math.floor(sinceMs), '+inf', 'WITHSCORES');
    const sales: ActiveSale[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      sales.push({ sku: flat[i] as string, lastReservedAtMs: Number(flat[i + 1]) });
    return sales;
  }

  /** Numbers carry no SKU, so each sale active since it was made is asked (`activeSales`: the caller's recent read). */
  async findOrderInput(orderNo: string, activeSales?: readonly ActiveSale[]): Promise<OrderInput | null> {
    const since = activeSince(orderNo);
    if (since === null) return null;
    const skus = (activeSales ?? (await this.activeSales(since)))
      .filter((sale) => sale.lastReservedAtMs >= since)
      .map((sale) => sale.sku);
    const found = (await Promise.all(skus.map((sku) => this.redis.hget(saleKeys(sku).inputs, orderNo)))).find(
      (input) => input !== null,
    );
    return found ? parsePromised(found).input : null;
  }

  /** Of `orderNos`, those whose start was never confirmed: still queued (a confirmed start or a claim drops them). */
  async awaitingStart(sku: string, orderNos: readonly string[]): Promise<Set<string>> {
    if (orderNos.length === 0) return new Set();
    const scores = await this.redis.zmscore(saleKeys(sku).pending, ...orderNos);
    return new Set(orderNos.filter((_, i) => scores[i] !== null));
  }

  /** The inputs of `userId`'s orders holding units in the sales active since `sinceMs` (of `sku` only, if given). */
  async heldOrderInputs(userId: string, sinceMs: number, sku?: string): Promise<OrderInput[]> {
    const skus = (await this.activeSales(sinceMs))
      .map((sale) => sale.sku)
      .filter((s) => sku === undefined || s === sku);
    const bySale = await Promise.all(
      skus.map(async (s) => {
        const keys = saleKeys(s);
        const held = (await this.redis.hget(keys.holds, userId))?.split(' ').filter(Boolean) ?? [];
        if (held.length === 0) return [];
        const inputs = await this.redis.hmget(keys.inputs, ...held);
        return inputs.flatMap((raw) => (raw === null ? [] : [parsePromised(raw).input]));
      }),
    );
    return bySale.flat();
  }

  async orderInput(sku: string, orderNo: string): Promise<OrderInput | null> {
    const input = await this.redis.hget(saleKeys(sku).inputs, orderNo);
    return input === null ? null : parsePromised(input).input;
  }

  /** Counts a cancelled order against the shopper (see ReserveRequest.maxCancels). */
  async countCancel(sku: string, userId: string): Promise<number> {
    return this.redis.hincrby(saleKeys(sku).cancels, userId, 1);
  }

  async userHolding(sku: string, userId: string): Promise<number> {
    const held = await this.redis.hget(saleKeys(sku).users, userId);
    return held === null ? 0 : Number(held);
  }
}

export type Reservation = ReturnType<typeof parseReservation>;

/** Parses `state|userId|quantity|reservedAtMs`; the user id may itself contain `|`. */
export function parseReservation(record: string) {
  const match = /^([RCSX])\|(.*)\|(\d+)\|(\d+)$/s.exec(record);
  const state = match?.[1] === undefined ? undefined : STATES[match[1] as keyof typeof STATES];
  if (!match || state === undefined) throw new Error(`Malformed reservation record: ${JSON.stringify(record)}`);
  return { state, userId: match[2] ?? '', quantity: Number(match[3]), reservedAtMs: Number(match[4]) };
}

/** A pending start (or input) as reserve.lua recorded it, its trace if sampled; cjson may write integers as floats. */
export function parsePromised(json: string) {
  const raw = JSON.parse(json) as Record<string, unknown>;
  const trace = raw.trace;
  const carried =
    typeof trace === 'object' && trace !== null && !Array.isArray(trace)
      ? Object.fromEntries(
          Object.entries(trace).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
        )
      : undefined;
  return { input: orderInputOf(raw), ...(carried && Object.keys(carried).length > 0 ? { trace: carried } : {}) };
}

function orderInputOf(raw: Record<string, unknown>): OrderInput {
  const text = (name: string): string => {
    const value = raw[name];
    if (typeof value !== 'string') throw new Error(`Malformed order input: ${name} is ${JSON.stringify(value)}`);
    return value;
  };
  const int = (name: string): number => {
    const value = Number(raw[name]);
    if (!Number.isSafeInteger(value)) throw new Error(`Malformed order input: ${name} is ${JSON.stringify(raw[name])}`);
    return value;
  };
  return {
    orderNo: text('orderNo'),
    sku: text('sku'),
    userId: text('userId'),
    quantity: int('quantity'),
    unitPriceCents: int('unitPriceCents'),
    ...(typeof raw.idempotencyKey === 'string' && raw.idempotencyKey !== ''
      ? { idempotencyKey: raw.idempotencyKey }
      : {}),
    createdAt: text('createdAt'),
    paymentWindow: text('paymentWindow'),
    // Any provider's name (the checkout wrote one the providers' registry knows; absent: the generic webhook).
    ...(typeof raw.paymentProvider === 'string' && raw.paymentProvider !== ''
      ? { paymentProvider: raw.paymentProvider }
      : {}),
  };
}
