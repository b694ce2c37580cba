// support.js (before): how the suite got a server and a database before the broker: port 8000 + JEST_WORKER_ID, one shared DATABASE_URL, truncate and seed again in every file.
//
// This is the pattern the broker replaces, kept as it is usually written:
// - the API runs on 8000 + JEST_WORKER_ID (API_PORT_BASE + JEST_WORKER_ID when that is set),
//   started by each file and polled every 100 ms until /health answers (what wait-on does);
// - every file connects to the one database in DATABASE_URL, empties every table
//   (TRUNCATE ... RESTART IDENTITY CASCADE) and runs seed.sql again before its tests.
// It passes in band. README.md shows what happens with workers.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Client } = require('pg');

const ROOT = path.resolve(__dirname, '..');
const SEED_SQL = fs.readFileSync(path.join(ROOT, 'seed.sql'), 'utf8');
const PORT = Number(process.env.API_PORT_BASE || 8000) + Number(process.env.JEST_WORKER_ID || 1);

function databaseUrl() {
  if (!process.env.DATABASE_URL) throw new Error('set DATABASE_URL to the shared test database');
  return process.env.DATABASE_URL;
}

function healthy(url) {
  return new Promise((resolve) => {
    http.get(`${url}/health`, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).on('error', () => resolve(false));
  });
}

/** Starts the API on 8000 + JEST_WORKER_ID; resolves to {url, stop()} once /health answers. */
async function startApi() {
  const url = `http://127.0.0.1:${PORT}`;
  const child = spawn(process.execPath, [path.join(ROOT, 'app', 'server.js')], {
    env: { ...process.env, PORT: String(PORT), DATABASE_URL: databaseUrl() },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 10000;
  while (!(await healthy(url))) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the API did not answer on ${url} within 10 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A connected pg client on the shared database; end() it in afterAll. */
async function connectDb() {
  const db = new Client({ connectionString: databaseUrl(), application_name: 'orders-tests' });
  await db.connect();
  return db;
}

/** Empties every table and seeds again, so the file starts from seed.sql. */
async function resetDatabase(db) {
  await db.query('TRUNCATE customers, products, orders, order_items RESTART IDENTITY CASCADE');
  await db.query(SEED_SQL);
}

module.exports = { PORT, startApi, connectDb, resetDatabase };
