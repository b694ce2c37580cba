// reconnect.test.mjs: a dropped connection: in-flight calls fail, later calls wait, the session and its leases resume.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { connect } from '../index.mjs';
import { startBroker, until } from './helpers/broker.mjs';

/* Cuts the client's TCP connection from its own side, as a network failure would. */
function dropConnection(client) {
  client._ws._socket.destroy();
}

async function status(url) {
  const c = await connect({ url, client: 'observer' });
  try {
    return await c.status();
  } finally {
    await c.close();
  }
}

describe('resume', () => {
  test('after a drop the client resumes its session and its lease survives', async () => {
    const broker = await startBroker(['--ports', '28020-28024']);
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { http: 'port' } });
      const session = c.session;
      const events = [];
      c.on('disconnect', () => events.push('disconnect'));
      c.on('reconnect', (e) => events.push(`reconnect resumed=${e.resumed}`));
      c.on('sessionLost', () => events.push('sessionLost'));

      const reconnected = once(c, 'reconnect');
      dropConnection(c);
      await reconnected;

      assert.deepEqual(events, ['disconnect', 'reconnect resumed=true']);
      assert.equal(c.session, session);
      const listed = await c.list();
      assert.deepEqual(listed.map((l) => l.lease), [lease.id]);
      assert.deepEqual(listed[0].fixtures, lease.fixtures);
      assert.equal((await status(broker.url)).ports.leased, 1);
      assert.equal(await lease.release(), true);
    } finally {
      await c.close();
    }
  });

  test('a call made while the client reconnects waits and then succeeds', async () => {
    const broker = await startBroker(['--ports', '28025-28026']);
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { a: 'port' } });
      const disconnected = once(c, 'disconnect');
      dropConnection(c);
      await disconnected;
      assert.equal(c.connected, false);
      const listed = await c.list();
      assert.equal(c.connected, true);
      assert.deepEqual(listed.map((l) => l.lease), [lease.id]);
    } finally {
      await c.close();
    }
  });

  test('a call in flight when the connection drops fails with CONNECTION_LOST', async () => {
    const broker = await startBroker(['--ports', '28027-28027', '--port-quarantine-ms', '0']);
    const holder = await connect({ url: broker.url });
    const c = await connect({ url: broker.url });
    try {
      await holder.acquire({ fixtures: { a: 'port' } });
      const waiting = c.acquire({ fixtures: { b: 'port' }, waitMs: 60000 });
      const outcome = waiting.then(() => 'granted', (err) => err);
      await until(async () => (await holder.status()).waiting === 1);
      dropConnection(c);
      const err = await outcome;
      assert.equal(err.errorName, 'CONNECTION_LOST');
      assert.equal(err.code, -3);
      assert.equal(err.method, 'lease.acquire');
      /* The session came back, without the cancelled acquire. */
      await until(() => c.connected);
      assert.deepEqual(await c.list(), []);
      assert.equal((await holder.status()).waiting, 0);
    } finally {
      await holder.close();
      await c.close();
    }
  });

  test('when the grace period is over, the client starts a new session and says the old one is lost', async () => {
    const broker = await startBroker(['--ports', '28028-28029', '--grace-ms', '0']);
    const c = await connect({ url: broker.url });
    try {
      const lease = await c.acquire({ fixtures: { a: 'port' } });
      const old = c.session;
      const lost = once(c, 'sessionLost');
      const reconnected = once(c, 'reconnect');
      dropConnection(c);
      const [info] = await lost;
      const [re] = await reconnected;
      assert.equal(info.previous, old);
      assert.notEqual(c.session, old);
      assert.deepEqual(info.leases.map((l) => l.id), [lease.id]);
      assert.equal(lease.released, true);
      assert.equal(lease.lost, true);
      await assert.rejects(lease.renew(1000),
        { errorName: 'SESSION_LOST', code: -9, method: 'lease.renew' });
      await assert.rejects(lease.logs('a'), { errorName: 'SESSION_LOST' });
      assert.equal(await lease.release(), false);
      assert.equal(re.resumed, false);
      assert.deepEqual(await c.list(), []);
      assert.equal(await c.release(lease.id), false);
      assert.equal((await status(broker.url)).ports.leased, 0);
    } finally {
      await c.close();
    }
  });
});

describe('resume tokens', () => {
  test('connect({resume}) takes over a dropped session with its leases', async () => {
    const broker = await startBroker(['--ports', '28030-28031']);
    const first = await connect({ url: broker.url });
    const lease = await first.acquire({ fixtures: { a: 'port' } });
    const token = first.resumeToken;
    const session = first.session;
    /* Close without releasing: the session waits out its grace period. */
    await first.close({ release: false });
    await until(async () => (await status(broker.url)).sessions_in_grace === 1);
    const second = await connect({ url: broker.url, resume: token });
    try {
      assert.equal(second.session, session);
      assert.equal(second.hello.resumed, true);
      assert.deepEqual((await second.list()).map((l) => l.lease), [lease.id]);
    } finally {
      await second.close();
    }
  });

  test('connect({resume}) with an unknown token fails with RESUME_UNKNOWN', async () => {
    const broker = await startBroker(['--ports', '28032-28032']);
    await assert.rejects(connect({ url: broker.url, resume: 'r-00000000000000000000000000000000' }),
      { code: 1002, errorName: 'RESUME_UNKNOWN' });
  });

  test('a client whose live session another connection resumed does not take it back', async () => {
    const broker = await startBroker(['--ports', '28033-28034']);
    const first = await connect({ url: broker.url });
    const lease = await first.acquire({ fixtures: { a: 'port' } });
    let second = null;
    try {
      const lost = once(first, 'sessionLost');
      try {
        second = await connect({ url: broker.url, resume: first.resumeToken });
      } catch (err) {
        /* protocol/README.md: a token in use is RESUME_UNKNOWN, and nothing changes. */
        assert.equal(err.errorName, 'RESUME_UNKNOWN');
        assert.deepEqual((await first.list()).map((l) => l.lease), [lease.id]);
        return;
      }
      /* The broker handed the session over: the first client must move on to a new
       * session, not steal it back, and the lease stays with the second. */
      await lost;
      assert.notEqual(first.session, second.session);
      assert.deepEqual(await first.list(), []);
      assert.deepEqual((await second.list()).map((l) => l.lease), [lease.id]);
    } finally {
      await first.close();
      if (second) await second.close();
    }
  });
});
