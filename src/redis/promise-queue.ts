/**
 * A sale's pending starts as the starter (src/order/starter.ts) takes them: under a per-sale lease, oldest due first.
 * reserve.lua writes the entries; claim.lua and release.lua drop them.
 */
import type { RedisClient } from '../infra/redis.js';
import { parsePromised, type Promised } from './inventory.js';
import { luaScripts, saleKeys } from './layout.js';

export class PromiseQueue {
  private readonly scripts;

  constructor(redis: RedisClient) {
    this.scripts = luaScripts(redis, {
      promisesTakeDueStarts: 'take_due_starts.lua',
      promisesEntry: 'promise_entry.lua',
      promisesReleaseStarterLease: 'release_starter_lease.lua',
    });
  }

  /** Only under the starter lease; each taken start is pushed `recheckMs` ahead so it is not handed out twice. */
  async takeDueStarts(
    sku: string,
    owner: string,
    options: { leaseMs: number; limit: number; recheckMs: number },
  ): Promise<{ leased: boolean; pending: number; due: Promised[] }> {
    const k = saleKeys(sku);
    const reply = (await this.scripts.promisesTakeDueStarts(
      [k.pending, k.inputs, k.starter],
      owner,
      options.leaseMs,
      options.limit,
      options.recheckMs,
    )) as Array<number | string>;
    const due: Promised[] = [];
    for (let i = 2; i + 1 < reply.length; i += 2) due.push(parsePromised(String(reply[i + 1])));
    return { leased: Number(reply[0]) === 1, pending: Number(reply[1] ?? 0), due };
  }

  /** Gives up the sale's starter lease if `owner` holds it. */
  async releaseStarterLease(sku: string, owner: string): Promise<void> {
    await this.scripts.promisesReleaseStarterLease([saleKeys(sku).starter], owner);
  }

  /** After a failed start: the pending start is due again in `delayMs` (false: claimed or released meanwhile). */
  async retryStartLater(sku: string, orderNo: string, delayMs: number): Promise<boolean> {
    const k = saleKeys(sku);
    const delay = Math.max(0, Math.floor(delayMs));
    return (await this.scripts.promisesEntry([k.pending, k.inputs], orderNo, 'retry', delay)) === 1;
  }

  /** The order's workflow exists or has closed: no starter starts it again (its input stays for reads). */
  async dropStartEntry(sku: string, orderNo: string): Promise<void> {
    const k = saleKeys(sku);
    await this.scripts.promisesEntry([k.pending, k.inputs], orderNo, 'drop', 0);
  }
}
