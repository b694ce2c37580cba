/**
 * products-write.test.js: creating products and changing their name, price and stock.
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

test('POST /products creates product 6 with an upper-case SKU', async () => {
  const res = await api.post('/products')
    .send({ sku: 'hd-4k', name: 'Webcam', price_cents: 5900, stock: 12 }).expect(201);
  expect(res.body).toEqual({ id: 6, sku: 'HD-4K', name: 'Webcam', price_cents: 5900, stock: 12 });
});

test('a SKU that is taken is a 409; a negative price is a 400', async () => {
  await api.post('/products').send({ sku: 'KB-01', name: 'Copy', price_cents: 1 }).expect(409);
  await api.post('/products').send({ sku: 'NEG-1', name: 'Negative', price_cents: -1 }).expect(400);
  const { rows: [{ n }] } = await db.query('SELECT count(*)::integer AS n FROM products');
  expect(n).toBe(6);
});

test('PATCH changes the price and adds stock', async () => {
  const res = await api.patch('/products/1').send({ price_cents: 7900, stock_delta: 5 }).expect(200);
  expect(res.body).toMatchObject({ id: 1, price_cents: 7900, stock: 15 });
  expect(await stockOf(1)).toBe(15);
});

test('PATCH cannot take stock below zero (the CHECK constraint)', async () => {
  const res = await api.patch('/products/3').send({ stock_delta: -6 }).expect(400);
  expect(res.body.constraint).toBe('products_stock_check');
  expect(await stockOf(3)).toBe(5);
  await api.patch('/products/3').send({ stock_delta: -5 }).expect(200);
  expect(await stockOf(3)).toBe(0);
});

test('a product changed with SQL is what the API returns', async () => {
  await db.query("UPDATE products SET name = 'Ergonomic mouse', stock = 3 WHERE sku = 'MS-01'");
  const res = await api.get('/products/2').expect(200);
  expect(res.body).toMatchObject({ name: 'Ergonomic mouse', stock: 3 });
});

test('PATCH with nothing to change, or an unknown product', async () => {
  await api.patch('/products/1').send({}).expect(400);
  await api.patch('/products/99').send({ name: 'Ghost' }).expect(404);
});
