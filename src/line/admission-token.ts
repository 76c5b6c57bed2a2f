/** Admission tokens (header Admission-Token): signed, so a forged one fails without Redis; reserve.lua spends them. */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

export interface Admission {
  sku: string;
  userId: string;
  position: number;
  expiresAtMs: number;
}

export type AdmissionCheck =
  | { ok: true; admission: Admission }
  | { ok: false; code: 'ADMISSION_INVALID' | 'ADMISSION_NOT_YOURS' | 'ADMISSION_EXPIRED' };

const VERSION = 'a1';
/** The signed payload: [sku, userId, position, expiresAtMs]. */
const FIELDS = z.tuple([z.string(), z.string(), z.int().positive(), z.int()]);
const INVALID = { ok: false, code: 'ADMISSION_INVALID' } as const;

export class AdmissionTokens {
  private readonly key: Buffer;

  /** `secret`: JWT_SECRET; the admission key is derived from it, so a JWT and an admission never share a key. */
  constructor(secret: string) {
    this.key = createHmac('sha256', secret).update('flash-sale admission tokens v1').digest();
  }

  sign(admission: Admission): string {
    const payload = Buffer.from(
      JSON.stringify([admission.sku, admission.userId, admission.position, admission.expiresAtMs]),
    ).toString('base64url');
    return `${VERSION}.${payload}.${this.mac(payload)}`;
  }

  /** ADMISSION_EXPIRED past its time plus `graceMs` by this clock; near its end reserve.lua judges by Redis's clock. */
  verify(token: string, expected: { sku: string; userId: string }, nowMs: number, graceMs: number): AdmissionCheck {
    const [version, payload, mac, extra] = token.split('.');
    if (version !== VERSION || !payload || !mac || extra !== undefined || token.length > 1_024) return INVALID;
    const expectedMac = Buffer.from(this.mac(payload));
    const givenMac = Buffer.from(mac);
    if (givenMac.length !== expectedMac.length || !timingSafeEqual(givenMac, expectedMac)) return INVALID;
    let fields: unknown;
    try {
      fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return INVALID;
    }
    const parsed = FIELDS.safeParse(fields);
    if (!parsed.success) return INVALID;
    const [sku, userId, position, expiresAtMs] = parsed.data;
    if (sku !== expected.sku || userId !== expected.userId) return { ok: false, code: 'ADMISSION_NOT_YOURS' };
    if (nowMs > expiresAtMs + graceMs) return { ok: false, code: 'ADMISSION_EXPIRED' };
    return { ok: true, admission: { sku, userId, position, expiresAtMs } };
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(`${VERSION}.${payload}`).digest('base64url');
  }
}
