/** Redis's layout: every key of a sale and of a pipeline (the one place that knows them), and lua/'s scripts. */
import { readFileSync } from 'node:fs';
import type { RedisClient } from '../infra/redis.js';

/**
 * Named by the task queue so deployments sharing a Redis never start each other's orders. `activeSales`: ZSET SKU ->
 * last reservation ms, where starters find sales with pending starts; `wake`: reserve.lua announces new ones' SKU.
 */
export function pipelineKeys(taskQueue: string): { activeSales: string; wake: string } {
  return { activeSales: `flash:active-sales:${taskQueue}`, wake: `flash:promises:${taskQueue}` };
}

export function saleKeys(sku: string) {
  const base = `sale:{${sku}}`;
  return {
    /** HASH stock, available, reserved, sold, limit, price, starts, ends (epoch ms, 0: none), returned (generation). */
    sale: base,
    /** HASH userId -> units the user holds (reserved + sold). */
    users: `${base}:users`,
    /** HASH orderNo -> `state|userId|quantity|reservedAtMs`: R reserved, C claimed (workflow), S sold, X released. */
    reservations: `${base}:res`,
    /** HASH (userId, idempotency key) -> orderNo. */
    idempotency: `${base}:idem`,
    /** HASH userId -> orders the shopper cancelled in this sale. */
    cancels: `${base}:cancels`,
    /** ZSET orderNo -> when a starter may start it (Redis clock, ms): pending starts no workflow has claimed. */
    pending: `${base}:pending`,
    /** HASH orderNo -> the order's workflow input (JSON), from the reserve until its units are sold or back. */
    inputs: `${base}:inputs`,
    /** STRING: the lease of the sale's one starter (its owner id, with an expiry). */
    starter: `${base}:starter`,
    /** HASH userId -> the orders holding the user's units, space-separated (what PURCHASE_LIMIT_EXCEEDED names). */
    holds: `${base}:holds`,
    /** STRING: a counter bumped by each replica-acknowledgement round (src/redis/replica-acks.ts), never read. */
    replicationMark: `${base}:replication-mark`,
    /** HASH the sale's waiting line: settings and counters (lua/line_tick.lua); absent for a sale without one. */
    line: `${base}:line`,
    /** ZSET userId -> fair rank: who joined before the start (the pre-queue). */
    linePre: `${base}:line:pre`,
    /** HASH userId -> 'P' (in the pre-queue) or the place's position. */
    linePlaces: `${base}:line:places`,
    /** ZSET admission batches not yet expired: score = the batch's last position, member `from:to:atMs`. */
    lineBatches: `${base}:line:batches`,
    /** HASH a batch's last position -> its admissions a checkout spent. */
    lineUse: `${base}:line:use`,
    /** HASH userId -> the position whose admission a checkout spent. */
    lineUsed: `${base}:line:used`,
  };
}
export type SaleKeys = ReturnType<typeof saleKeys>;

/** A sale's waiting line's keys, in the order reserve.lua and release.lua take them. */
export const lineKeysOf = (k: SaleKeys) => [k.line, k.linePre, k.linePlaces, k.lineBatches, k.lineUse, k.lineUsed];

const LUA_DIR = new URL('../../lua/', import.meta.url);

const luaSources = new Map<string, string>();

/** The text of a script of lua/, read once. */
export function luaSource(file: string): string {
  let source = luaSources.get(file);
  if (source === undefined) {
    source = readFileSync(new URL(file, LUA_DIR), 'utf8');
    luaSources.set(file, source);
  }
  return source;
}

/** Keys (one slot's, as many as its highest KEYS[n]) first: cluster auto-pipelining routes by the first key. */
export function luaScripts<N extends string>(redis: RedisClient, files: Record<N, string>) {
  const commands = redis as unknown as Record<N, (...keysAndArgs: unknown[]) => Promise<unknown>>;
  const scripts = {} as Record<N, (keys: readonly string[], ...args: Array<string | number>) => Promise<unknown>>;
  for (const name of Object.keys(files) as N[]) {
    const lua = luaSource(files[name]);
    const numberOfKeys = Math.max(0, ...[...lua.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
    redis.defineCommand(name, { numberOfKeys, lua });
    scripts[name] = (keys, ...args) => {
      if (keys.length !== numberOfKeys) throw new Error(`${files[name]} takes ${numberOfKeys} keys`);
      return commands[name](...keys, ...args);
    };
  }
  return scripts;
}
