-- Identifiers compare byte for byte. The first schema gave them the database's case-insensitive
-- collation, so a payment event 'EVT_X' counted as a duplicate of 'evt_x' and was never recorded,
-- and SKUs or user ids differing only in case were one in MySQL and two in Redis. Providers' event
-- ids, SKUs, user ids, order numbers and idempotency keys are all case-sensitive.
-- Converting from a case-insensitive to a binary collation cannot create duplicates.
ALTER TABLE sales
  MODIFY sku VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

ALTER TABLE orders
  MODIFY order_no        VARCHAR(40)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY sku             VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY user_id         VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY idempotency_key VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;

ALTER TABLE payments
  MODIFY event_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY order_no VARCHAR(40)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
