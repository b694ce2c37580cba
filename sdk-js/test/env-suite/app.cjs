// app.cjs: an app configured by environment variables, read once when it is required (as most are).
'use strict';

const http = require('node:http');
const { Client } = require('pg');

const config = {
  port: Number(process.env.PORT),
  databaseUrl: process.env.DATABASE_URL,
  db: {
    host: process.env.DB_HOST,
    port: Number(process.env.DB_PORT),
    user: process.env.DB_USER,
    password: process.env.DB_PASSWORD,
    database: process.env.DB_NAME,
  },
};

async function query(sql, options = config.db) {
  const client = new Client(options);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

function listen() {
  const server = http.createServer(async (req, res) => {
    const [row] = await query('SELECT current_database() AS db');
    res.end(JSON.stringify(row));
  });
  return new Promise((resolve) => server.listen(config.port, '127.0.0.1', () => resolve(server)));
}

module.exports = { config, query, listen };
