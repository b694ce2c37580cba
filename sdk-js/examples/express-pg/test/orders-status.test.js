/**
 * orders-status.test.js: the life of an order: pending, paid, shipped, or cancelled with its stock given back.
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

async function stockOf(id) {
  return (await db.query('SELECT stock FROM products WHERE id = $1', [id])).rows[0].stock;
}

test('pending order 3 is paid, then shipped', async () => {
  await api.patch('/orders/3').send({ status: 'paid' }).expect(200);
  const res = await api.patch('/orders/3').send({ status: 'shipped' }).expect(200);
  expect(res.body).toMatchObject({ id: 3, status: 'shipped', total_cents: 5000 });
});

test('a shipped order cannot go back', async () => {
  const res = await api.patch('/orders/2').send({ status: 'pending' }).expect(409);
  expect(res.body.error).toBe('an order that is shipped cannot become pending');
});

test('cancelling a paid order gives its stock back', async () => {
  expect(await stockOf(1)).toBe(10);
  expect(await stockOf(4)).toBe(100);
  await api.patch('/orders/1').send({ status: 'cancelled' }).expect(200);
  expect(await stockOf(1)).toBe(11);
  expect(await stockOf(4)).toBe(102);
});

test('a cancelled order stays cancelled; a bad status is a 400', async () => {
  await api.patch('/orders/1').send({ status: 'paid' }).expect(409);
  await api.patch('/orders/1').send({ status: 'lost' }).expect(400);
  await api.patch('/orders/99').send({ status: 'paid' }).expect(404);
});

test('a new order goes through its whole life', async () => {
  const created = await api.post('/orders')
    .send({ customer_id: 3, items: [{ product_id: 2, quantity: 5 }] }).expect(201);
  expect(created.body.id).toBe(5);
  expect(await stockOf(2)).toBe(20);
  await api.patch('/orders/5').send({ status: 'paid' }).expect(200);
  await api.patch('/orders/5').send({ status: 'cancelled' }).expect(200);
  expect(await stockOf(2)).toBe(25);
  const { rows } = await db.query('SELECT id, status FROM orders ORDER BY id');
  expect(rows).toEqual([
    { id: 1, status: 'cancelled' }, { id: 2, status: 'shipped' }, { id: 3, status: 'shipped' },
    { id: 4, status: 'cancelled' }, { id: 5, status: 'cancelled' },
  ]);
});
