import { randomBytes } from 'node:crypto';
import { ORDER_NO_ALPHABET } from '../model/order-workflow.js';

/** A new order number (ORDER_NO_PATTERN): the time now in 10 base32 digits, then 80 random bits in 16. */
export function newOrderNo(now = Date.now()): string {
  let bits = (BigInt(now) << 80n) | BigInt(`0x${randomBytes(10).toString('hex')}`);
  let orderNo = '';
  for (let i = 0; i < 26; i++, bits >>= 5n) orderNo = ORDER_NO_ALPHABET[Number(bits & 31n)] + orderNo;
  return orderNo;
}
