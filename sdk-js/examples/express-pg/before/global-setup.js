// global-setup.js (before): migrates the shared database in DATABASE_URL once per run; each file seeds it again itself.
'use strict';

const migrate = require('../scripts/migrate');

module.exports = async function migrateSharedDatabase() {
  if (!process.env.DATABASE_URL) {
    throw new Error('the "before" suite needs DATABASE_URL: a database it may empty and fill');
  }
  await migrate(process.env.DATABASE_URL, { seed: false });
};
