// shared.mjs: helpers for the Vitest suite: listen on a leased port, talk to it, record what a file was given.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { inject } from 'vitest';

export function listen(server, port, host) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}

export function close(server) {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

export function ask(port, host, line) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host }, () => sock.end(`${line}\n`));
    let data = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
  });
}

export function echoServer(tag) {
  return net.createServer((sock) => {
    sock.setEncoding('utf8');
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => sock.end(`${tag}:${data.trim()}`));
  });
}

export function record(file) {
  const name = path.basename(file);
  fs.writeFileSync(path.join(inject('suiteRecords'), `${name}.json`), JSON.stringify({
    file: name,
    pid: process.pid,
    pool: process.env.VITEST_POOL_ID,
    session: globalThis.fixtureBroker.session,
    lease: globalThis.fixtureBroker.lease,
  }));
}
