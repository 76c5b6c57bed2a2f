/** A sale as GET /api/sales/:sku shows it (OpenAPI `Sale`); imports nothing: the dashboard's script reads it. */
export interface SaleView {
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
  /** Units a shopper can still reserve now (Redis, the live count). */
  available: number;
  reserved: number;
  sold: number;
  perUserLimit: number;
  startsAt: string | null;
  endsAt: string | null;
  createdAt: string;
}
