import { randomBytes } from 'node:crypto';
import { ORDER_NO_ALPHABET } from '../model/order-workflow.js';

/** A new order number (ORDER_NO_PATTERN): the time now, then 80 random bits. */
export function newOrderNo(now = Date.now()): string {
  let time = '';
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = ORDER_NO_ALPHABET[t % 32] + time;
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
      rand += ORDER_NO_ALPHABET[(value >> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  return time + rand;
}
