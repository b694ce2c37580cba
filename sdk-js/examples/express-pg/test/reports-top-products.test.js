/**
 * reports-top-products.test.js: units sold per product, leaving out cancelled orders.
 *
 * @fixtures {"api": {"kind": "server", "template": "api"}}
 */
'use strict';

const request = require('supertest');
const { apiUrl, connectDb } = require('./support');
const { expectSeed } = require('./seed');

let api;
let db;

beforeAll(async () => {
  api = request(apiUrl());
  db = await connectDb();
  await expectSeed(db);
});

afterAll(() => db.end());

async function top(limit) {
  const req = api.get('/reports/top-products');
  const res = await (limit === undefined ? req : req.query({ limit })).expect(200);
  return res.body.map((r) => [r.sku, r.units]);
}

test('from the seed, ties broken by product id', async () => {
  expect(await top()).toEqual([['MS-01', 2], ['CB-USB', 2], ['KB-01', 1], ['MN-27', 1]]);
  expect(await top(1)).toEqual([['MS-01', 2]]);
  await api.get('/reports/top-products').query({ limit: 0 }).expect(400);
});

test('cancelling order 1 takes its keyboard and cables out', async () => {
  await api.patch('/orders/1').send({ status: 'cancelled' }).expect(200);
  expect(await top()).toEqual([['MS-01', 2], ['MN-27', 1]]);
});

test('a bulk order of cables from SQL puts cables first', async () => {
  await db.query("INSERT INTO orders (id, customer_id, status) VALUES (10, 3, 'paid')");
  await db.query(
    'INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (10, 4, 40, 900)');
  expect(await top(2)).toEqual([['CB-USB', 40], ['MS-01', 2]]);
});

test('with no order lines there is nothing to report', async () => {
  await db.query('TRUNCATE order_items');
  expect(await top()).toEqual([]);
});
