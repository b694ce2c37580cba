/**
 * products-search.test.js: GET /products?q= matches name or SKU, case-insensitively, with LIKE wildcards taken literally.
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

async function search(query) {
  const res = await api.get('/products').query(query).expect(200);
  return res.body.map((p) => p.sku);
}

test('by name, by SKU, in any case', async () => {
  expect(await search({ q: 'mouse' })).toEqual(['MS-01']);
  expect(await search({ q: 'usb' })).toEqual(['CB-USB']);
  expect(await search({ q: 'US' })).toEqual(['MS-01', 'CB-USB']);
  expect(await search({ q: 'zebra' })).toEqual([]);
});

test('in_stock=true leaves out what is sold out', async () => {
  expect(await search({ in_stock: 'true' })).toEqual(['KB-01', 'MS-01', 'MN-27', 'CB-USB']);
  expect(await search({ q: 'dock', in_stock: 'true' })).toEqual([]);
});

test('rows inserted with SQL are found, and % and _ match only themselves', async () => {
  await db.query(
    `INSERT INTO products (sku, name, price_cents, stock) VALUES
       ('PCT-100', '100% cotton mouse mat', 1500, 40),
       ('UND-01', 'Under_score stand', 3900, 2),
       ('MS-02', 'Travel mouse', 1900, 0)`);
  expect(await search({ q: 'mouse' })).toEqual(['MS-01', 'PCT-100', 'MS-02']);
  expect(await search({ q: '100%' })).toEqual(['PCT-100']);
  expect(await search({ q: '%' })).toEqual(['PCT-100']);
  expect(await search({ q: '_' })).toEqual(['UND-01']);
  expect(await search({ q: 'mouse', in_stock: 'true' })).toEqual(['MS-01', 'PCT-100']);
});

test('after deleting every unordered product, only ordered ones are found', async () => {
  await db.query('DELETE FROM products WHERE id NOT IN (SELECT product_id FROM order_items)');
  expect(await search({})).toEqual(['KB-01', 'MS-01', 'MN-27', 'CB-USB']);
});
