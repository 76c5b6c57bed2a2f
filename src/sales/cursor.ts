/** Opaque keyset cursors of the admin lists: a page's last row's position as base64url JSON; anything else is 400. */
import { z } from 'zod';
import { ORDER_NO_PATTERN } from '../model/order-workflow.js';
import { Refusal } from '../infra/refusal.js';

const positionTime = z.iso
  .datetime()
  .meta({ examples: ['2026-11-23T17:12:00.000Z'] })
  .transform((iso) => new Date(iso));

/** What each list's cursor encodes: the last row's order number; or its time and id. */
export const CURSOR_POSITIONS = {
  orders: z.tuple([
    z
      .string()
      .regex(ORDER_NO_PATTERN)
      .meta({ examples: ['01ARZ3NDEKTSV4RRFFQ69G5FAV'] }),
  ]),
  payments: z.tuple([
    positionTime,
    z
      .string()
      .min(1)
      .max(128)
      .meta({ examples: ['evt_01ARZ3NDEKTSV4RRFFQ69G5FAV'] }),
  ]),
  sales: z.tuple([
    positionTime,
    z
      .string()
      .min(1)
      .max(64)
      .meta({ examples: ['TSHIRT-1'] }),
  ]),
} as const;

export function encodeCursor(position: readonly string[]): string {
  return Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');
}

/** The position `cursor` encodes, checked against `shape`; 400 when it is not a cursor of this list. */
export function decodeCursor<T>(cursor: string, shape: z.ZodType<T>): T {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw notACursor();
  }
  const parsed = shape.safeParse(decoded);
  if (!parsed.success) throw notACursor();
  return parsed.data;
}

const notACursor = () =>
  new Refusal('INVALID_REQUEST', 'cursor: not a cursor this API gave (pass nextCursor back as it is)');
