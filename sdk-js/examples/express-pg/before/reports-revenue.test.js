/**
 * reports-revenue.test.js: revenue per customer counts paid and shipped orders only.
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

async function revenue() {
  const res = await api.get('/reports/revenue').expect(200);
  return res.body.map((r) => [r.customer_id, r.orders, r.revenue_cents]);
}

test('from the seed: Ada has two orders that count, the others none', async () => {
  expect(await revenue()).toEqual([[1, 2, 32600], [2, 0, 0], [3, 0, 0]]);
});

test('paying a pending order moves Grace up', async () => {
  await api.patch('/orders/3').send({ status: 'paid' }).expect(200);
  expect(await revenue()).toEqual([[1, 2, 32600], [2, 1, 5000], [3, 0, 0]]);
});

test('a large order paid through the API puts Edsger first', async () => {
  const order = await api.post('/orders')
    .send({ customer_id: 3, items: [{ product_id: 3, quantity: 2 }] }).expect(201);
  await api.patch(`/orders/${order.body.id}`).send({ status: 'paid' }).expect(200);
  expect(await revenue()).toEqual([[3, 1, 43800], [1, 2, 32600], [2, 1, 5000]]);
});

test('orders inserted with SQL at old prices count at those prices', async () => {
  await db.query("INSERT INTO orders (id, customer_id, status) VALUES (50, 2, 'shipped')");
  await db.query(
    'INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (50, 1, 10, 5000)');
  expect(await revenue()).toEqual([[2, 2, 55000], [3, 1, 43800], [1, 2, 32600]]);
});

test('with the orders deleted everyone is at zero', async () => {
  await db.query('DELETE FROM orders');
  expect(await revenue()).toEqual([[1, 0, 0], [2, 0, 0], [3, 0, 0]]);
});
