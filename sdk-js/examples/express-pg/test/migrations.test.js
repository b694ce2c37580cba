/**
 * migrations.test.js: the template the broker built is the current migrations plus the seed, and seeding again works.
 *
 * Like schema-constraints.test.js, this file leases only a database; when both run in the same
 * worker, the second gets a fresh clone of the template, not the first one's leftovers.
 *
 * @fixtures db:postgres/app
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { connectDb } = require('./support');
const { expectSeed } = require('./seed');
const { migrationFiles } = require('../scripts/migrate');

let db;

beforeAll(async () => {
  db = await connectDb('db');
  await expectSeed(db);
});

afterAll(() => db.end());

test('every file in migrations/ was applied, in order', async () => {
  const { rows } = await db.query('SELECT name FROM schema_migrations ORDER BY applied_at, name');
  expect(rows.map((r) => r.name)).toEqual(migrationFiles());
});

test('the database is the lease\'s own, reached with the lease\'s own role', async () => {
  const { db: fields } = globalThis.fixtures;
  const { rows: [who] } = await db.query('SELECT current_database() AS database, current_user AS user');
  expect(who).toEqual({ database: fields.database, user: fields.user });
});

test('emptied and seeded again, it holds the seed once more', async () => {
  await db.query('TRUNCATE customers, products, orders, order_items');
  const { rows: [{ n }] } = await db.query('SELECT count(*)::integer AS n FROM products');
  expect(n).toBe(0);
  await db.query(fs.readFileSync(path.join(__dirname, '..', 'seed.sql'), 'utf8'));
  await expectSeed(db);
});

test('new rows after the seed continue the seeded ids', async () => {
  const { rows: [row] } = await db.query(
    "INSERT INTO customers (email, name) VALUES ('new@example.com', 'New') RETURNING id");
  expect(row.id).toBe(4);
});
