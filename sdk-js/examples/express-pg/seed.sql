-- seed.sql: the rows every test starts from: 3 customers, 5 products, 4 orders in every status.
INSERT INTO customers (id, email, name) VALUES
    (1, 'ada@example.com',    'Ada Lovelace'),
    (2, 'grace@example.com',  'Grace Hopper'),
    (3, 'edsger@example.com', 'Edsger Dijkstra');

INSERT INTO products (id, sku, name, price_cents, stock) VALUES
    (1, 'KB-01',  'Mechanical keyboard', 8900,  10),
    (2, 'MS-01',  'Wireless mouse',      2500,  25),
    (3, 'MN-27',  '27-inch monitor',     21900, 5),
    (4, 'CB-USB', 'USB-C cable',         900,   100),
    (5, 'DK-01',  'Laptop dock',         14900, 0);

INSERT INTO orders (id, customer_id, status) VALUES
    (1, 1, 'paid'),
    (2, 1, 'shipped'),
    (3, 2, 'pending'),
    (4, 2, 'cancelled');

INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES
    (1, 1, 1, 8900),
    (1, 4, 2, 900),
    (2, 3, 1, 21900),
    (3, 2, 2, 2500),
    (4, 1, 1, 8900);

-- Explicit ids above: new rows continue after them.
SELECT setval(pg_get_serial_sequence('customers', 'id'), 3);
SELECT setval(pg_get_serial_sequence('products', 'id'), 5);
SELECT setval(pg_get_serial_sequence('orders', 'id'), 4);
