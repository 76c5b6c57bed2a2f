/**
 * Every payload Temporal stores for this service (failures' messages and stacks too) is encrypted before it leaves the
 * process: AES-256-GCM, a random nonce each, key id and original encoding in clear metadata bound as associated data.
 * Codecs run on the main thread, never in the sandbox. Rotation: docs/operations.md, "Payload encryption".
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { ValueError, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { PayloadCodecKey } from '../config/index.js';

// A CommonJS package: under tsx its namespace has no named exports.
const { temporal } = proto;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const ORIGINAL_ENCODING = 'encryption-original-encoding';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Versioned, so a later format can never be read as this one. */
const AAD_PREFIX = 'flash-checkout/payload-codec/v1';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export class AesGcmPayloadCodec implements PayloadCodec, TextSealer {
  /** Per key id: read by the worker's metrics (a key must be rotated long before 2^32). */
  readonly counts = { encrypted: new Map<string, number>(), decrypted: new Map<string, number>() };
  /** KeyObjects made once: a Buffer key makes one per payload, a fifth of the worker's codec CPU at a sale's rate. */
  private readonly byId: ReadonlyMap<string, KeyObject>;
  /** The first key's id, the one that encrypts. */
  private readonly encryptingKeyId: string;

  /** Keys kept as KeyObjects only, which no serializer prints: the SDK logs the Worker's options, this codec too. */
  constructor(
    keys: readonly PayloadCodecKey[],
    private readonly mode: PayloadCodecMode = 'encrypt',
  ) {
    if (keys.length === 0) throw new ValueError('the payload codec needs at least one key');
    this.encryptingKeyId = keys[0]!.id;
    this.byId = new Map(keys.map((key) => [key.id, createSecretKey(key.secret)]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    if (this.mode === 'decrypt-only') return payloads;
    return payloads.map((payload) => this.encrypt(payload));
  }

  /** Under `require`, a plain payload (written without this codec: by hand, or by a client without the key) throws. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = encodingOf(payload);
      if (encoding === ENCRYPTED_ENCODING) return this.decrypt(payload);
      if (this.mode === 'require')
        throw new ValueError(
          `a payload not encrypted (encoding "${encoding ?? 'none'}"), refused: PAYLOAD_CODEC_MODE=require`,
        );
      return payload;
    });
  }

  private encrypt(payload: Payload): Payload {
    const originalEncoding = encodingOf(payload) ?? '';
    const { id, sealed } = this.sealBytes(temporal.api.common.v1.Payload.encode(payload).finish(), originalEncoding);
    return {
      metadata: {
        encoding: utf8.encode(ENCRYPTED_ENCODING),
        [KEY_ID]: utf8.encode(id),
        [ORIGINAL_ENCODING]: utf8.encode(originalEncoding),
      },
      data: sealed,
    };
  }

  /** Throws on an unknown key or any tampering: the SDK fails the task, which Temporal retries; nothing decides. */
  private decrypt(payload: Payload): Payload {
    const id = metadataString(payload, KEY_ID);
    const context = metadataString(payload, ORIGINAL_ENCODING) ?? '';
    const plain = this.openBytes('encrypted payload', id, payload.data ?? new Uint8Array(), context);
    const original = temporal.api.common.v1.Payload.decode(plain);
    this.counts.decrypted.set(id!, (this.counts.decrypted.get(id!) ?? 0) + 1);
    return { metadata: original.metadata, data: original.data };
  }

  /** `enc1:<key id>:<base64 nonce|ciphertext|tag>`, bound to `context`, in every mode (each one opens it). */
  seal(text: string, context: string): string {
    const { id, sealed } = this.sealBytes(Buffer.from(text, 'utf8'), `text:${context}`);
    return `${SEALED_PREFIX}${id}:${sealed.toString('base64')}`;
  }

  open(stored: string, context: string): string {
    if (!stored.startsWith(SEALED_PREFIX)) return stored;
    const [id = '', body = ''] = stored.slice(SEALED_PREFIX.length).split(':');
    return this.openBytes('sealed text', id, Buffer.from(body, 'base64'), `text:${context}`).toString('utf8');
  }

  /** nonce | ciphertext | tag under the first key, its id and `context` bound as associated data. */
  private sealBytes(plain: Uint8Array, context: string): { id: string; sealed: Buffer } {
    const id = this.encryptingKeyId;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.byId.get(id)!, nonce);
    cipher.setAAD(associatedData(id, context));
    const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    this.counts.encrypted.set(id, (this.counts.encrypted.get(id) ?? 0) + 1);
    return { id, sealed };
  }

  private openBytes(what: string, id: string | undefined, sealed: Uint8Array, context: string): Buffer {
    const secret = id === undefined ? undefined : this.byId.get(id);
    if (id === undefined || !secret) {
      // The keys held are not named: a refusal is an answer to whoever sent the payload.
      throw new ValueError(`${what} of key "${id ?? '(none)'}", which is not one of PAYLOAD_CODEC_KEYS`);
    }
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new ValueError(`${what} of key "${id}" is truncated`);
    const decipher = createDecipheriv('aes-256-gcm', secret, sealed.subarray(0, NONCE_BYTES));
    decipher.setAAD(associatedData(id, context));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([
        decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw new ValueError(`${what} of key "${id}" failed authentication: altered, moved or not ours`);
    }
  }
}

/** encrypt; decrypt-only: write plain, read both (before encryption); require: encrypt, refuse plain (after it). */
export type PayloadCodecMode = 'encrypt' | 'decrypt-only' | 'require';

/** What the codec encrypted per key since the last call, for a counter: GCM's random nonces allow 2^32 per key. */
export function encryptionsSince(codec: AesGcmPayloadCodec): () => Map<string, number> {
  const seen = new Map<string, number>();
  return () => {
    const added = new Map<string, number>();
    for (const [keyId, count] of codec.counts.encrypted) {
      if (count > (seen.get(keyId) ?? 0)) added.set(keyId, count - (seen.get(keyId) ?? 0));
      seen.set(keyId, count);
    }
    return added;
  };
}

/** A secret kept in MySQL under the payload codec's keys (the client secret of a PaymentIntent). */
export interface TextSealer {
  /** `context` names where the text is kept (table, column, row): a sealed value copied elsewhere does not open. */
  seal(text: string, context: string): string;
  /** A value written before encryption (no `enc1:` prefix) is answered as it is. */
  open(stored: string, context: string): string;
}

const SEALED_PREFIX = 'enc1:';

function associatedData(keyId: string, context: string): Uint8Array {
  return utf8.encode(`${AAD_PREFIX}\n${keyId}\n${context}`);
}

function metadataString(payload: Payload, name: string): string | undefined {
  const value = payload.metadata?.[name];
  return value ? fromUtf8.decode(value) : undefined;
}

function encodingOf(payload: Payload): string | undefined {
  return metadataString(payload, 'encoding');
}
