/** A line and a place as the API answers them (OpenAPI `Line`, `LinePlace`); browser code reads their types. */
import { z } from 'zod';
import { int, isoTime, named, skuSchema } from '../infra/schema-fields.js';

const etaReasonSchema = z.enum(['PAUSED', 'RATE_LOWERED']).nullable();

/** A shopper's place in a sale's waiting line (GET /api/sales/{sku}/line/me). */
export const placeSchema = named('LinePlace', {
  sku: skuSchema,
  state: z.enum(['WAITING', 'ADMITTED', 'EXPIRED', 'CHECKED_OUT', 'SOLD_OUT', 'PAUSED', 'CLOSED']),
  preQueue: z
    .boolean()
    .meta({ description: 'Joined before the start, which has not come: the position is drawn then.' }),
  position: int.nullable(),
  ahead: int.nullable().meta({ description: 'Places before this one not yet admitted.' }),
  waitTimeKnown: z.boolean(),
  eta: z
    .object({ minSeconds: int, maxSeconds: int })
    .nullable()
    .meta({ description: 'The wait as a band; it never rises unless `etaRaisedBy` says why.' }),
  admissionsPerSecond: int,
  lineLength: int,
  servedThrough: int.meta({ description: 'Every position up to this one has been admitted.' }),
  startsAt: isoTime.nullable(),
  admission: z
    .object({ token: z.string(), expiresAt: isoTime })
    .nullable()
    .meta({ description: "State ADMITTED: send `token` as the checkout's `Admission-Token` before `expiresAt`." }),
  etaEpoch: int,
  etaRaisedBy: etaReasonSchema,
  refreshAfterSeconds: int
    .nullable()
    .meta({ description: 'When to ask again (also `Retry-After`); null when nothing will change.' }),
  unitsMayComeBack: z.boolean().meta({
    description: 'Sold out, or waiting behind the units left (no `eta`): the turn comes only with units coming back.',
  }),
});

/** A sale's waiting line (GET /api/sales/{sku}/line): its state, counters and the fair start's seed. */
export const lineSchema = named('Line', {
  sku: skuSchema,
  state: z.enum(['PRE_QUEUE', 'OPEN', 'PAUSED', 'SOLD_OUT', 'CLOSED']),
  length: int,
  servedThrough: int,
  admissionsPerSecond: int,
  admissionTtlSeconds: int,
  preQueueOpensAt: isoTime.nullable(),
  startsAt: isoTime.nullable(),
  paused: z.boolean(),
  epoch: int,
  epochReason: etaReasonSchema,
  admitted: int,
  consumed: int,
  givenBack: int,
  seedHash: z
    .string()
    .meta({ description: 'SHA-256 (hex) of the seed that ranks the pre-queue, public from the start.' }),
  seed: z.string().nullable().meta({ description: 'The seed itself, revealed once the sale has started.' }),
  soldOutAt: isoTime.nullable(),
});

export type PlaceView = z.infer<typeof placeSchema>;
export type PlaceState = PlaceView['state'];
export type LineView = z.infer<typeof lineSchema>;
