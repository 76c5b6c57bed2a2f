/** Keyset pages' opaque cursors (admin lists, a shopper's orders): the last row's position in base64url JSON. */
import { z } from 'zod';
import { ORDER_NO_PATTERN } from '../model/order-workflow.js';
import { Refusal } from './refusal.js';

const positionTime = z.iso
  .datetime()
  .meta({ examples: ['2026-11-23T17:12:00.000Z'] })
  .transform((iso) => new Date(iso));
const text = (schema: z.ZodString, example: string) => schema.meta({ examples: [example] });
const eventSeq = text(z.string().regex(/^\d{1,20}$/), '1042');

/** What each list's cursor encodes: the last row's order number or event seq; or its time and id. */
export const CURSOR_POSITIONS = {
  orders: z.tuple([text(z.string().regex(ORDER_NO_PATTERN), '01ARZ3NDEKTSV4RRFFQ69G5FAV')]),
  payments: z.tuple([positionTime, text(z.string().min(1).max(128), 'evt_01ARZ3NDEKTSV4RRFFQ69G5FAV')]),
  events: z.tuple([eventSeq]),
  // An endpoint's deliveries, newest event first: the last one's event seq (the next page is before it).
  deliveries: z.tuple([eventSeq]),
  sales: z.tuple([positionTime, text(z.string().min(1).max(64), 'TSHIRT-1')]),
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

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** A page of `limit` from `rows` (up to `limit` + 1 read: one more means a next page, from the last one's position). */
export function pageOf<Row, View>(
  rows: Row[],
  limit: number,
  view: (row: Row) => View,
  position: (last: Row) => string[],
): Page<View> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items: items.map(view), nextCursor: rows.length > limit && last ? encodeCursor(position(last)) : null };
}
