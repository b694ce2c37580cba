// client.test.mjs: connect, acquire, release, renew, close, errors and waiting acquires against the real broker.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, FixtureBrokerError, Lease } from '../index.mjs';
import { startBroker, until } from './helpers/broker.mjs';

const POOL = { first: 28000, last: 28009 };

let broker;

before(async () => {
  broker = await startBroker(['--ports', `${POOL.first}-${POOL.last}`, '--port-quarantine-ms', '0']);
});

async function leasedOnBroker() {
  const c = await connect({ url: broker.url, client: 'observer' });
  try {
    return (await c.status()).ports.leased;
  } finally {
    await c.close();
  }
}

describe('connect', () => {
  test('says hello and keeps the session, its resume token and the broker\'s limits', async () => {
    const c = await connect({ url: broker.url, client: 'sdk-test' });
    try {
      assert.match(c.session, /^s-\d+$/);
      assert.match(c.resumeToken, /^r-[0-9a-f]{32}$/);
      assert.deepEqual(c.limits.ports, POOL);
      assert.equal(c.limits.grace_ms, 5000);
      assert.equal(c.broker.version, '0.1.0');
      assert.equal(c.connected, true);
    } finally {
      await c.close();
    }
  });

  test('takes the URL from FIXTURE_BROKER_URL when none is given', async () => {
    const saved = process.env.FIXTURE_BROKER_URL;
    process.env.FIXTURE_BROKER_URL = broker.url;
    try {
      const c = await connect();
      assert.equal(c.url, broker.url);
      assert.match(c.session, /^s-/);
      await c.close();
    } finally {
      if (saved === undefined) delete process.env.FIXTURE_BROKER_URL;
      else process.env.FIXTURE_BROKER_URL = saved;
    }
  });

  test('fails with CONNECT_FAILED when nothing listens', async () => {
    const server = net.createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(connect({ url: `ws://127.0.0.1:${port}` }), (err) => {
      assert.ok(err instanceof FixtureBrokerError);
      assert.equal(err.errorName, 'CONNECT_FAILED');
      assert.equal(err.code, -3);
      assert.equal(err.fromBroker, false);
      assert.match(err.message, /ECONNREFUSED/);
      return true;
    });
  });
});

describe('leases', () => {
  test('acquire grants each named port from the pool, as plain values', async () => {
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { http: { kind: 'port' }, grpc: 'port' } });
      assert.ok(lease instanceof Lease);
      assert.match(lease.id, /^l-\d+-[0-9a-f]{12}$/);
      assert.deepEqual(Object.keys(lease.fixtures).sort(), ['grpc', 'http']);
      for (const f of Object.values(lease.fixtures)) {
        assert.deepEqual(Object.keys(f).sort(), ['host', 'kind', 'port']);
        assert.equal(f.kind, 'port');
        assert.equal(f.host, '127.0.0.1');
        assert.ok(f.port >= POOL.first && f.port <= POOL.last, `port ${f.port} is outside the pool`);
      }
      assert.notEqual(lease.fixtures.http.port, lease.fixtures.grpc.port);
      assert.equal(lease.ttlMs, null);
      assert.equal(await lease.release(), true);
    } finally {
      await c.close();
    }
  });

  test('a leased port can be bound by the caller', async () => {
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { http: 'port' } });
      const { host, port } = lease.fixtures.http;
      const server = net.createServer();
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, resolve);
      });
      assert.equal(server.address().port, port);
      await new Promise((resolve) => server.close(resolve));
      await lease.release();
    } finally {
      await c.close();
    }
  });

  test('release is idempotent: the first says released, the next does not', async () => {
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { a: 'port' } });
      assert.equal(await lease.release(), true);
      assert.equal(lease.released, true);
      assert.equal(await lease.release(), false);
      assert.equal(await c.release(lease.id), false);
      assert.deepEqual(await c.list(), []);
    } finally {
      await c.close();
    }
  });

  test('lease.list shows the lease with its labels; labels are sent as strings', async () => {
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { a: 'port' }, labels: { worker: 3, file: 'x.test.js' } });
      const [listed] = await c.list();
      assert.equal(listed.lease, lease.id);
      assert.deepEqual(listed.labels, { worker: '3', file: 'x.test.js' });
      assert.deepEqual(listed.fixtures, lease.fixtures);
      await lease.release();
    } finally {
      await c.close();
    }
  });

  test('renew sets a TTL and reports the new expiry', async () => {
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { a: 'port' }, ttlMs: 60000 });
      assert.equal(lease.ttlMs, 60000);
      const r = await lease.renew(120000);
      assert.equal(r.ttlMs, 120000);
      assert.ok(r.expiresInMs > 60000 && r.expiresInMs <= 120000, `expiresInMs ${r.expiresInMs}`);
      assert.equal(lease.ttlMs, 120000);
      await lease.release();
    } finally {
      await c.close();
    }
  });

  test('Symbol.asyncDispose releases the lease', async () => {
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { a: 'port', b: 'port' } });
      const dispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose');
      await lease[dispose]();
      assert.equal(lease.released, true);
      assert.deepEqual(await c.list(), []);
    } finally {
      await c.close();
    }
  });

  test('close releases the session\'s leases at once, and later calls fail with CLIENT_CLOSED', async () => {
    const c = await connect({ url: broker.url });
    const lease = await c.acquire({ fixtures: { a: 'port', b: 'port', c: 'port' } });
    assert.equal(await leasedOnBroker(), 3);
    await c.close();
    assert.equal(c.closed, true);
    assert.equal(lease.released, true);
    /* Released, not waiting out the grace period of a dropped session. */
    assert.equal(await leasedOnBroker(), 0);
    await assert.rejects(c.status(), { name: 'FixtureBrokerError', errorName: 'CLIENT_CLOSED', code: -7 });
  });

  test('the client\'s Symbol.asyncDispose closes it', async () => {
    const c = await connect({ url: broker.url });
    await c.acquire({ fixtures: { a: 'port' } });
    const dispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose');
    await c[dispose]();
    assert.equal(c.closed, true);
    assert.equal(await leasedOnBroker(), 0);
  });

  test('call() sends any method and resolves to its result', async () => {
    const c = await connect({ url: broker.url });
    try {
      const status = await c.call('broker.status');
      assert.equal(status.ports.size, 10);
      const doc = await c.call('rpc.discover', {});
      assert.equal(doc.openrpc, '1.2.6');
      assert.ok(doc.methods.some((m) => m.name === 'lease.acquire'));
    } finally {
      await c.close();
    }
  });
});

