-- Payments through a provider's API (Stripe): which provider a payment came through and its own id
-- of the payment (the PaymentIntent), and the refund that gives it back. A REFUND_REQUIRED payment
-- of such a provider is refunded by the worker's refund owner: REFUND_REQUESTED, then REFUNDED or
-- REFUND_FAILED. next_refund_at is the owner's lease and backoff in one: a row is taken only once
-- it is due, by one owner at a time.
ALTER TABLE payments
  MODIFY outcome ENUM('RECEIVED','APPLIED','REFUND_REQUIRED','REFUND_REQUESTED','REFUNDED','REFUND_FAILED')
    NOT NULL DEFAULT 'RECEIVED',
  ADD COLUMN provider        ENUM('generic','stripe') NOT NULL DEFAULT 'generic' AFTER order_no,
  ADD COLUMN provider_ref    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL AFTER provider,
  ADD COLUMN refund_id       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  ADD COLUMN refund_attempts INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN next_refund_at  DATETIME(3)  NULL,
  ADD COLUMN refund_error    VARCHAR(500) NULL,
  ADD KEY payments_refunds_due (outcome, provider, next_refund_at),
  ADD KEY payments_by_refund (refund_id);

-- A provider's report that a payment attempt failed (a declined card): no money moved, so it is not
-- a payment; kept so the shopper's failed attempts are visible (the admin view lists them).
CREATE TABLE payment_failures (
  event_id     VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  order_no     VARCHAR(40)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  provider     ENUM('generic','stripe') NOT NULL,
  provider_ref VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  code         VARCHAR(128) NULL,
  message      VARCHAR(500) NULL,
  received_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (event_id),
  KEY payment_failures_by_order (order_no)
) ENGINE=InnoDB;
