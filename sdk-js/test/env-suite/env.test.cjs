// env.test.cjs: the app is required at the top of the file, before any hook, and finds its configuration.
'use strict';

const { Client } = require('pg');
const app = require('./app.cjs');

test('DATABASE_URL and PORT are the fixtures\' fields', () => {
  expect(app.config.databaseUrl).toBe(fixtures.db.url);
  expect(app.config.port).toBe(fixtures.http.port);
});

test('DB_* is the database\'s host, port, user, password and name, and the app serves from it', async () => {
  expect(app.config.db).toEqual({ host: fixtures.db.host, port: fixtures.db.port,
    user: fixtures.db.user, password: fixtures.db.password, database: fixtures.db.database });
  const server = await app.listen();
  try {
    const res = await fetch(`http://127.0.0.1:${fixtures.http.port}/`);
    expect(await res.json()).toEqual({ db: fixtures.db.database });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('PG* is libpq\'s names, which node-postgres reads with no options', async () => {
  const client = new Client();
  await client.connect();
  try {
    const [row] = (await client.query('SELECT current_database() AS db, current_user AS u')).rows;
    expect(row).toEqual({ db: fixtures.db.database, u: fixtures.db.user });
  } finally {
    await client.end();
  }
});
