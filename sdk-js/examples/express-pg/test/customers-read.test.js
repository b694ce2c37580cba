/**
 * customers-read.test.js: listing and reading customers, including rows written behind the API's back.
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

test('GET /customers lists the seeded customers in id order', async () => {
  const res = await api.get('/customers').expect(200);
  expect(res.body.map((c) => c.email)).toEqual(
    ['ada@example.com', 'grace@example.com', 'edsger@example.com']);
});

test('GET /customers/:id counts the customer\'s orders', async () => {
  const res = await api.get('/customers/2').expect(200);
  expect(res.body).toMatchObject({ id: 2, name: 'Grace Hopper', order_count: 2 });
});

test('a customer inserted with SQL shows up through the API', async () => {
  await db.query(
    `INSERT INTO customers (email, name) VALUES ('barbara@example.com', 'Barbara Liskov'),
                                                ('tony@example.com', 'Tony Hoare')`);
  const res = await api.get('/customers').expect(200);
  expect(res.body).toHaveLength(5);
  expect(res.body.slice(3).map((c) => [c.id, c.name])).toEqual(
    [[4, 'Barbara Liskov'], [5, 'Tony Hoare']]);
});

test('unknown and malformed ids', async () => {
  await api.get('/customers/999').expect(404);
  const res = await api.get('/customers/abc').expect(400);
  expect(res.body.error).toBe('id must be a positive integer');
});

test('after TRUNCATE the list is empty', async () => {
  await db.query('TRUNCATE customers, orders, order_items');
  await api.get('/customers').expect(200, []);
});
