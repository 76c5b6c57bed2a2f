-- Sales put on sale by an admin. `available` is MySQL's own count of unsold, unreserved-in-MySQL
-- stock: persistOrder takes from it, cancelOrder gives back, and the CHECK makes oversell impossible
-- even if every other guard failed.
CREATE TABLE sales (
  sku             VARCHAR(64)     NOT NULL,
  name            VARCHAR(200)    NOT NULL,
  price_cents     BIGINT UNSIGNED NOT NULL,
  stock           INT UNSIGNED    NOT NULL,
  available       INT             NOT NULL,
  per_user_limit  INT UNSIGNED    NOT NULL,
  starts_at       DATETIME(3)     NULL,
  ends_at         DATETIME(3)     NULL,
  created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (sku),
  CONSTRAINT sales_available_in_range CHECK (available >= 0 AND available <= stock)
) ENGINE=InnoDB;

-- One row per order, keyed by the order number the API made. Written only by workflow activities.
CREATE TABLE orders (
  order_no          VARCHAR(40)     NOT NULL,
  sku               VARCHAR(64)     NOT NULL,
  user_id           VARCHAR(64)     NOT NULL,
  quantity          INT UNSIGNED    NOT NULL,
  unit_price_cents  BIGINT UNSIGNED NOT NULL,
  total_cents       BIGINT UNSIGNED NOT NULL,
  status            ENUM('AWAITING_PAYMENT','PAID','CANCELLED','FAILED') NOT NULL,
  cancel_reason     VARCHAR(32)     NULL,
  failure_reason    VARCHAR(255)    NULL,
  idempotency_key   VARCHAR(64)     NULL,
  payment_deadline  DATETIME(3)     NOT NULL,
  created_at        DATETIME(3)     NOT NULL,
  updated_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  paid_at           DATETIME(3)     NULL,
  cancelled_at      DATETIME(3)     NULL,
  PRIMARY KEY (order_no),
  KEY orders_by_sku_status (sku, status),
  KEY orders_by_user (user_id, sku)
) ENGINE=InnoDB;

-- Every payment event the provider sent, once (the primary key dedupes webhook retries).
-- outcome says what became of it: applied to its order, or kept for a refund.
CREATE TABLE payments (
  event_id      VARCHAR(128)    NOT NULL,
  order_no      VARCHAR(40)     NOT NULL,
  amount_cents  BIGINT UNSIGNED NOT NULL,
  outcome       ENUM('RECEIVED','APPLIED','REFUND_REQUIRED') NOT NULL DEFAULT 'RECEIVED',
  refund_reason VARCHAR(64)     NULL,
  received_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (event_id),
  KEY payments_by_order (order_no)
) ENGINE=InnoDB;
