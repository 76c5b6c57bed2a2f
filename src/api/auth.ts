/**
 * Shoppers authenticate with an HS256 JWT (`sub` = user id); admins with a static bearer token.
 */
import { timingSafeEqual } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import type { Context } from 'koa';
import { ApiError } from './errors.js';

export const USER_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,64}$/;

export function bearerToken(ctx: Context): string {
  const header = ctx.get('authorization');
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match?.[1]) throw new ApiError(401, 'UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
  return match[1];
}

export class ShopperAuth {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async issue(userId: string, ttl = '12h'): Promise<string> {
    return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setIssuedAt().setExpirationTime(ttl).sign(this.key);
  }

  /** The shopper's user id, or 401. */
  async authenticate(ctx: Context): Promise<string> {
    const token = bearerToken(ctx);
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || !USER_ID_PATTERN.test(payload.sub)) throw new Error('bad subject');
      return payload.sub;
    } catch {
      throw new ApiError(401, 'UNAUTHORIZED', 'invalid or expired token');
    }
  }
}

export function requireAdmin(ctx: Context, adminToken: string): void {
  const given = Buffer.from(bearerToken(ctx));
  const expected = Buffer.from(adminToken);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new ApiError(401, 'UNAUTHORIZED', 'invalid admin token');
}
