-- Order events name the shopper by an opaque reference (EVENTS_CUSTOMER_SECRET); an endpoint that needs the shopper's
-- own id asks for it (`includeShopperId`). Adding a column with a default is an INSTANT change.
ALTER TABLE webhook_endpoints ADD COLUMN include_shopper_id TINYINT(1) NOT NULL DEFAULT 0, ALGORITHM=INSTANT;
