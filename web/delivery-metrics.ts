/**
 * The dashboard's "Order events" panel figures: the merchants' endpoints as GET /api/admin/webhook-endpoints answers
 * them (each with its deliveries' figures, which MySQL keeps for EVENTS_RETENTION), summed over the endpoints. The
 * browser cannot reach the workers' Prometheus exporters, where the same figures are gauges (docs/operations.md).
 *
 * Like worker-metrics.ts it touches no DOM and imports nothing, so the browser bundle and node tests share it.
 */

/** One endpoint as the route answers it (the OpenAPI `WebhookEndpointRead` schema), as far as read here. */
export interface EndpointReport {
  endpointId: string;
  url: string;
  enabled: boolean;
  deliveries: {
    pending: number;
    /** Of the pending: tried at least once. */
    failing: number;
    delivered: number;
    gaveUp: number;
    oldestPendingQueuedAt: string | null;
  };
}

export interface DeliveryTotals {
  endpoints: number;
  disabled: number;
  /** Delivered, of the deliveries kept. */
  sent: number;
  pending: number;
  failing: number;
  gaveUp: number;
  /** Seconds since the oldest pending delivery was queued (by `nowMs`'s clock); null when none is pending. */
  oldestPendingSeconds: number | null;
}

export function deliveryTotals(endpoints: readonly EndpointReport[], nowMs: number): DeliveryTotals {
  const totals: DeliveryTotals = {
    endpoints: endpoints.length,
    disabled: 0,
    sent: 0,
    pending: 0,
    failing: 0,
    gaveUp: 0,
    oldestPendingSeconds: null,
  };
  let oldestMs = Infinity;
  for (const { enabled, deliveries } of endpoints) {
    if (!enabled) totals.disabled++;
    totals.sent += deliveries.delivered;
    totals.pending += deliveries.pending;
    totals.failing += deliveries.failing;
    totals.gaveUp += deliveries.gaveUp;
    if (deliveries.oldestPendingQueuedAt) oldestMs = Math.min(oldestMs, Date.parse(deliveries.oldestPendingQueuedAt));
  }
  // Never negative: this clock may be behind MySQL's, which dated the queueing.
  if (Number.isFinite(oldestMs)) totals.oldestPendingSeconds = Math.max(0, (nowMs - oldestMs) / 1_000);
  return totals;
}

/** An age as the panel shows it: seconds under two minutes, then minutes, then hours. */
export function formatAge(seconds: number | null): string {
  if (seconds === null) return '—';
  if (seconds < 120) return `${Math.floor(seconds)} s`;
  if (seconds < 7_200) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3_600).toFixed(1)} h`;
}
