/** Shoppers authenticate with an HS256 JWT (`sub` = user id); admins with a static bearer token. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';
import type { Context } from 'koa';
import type { AppConfig } from '../config/index.js';
import { ApiError } from './errors.js';

export const USER_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,64}$/;

function bearerTokenOf(header: string): string {
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match?.[1]) throw new ApiError('UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
  return match[1];
}

/**
 * HS256 via fast-jwt: synchronous HMAC (~12 µs a verify against jose's 140 µs), with a cache of verified tokens
 * (it honours their expiry) since a shopper in a burst resends one. A token without `exp` is never valid.
 */
export class ShopperAuth {
  private readonly sign: (payload: { sub: string }) => string;
  private readonly verify: (token: string) => { sub?: unknown; iat?: unknown; exp?: unknown };
  private readonly maxTtlSeconds: number;

  /** A token must be signed with the secret, from the issuer, for the audience, and live at most jwtMaxTtlMs. */
  constructor(settings: Pick<AppConfig, 'jwtSecret' | 'jwtIssuer' | 'jwtAudience' | 'jwtMaxTtlMs'>) {
    // Tokens issued here (dev login) live 12 h, or JWT_MAX_TTL when shorter.
    const ttlMs = Math.min(12 * 3_600_000, settings.jwtMaxTtlMs);
    this.maxTtlSeconds = settings.jwtMaxTtlMs / 1000;
    this.sign = createSigner({
      key: settings.jwtSecret,
      algorithm: 'HS256',
      expiresIn: ttlMs,
      iss: settings.jwtIssuer,
      aud: settings.jwtAudience,
    });
    this.verify = createVerifier({
      key: settings.jwtSecret,
      algorithms: ['HS256'],
      allowedIss: settings.jwtIssuer,
      allowedAud: settings.jwtAudience,
      requiredClaims: ['sub', 'iat', 'exp', 'iss', 'aud'],
      cache: 50_000,
    });
  }

  async issue(userId: string): Promise<string> {
    return this.sign({ sub: userId });
  }

  /** The shopper's user id, or 401. */
  async authenticate(ctx: Context): Promise<string> {
    return this.shopperOf(ctx.get('authorization'));
  }

  /** The shopper an Authorization header names, or 401: synchronous, for the sold-out door. */
  shopperOf(authorization: string): string {
    const token = bearerTokenOf(authorization);
    let claims: { sub?: unknown; iat?: unknown; exp?: unknown };
    try {
      claims = this.verify(token);
    } catch {
      throw new ApiError('UNAUTHORIZED', 'invalid or expired token');
    }
    const { sub, iat, exp } = claims;
    if (typeof sub !== 'string' || !USER_ID_PATTERN.test(sub))
      throw new ApiError('UNAUTHORIZED', 'invalid or expired token');
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > this.maxTtlSeconds) {
      throw new ApiError('UNAUTHORIZED', 'token lifetime exceeds the maximum (JWT_MAX_TTL)');
    }
    return sub;
  }
}

/** An operator's route (route()'s `guard`): 401 UNAUTHORIZED without the admin token, before anything else is read. */
export function adminOnly(adminToken: string) {
  return { auth: 'admin', guard: (ctx: Context) => requireToken(ctx, [adminToken], 'invalid admin token') } as const;
}

/** The events feed: its read-only token (fulfilment systems), or the admin's. */
export function eventsReaderOnly(tokens: { adminToken: string; eventsReadToken: string | null }) {
  const allowed = tokens.eventsReadToken ? [tokens.eventsReadToken, tokens.adminToken] : [tokens.adminToken];
  return { auth: 'eventsReader', guard: (ctx: Context) => requireToken(ctx, allowed, 'invalid events token') } as const;
}

/**
 * Compares SHA-256 digests in constant time: equal lengths, so not even the token's length leaks; every one is
 * compared, so the time taken does not tell which matched.
 */
function requireToken(ctx: Context, tokens: readonly string[], refusal: string): void {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const given = digest(bearerTokenOf(ctx.get('authorization')));
  if (!tokens.map((token) => timingSafeEqual(given, digest(token))).includes(true))
    throw new ApiError('UNAUTHORIZED', refusal);
}
