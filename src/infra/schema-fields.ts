/**
 * The zod fields the API's requests and answers share. Each answer's schema sits beside the code that makes it and
 * its type is inferred from it (one declaration); the OpenAPI document reads the same schemas.
 */
import { z } from 'zod';
import { ORDER_NO_PATTERN, ORDER_STATUSES } from '../model/order-workflow.js';

/** An object schema under its own name in the OpenAPI document's components. */
export const named = <S extends z.ZodRawShape>(id: string, shape: S) => z.object(shape).meta({ id });
export const int = z.number().int();
export const isoTime = z.iso.datetime({ offset: true });

/** 1-64 characters of `pattern`; any failure says `rule`. */
export const upTo64 = (pattern: RegExp, rule: string, example: string) =>
  z
    .string()
    .min(1, rule)
    .max(64, rule)
    .regex(pattern, rule)
    .meta({ examples: [example] });

export const skuSchema = upTo64(/^[A-Za-z0-9_.-]+$/, 'sku: 1-64 letters, digits, "_", "." or "-"', 'TSHIRT-1');
export const orderNoSchema = z
  .string()
  .regex(ORDER_NO_PATTERN, 'not an order number')
  .meta({ examples: ['01ARZ3NDEKTSV4RRFFQ69G5FAV'] });
export const orderStatusSchema = z.enum(ORDER_STATUSES).meta({ id: 'OrderStatus' });

/** An object with every one of `keys`, each `schema`. */
export const eachOf = <K extends string, S extends z.ZodType>(keys: readonly K[], schema: S) =>
  z.object(Object.fromEntries(keys.map((key) => [key, schema])) as Record<K, S>);

/** A keyset page: pass `nextCursor` back as `cursor` until it is null. */
export const pageSchema = <T extends z.ZodType>(item: T, id: string) =>
  named(id, { items: z.array(item), nextCursor: z.string().nullable() });

/** A row as the API shows it: its dates (nested ones too) as ISO 8601 text. */
export type Shown<T> = T extends Date ? string : T extends object ? { [K in keyof T]: Shown<T[K]> } : T;

/** `row` as the API shows it, with the fields `schema` names and no other: a new column is never shown unasked. */
export function shown<S extends z.ZodObject, T extends object>(
  schema: S,
  row: T,
): Shown<Pick<T, Extract<keyof T, keyof S['shape']>>> {
  const show = (value: unknown): unknown =>
    value instanceof Date
      ? value.toISOString()
      : Array.isArray(value)
        ? value.map(show)
        : value !== null && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, show(inner)]))
          : value;
  const fields = Object.entries(row).filter(([key]) => key in schema.shape);
  return Object.fromEntries(fields.map(([key, value]) => [key, show(value)])) as Shown<
    Pick<T, Extract<keyof T, keyof S['shape']>>
  >;
}
