// check.cjs: what every runner's test asserts about a file's fixtures: a port it can bind, a database of its own.
'use strict';

const net = require('node:net');
const { Client } = require('pg');

module.exports = async function checkFixtures(fx, who) {
  await new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(fx.http.port, fx.http.host, () => server.close(resolve));
  });
  const db = new Client({ connectionString: fx.db.url });
  await db.connect();
  try {
    await db.query('CREATE TABLE IF NOT EXISTS marks (who text)');
    await db.query('INSERT INTO marks VALUES ($1)', [who]);
    /* Nobody else's row: a database of this file (or, worker-scoped, reset for it). */
    return (await db.query('SELECT who FROM marks')).rows.map((r) => r.who);
  } finally {
    await db.end();
  }
};
