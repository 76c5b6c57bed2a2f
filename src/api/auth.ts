/** Shoppers authenticate with an HS256 JWT (`sub` = user id); admins with a static bearer token. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';
import type { Context } from 'koa';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { AppConfig, RateLimit } from '../config/index.js';
import { ApiError } from './errors.js';
import { tooMany } from './rate-limit.js';

export const USER_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,64}$/;

const MISSING_BEARER = 'missing bearer token (Authorization: Bearer <token>)';

/** The token of `Authorization: Bearer <token>`; undefined when the header is anything else. */
function bearerOf(header: string): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

function bearerTokenOf(header: string): string {
  const token = bearerOf(header);
  if (!token) throw new ApiError('UNAUTHORIZED', MISSING_BEARER);
  return token;
}

/** fast-jwt: synchronous HMAC (~12 µs a verify, jose's 140 µs), verified tokens cached as a burst resends them. */
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

  /** The shopper an Authorization header names, or 401: synchronous, for the front's sold-out check. */
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

/** Wrong credentials per address (RATE_LIMIT_AUTH_FAILURES), in memory: a 429 needs no store and comes first. */
export class CredentialFailures {
  private readonly limiter: RateLimiterMemory | null;

  constructor(limit: RateLimit | null) {
    this.limiter = limit ? new RateLimiterMemory({ points: limit.points, duration: limit.durationSeconds }) : null;
  }

  /** Runs `check` (which throws 401 on a wrong credential) unless `address` has no failures left; counts a 401. */
  async guard(address: string, check: () => void): Promise<void> {
    if (!this.limiter) return check();
    const spent = await this.limiter.get(address);
    if (spent && spent.remainingPoints <= 0) throw tooMany('failed credentials from this address', this.limiter, spent);
    try {
      check();
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 'UNAUTHORIZED') throw err;
      // Counted; the last allowed failure is still answered 401, the next attempt 429.
      await this.limiter.consume(address).catch(() => undefined);
      throw err;
    }
  }
}

/** The operators' bearer tokens (route()'s `guard`): 401 UNAUTHORIZED without one, before anything else is read. */
export class OperatorTokens {
  constructor(
    private readonly tokens: Pick<AppConfig, 'adminToken' | 'eventsReadToken'>,
    private readonly failures: CredentialFailures,
  ) {}

  get admin() {
    const allowed = [this.tokens.adminToken];
    return { auth: 'admin', guard: (ctx: Context) => this.check(ctx, allowed, 'invalid admin token') } as const;
  }

  /** The events feed: its read-only token (fulfilment systems), or the admin's. */
  get eventsReader() {
    const { adminToken, eventsReadToken } = this.tokens;
    const allowed = eventsReadToken ? [eventsReadToken, adminToken] : [adminToken];
    return { auth: 'eventsReader', guard: (ctx: Context) => this.check(ctx, allowed, 'invalid events token') } as const;
  }

  private check(ctx: Context, allowed: readonly string[], refusal: string): Promise<void> {
    return this.failures.guard(ctx.ip, () => requireToken(ctx.get('authorization'), allowed, refusal));
  }
}

/** Digests, all compared in constant time: equal lengths hide the token's length; timing never tells which matched. */
export function requireToken(authorization: string, tokens: readonly string[], refusal: string): void {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const token = bearerOf(authorization);
  const given = token ? digest(token) : undefined;
  if (!given || !tokens.map((token) => timingSafeEqual(given, digest(token))).includes(true))
    throw new ApiError('UNAUTHORIZED', given ? refusal : MISSING_BEARER, undefined, { 'WWW-Authenticate': 'Bearer' });
}
