// seed.js: the rows of seed.sql as the tests expect them, and expectSeed(db), which every test file runs first.
//
// A file that starts from anything but exactly these rows is not isolated: another file's
// inserts, deletes or truncates reached its database. Both suites (test/ and before/) use it.
'use strict';

const SEED = {
  customers: [
    { id: 1, email: 'ada@example.com', name: 'Ada Lovelace' },
    { id: 2, email: 'grace@example.com', name: 'Grace Hopper' },
    { id: 3, email: 'edsger@example.com', name: 'Edsger Dijkstra' },
  ],
  products: [
    { id: 1, sku: 'KB-01', name: 'Mechanical keyboard', price_cents: 8900, stock: 10 },
    { id: 2, sku: 'MS-01', name: 'Wireless mouse', price_cents: 2500, stock: 25 },
    { id: 3, sku: 'MN-27', name: '27-inch monitor', price_cents: 21900, stock: 5 },
    { id: 4, sku: 'CB-USB', name: 'USB-C cable', price_cents: 900, stock: 100 },
    { id: 5, sku: 'DK-01', name: 'Laptop dock', price_cents: 14900, stock: 0 },
  ],
  orders: [
    { id: 1, customer_id: 1, status: 'paid', total_cents: 10700 },
    { id: 2, customer_id: 1, status: 'shipped', total_cents: 21900 },
    { id: 3, customer_id: 2, status: 'pending', total_cents: 5000 },
    { id: 4, customer_id: 2, status: 'cancelled', total_cents: 8900 },
  ],
  orderItems: 5,
};

/** Asserts that the database at `db` (a connected pg client) holds the seed and nothing else. */
async function expectSeed(db) {
  const { rows: customers } = await db.query('SELECT id, email, name FROM customers ORDER BY id');
  const { rows: products } = await db.query(
    'SELECT id, sku, name, price_cents, stock FROM products ORDER BY id');
  const { rows: orders } = await db.query(
    'SELECT id, customer_id, status, total_cents FROM order_totals ORDER BY id');
  const { rows: [{ n }] } = await db.query('SELECT count(*)::integer AS n FROM order_items');
  expect({ customers, products, orders, orderItems: n }).toEqual(SEED);
}

module.exports = { SEED, expectSeed };
