/**
 * A sale's waiting line routes (docs/api.md, "The waiting line"). Joins and reads are counted per shopper, IP and
 * subnet in this process's memory, so a poll costs no Redis round trip.
 */
import { timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { z } from 'zod';
import type { AppConfig, RateLimit } from '../../config/index.js';
import { Refusal } from '../../infra/refusal.js';
import { subnetOf } from '../../line/line-rules.js';
import type { LineService, PlaceView } from '../../line/line-service.js';
import { skuNotFound } from '../../sales/sales-service.js';
import type { ShopperAuth } from '../auth.js';
import { requireAdmin } from '../auth.js';
import { ApiError } from '../errors.js';
import { lineSchema, placeSchema } from '../response-schemas.js';
import { route } from '../route.js';
import { lineControlSchema, skuParams } from '../schemas.js';

/** The line's request budgets, in this process's memory. */
export class LineRateLimits {
  private readonly limiters: Array<{ limiter: RateLimiterMemory; identity: (who: Who) => string; what: string }> = [];

  constructor(limits: AppConfig['lineRateLimits']) {
    const add = (limit: RateLimit | null, name: string, identity: (who: Who) => string, what: string) => {
      if (!limit) return;
      const limiter = new RateLimiterMemory({
        keyPrefix: `line:${name}`,
        points: limit.points,
        duration: limit.durationSeconds,
      });
      this.limiters.push({ limiter, identity, what });
    };
    add(limits.shopper, 'shopper', (who) => who.userId, 'this shopper');
    add(limits.ip, 'ip', (who) => who.ip, 'this address');
    add(limits.subnet, 'subnet', (who) => subnetOf(who.ip), 'this network');
  }

  /** Counts one join or read against every budget; 429 RATE_LIMITED naming the first one spent. */
  async consume(who: Who): Promise<void> {
    for (const { limiter, identity, what } of this.limiters) {
      try {
        await limiter.consume(identity(who));
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        const seconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1_000));
        throw new ApiError(
          429,
          'RATE_LIMITED',
          `too many line requests from ${what}: at most ${limiter.points} per ${limiter.duration} s; retry in ${seconds} s`,
          undefined,
          { 'Retry-After': String(seconds) },
        );
      }
    }
  }
}

interface Who {
  userId: string;
  ip: string;
}

export function lineRoutes(deps: {
  auth: ShopperAuth;
  line: LineService;
  limits: LineRateLimits;
  challenge: AppConfig['line']['challenge'];
  adminToken: string;
}): Router {
  const { auth, line, limits, challenge } = deps;
  const router = new Router();
  const pathSku = (ctx: { params: Record<string, string | undefined> }, params: { sku: string } | null): string => {
    if (!params) throw skuNotFound(ctx.params.sku ?? '');
    return params.sku;
  };
  const answerPlace = (ctx: { set(name: string, value: string): void; body: unknown }, place: PlaceView) => {
    if (place.refreshAfterSeconds !== null) ctx.set('Retry-After', String(place.refreshAfterSeconds));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = place;
  };
  const placeAnswer = {
    description: 'The place; `Retry-After` (as `refreshAfterSeconds`) says when to ask again',
    schema: placeSchema,
    headers: z.object({ 'Retry-After': z.string().optional().meta({ description: 'Seconds until the next read' }) }),
  };
  const rateLimited = {
    codes: ['RATE_LIMITED' as const],
    description: '`RATE_LIMITED`: too many joins and reads from this shopper, address or network (RATE_LIMIT_LINE*)',
  };
  const challengeHeader = challenge?.header.toLowerCase();
  const challengeSecret = challenge ? Buffer.from(challenge.secret) : null;

  route(
    router,
    {
      method: 'post',
      path: '/api/sales/:sku/line',
      operationId: 'joinLine',
      summary: "Take a place in the sale's waiting line (idempotent: the same place from any device)",
      description:
        "Before the start the place is in the pre-queue, ranked at random by the line's seed; after it, first come first served. " +
        'A place whose admission expired unspent is replaced by a new one at the back.',
      tag: 'line',
      auth: 'shopper',
      params: skuParams,
      responses: { 200: placeAnswer },
      errors: {
        401: { codes: ['UNAUTHORIZED'] },
        403: { codes: ['CHALLENGE_REQUIRED'] },
        404: { codes: ['SKU_NOT_FOUND', 'NO_LINE'] },
        409: { codes: ['LINE_NOT_OPEN', 'SALE_NOT_ACTIVE'] },
        429: rateLimited,
        503: { codes: ['UNAVAILABLE'] },
      },
    },
    async (ctx, input) => {
      const userId = await auth.authenticate(ctx);
      await limits.consume({ userId, ip: ctx.ip });
      if (challengeHeader && challengeSecret) {
        const given = Buffer.from(ctx.get(challengeHeader));
        if (given.length !== challengeSecret.length || !timingSafeEqual(given, challengeSecret))
          throw new Refusal('CHALLENGE_REQUIRED', 'pass the challenge in front of this line first, then join');
      }
      answerPlace(ctx, await line.join(pathSku(ctx, input.params()), userId));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/sales/:sku/line/me',
      operationId: 'getLinePlace',
      summary: 'Your place in the line: position, people ahead, the wait, the admission once admitted',
      tag: 'line',
      auth: 'shopper',
      params: skuParams,
      responses: { 200: placeAnswer },
      errors: {
        401: { codes: ['UNAUTHORIZED'] },
        404: { codes: ['SKU_NOT_FOUND', 'NO_LINE', 'NOT_IN_LINE'] },
        429: rateLimited,
        503: { codes: ['UNAVAILABLE'] },
      },
    },
    async (ctx, input) => {
      const userId = await auth.authenticate(ctx);
      await limits.consume({ userId, ip: ctx.ip });
      answerPlace(ctx, await line.read(pathSku(ctx, input.params()), userId));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: '/api/sales/:sku/line',
      operationId: 'getLine',
      summary: "The sale's line: its state, length, admissions, and the fair start's seed (revealed at the start)",
      tag: 'line',
      params: skuParams,
      responses: { 200: { description: 'The line', schema: lineSchema } },
      errors: { 404: { codes: ['SKU_NOT_FOUND', 'NO_LINE'] }, 503: { codes: ['UNAVAILABLE'] } },
    },
    async (ctx, input) => {
      ctx.body = await line.view(pathSku(ctx, input.params()));
    },
  );

  route(
    router,
    {
      method: 'post',
      path: '/api/admin/sales/:sku/line',
      operationId: 'adminControlLine',
      summary: "Pause or resume a sale's line, or set its admission rate, live",
      description:
        "Pausing or lowering the rate moves the line's epoch on: every place read after it says why its wait went up (`etaRaisedBy`).",
      tag: 'admin',
      auth: 'admin',
      params: skuParams,
      body: lineControlSchema,
      responses: { 200: { description: 'The line after the change', schema: lineSchema } },
      errors: {
        400: { codes: ['INVALID_REQUEST'] },
        401: { codes: ['UNAUTHORIZED'] },
        404: { codes: ['SKU_NOT_FOUND', 'NO_LINE'] },
        503: { codes: ['UNAVAILABLE'] },
      },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const sku = pathSku(ctx, input.params());
      const change = input.body();
      ctx.body = await line.control(sku, {
        ...(change.paused === undefined ? {} : { paused: change.paused }),
        ...(change.admissionsPerSecond === undefined ? {} : { admissionsPerSecond: change.admissionsPerSecond }),
      });
    },
  );
  return router;
}
