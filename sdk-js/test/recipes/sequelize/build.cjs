// sequelize/build.cjs: the sequelize.sync() recipe: the schema is the models', then a seed row.
'use strict';

const { Sequelize } = require('sequelize');
const defineModels = require('./models.cjs');

module.exports = async function buildWithSequelizeSync(url) {
  const sequelize = new Sequelize(url, { logging: false });
  try {
    const { Author, Book } = defineModels(sequelize);
    await sequelize.sync();
    const author = await Author.create({ name: 'Ursula K. Le Guin' });
    await Book.create({ title: 'The Dispossessed', author_id: author.id });
  } finally {
    await sequelize.close();
  }
};
