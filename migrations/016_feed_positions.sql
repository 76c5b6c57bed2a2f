-- The feed's order is the order events committed, not the order they were written (docs/api.md, "Order events").
-- `seq` is taken when a row is written, so a transaction that commits late can leave a smaller seq behind a larger
-- one already read. `position` is given after commit, one transaction at a time (EventStore.positionCommitted):
-- every position up to the feed's `positioned_through` is committed, so a cursor never passes one still to come, and
-- no open transaction anywhere holds the feed back (the PROCESS grant and information_schema are no longer read).
-- Events written before keep their seq as their position: cursors and endpoints' places stay valid.
ALTER TABLE order_events ADD COLUMN position BIGINT UNSIGNED NULL, ADD UNIQUE KEY order_events_feed (position);
UPDATE order_events SET position = seq;
RENAME TABLE order_events_retention TO order_events_feed;
ALTER TABLE order_events_feed CHANGE pruned_through_seq pruned_through BIGINT UNSIGNED NOT NULL,
  ADD COLUMN positioned_through BIGINT UNSIGNED NOT NULL DEFAULT 0;
UPDATE order_events_feed SET positioned_through = GREATEST(pruned_through, (SELECT COALESCE(MAX(seq), 0) FROM order_events));
ALTER TABLE webhook_endpoints CHANGE feed_seq feed_position BIGINT UNSIGNED NOT NULL;