describe('errors', () => {
  let c;
  before(async () => {
    c = await connect({ url: broker.url });
  });
  after(() => c.close());

  test('an unknown fixture kind is UNKNOWN_FIXTURE_KIND with the broker\'s message and data', async () => {
    await assert.rejects(c.acquire({ fixtures: { db: { kind: 'mongodb' } } }), (err) => {
      assert.ok(err instanceof FixtureBrokerError);
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'FixtureBrokerError');
      assert.equal(err.code, 1005);
      assert.equal(err.errorName, 'UNKNOWN_FIXTURE_KIND');
      assert.equal(err.data.name, 'UNKNOWN_FIXTURE_KIND');
      assert.equal(err.method, 'lease.acquire');
      assert.equal(err.fromBroker, true);
      assert.match(err.message, /mongodb/);
      return true;
    });
  });

  test('bad params are INVALID_PARAMS with data.detail', async () => {
    await assert.rejects(c.acquire({ fixtures: { http: 'port' }, waitMs: -1 }), (err) => {
      assert.equal(err.code, -32602);
      assert.equal(err.errorName, 'INVALID_PARAMS');
      assert.equal(typeof err.data.detail, 'string');
      return true;
    });
  });

  test('an unknown method is METHOD_NOT_FOUND', async () => {
    await assert.rejects(c.call('lease.nope', {}), { code: -32601, errorName: 'METHOD_NOT_FOUND' });
  });

  test('renewing a lease the broker does not hold is LEASE_NOT_FOUND', async () => {
    await assert.rejects(c.call('lease.renew', { lease: 'l-999999' }), { code: 1003, errorName: 'LEASE_NOT_FOUND' });
  });

  test('more fixtures than the limit is TOO_MANY_FIXTURES', async () => {
    const fixtures = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, 'port']));
    await assert.rejects(c.acquire({ fixtures }), { code: 1006, errorName: 'TOO_MANY_FIXTURES' });
  });

  test('more ports than the pool is PORTS_EXHAUSTED, with the pool\'s state in data', async () => {
    const held = await c.acquire({ fixtures: { mine: 'port' } });
    try {
      const fixtures = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`p${i}`, 'port']));
      await assert.rejects(c.acquire({ fixtures }), (err) => {
        assert.equal(err.code, 1101);
        assert.equal(err.errorName, 'PORTS_EXHAUSTED');
        assert.equal(err.data.kind, 'port');
        assert.equal(err.data.requested, 10);
        assert.equal(err.data.size, 10);
        assert.equal(err.data.held_by_session, 1);
        assert.equal(err.data.free + err.data.leased + err.data.quarantined, 10);
        assert.match(err.data.fixture, /^p\d$/);
        return true;
      });
    } finally {
      await held.release();
    }
  });

  test('a failed acquire leaves nothing leased: leases are all or nothing', async () => {
    const fixtures = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`p${i}`, 'port']));
    await assert.rejects(c.acquire({ fixtures }), { errorName: 'PORTS_EXHAUSTED' });
    assert.deepEqual(await c.list(), []);
  });

  test('another session\'s lease cannot be released: LEASE_NOT_OWNED, and it stays leased', async () => {
    const other = await connect({ url: broker.url });
    try {
      const lease = await other.acquire({ fixtures: { x: 'port' } });
      await assert.rejects(c.release(lease.id), { code: 1004, errorName: 'LEASE_NOT_OWNED' });
      assert.equal((await other.list()).length, 1);
    } finally {
      await other.close();
    }
  });

  test('a request over the broker\'s message cap is refused by the client, and the connection stays', async () => {
    await assert.rejects(c.call('broker.status', { pad: 'x'.repeat(c.limits.max_message_bytes) }),
      { errorName: 'INVALID_ARGUMENT', code: -1 });
    assert.equal((await c.status()).ports.size, 10);
  });

  test('a server\'s log tail in data goes into the message', () => {
    const err = FixtureBrokerError.fromRpc({
      code: 1201,
      message: 'server "api" exited with status 1 before it was ready',
      data: { name: 'SERVER_START_FAILED', log_tail: { stdout: 'listening...\n', stderr: 'Error: boom\n' } },
    }, 'lease.acquire');
    assert.equal(err.code, 1201);
    assert.equal(err.errorName, 'SERVER_START_FAILED');
    assert.equal(err.message,
      'server "api" exited with status 1 before it was ready\n--- log tail ---\n[stdout]\nlistening...\n[stderr]\nError: boom');
    const plain = FixtureBrokerError.fromRpc({ code: 1, message: 'm', data: { name: 'X', log_tail: 'a\nb\n' } }, 'm');
    assert.equal(plain.message, 'm\n--- log tail ---\na\nb');
  });
});

