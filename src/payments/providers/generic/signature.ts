/**
 * The generic provider's signature scheme (POST /api/payments/webhook, signed with WEBHOOK_SECRET):
 * the header's form, how a body is signed, and its check. A verified event takes the record-first
 * path of every payment (PaymentReceiver, ../../receiver.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The header's accepted form, which the OpenAPI document declares as it is: `t` first, then
 * `scheme=value` elements, at least one of them a `v1` of 64 hex (several `v1` while a secret
 * rotates; either case), spaces or tabs around commas. Elements of another scheme (`v0=`, a future
 * `v2=`) are ignored, as signed-webhook providers expect of receivers: a provider adding one must
 * not get its payments refused.
 */
export const PAYMENT_SIGNATURE_PATTERN =
  /^t=(\d{1,12})(?=(?:[ \t]*,[ \t]*[a-z][a-z0-9]{0,15}=[^,\s]{1,256})*?[ \t]*,[ \t]*v1=[0-9a-fA-F]{64}(?:[ \t]*,|$))((?:[ \t]*,[ \t]*[a-z][a-z0-9]{0,15}=[^,\s]{1,256}){1,16})$/;

/**
 * Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + rawBody)>.
 * Verified over the raw bytes (re-serialised JSON would not match), in constant time, and only
 * within a tolerance so a captured request cannot be replayed later.
 */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export function signWebhook(secret: string, rawBody: string, nowSeconds = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac('sha256', secret).update(`${nowSeconds}.${rawBody}`).digest('hex');
  return `t=${nowSeconds},v1=${v1}`;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

export function verifyWebhookSignature(
  secret: string,
  rawBody: string,
  header: string | undefined,
  nowSeconds = Math.floor(Date.now() / 1000),
): SignatureCheck {
  if (header === undefined) return { ok: false, reason: 'missing Payment-Signature header' };
  const match = PAYMENT_SIGNATURE_PATTERN.exec(header);
  if (!match) return { ok: false, reason: 'malformed Payment-Signature header (t=<unix seconds>,v1=<64 hex>)' };
  const t = match[1]!;
  // The hex of each well-formed v1 element, whatever the spaces around its comma; other schemes are ignored.
  const signatures = match[2]!
    .split(',')
    .map((part) => part.trim())
    .filter((part) => /^v1=[0-9a-fA-F]{64}$/.test(part))
    .map((part) => part.slice('v1='.length));
  if (Math.abs(nowSeconds - Number(t)) > SIGNATURE_TOLERANCE_SECONDS)
    return { ok: false, reason: 'signature timestamp outside the 5-minute tolerance' };
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  // Several v1 values are allowed so a provider can sign with an old and a new secret while rotating.
  const matches = signatures.some((sig) => timingSafeEqual(Buffer.from(sig, 'hex'), expected));
  return matches ? { ok: true } : { ok: false, reason: 'signature does not match' };
}
