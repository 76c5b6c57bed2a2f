/** The generic webhook's signature scheme (WEBHOOK_SECRET): the header's form and its check (toolkit/ signs). */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** `t`, then `scheme=value`s, at least one a 64-hex `v1`; other schemes are ignored, as receivers are expected to. */
export const PAYMENT_SIGNATURE_PATTERN =
  /^t=(\d{1,12})(?=(?:[ \t]*,[ \t]*[a-z][a-z0-9]{0,15}=[^,\s]{1,256})*?[ \t]*,[ \t]*v1=[0-9a-fA-F]{64}(?:[ \t]*,|$))((?:[ \t]*,[ \t]*[a-z][a-z0-9]{0,15}=[^,\s]{1,256}){1,16})$/;

/** How far `t` may be from now, so a captured request cannot be replayed later. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** Over the raw bytes (re-serialised JSON would not match), in constant time. */
export function verifyWebhookSignature(secret: string, rawBody: string, header: string | undefined) {
  const refused = (reason: string) => ({ ok: false as const, reason });
  if (header === undefined) return refused('missing Payment-Signature header');
  const match = PAYMENT_SIGNATURE_PATTERN.exec(header);
  if (!match) return refused('malformed Payment-Signature header (t=<unix seconds>,v1=<64 hex>)');
  const t = match[1]!;
  // The hex of each well-formed v1 element, whatever the spaces around its comma; other schemes are ignored.
  const signatures = match[2]!
    .split(',')
    .map((part) => part.trim())
    .filter((part) => /^v1=[0-9a-fA-F]{64}$/.test(part))
    .map((part) => part.slice('v1='.length));
  if (Math.abs(Math.floor(Date.now() / 1000) - Number(t)) > SIGNATURE_TOLERANCE_SECONDS)
    return refused('signature timestamp outside the 5-minute tolerance');
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  // Several v1 values are allowed so a provider can sign with an old and a new secret while rotating.
  const matches = signatures.some((sig) => timingSafeEqual(Buffer.from(sig, 'hex'), expected));
  return matches ? { ok: true as const } : refused('signature does not match');
}
