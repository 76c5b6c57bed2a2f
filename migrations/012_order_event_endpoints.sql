-- Merchants' endpoints for order events (docs/api.md, "Webhook endpoints"), what each is owed and each attempt.
-- `secret_box` / `old_secret_box`: the whsec_ secret sealed with AES-256-GCM (EVENTS_SECRET_KEY), never stored plain;
-- the old one still signs beside the new until `old_secret_until` (a rotation's overlap). `feed_seq`: the last
-- order_events.seq this endpoint's delivery has queued (events after it are still to queue). `paused_until`: the
-- endpoint asked us to slow down (429/502/503/504, Retry-After).
CREATE TABLE webhook_endpoints (
  endpoint_id      VARCHAR(40)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  url              VARCHAR(2048) NOT NULL,
  event_types      VARCHAR(400)  NOT NULL,
  description      VARCHAR(200)  NULL,
  enabled          TINYINT(1)    NOT NULL,
  disabled_reason  VARCHAR(300)  NULL,
  secret_box       VARBINARY(255) NOT NULL,
  old_secret_box   VARBINARY(255) NULL,
  old_secret_until DATETIME(3)   NULL,
  feed_seq         BIGINT UNSIGNED NOT NULL,
  paused_until     DATETIME(3)   NULL,
  created_at       DATETIME(3)   NOT NULL,
  updated_at       DATETIME(3)   NOT NULL,
  PRIMARY KEY (endpoint_id)
) ENGINE=InnoDB;

-- One row per event owed to an endpoint: PENDING until a 2xx (DELIVERED) or until `retry_until` passes (GAVE_UP;
-- the feed still has it). The body is the event's row in order_events, read by seq: nothing is copied.
CREATE TABLE webhook_deliveries (
  endpoint_id     VARCHAR(40)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_seq       BIGINT UNSIGNED NOT NULL,
  status          VARCHAR(16)  NOT NULL,
  attempts        INT UNSIGNED NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(3)  NULL,
  retry_until     DATETIME(3)  NOT NULL,
  last_status     SMALLINT     NULL,
  last_error      VARCHAR(400) NULL,
  queued_at       DATETIME(3)  NOT NULL,
  delivered_at    DATETIME(3)  NULL,
  PRIMARY KEY (endpoint_id, event_seq),
  KEY webhook_deliveries_due (endpoint_id, status, next_attempt_at)
) ENGINE=InnoDB;

CREATE TABLE webhook_attempts (
  attempt_id   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  endpoint_id  VARCHAR(40)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_seq    BIGINT UNSIGNED NOT NULL,
  attempted_at DATETIME(3)  NOT NULL,
  outcome      VARCHAR(16)  NOT NULL,
  http_status  SMALLINT     NULL,
  error        VARCHAR(400) NULL,
  duration_ms  INT UNSIGNED NULL,
  PRIMARY KEY (attempt_id),
  KEY webhook_attempts_of_delivery (endpoint_id, event_seq, attempt_id)
) ENGINE=InnoDB;

-- The feed's retention (EVENTS_RETENTION): events up to `pruned_through_seq` were deleted; a cursor before it is
-- expired (410), never silently short.
CREATE TABLE order_events_retention (
  id                 TINYINT UNSIGNED NOT NULL,
  pruned_through_seq BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB;
INSERT INTO order_events_retention (id, pruned_through_seq) VALUES (1, 0);
