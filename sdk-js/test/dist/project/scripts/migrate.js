// migrate.js: builds the "app" template: runs schema.sql on the database at the URL argument.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

(async () => {
  const client = new Client({ connectionString: process.argv[2] });
  await client.connect();
  await client.query(fs.readFileSync(path.join(__dirname, '..', 'schema.sql'), 'utf8'));
  await client.end();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
