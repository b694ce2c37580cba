// tls.test.mjs: connect() over wss:// to a real broker serving TLS, with certificates made
// here with the openssl command line (a CA, a server certificate for 127.0.0.1 signed by it,
// and a second CA that signed nothing).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../index.mjs';
import { startBroker } from './helpers/broker.mjs';

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
let dir;
let broker;

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function pem(name) {
  return fs.readFileSync(path.join(dir, name));
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-tls-'));
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', ...EC, '-days', '2', '-subj', `/CN=${ca}`, '-keyout', `${ca}.key`, '-out', `${ca}.pem`);
  }
  openssl('req', ...EC, '-subj', '/CN=broker', '-keyout', 'server.key', '-out', 'server.csr');
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem');
  fs.chmodSync(path.join(dir, 'server.key'), 0o600);
  broker = await startBroker(['--ports', '28070-28071', '--port-quarantine-ms', '0',
    '--tls-cert', path.join(dir, 'server.pem'), '--tls-key', path.join(dir, 'server.key')]);
  assert.match(broker.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
});

after(async () => {
  if (broker) await broker.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function leaseOne(options) {
  const c = await connect({ url: broker.url, ...options });
  try {
    const lease = await c.acquire({ fixtures: { p: 'port' } });
    assert.ok(lease.fixtures.p.port >= 28070 && lease.fixtures.p.port <= 28071);
    await lease.release();
  } finally {
    await c.close();
  }
}

function withEnv(vars, fn) {
  const saved = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return Promise.resolve().then(fn).finally(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

describe('wss://', () => {
  test('the ca option and $FIXTURE_BROKER_CA each verify the broker', async () => {
    await withEnv({ FIXTURE_BROKER_CA: undefined }, () => leaseOne({ ca: pem('ca.pem') }));
    await withEnv({ FIXTURE_BROKER_CA: path.join(dir, 'ca.pem') }, () => leaseOne({}));
    /* An option given wins over the environment. */
    await withEnv({ FIXTURE_BROKER_CA: path.join(dir, 'other-ca.pem') }, () => leaseOne({ ca: pem('ca.pem') }));
  });

  test('a broker another CA signed is refused with a clear error', async () => {
    await withEnv({ FIXTURE_BROKER_CA: undefined }, async () => {
      for (const options of [{ ca: pem('other-ca.pem') }, {}]) {
        await assert.rejects(connect({ url: broker.url, ...options }), (err) => {
          assert.equal(err.errorName, 'CONNECT_FAILED');
          assert.match(err.message, /the broker's TLS certificate was not accepted/);
          return true;
        });
      }
    });
  });

  test('rejectUnauthorized: false connects without verifying, as Node documents it', async () => {
    await withEnv({ FIXTURE_BROKER_CA: undefined }, () => leaseOne({ rejectUnauthorized: false }));
  });

  test('bad TLS settings are INVALID_ARGUMENT', async () => {
    await withEnv({ FIXTURE_BROKER_CA: path.join(dir, 'missing.pem') }, async () => {
      await assert.rejects(connect({ url: broker.url }), { errorName: 'INVALID_ARGUMENT' });
    });
    await assert.rejects(connect({ url: broker.url, ca: pem('ca.pem'), cert: pem('server.pem') }),
      { errorName: 'INVALID_ARGUMENT' });
  });
});
