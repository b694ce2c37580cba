/**
 * knex.test.cjs: the knex migrations recipe.
 *
 * @fixtures db:postgres/knex
 */
'use strict';

const path = require('node:path');
const knex = require('knex');
const checkClone = require('./check.cjs');

test('the clone has the migrated schema, the seed, and knex sees nothing left to run', async () => {
  const got = await checkClone(fixtures.db.url);
  expect(got.tables).toEqual(['authors', 'books', 'knex_migrations', 'knex_migrations_lock']);
  expect(got.fk).toEqual(['authors']);
  expect(got.rows).toEqual([{ name: 'Ursula K. Le Guin', title: 'The Dispossessed' }]);
  const db = knex({ client: 'pg', connection: fixtures.db.url });
  try {
    const [, pending] = await db.migrate.list({ directory: path.join(__dirname, 'knex', 'migrations'),
      loadExtensions: ['.cjs'] });
    expect(pending).toEqual([]);
    await db('authors').insert({ name: 'Octavia E. Butler' });
    expect(await db('authors').count({ n: '*' })).toEqual([{ n: '2' }]);
  } finally {
    await db.destroy();
  }
});
