/** POST /api/sales (admin), GET /api/sales/:sku, and the sale's waiting line (docs/api.md, "The waiting line"). */
import { timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import { z } from 'zod';
import type { AppConfig } from '../../config/index.js';
import { Refusal } from '../../infra/refusal.js';
import type { LineService, PlaceView } from '../../line/line-service.js';
import { skuNotFound, type SalesService } from '../../sales/sales-service.js';
import type { OperatorTokens, ShopperAuth } from '../auth.js';
import type { LineRateLimits } from '../rate-limit.js';
import { lineSchema, placeSchema } from '../../line/line-views.js';
import { saleSchema } from '../../sales/sale-view.js';
import { route } from '../route.js';
import { createSaleSchema, lineControlSchema, pathSku, skuParams } from '../schemas.js';

export function salesRoutes(deps: {
  sales: SalesService;
  operators: OperatorTokens;
  auth: ShopperAuth;
  line: LineService;
  limits: LineRateLimits;
  challenge: AppConfig['line']['challenge'];
}): Router {
  const { auth, line, limits, challenge } = deps;
  const router = new Router();
  route(router, {
    at: 'POST /api/sales',
    operationId: 'createSale',
    summary: 'Put a SKU on sale (MySQL and Redis)',
    description: 'The window is optional: without startsAt the sale is open at once, without endsAt it never closes.',
    tag: 'sales',
    ...deps.operators.admin,
    body: createSaleSchema,
    responses: { 201: { description: 'The sale, as GET /api/sales/{sku} shows it', schema: saleSchema } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'SALE_EXISTS'],
    async handler(ctx, input) {
      const sale = await deps.sales.create(input.body());
      ctx.status = 201;
      ctx.body = sale;
    },
  });

  route(router, {
    at: 'GET /api/sales/:sku',
    operationId: 'getSale',
    summary: 'A sale with its live stock counts',
    tag: 'sales',
    params: skuParams,
    responses: { 200: { description: 'The sale', schema: saleSchema } },
    errors: ['SKU_NOT_FOUND'],
    async handler(ctx, input) {
      const sale = await deps.sales.get(pathSku(ctx, input.params()));
      if (!sale) throw skuNotFound(ctx.params.sku ?? '');
      ctx.body = sale;
    },
  });

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
  const rateLimited =
    '`RATE_LIMITED`: too many joins and reads from this shopper, address or network (RATE_LIMIT_LINE*)';
  const challengeHeader = challenge?.header.toLowerCase();
  const challengeSecret = challenge ? Buffer.from(challenge.secret) : null;

  route(router, {
    at: 'POST /api/sales/:sku/line',
    operationId: 'joinLine',
    summary: "Take a place in the sale's waiting line (idempotent: the same place from any device)",
    description:
      "Before the start the place is in the pre-queue, ranked at random by the line's seed; after it, first come first served. " +
      'A place whose admission expired unspent is replaced by a new one at the back.',
    tag: 'line',
    auth: 'shopper',
    params: skuParams,
    responses: { 200: placeAnswer },
    errors: [
      'UNAUTHORIZED',
      'CHALLENGE_REQUIRED',
      'SKU_NOT_FOUND',
      'NO_LINE',
      'LINE_NOT_OPEN',
      'SALE_NOT_ACTIVE',
      'RATE_LIMITED',
      'UNAVAILABLE',
    ],
    errorDescriptions: { 429: rateLimited },
    async handler(ctx, input) {
      const userId = await auth.authenticate(ctx);
      await limits.consume({ userId, ip: ctx.ip });
      if (challengeHeader && challengeSecret) {
        const given = Buffer.from(ctx.get(challengeHeader));
        if (given.length !== challengeSecret.length || !timingSafeEqual(given, challengeSecret))
          throw new Refusal('CHALLENGE_REQUIRED', 'pass the challenge in front of this line first, then join');
      }
      answerPlace(ctx, await line.join(pathSku(ctx, input.params()), userId));
    },
  });

  route(router, {
    at: 'GET /api/sales/:sku/line/me',
    operationId: 'getLinePlace',
    summary: 'Your place in the line: position, people ahead, the wait, the admission once admitted',
    tag: 'line',
    auth: 'shopper',
    params: skuParams,
    responses: { 200: placeAnswer },
    errors: ['UNAUTHORIZED', 'SKU_NOT_FOUND', 'NO_LINE', 'NOT_IN_LINE', 'RATE_LIMITED', 'UNAVAILABLE'],
    errorDescriptions: { 429: rateLimited },
    async handler(ctx, input) {
      const userId = await auth.authenticate(ctx);
      await limits.consume({ userId, ip: ctx.ip });
      answerPlace(ctx, await line.read(pathSku(ctx, input.params()), userId));
    },
  });

  route(router, {
    at: 'GET /api/sales/:sku/line',
    operationId: 'getLine',
    summary: "The sale's line: its state, length, admissions, and the fair start's seed (revealed at the start)",
    tag: 'line',
    params: skuParams,
    responses: { 200: { description: 'The line', schema: lineSchema } },
    errors: ['SKU_NOT_FOUND', 'NO_LINE', 'UNAVAILABLE'],
    async handler(ctx, input) {
      ctx.body = await line.view(pathSku(ctx, input.params()));
    },
  });

  route(router, {
    at: 'POST /api/admin/sales/:sku/line',
    operationId: 'adminControlLine',
    summary: "Pause or resume a sale's line, or set its admission rate, live",
    description:
      "Pausing or lowering the rate moves the line's epoch on: every place read after it says why its wait went up (`etaRaisedBy`).",
    tag: 'admin',
    ...deps.operators.admin,
    params: skuParams,
    body: lineControlSchema,
    responses: { 200: { description: 'The line after the change', schema: lineSchema } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'SKU_NOT_FOUND', 'NO_LINE', 'UNAVAILABLE'],
    async handler(ctx, input) {
      const sku = pathSku(ctx, input.params());
      const change = input.body();
      ctx.body = await line.control(sku, {
        ...(change.paused === undefined ? {} : { paused: change.paused }),
        ...(change.admissionsPerSecond === undefined ? {} : { admissionsPerSecond: change.admissionsPerSecond }),
      });
    },
  });
  return router;
}
