/** Endpoints' `whsec_` secrets (Standard Webhooks), sealed (AES-256-GCM, HKDF key) with the endpoint's id as AAD. */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const SECRET_BYTES = 32;
const FORMAT = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function generateEndpointSecret(): string {
  return `whsec_${randomBytes(SECRET_BYTES).toString('base64')}`;
}

export class EndpointSecretBox {
  private readonly key: Buffer;

  constructor(keyText: string) {
    this.key = Buffer.from(hkdfSync('sha256', keyText, '', 'flash-checkout webhook endpoint secrets', 32));
  }

  seal(endpointId: string, secret: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(endpointId, 'utf8'));
    const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([FORMAT]), iv, cipher.getAuthTag(), sealed]);
  }

  /** Throws when the box was sealed under another key or for another endpoint, or was altered. */
  open(endpointId: string, box: Buffer): string {
    if (box[0] !== FORMAT || box.length < 1 + IV_BYTES + TAG_BYTES) throw new Error('not a sealed endpoint secret');
    const iv = box.subarray(1, 1 + IV_BYTES);
    const tag = box.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAAD(Buffer.from(endpointId, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(box.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  }
}
