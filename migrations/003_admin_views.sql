-- Indexes for the admin views (docs/operations.md, "Admin views"): a sale's orders paged by order number
-- (newest first), payments paged by outcome in arrival order (the refunds to make, and the
-- reconciler's scan of payments still RECEIVED), sales paged newest first.
CREATE INDEX orders_by_sku_order_no ON orders (sku, order_no);

CREATE INDEX payments_by_outcome_received ON payments (outcome, received_at, event_id);

CREATE INDEX sales_by_created ON sales (created_at, sku);
