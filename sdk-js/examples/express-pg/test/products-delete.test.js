/**
 * products-delete.test.js: products that were ordered stay until their order lines are gone.
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

test('a product nobody ordered is deleted', async () => {
  await api.delete('/products/5').expect(204);
  await api.get('/products/5').expect(404);
});

test('an ordered product is kept, with a 409', async () => {
  const res = await api.delete('/products/1').expect(409);
  expect(res.body.constraint).toBe('order_items_product_id_fkey');
});

test('after TRUNCATE of the orders every product can go', async () => {
  await db.query('TRUNCATE orders, order_items');
  for (const id of [1, 2, 3, 4]) await api.delete(`/products/${id}`).expect(204);
  await api.get('/products').expect(200, []);
  const { rows: [{ n }] } = await db.query('SELECT count(*)::integer AS n FROM products');
  expect(n).toBe(0);
});

test('ids keep counting after the deletes', async () => {
  const res = await api.post('/products')
    .send({ sku: 'NEW-1', name: 'Fresh start', price_cents: 100 }).expect(201);
  expect(res.body.id).toBe(6);
});
