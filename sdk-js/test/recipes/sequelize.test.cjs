/**
 * sequelize.test.cjs: the sequelize.sync() recipe.
 *
 * @fixtures db:postgres/sequelize
 */
'use strict';

const { Sequelize } = require('sequelize');
const defineModels = require('./sequelize/models.cjs');
const checkClone = require('./check.cjs');

test('the clone has the models\' tables and the seed, and the models work on it', async () => {
  const got = await checkClone(fixtures.db.url);
  expect(got).toEqual({ tables: ['authors', 'books'], fk: ['authors'],
    rows: [{ name: 'Ursula K. Le Guin', title: 'The Dispossessed' }] });
  const sequelize = new Sequelize(fixtures.db.url, { logging: false });
  try {
    const { Author, Book } = defineModels(sequelize);
    const author = await Author.findOne({ where: { name: 'Ursula K. Le Guin' }, include: Book });
    expect(author.Books.map((b) => b.title)).toEqual(['The Dispossessed']);
  } finally {
    await sequelize.close();
  }
});
