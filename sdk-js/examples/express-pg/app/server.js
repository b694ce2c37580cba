// server.js: runs the orders API on PORT (or a socket passed in LISTEN_FDS) against DATABASE_URL.
//
//   PORT=3000 DATABASE_URL=postgres://... node app/server.js
//
// HOST defaults to 127.0.0.1. When a supervisor passes a listening socket the systemd way
// (LISTEN_FDS=1 and LISTEN_PID=<this process>, as the broker does for templates with
// socket_handoff), the server accepts on fd 3 and PORT is not used. SIGTERM and SIGINT close
// the listener and the pool, then exit 0.
'use strict';

const { Pool } = require('pg');
const { createApp } = require('./app');

function fail(message) {
  console.error(`orders-api: ${message}`);
  process.exit(2);
}

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) fail('DATABASE_URL is not set');

const handedOver = process.env.LISTEN_FDS === '1' && process.env.LISTEN_PID === String(process.pid);
const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT);
if (!handedOver && !(Number.isInteger(port) && port > 0 && port < 65536)) {
  fail(`PORT must be a TCP port, got "${process.env.PORT || ''}"`);
}

const pool = new Pool({
  connectionString: databaseUrl,
  max: Number(process.env.PG_POOL_MAX) || 4,
  application_name: 'orders-api',
});
pool.on('error', (err) => console.error(`orders-api: idle database client: ${err.message}`));

const server = createApp(pool).listen(handedOver ? { fd: 3 } : { port, host });
server.on('listening', () => {
  const addr = server.address();
  const where = typeof addr === 'object' && addr ? `http://${addr.address}:${addr.port}` : String(addr);
  console.log(`orders-api: listening on ${where} (pid ${process.pid})`);
});
server.on('error', (err) => fail(`cannot listen: ${err.message}`));

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`orders-api: ${signal}, stopping`);
  server.close(() => pool.end().finally(() => process.exit(0)));
  /* Keep-alive connections would hold close() open. */
  server.closeAllConnections();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
