/**
 * migrations.test.js: the template the broker built is the current migrations plus the seed, and seeding again works.
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { connectDb, resetDatabase } = require('./support');
const { expectSeed } = require('../test/seed');
const { migrationFiles } = require('../scripts/migrate');

let db;

beforeAll(async () => {
  db = await connectDb();
  await resetDatabase(db);
  await expectSeed(db);
});

afterAll(() => db.end());

test('every file in migrations/ was applied, in order', async () => {
  const { rows } = await db.query('SELECT name FROM schema_migrations ORDER BY applied_at, name');
  expect(rows.map((r) => r.name)).toEqual(migrationFiles());
});

test('the database is the one in DATABASE_URL, shared by every file and worker', async () => {
  const { rows: [who] } = await db.query('SELECT current_database() AS database');
  expect(who.database).toBe(new URL(process.env.DATABASE_URL).pathname.slice(1));
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