describe('waiting acquires', () => {
  test('an acquire with waitMs waits for a release and gets the released port', async () => {
    const small = await startBroker(['--ports', '28010-28011', '--port-quarantine-ms', '0']);
    const holder = await connect({ url: small.url });
    const waiter = await connect({ url: small.url });
    try {
      const first = await holder.acquire({ fixtures: { a: 'port' } });
      const second = await holder.acquire({ fixtures: { b: 'port' } });
      let settled = false;
      const pending = waiter.acquire({ fixtures: { w: 'port' }, waitMs: 60000 })
        .finally(() => { settled = true; });
      await until(async () => (await holder.status()).waiting === 1);
      assert.equal(settled, false);
      await second.release();
      const got = await pending;
      assert.equal(got.fixtures.w.port, second.fixtures.b.port);
      await got.release();
      await first.release();
    } finally {
      await holder.close();
      await waiter.close();
    }
  });

  test('a waiting acquire that times out on the client is released when the grant comes later', async () => {
    const small = await startBroker(['--ports', '28012-28012', '--port-quarantine-ms', '0']);
    const holder = await connect({ url: small.url });
    const waiter = await connect({ url: small.url });
    try {
      const held = await holder.acquire({ fixtures: { a: 'port' } });
      await assert.rejects(waiter.acquire({ fixtures: { w: 'port' }, waitMs: 60000, timeoutMs: 300 }),
        { errorName: 'TIMEOUT', code: -4 });
      assert.equal((await holder.status()).waiting, 1);
      await held.release();
      /* The broker grants the queued acquire to the waiter's session; the client, whose
       * caller gave up, hands it straight back. */
      await until(async () => {
        const s = await holder.status();
        return s.waiting === 0 && s.leases === 0;
      });
      assert.deepEqual(await waiter.list(), []);
    } finally {
      await holder.close();
      await waiter.close();
    }
  });
});

describe('tokens', () => {
  test('a broker with tokens refuses a session without one and accepts FIXTURE_BROKER_TOKEN', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-token-'));
    const file = path.join(dir, 'tokens');
    fs.writeFileSync(file, 'secret-one\nsecret-two\n', { mode: 0o600 });
    const secured = await startBroker(['--ports', '28014-28014', '--token-file', file]);
    const saved = process.env.FIXTURE_BROKER_TOKEN;
    try {
      delete process.env.FIXTURE_BROKER_TOKEN;
      await assert.rejects(connect({ url: secured.url }), { code: 1001, errorName: 'UNAUTHENTICATED' });
      await assert.rejects(connect({ url: secured.url, token: 'wrong' }), { errorName: 'UNAUTHENTICATED' });
      process.env.FIXTURE_BROKER_TOKEN = 'secret-two';
      const c = await connect({ url: secured.url });
      const lease = await c.acquire({ fixtures: { a: 'port' } });
      assert.equal(lease.fixtures.a.port, 28014);
      await c.close();
    } finally {
      if (saved === undefined) delete process.env.FIXTURE_BROKER_TOKEN;
      else process.env.FIXTURE_BROKER_TOKEN = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
