// support.js: what the example's test files share: the leased API's URL and a pg client on the database behind it.
//
// The fixture-broker environment has leased the file's fixtures before the file runs: a file
// with `@fixtures {"api": {"kind": "server", "template": "api"}}` finds its server in
// `fixtures.api` ({host, port, pid, ...}) and the database the server needs in
// `fixtures["api.db"]` ({url, database, user, ...}); a file with `@fixtures db:postgres/app`
// finds its database in `fixtures.db`. Nothing here depends on JEST_WORKER_ID.
'use strict';

const { Client } = require('pg');

function fixture(name) {
  const f = globalThis.fixtures && globalThis.fixtures[name];
  if (!f) {
    throw new Error(`this file has no "${name}" fixture; name it in its @fixtures pragma ` +
      `(it has: ${Object.keys(globalThis.fixtures || {}).join(', ') || 'none'})`);
  }
  return f;
}

/** The base URL of the file's own API server. */
function apiUrl(name = 'api') {
  const { host, port } = fixture(name);
  return `http://${host}:${port}`;
}

/** The URL of the file's database: the API's ("api.db") or a database fixture of its own. */
function databaseUrl(name) {
  if (name) return fixture(name).url;
  const fx = globalThis.fixtures || {};
  return (fx['api.db'] || fx.db || fixture('api.db')).url;
}

/** A connected pg client on the file's database; end() it in afterAll. */
async function connectDb(name) {
  const db = new Client({ connectionString: databaseUrl(name), application_name: 'orders-tests' });
  await db.connect();
  return db;
}

module.exports = { apiUrl, databaseUrl, connectDb };
