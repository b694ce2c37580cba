/**
 * typeorm.test.cjs: the TypeORM synchronize recipe.
 *
 * @fixtures db:postgres/typeorm
 */
'use strict';

const { DataSource } = require('typeorm');
const { Author, Book } = require('./typeorm/entities.cjs');
const checkClone = require('./check.cjs');

test('the clone has the entities\' tables and the seed, and the entities work on it', async () => {
  const got = await checkClone(fixtures.db.url);
  expect(got).toEqual({ tables: ['authors', 'books'], fk: ['authors'],
    rows: [{ name: 'Ursula K. Le Guin', title: 'The Dispossessed' }] });
  const ds = new DataSource({ type: 'postgres', url: fixtures.db.url, entities: [Author, Book] });
  await ds.initialize();
  try {
    const author = await ds.getRepository('Author').findOne({ where: { name: 'Ursula K. Le Guin' },
      relations: { books: true } });
    expect(author.books.map((b) => b.title)).toEqual(['The Dispossessed']);
  } finally {
    await ds.destroy();
  }
});
