// knex/build.cjs: the knex recipe: migrate.latest() with the app's migrations directory.
'use strict';

const path = require('node:path');
const knex = require('knex');

module.exports = async function buildWithKnex(url) {
  const db = knex({ client: 'pg', connection: url });
  try {
    await db.migrate.latest({ directory: path.join(__dirname, 'migrations'), loadExtensions: ['.cjs'] });
  } finally {
    await db.destroy();
  }
};
