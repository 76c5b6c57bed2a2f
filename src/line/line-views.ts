/** A line and a place as the API answers them (OpenAPI `Line`, `LinePlace`); imports nothing: browser code reads it. */
export type PlaceState = 'WAITING' | 'ADMITTED' | 'EXPIRED' | 'CHECKED_OUT' | 'SOLD_OUT' | 'PAUSED' | 'CLOSED';

/** A shopper's place as GET /api/sales/:sku/line/me answers it. */
export interface PlaceView {
  sku: string;
  state: PlaceState;
  /** Joined before the start, which has not come: the position is decided at the start. */
  preQueue: boolean;
  position: number | null;
  ahead: number | null;
  waitTimeKnown: boolean;
  eta: { minSeconds: number; maxSeconds: number } | null;
  admissionsPerSecond: number;
  lineLength: number;
  servedThrough: number;
  startsAt: string | null;
  admission: { token: string; expiresAt: string } | null;
  etaEpoch: number;
  etaRaisedBy: 'PAUSED' | 'RATE_LOWERED' | null;
  /** When to ask again (also Retry-After); null when nothing will change. */
  refreshAfterSeconds: number | null;
  /** Sold out with units unpaid orders still hold, or waiting behind the units left: its turn needs units back. */
  unitsMayComeBack: boolean;
}

/** A line as GET /api/sales/:sku/line answers it (anyone may read it: it audits the fair start). */
export interface LineView {
  sku: string;
  state: 'PRE_QUEUE' | 'OPEN' | 'PAUSED' | 'SOLD_OUT' | 'CLOSED';
  length: number;
  servedThrough: number;
  admissionsPerSecond: number;
  admissionTtlSeconds: number;
  preQueueOpensAt: string | null;
  startsAt: string | null;
  paused: boolean;
  epoch: number;
  epochReason: 'PAUSED' | 'RATE_LOWERED' | null;
  admitted: number;
  consumed: number;
  givenBack: number;
  seedHash: string;
  seed: string | null;
  soldOutAt: string | null;
}
