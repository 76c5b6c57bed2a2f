-- Run once by the mysql image as it creates the database: the events feed reads the open transactions
-- (information_schema.innodb_trx, src/db/events.ts), which needs PROCESS.
GRANT PROCESS ON *.* TO 'flash'@'%';
