-- Order events (docs/api.md, "Order events"): an outbox written in the transaction that decides each fact, so a fact
-- decided is an event that will be delivered whatever process dies next. One row per fact: the unique key (order,
-- type, occurrence) makes a repeated or retried decision write nothing. `occurrence` tells repeats of one type apart
-- (a dispute's or a refund's id); '' for facts an order has once. `order_json` is the order's row as it stood then.
-- seq orders the feed; recorded_at (MySQL's clock at the write) lets the feed wait for transactions still open.
CREATE TABLE order_events (
  seq          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  event_id     VARCHAR(200)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  order_no     VARCHAR(40)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  type         VARCHAR(32)     NOT NULL,
  occurrence   VARCHAR(96)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  created_at   DATETIME(3)     NOT NULL,
  recorded_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  order_json   JSON            NOT NULL,
  PRIMARY KEY (seq),
  UNIQUE KEY order_events_once (order_no, type, occurrence),
  UNIQUE KEY order_events_by_id (event_id)
) ENGINE=InnoDB;
