/**
 * orders-list.test.js: listing orders with their totals, filtered by status and customer.
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

async function list(query = {}) {
  return (await api.get('/orders').query(query).expect(200)).body;
}

test('every seeded order with its total', async () => {
  const orders = await list();
  expect(orders.map((o) => [o.id, o.status, o.item_count, o.total_cents])).toEqual([
    [1, 'paid', 3, 10700], [2, 'shipped', 1, 21900], [3, 'pending', 2, 5000],
    [4, 'cancelled', 1, 8900],
  ]);
});

test('filtered by status and by customer', async () => {
  expect((await list({ status: 'pending' })).map((o) => o.id)).toEqual([3]);
  expect((await list({ customer_id: 1 })).map((o) => o.id)).toEqual([1, 2]);
  expect((await list({ customer_id: 2, status: 'cancelled' })).map((o) => o.id)).toEqual([4]);
  expect(await list({ customer_id: 3 })).toEqual([]);
  await api.get('/orders').query({ status: 'lost' }).expect(400);
});

test('GET /orders/:id has the lines', async () => {
  const res = await api.get('/orders/1').expect(200);
  expect(res.body.items.map((i) => [i.sku, i.quantity])).toEqual([['KB-01', 1], ['CB-USB', 2]]);
});

test('an order without lines totals zero', async () => {
  await db.query("INSERT INTO orders (customer_id, status) VALUES (3, 'pending')");
  const orders = await list({ customer_id: 3 });
  expect(orders).toEqual([expect.objectContaining({ id: 5, item_count: 0, total_cents: 0 })]);
});

test('after TRUNCATE ... RESTART IDENTITY the list is empty and ids start again', async () => {
  await db.query('TRUNCATE orders, order_items RESTART IDENTITY');
  expect(await list()).toEqual([]);
  const res = await api.post('/orders')
    .send({ customer_id: 2, items: [{ product_id: 1, quantity: 2 }] }).expect(201);
  expect(res.body.id).toBe(1);
  expect((await list()).map((o) => [o.id, o.total_cents])).toEqual([[1, 17800]]);
});
