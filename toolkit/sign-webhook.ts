/** Signs a body as the generic webhook's provider does (src/payments/providers/generic/signature.ts checks it). */
import { createHmac } from 'node:crypto';

export function signWebhook(secret: string, rawBody: string, nowSeconds = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac('sha256', secret).update(`${nowSeconds}.${rawBody}`).digest('hex');
  return `t=${nowSeconds},v1=${v1}`;
}
