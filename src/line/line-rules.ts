/**
 * The line's rules that need no store: a shopper's fair rank in the pre-queue, the wait told to them, and when to ask
 * again. Pure functions, held by test/line-rules.test.ts.
 */
import { createHash, createHmac } from 'node:crypto';

/** A new line's secret seed and the hash published before the start (the seed itself after it). */
export function newSeed(random: Buffer): { seed: string; seedHash: string } {
  const seed = random.toString('hex');
  return { seed, seedHash: seedHashOf(seed) };
}

export function seedHashOf(seed: string): string {
  return createHash('sha256').update(seed).digest('hex');
}

/**
 * A pre-queue shopper's rank: the first 6 bytes of HMAC-SHA256(seed, userId) as an integer (exact in a double, so a
 * Redis sorted-set score), lower first, ties by userId's bytes (the sorted set's own order). It does not depend on
 * when the shopper joined, nobody can compute it before the seed is revealed, and anyone can check it after.
 */
export function fairRank(seed: string, userId: string): number {
  return createHmac('sha256', seed).update(userId).digest().readUIntBE(0, 6);
}

/** The longest a shopper is told to wait before asking again (Cloudflare's waiting room refreshes every 20 s). */
export const MAX_REFRESH_SECONDS = 20;

/**
 * The wait for `ahead` shoppers at `admissionsPerSecond`, as a band: at the set rate exactly (min), and with a tenth
 * more plus a second for the admission ticks (max). Both fall as `ahead` falls, so for a shopper who keeps their place
 * the band never rises unless the rate is lowered.
 */
export function etaBand(ahead: number, admissionsPerSecond: number): { minSeconds: number; maxSeconds: number } {
  const seconds = ahead / Math.max(admissionsPerSecond, 1e-9);
  return { minSeconds: Math.floor(seconds), maxSeconds: Math.ceil(seconds * 1.1) + 1 };
}

/**
 * Whether a place with `ahead` places before it can be admitted at the line's rate with the units left: each place
 * takes a unit, and the line never has more admissions out unspent than units available (line_tick.lua). A place
 * behind them waits for units to come back (admissions left unspent, orders cancelled or unpaid): no band holds.
 */
export function withinRemainingUnits(
  ahead: number,
  line: { available: number; admitted: number; consumed: number; givenBack: number },
): boolean {
  const outstanding = line.admitted - line.consumed - line.givenBack;
  return ahead + 1 <= line.available - outstanding;
}

/**
 * When a waiting shopper should ask again: a fifth of the shortest wait, between 1 and MAX_REFRESH_SECONDS, so the
 * line's reads stay about (line length / 20 s) per second however long the line, and the front of the line is told
 * of its admission within a second or two.
 */
export function refreshAfterSeconds(minWaitSeconds: number): number {
  return Math.min(MAX_REFRESH_SECONDS, Math.max(1, Math.ceil(minWaitSeconds / 5)));
}

/** Over how many seconds after the start the pre-queue's first reads are spread. */
export const START_SPREAD_SECONDS = 5;

/**
 * Before the start: ask again in MAX_REFRESH_SECONDS, or, near the start, just after it. The whole pre-queue would
 * otherwise come back in the same second, and each first read after the start asks Redis for its rank: `spread` (0
 * to 1, fixed per shopper) spreads them over START_SPREAD_SECONDS. The first positions wait a few seconds at most.
 */
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
