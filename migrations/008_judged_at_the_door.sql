-- A payment the store judged as it recorded it (docs/fault-tolerance.md, "A payment's path"): APPLIED at once under
-- the order row's lock, its order PAID, and its workflow told afterwards by a delivery owner, which leases the row as
-- it leases a RECEIVED one. tell_workflow is 1 from the recording until the workflow has answered; the index serves
-- the owners' sweep of such rows whose lease is over.
-- ADD COLUMN with a default and ADD KEY are online in MariaDB 10.3+ and MySQL 8 (no table copy).
ALTER TABLE payments
  ADD COLUMN tell_workflow TINYINT(1) NOT NULL DEFAULT 0,
  ADD KEY payments_to_tell (tell_workflow, delivery_due_at);
