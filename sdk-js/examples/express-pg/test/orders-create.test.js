/**
 * orders-create.test.js: POST /orders takes the stock of every line in one transaction, or nothing at all.
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

async function stock() {
  const { rows } = await db.query('SELECT id, stock FROM products ORDER BY id');
  return Object.fromEntries(rows.map((r) => [r.id, r.stock]));
}

test('an order of two products is order 5, priced and taken from stock', async () => {
  const res = await api.post('/orders').send({
    customer_id: 3,
    items: [{ product_id: 2, quantity: 3 }, { product_id: 4, quantity: 10 }],
  }).expect(201);
  expect(res.body).toMatchObject({
    id: 5, customer_id: 3, status: 'pending', item_count: 13, total_cents: 3 * 2500 + 10 * 900,
  });
  expect(res.body.items.map((i) => [i.sku, i.quantity, i.price_cents]))
    .toEqual([['MS-01', 3, 2500], ['CB-USB', 10, 900]]);
  expect(await stock()).toEqual({ 1: 10, 2: 22, 3: 5, 4: 90, 5: 0 });
});

test('lines for the same product are added up', async () => {
  const res = await api.post('/orders').send({
    customer_id: 1,
    items: [{ product_id: 3, quantity: 1 }, { product_id: 3, quantity: 2 }],
  }).expect(201);
  expect(res.body.items).toEqual([expect.objectContaining({ product_id: 3, quantity: 3 })]);
  expect((await stock())[3]).toBe(2);
});

test('one line short of stock refuses the whole order', async () => {
  const before = await stock();
  const res = await api.post('/orders').send({
    customer_id: 1,
    items: [{ product_id: 1, quantity: 1 }, { product_id: 5, quantity: 1 }],
  }).expect(409);
  expect(res.body).toEqual({
    error: 'not enough stock for product 5', product_id: 5, stock: 0, wanted: 1,
  });
  expect(await stock()).toEqual(before);
  const { rows: [{ n }] } = await db.query('SELECT count(*)::integer AS n FROM orders');
  expect(n).toBe(6);
});

test('unknown customers and products, and empty orders, are 400s', async () => {
  await api.post('/orders').send({ customer_id: 42, items: [{ product_id: 1, quantity: 1 }] })
    .expect(400);
  await api.post('/orders').send({ customer_id: 1, items: [{ product_id: 42, quantity: 1 }] })
    .expect(400);
  await api.post('/orders').send({ customer_id: 1, items: [] }).expect(400);
  await api.post('/orders').send({ customer_id: 1, items: [{ product_id: 1, quantity: 0 }] })
    .expect(400);
});

test('stock restocked with SQL can be ordered at once', async () => {
  await db.query('UPDATE products SET stock = 2 WHERE id = 5');
  await api.post('/orders').send({ customer_id: 2, items: [{ product_id: 5, quantity: 2 }] })
    .expect(201);
  expect((await stock())[5]).toBe(0);
});

test('concurrent orders for the last units: exactly one wins', async () => {
  await db.query('UPDATE products SET stock = 1 WHERE id = 3');
  const results = await Promise.all([1, 2, 3].map((customer) => api.post('/orders')
    .send({ customer_id: customer, items: [{ product_id: 3, quantity: 1 }] })));
  expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
  expect((await stock())[3]).toBe(0);
});
