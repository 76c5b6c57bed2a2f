/**
 * Opaque keyset cursors of the admin lists: the position of a page's last row, as base64url JSON.
 * Clients pass back what `nextCursor` gave; anything else is refused (INVALID_REQUEST).
 */
import type { z } from 'zod';
import { Refusal } from '../refusal.js';

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

const notACursor = () => new Refusal('INVALID_REQUEST', 'cursor: not a cursor this API gave (pass nextCursor back as it is)');
