/** What production refuses of a secret (docs/operations.md, "Before production"): one published here, or one weak. */
import { createHash } from 'node:crypto';
import { PUBLISHED_SECRET_FINGERPRINTS } from './published-secrets.js';

/** The first 64 bits of SHA-256: enough to recognise a published value, nothing to recover an unpublished one by. */
export function secretFingerprint(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 16);
}

export function isPublishedSecret(value: string | Uint8Array): boolean {
  return PUBLISHED_SECRET_FINGERPRINTS.has(secretFingerprint(value));
}

/** Random text or bytes have many distinct units and few steps of 0 or ±1; a repeat, a run or a pattern does not. */
export function weakness(value: string | Uint8Array, minLength: number): string | null {
  const units = typeof value === 'string' ? [...value].map((char) => char.codePointAt(0)!) : [...value];
  if (units.length < minLength)
    return `shorter than ${minLength} ${typeof value === 'string' ? 'characters' : 'bytes'}`;
  if (new Set(units).size < 8) return 'made of fewer than 8 distinct values';
  const steps = units.slice(1).filter((unit, i) => Math.abs(unit - units[i]!) <= 1).length;
  if (steps * 2 >= units.length - 1) return 'a run or a repeated pattern';
  return null;
}
