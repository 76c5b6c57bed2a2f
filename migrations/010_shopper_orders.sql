-- A shopper's own orders (GET /api/orders), newest first by order number, keyset-paged: this index serves the list of
-- all their orders without a sort. The list of one sale's reads orders_by_user (user_id, sku), whose entries InnoDB
-- follows with the primary key (order_no), so that one needs no index of its own. The store names each (FORCE INDEX).
-- ADD INDEX is online in MariaDB 10.3+ and MySQL 8 (no table copy, writes go on).
CREATE INDEX orders_by_user_order_no ON orders (user_id, order_no);
