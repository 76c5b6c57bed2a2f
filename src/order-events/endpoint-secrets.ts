/**
 * Endpoints' `whsec_` secrets, sealed (AES-256-GCM, an HKDF key per EVENTS_SECRET_KEY entry) with the endpoint's id as
 * AAD. The first key seals, every listed key opens; the reconciler reseals what an older key sealed.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { EventsSecretKey } from '../config/index.js';

const SECRET_BYTES = 32;
/** 1: [1][iv][tag][sealed], the one key's; 2: [2][id length][id][iv][tag][sealed], the id bound as AAD too. */
const UNNAMED = 1;
const NAMED = 2;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function generateEndpointSecret(): string {
  return `whsec_${randomBytes(SECRET_BYTES).toString('base64')}`;
}

export class EndpointSecretBox {
  private readonly keys: { id: string; key: Buffer }[];

  /** A string: one key without an id (tests, and EVENTS_SECRET_KEY as it was before lists). */
  constructor(keys: string | readonly EventsSecretKey[]) {
    const listed = typeof keys === 'string' ? [{ id: '', secret: keys }] : keys;
    if (listed.length === 0) throw new Error('EndpointSecretBox needs at least one key');
    this.keys = listed.map(({ id, secret }) => ({
      id,
      key: Buffer.from(hkdfSync('sha256', secret, '', 'flash-checkout webhook endpoint secrets', 32)),
    }));
  }

  seal(endpointId: string, secret: string): Buffer {
    const { id, key } = this.keys[0]!;
    const header = id === '' ? Buffer.from([UNNAMED]) : Buffer.from([NAMED, id.length, ...Buffer.from(id, 'latin1')]);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(associatedData(endpointId, id));
    const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return Buffer.concat([header, iv, cipher.getAuthTag(), sealed]);
  }

  /** Throws when no listed key sealed the box, or it was sealed for another endpoint, or altered. */
  open(endpointId: string, box: Buffer): string {
    const { id, body } = parts(box);
    // Unnamed: sealed before keys had ids, by one of them (GCM's tag tells which).
    const candidates = id === null ? this.keys : this.keys.filter((key) => key.id === id);
    if (candidates.length === 0)
      throw new Error(`an endpoint secret sealed under key "${id}", which is not one of EVENTS_SECRET_KEY`);
    for (const { key } of candidates) {
      try {
        return openWith(key, associatedData(endpointId, id ?? ''), body);
      } catch {
        // the next key
      }
    }
    throw new Error('an endpoint secret no listed key opens: altered, moved to another endpoint, or its key dropped');
  }

  /** Whether the key that seals now sealed `box`; else the reconciler seals it again (docs/operations.md). */
  isCurrent(box: Buffer): boolean {
    const { id } = parts(box);
    return (id ?? '') === this.keys[0]!.id;
  }
}

function parts(box: Buffer): { id: string | null; body: Buffer } {
  if (box[0] === UNNAMED && box.length >= 1 + IV_BYTES + TAG_BYTES) return { id: null, body: box.subarray(1) };
  const length = box[1] ?? 0;
  if (box[0] === NAMED && box.length >= 2 + length + IV_BYTES + TAG_BYTES)
    return { id: box.subarray(2, 2 + length).toString('latin1'), body: box.subarray(2 + length) };
  throw new Error('not a sealed endpoint secret');
}

function openWith(key: Buffer, aad: Buffer, body: Buffer): string {
  const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, IV_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(body.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(body.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
}

/** The endpoint's id, and a named key's id: a box moved to another row, or relabelled, does not open. */
function associatedData(endpointId: string, keyId: string): Buffer {
  return Buffer.from(keyId === '' ? endpointId : `${endpointId}\n${keyId}`, 'utf8');
}
