/** The line's rules that need no store: fair rank, wait band, when to ask again. Pure (test/line-rules.test.ts). */
import { createHash, createHmac } from 'node:crypto';

/** A new line's secret seed and the hash published before the start (the seed itself after it). */
export function newSeed(random: Buffer): { seed: string; seedHash: string } {
  const seed = random.toString('hex');
  return { seed, seedHash: seedHashOf(seed) };
}

export function seedHashOf(seed: string): string {
  return createHash('sha256').update(seed).digest('hex');
}

/** 6 bytes of HMAC-SHA256(seed, userId): exact in a double, join-time blind, secret until the seed, checkable after. */
export function fairRank(seed: string, userId: string): number {
  return createHmac('sha256', seed).update(userId).digest().readUIntBE(0, 6);
}

/** The longest a shopper is told to wait before asking again (Cloudflare's waiting room refreshes every 20 s). */
export const MAX_REFRESH_SECONDS = 20;

/** min at the set rate, max a tenth more plus a second for ticks; for a kept place it rises only if the rate falls. */
export function etaBand(ahead: number, admissionsPerSecond: number): { minSeconds: number; maxSeconds: number } {
  const seconds = ahead / Math.max(admissionsPerSecond, 1e-9);
  return { minSeconds: Math.floor(seconds), maxSeconds: Math.ceil(seconds * 1.1) + 1 };
}

/** Unspent admissions never exceed units left (line_tick.lua): a place behind them waits for units; no band holds. */
export function withinRemainingUnits(
  ahead: number,
  line: { available: number; admitted: number; consumed: number; givenBack: number },
): boolean {
  const outstanding = line.admitted - line.consumed - line.givenBack;
  return ahead + 1 <= line.available - outstanding;
}

/** A fifth of the shortest wait, 1 to MAX_REFRESH_SECONDS: reads stay about (line length / 20 s) per second. */
export function refreshAfterSeconds(minWaitSeconds: number): number {
  return Math.min(MAX_REFRESH_SECONDS, Math.max(1, Math.ceil(minWaitSeconds / 5)));
}

/** Over how many seconds after the start the pre-queue's first reads are spread. */
export const START_SPREAD_SECONDS = 5;

/** Spread over START_SPREAD_SECONDS: else the whole pre-queue's first reads would ask Redis in one second. */
export function refreshBeforeStart(untilStartMs: number, spread = 0): number {
  const afterStart = Math.ceil(untilStartMs / 1_000) + Math.floor(spread * START_SPREAD_SECONDS);
  return Math.min(MAX_REFRESH_SECONDS, Math.max(1, afterStart));
}

/** The /24 of an IPv4 address, the /48 of an IPv6 one: the subnet whose joins and reads are counted together. */
export function subnetOf(ip: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/i.exec(ip);
  if (v4) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  if (!ip.includes(':')) return ip;
  const [head = '', tail] = ip.split('::');
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined && groups.length < 3) groups.push(...Array<string>(3 - groups.length).fill('0'));
  return `${groups
    .slice(0, 3)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/48`;
}
