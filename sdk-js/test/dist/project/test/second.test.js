/**
 * second.test.js: another file, another worker: its own database, which never sees the
 * rows installed.test.js writes, and its own server.
 *
 * @fixtures api:server/echo, db:postgres/app
 */
'use strict';

const { Client: PgClient } = require('pg');

test('a database of its own, cloned from the seeded template', async () => {
  const db = new PgClient({ connectionString: fixtures.db.url });
  await db.connect();
  try {
    await db.query("INSERT INTO notes (body) VALUES ('second')");
    expect((await db.query('SELECT body FROM notes ORDER BY id')).rows.map((r) => r.body))
      .toEqual(['seeded', 'second']);
  } finally {
    await db.end();
  }
});

test('a server of its own', async () => {
  const res = await fetch(`http://${fixtures.api.host}:${fixtures.api.port}/x`);
  expect((await res.json()).port).toBe(fixtures.api.port);
});
