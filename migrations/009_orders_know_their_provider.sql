-- The order's row is the one judge of its payments (docs/fault-tolerance.md, "A payment's path"): it keeps the
-- provider it is paid through, so a provider's intent (Stripe) pays it by the provider's state machine instead of the
-- arrival rule. NULL: the generic webhook. Orders persisted before this column are backfilled from their openings.
ALTER TABLE orders ADD COLUMN payment_provider VARCHAR(32) NULL AFTER status;
UPDATE orders o JOIN payment_openings p ON p.order_no = o.order_no
  SET o.payment_provider = 'stripe'
  WHERE o.status = 'AWAITING_PAYMENT';
