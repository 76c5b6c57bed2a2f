-- A payment's provider is a plain name, checked against the providers' registry (src/payments/providers/registry.ts)
-- where it comes in, as payment_intents, payment_takebacks and provider_event_cursors already keep it: adding a
-- provider needs no migration. Both ENUM columns become VARCHAR(32); the values stay as they are.
-- ENUM → VARCHAR is not an in-place change: MySQL/MariaDB copy each table (payments is the big one) and block its
-- writes meanwhile. Run it outside a sale (docs/runbook.md, "Migration 007").
ALTER TABLE payments
  MODIFY provider VARCHAR(32) NOT NULL DEFAULT 'generic';

ALTER TABLE payment_failures
  MODIFY provider VARCHAR(32) NOT NULL;
