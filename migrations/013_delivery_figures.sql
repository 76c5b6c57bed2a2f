-- The deliveries' figures (the admin's endpoint reads, the worker's gauges: WebhookStore.deliveryFigures and
-- orderEventFigures) read status by status: by this index a status is one range, already grouped by endpoint, each
-- group's oldest queued first. DELIVERED and GAVE_UP rows, most of the table, are counted in the index alone, and so
-- is every PENDING figure but the attempts; no read sorts or scans the table. Online, as 010's.
CREATE INDEX webhook_deliveries_figures ON webhook_deliveries (status, endpoint_id, queued_at);
