/** A sale as GET /api/sales/:sku shows it (OpenAPI `Sale`); the dashboard's script reads its type. */
import { z } from 'zod';
import { int, isoTime, named, skuSchema } from '../infra/schema-fields.js';

export const saleSchema = named('Sale', {
  sku: skuSchema,
  name: z.string(),
  priceCents: int,
  stock: int,
  available: int.meta({ description: 'Units a shopper can still reserve now (Redis, the live count).' }),
  reserved: int,
  sold: int,
  perUserLimit: int,
  startsAt: isoTime.nullable(),
  endsAt: isoTime.nullable(),
  createdAt: isoTime,
});

export type SaleView = z.infer<typeof saleSchema>;
