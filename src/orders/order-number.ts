import { randomBytes } from 'node:crypto';

/**
 * Order numbers: 10 chars of millisecond time then 16 random chars, in Crockford base32 (like a ULID).
 * Sortable by creation time, unique across API instances without coordination (80 random bits per
 * millisecond), and safe in URLs and workflow ids.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function newOrderNo(now = Date.now()): string {
  let time = '';
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = ALPHABET[t % 32] + time;
  const random = randomBytes(10);
  let rand = '';
  // 10 bytes = 80 bits = 16 base32 chars.
  let bits = 0;
  let value = 0;
  for (const byte of random) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      rand += ALPHABET[(value >> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  return time + rand;
}

export const ORDER_NO_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** When the order number was made (ms since the epoch), from its first 10 characters; null if it is not one. */
export function orderNoTime(orderNo: string): number | null {
  if (!ORDER_NO_PATTERN.test(orderNo)) return null;
  let time = 0;
  for (const char of orderNo.slice(0, 10)) time = time * 32 + ALPHABET.indexOf(char);
  return time;
}
