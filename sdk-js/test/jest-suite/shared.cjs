// shared.cjs: helpers for the Jest suite: listen on a leased port, talk to it, and record what a file was given.
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

/** Listens on host:port and resolves to the server; rejects with EADDRINUSE when it is taken. */
function listen(server, port, host) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}

function close(server) {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

/** Connects to host:port, sends a line and resolves to what comes back before the end. */
function ask(port, host, line) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host }, () => sock.end(`${line}\n`));
    let data = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
  });
}

/** A server that answers with a tag, so a test can tell its own server from another's. */
function echoServer(tag) {
  return net.createServer((sock) => {
    sock.setEncoding('utf8');
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => sock.end(`${tag}:${data.trim()}`));
  });
}

/** Records which process, session and lease ran this file, for suite-teardown.cjs to check. */
function record(file) {
  const entry = {
    file: path.basename(file),
    pid: process.pid,
    worker: process.env.JEST_WORKER_ID,
    session: globalThis.fixtureBroker.session,
    lease: globalThis.fixtureBroker.lease,
  };
  fs.writeFileSync(path.join(process.env.FXB_SUITE_RECORDS, `${entry.file}.json`),
    JSON.stringify(entry));
}

module.exports = { listen, close, ask, echoServer, record };
