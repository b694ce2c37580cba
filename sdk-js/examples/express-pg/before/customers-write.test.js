/**
 * customers-write.test.js: creating customers: validation, normalised e-mail, one customer per address.
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

async function customerCount() {
  return (await db.query('SELECT count(*)::integer AS n FROM customers')).rows[0].n;
}

test('POST /customers creates the fourth customer', async () => {
  const res = await api.post('/customers')
    .send({ email: 'Alan@Example.com', name: ' Alan Turing ' }).expect(201);
  expect(res.body).toMatchObject({ id: 4, email: 'alan@example.com', name: 'Alan Turing' });
  expect(res.headers.location).toBe('/customers/4');
  expect(await customerCount()).toBe(4);
});

test('an address that is taken is a 409, and nothing is written', async () => {
  const res = await api.post('/customers')
    .send({ email: 'ada@example.com', name: 'Another Ada' }).expect(409);
  expect(res.body.constraint).toBe('customers_email_key');
  expect(await customerCount()).toBe(4);
});

test('missing fields and a malformed address are 400s', async () => {
  await api.post('/customers').send({ name: 'No Mail' }).expect(400);
  await api.post('/customers').send({ email: 'x@example.com' }).expect(400);
  const res = await api.post('/customers').send({ email: 'not-an-address', name: 'N' }).expect(400);
  expect(res.body.constraint).toBe('customers_email_check');
  expect(await customerCount()).toBe(4);
});

test('many customers in a row get consecutive ids, after those the refused inserts used up', async () => {
  const ids = [];
  for (let i = 0; i < 10; i++) {
    const res = await api.post('/customers')
      .send({ email: `bulk${i}@example.com`, name: `Bulk ${i}` }).expect(201);
    ids.push(res.body.id);
  }
  /* The duplicate and the malformed address above each took a value from the sequence. */
  expect(ids).toEqual([7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  expect(await customerCount()).toBe(14);
});
