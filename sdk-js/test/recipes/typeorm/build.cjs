// typeorm/build.cjs: the TypeORM recipe: a DataSource with synchronize: true, then a seed row.
'use strict';

const { DataSource } = require('typeorm');
const { Author, Book } = require('./entities.cjs');

module.exports = async function buildWithTypeorm(url) {
  const ds = new DataSource({ type: 'postgres', url, entities: [Author, Book], synchronize: true, logging: false });
  await ds.initialize();
  try {
    const author = await ds.getRepository('Author').save({ name: 'Ursula K. Le Guin' });
    await ds.getRepository('Book').save({ title: 'The Dispossessed', author });
  } finally {
    await ds.destroy();
  }
};
