/**
 * sql.test.cjs: the plain SQL recipe.
 *
 * @fixtures db:postgres/sql
 */
'use strict';

const { Client } = require('pg');
const checkClone = require('./check.cjs');

test('the clone has the schema and seed of sql/*.sql', async () => {
  const got = await checkClone(fixtures.db.url);
  expect(got).toEqual({ tables: ['authors', 'books'], fk: ['authors'],
    rows: [{ name: 'Ursula K. Le Guin', title: 'The Dispossessed' }] });
  const client = new Client({ connectionString: fixtures.db.url });
  await client.connect();
  await expect(client.query("INSERT INTO books (author_id, title) VALUES (99, 'x')")).rejects.toThrow(/foreign key/);
  await client.end();
});
