-- One payment per PaymentIntent, and every PaymentIntent an order opened kept with it (docs/fault-tolerance.md,
-- "Stripe: the intent decides").
--
-- payment_intents: every intent opened for an order, written before its client secret is shown. The close cancels
-- each of them; a payment on an intent of ours that is not the order's is refunded, never applied.
-- key_attempt is the idempotency key's attempt it was opened under.
CREATE TABLE payment_intents (
  intent_id     VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  order_no      VARCHAR(40)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  provider      VARCHAR(32)     NOT NULL,
  key_attempt   INT UNSIGNED    NOT NULL,
  amount_cents  BIGINT UNSIGNED NOT NULL,
  currency      CHAR(3)         NOT NULL,
  client_secret VARCHAR(255)    NULL,
  status        VARCHAR(32)     NOT NULL,
  created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (intent_id),
  KEY payment_intents_by_order (order_no, key_attempt)
) ENGINE=InnoDB;

-- The idempotency key attempt an order's opening is asked under. Stripe replays a key's first answer, a 5xx
-- included, for 24 hours: after a 5xx the next ask goes under the next attempt's key. closed_at: when the order's
-- close began at the provider; an opening that answers after it cancels the intent it made.
CREATE TABLE payment_openings (
  order_no    VARCHAR(40)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  key_attempt INT UNSIGNED NOT NULL DEFAULT 1,
  closed_at   DATETIME(3)  NULL,
  updated_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (order_no)
) ENGINE=InnoDB;

-- A payment through a provider's API is the money of one of its payments (Stripe: one row per PaymentIntent,
-- whichever event or read told us first); NULL provider_ref (the generic webhook) stays one row per event.
-- paid_at_provider: when the provider says the money moved (Stripe's charge `created`).
-- refund_key_attempt: as key_attempt above, for the refund's idempotency key.
-- A database whose old rows hold two events of one intent fails here; list them with
-- SELECT provider, provider_ref, COUNT(*) FROM payments GROUP BY 1, 2 HAVING COUNT(*) > 1 AND provider_ref IS NOT NULL.
ALTER TABLE payments
  ADD COLUMN paid_at_provider   DATETIME(3)  NULL,
  ADD COLUMN refund_key_attempt INT UNSIGNED NOT NULL DEFAULT 1,
  ADD UNIQUE KEY payments_one_per_intent (provider, provider_ref);

-- Every provider event that told us of a payment through its API: evidence attached to the payment's row (payments.event_id).
CREATE TABLE payment_evidence (
  event_id         VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  payment_event_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  source           VARCHAR(64)  NOT NULL,
  received_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (event_id),
  KEY payment_evidence_by_payment (payment_event_id)
) ENGINE=InnoDB;
