-- 004_order_totals.sql: one row per order with its item count and total, for listings and reports.
CREATE VIEW order_totals AS
SELECT o.id,
       o.customer_id,
       o.status,
       o.created_at,
       coalesce(sum(i.quantity), 0)::integer                 AS item_count,
       coalesce(sum(i.quantity * i.price_cents), 0)::integer AS total_cents
  FROM orders o
  LEFT JOIN order_items i ON i.order_id = o.id
 GROUP BY o.id;
