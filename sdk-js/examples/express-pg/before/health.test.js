/**
 * health.test.js: the server the file leased is up, answers errors as JSON, and works on a database of its own.
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

test('GET /health answers ok', async () => {
  await api.get('/health').expect(200, { status: 'ok' });
});

test('an unknown route is a JSON 404', async () => {
  const res = await api.get('/nowhere').expect(404);
  expect(res.body).toEqual({ error: 'no route GET /nowhere' });
});

test('a body that is not JSON is a 400', async () => {
  const res = await api.post('/customers').set('content-type', 'application/json')
    .send('{"email": ').expect(400);
  expect(res.body.error).toBe('the body is not valid JSON');
});

test('the server and this file share one database, and nobody else writes to it', async () => {
  /* The server's pool holds the connection its health check used. */
  const { rows: [{ n }] } = await db.query(
    `SELECT count(*)::integer AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()`);
  expect(n).toBeGreaterThanOrEqual(1);
  await db.query('DELETE FROM order_items');
  const orders = (await api.get('/orders').expect(200)).body;
  expect(orders.map((o) => o.total_cents)).toEqual([0, 0, 0, 0]);
});
