/**
 * customers-delete.test.js: a customer with orders cannot be deleted; once the orders are gone, it can.
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

test('a customer without orders is deleted', async () => {
  await api.delete('/customers/3').expect(204);
  await api.get('/customers/3').expect(404);
  await api.delete('/customers/3').expect(404);
});

test('a customer with orders is kept, with a 409 naming the foreign key', async () => {
  const res = await api.delete('/customers/1').expect(409);
  expect(res.body.constraint).toBe('orders_customer_id_fkey');
  await api.get('/customers/1').expect(200);
});

test('after deleting the customer\'s orders with SQL, the customer can go', async () => {
  const { rowCount } = await db.query('DELETE FROM orders WHERE customer_id = 1');
  expect(rowCount).toBe(2);
  await api.delete('/customers/1').expect(204);
  const left = (await api.get('/customers').expect(200)).body;
  expect(left.map((c) => c.id)).toEqual([2]);
});

test('order lines went with their orders (ON DELETE CASCADE)', async () => {
  const { rows } = await db.query('SELECT order_id FROM order_items ORDER BY order_id');
  expect(rows.map((r) => r.order_id)).toEqual([3, 4]);
});
