/**
 * orders-delete.test.js: only pending orders can be deleted, and deleting one gives its stock back.
 */
'use strict';

const request = require('supertest');
const { startApi, connectDb, resetDatabase } = require('./support');
const { expectSeed } = require('../test/seed');

let server;
let api;
let db;

beforeAll(async () => {
  server = await startApi();
  api = request(server.url);
  db = await connectDb();
  await resetDatabase(db);
  await expectSeed(db);
});

afterAll(async () => {
  await db.end();
  await server.stop();
});

async function count(table) {
  return (await db.query(`SELECT count(*)::integer AS n FROM ${table}`)).rows[0].n;
}

test('deleting pending order 3 removes its lines and restocks the mice', async () => {
  await api.delete('/orders/3').expect(204);
  await api.get('/orders/3').expect(404);
  expect(await count('orders')).toBe(3);
  expect(await count('order_items')).toBe(4);
  const { rows: [{ stock }] } = await db.query('SELECT stock FROM products WHERE id = 2');
  expect(stock).toBe(27);
});

test('paid, shipped and cancelled orders cannot be deleted', async () => {
  for (const [id, status] of [[1, 'paid'], [2, 'shipped'], [4, 'cancelled']]) {
    const res = await api.delete(`/orders/${id}`).expect(409);
    expect(res.body.error).toBe(`an order that is ${status} cannot be deleted`);
  }
  expect(await count('orders')).toBe(3);
});

test('orders created in bulk with SQL can be deleted one by one', async () => {
  await db.query(
    `INSERT INTO orders (id, customer_id) SELECT g, 3 FROM generate_series(100, 119) g`);
  await db.query(
    `INSERT INTO order_items (order_id, product_id, quantity, price_cents)
     SELECT g, 4, 1, 900 FROM generate_series(100, 119) g`);
  expect(await count('orders')).toBe(23);
  for (let id = 100; id < 120; id++) await api.delete(`/orders/${id}`).expect(204);
  expect(await count('orders')).toBe(3);
  const { rows: [{ stock }] } = await db.query('SELECT stock FROM products WHERE id = 4');
  expect(stock).toBe(120);
});

test('deleting an order twice is a 404 the second time', async () => {
  const created = await api.post('/orders')
    .send({ customer_id: 1, items: [{ product_id: 1, quantity: 1 }] }).expect(201);
  await api.delete(`/orders/${created.body.id}`).expect(204);
  await api.delete(`/orders/${created.body.id}`).expect(404);
});
