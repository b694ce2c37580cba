/**
 * drizzle.test.cjs: the drizzle-kit push recipe.
 *
 * @fixtures db:postgres/drizzle
 */
'use strict';

const { eq } = require('drizzle-orm');
const { drizzle } = require('drizzle-orm/node-postgres');
const { authors, books } = require('./drizzle/schema.cjs');
const checkClone = require('./check.cjs');

test('the clone has the pushed schema and the seed, and drizzle queries it', async () => {
  const got = await checkClone(fixtures.db.url);
  expect(got).toEqual({ tables: ['authors', 'books'], fk: ['authors'],
    rows: [{ name: 'Ursula K. Le Guin', title: 'The Dispossessed' }] });
  const db = drizzle(fixtures.db.url);
  try {
    const rows = await db.select({ title: books.title }).from(books)
      .innerJoin(authors, eq(books.authorId, authors.id)).where(eq(authors.name, 'Ursula K. Le Guin'));
    expect(rows).toEqual([{ title: 'The Dispossessed' }]);
  } finally {
    await db.$client.end();
  }
});
