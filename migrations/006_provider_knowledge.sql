-- What the provider knows, known here too (docs/fault-tolerance.md, "Money taken back", "Catching up"), and one
-- owner per payment row.

-- Money taken back after an order was paid: DISPUTED while a dispute is open, REFUNDED once all of it went back (a
-- refund made at the provider, a dispute lost). The units stay sold: a unit paid for is not put back on sale.
-- refunded_cents: what went back without us asking; dispute_*: the newest dispute of the order's payment.
ALTER TABLE orders
  MODIFY status ENUM('AWAITING_PAYMENT','PAID','CANCELLED','FAILED','DISPUTED','REFUNDED') NOT NULL,
  ADD COLUMN refunded_cents       BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN dispute_status       VARCHAR(32)     NULL,
  ADD COLUMN dispute_reason       VARCHAR(64)     NULL,
  ADD COLUMN dispute_due_by       DATETIME(3)     NULL,
  ADD COLUMN dispute_amount_cents BIGINT UNSIGNED NULL;

-- Every refund and dispute the provider reports on a payment of ours that we did not ask for (a refund made in its
-- Dashboard, a card holder's dispute), keyed by the provider's id. status is ours (a refund PENDING, SUCCEEDED or
-- FAILED; a dispute OPEN, WON or LOST), provider_status the provider's word; stage only grows, so an event that
-- arrives late or twice never moves one back.
CREATE TABLE payment_takebacks (
  takeback_id      VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  kind             ENUM('REFUND','DISPUTE') NOT NULL,
  provider         VARCHAR(32)     NOT NULL,
  intent_id        VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  order_no         VARCHAR(40)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  amount_cents     BIGINT UNSIGNED NOT NULL,
  status           VARCHAR(16)     NOT NULL,
  provider_status  VARCHAR(32)     NOT NULL,
  stage            TINYINT UNSIGNED NOT NULL,
  reason           VARCHAR(64)     NULL,
  due_by           DATETIME(3)     NULL,
  created_at       DATETIME(3)     NOT NULL,
  recorded_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (takeback_id),
  KEY payment_takebacks_by_order (order_no)
) ENGINE=InnoDB;

-- The payment delivery's lease: a RECEIVED row is delivered by the process named in delivery_owner until
-- delivery_due_at (MySQL's clock), which is also when a failed delivery is due again. A dead owner's rows are due
-- when their lease ends.
ALTER TABLE payments
  ADD COLUMN delivery_owner    VARCHAR(64)  NULL,
  ADD COLUMN delivery_due_at   DATETIME(3)  NULL,
  ADD COLUMN delivery_attempts INT UNSIGNED NOT NULL DEFAULT 0,
  ADD KEY payments_delivery_due (outcome, delivery_due_at);

-- How far the catch-up has read a provider's events (Stripe's `created`, in seconds, by Stripe's clock).
CREATE TABLE provider_event_cursors (
  provider      VARCHAR(32)     NOT NULL,
  created_from  BIGINT UNSIGNED NOT NULL,
  updated_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (provider)
) ENGINE=InnoDB;
