/**
 * schema-constraints.test.js: what the schema refuses on its own, straight through pg, without the API.
 */
'use strict';

const { connectDb, resetDatabase } = require('./support');
const { expectSeed } = require('../test/seed');

let db;

beforeAll(async () => {
  db = await connectDb();
  await resetDatabase(db);
  await expectSeed(db);
});

afterAll(() => db.end());

function violation(code, constraint) {
  return expect.objectContaining({ code, constraint });
}

test('stock and prices cannot go negative', async () => {
  await expect(db.query('UPDATE products SET stock = -1 WHERE id = 1'))
    .rejects.toEqual(violation('23514', 'products_stock_check'));
  await expect(db.query(
    "INSERT INTO products (sku, name, price_cents) VALUES ('X-1', 'Negative', -5)"))
    .rejects.toEqual(violation('23514', 'products_price_cents_check'));
});

test('SKUs are upper-case letters, digits and dashes, and unique', async () => {
  await expect(db.query("INSERT INTO products (sku, name, price_cents) VALUES ('lower', 'L', 1)"))
    .rejects.toEqual(violation('23514', 'products_sku_check'));
  await expect(db.query("INSERT INTO products (sku, name, price_cents) VALUES ('KB-01', 'K', 1)"))
    .rejects.toEqual(violation('23505', 'products_sku_key'));
});

test('an order line needs an existing order and product', async () => {
  await expect(db.query(
    'INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (99, 1, 1, 1)'))
    .rejects.toEqual(violation('23503', 'order_items_order_id_fkey'));
});

test('deleting an order deletes its lines; deleting a customer with orders is refused', async () => {
  await db.query('DELETE FROM orders WHERE id = 1');
  const { rows } = await db.query('SELECT order_id, product_id FROM order_items ORDER BY 1, 2');
  expect(rows).toEqual([
    { order_id: 2, product_id: 3 }, { order_id: 3, product_id: 2 }, { order_id: 4, product_id: 1 },
  ]);
  await expect(db.query('DELETE FROM customers WHERE id = 2'))
    .rejects.toEqual(violation('23503', 'orders_customer_id_fkey'));
});

test('the order_totals view follows the lines', async () => {
  await db.query('UPDATE order_items SET quantity = 4 WHERE order_id = 3');
  const { rows: [order] } = await db.query('SELECT item_count, total_cents FROM order_totals WHERE id = 3');
  expect(order).toEqual({ item_count: 4, total_cents: 10000 });
});

test('TRUNCATE ... CASCADE empties everything that hangs off customers', async () => {
  await db.query('TRUNCATE customers CASCADE');
  const { rows: [counts] } = await db.query(
    `SELECT (SELECT count(*) FROM customers)::integer AS customers,
            (SELECT count(*) FROM orders)::integer AS orders,
            (SELECT count(*) FROM order_items)::integer AS order_items,
            (SELECT count(*) FROM products)::integer AS products`);
  expect(counts).toEqual({ customers: 0, orders: 0, order_items: 0, products: 5 });
});
