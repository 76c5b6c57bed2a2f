/**
 * A sale as GET /api/sales/:sku shows it (the OpenAPI `Sale` schema). Apart from the sales service
 * because the dashboard's browser script reads it too: this module imports nothing.
 */
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
