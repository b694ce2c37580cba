// sql/build.cjs: the plain SQL recipe: every sql/*.sql file in name order, in one transaction.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

module.exports = async function buildFromSqlFiles(url) {
  const dir = __dirname;
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
      await client.query(fs.readFileSync(path.join(dir, file), 'utf8'));
    }
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
};
