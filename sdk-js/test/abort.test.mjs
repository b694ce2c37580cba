// abort.test.mjs: an AbortSignal on acquire and call, against the real broker.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { before, test } from 'node:test';
import { connect } from '../index.mjs';
import { startBroker, until } from './helpers/broker.mjs';

let broker;

before(async () => {
  broker = await startBroker(['--ports', '28050-28051', '--port-quarantine-ms', '0']);
});

async function brokerLeases() {
  const c = await connect({ url: broker.url, client: 'observer' });
  try {
    return (await c.status()).leases;
  } finally {
    await c.close();
  }
}

test('an aborted signal rejects at once with ABORTED and sends nothing', async () => {
  const c = await connect({ url: broker.url });
  try {
    const reason = new Error('test over');
    await assert.rejects(c.acquire({ fixtures: { p: 'port' }, signal: AbortSignal.abort(reason) }),
      (err) => err.errorName === 'ABORTED' && err.code === -10 && err.cause === reason &&
        /lease\.acquire: aborted \(test over\)/.test(err.message));
    assert.equal(await brokerLeases(), 0);
  } finally {
    await c.close();
  }
});

test('aborting a waiting acquire rejects it; the grant that comes later is released', async () => {
  const holder = await connect({ url: broker.url, client: 'holder' });
  const c = await connect({ url: broker.url, client: 'waiter' });
  try {
    const held = await holder.acquire({ fixtures: { a: 'port', b: 'port' } });
    const ac = new AbortController();
    const waiting = c.acquire({ fixtures: { p: 'port' }, waitMs: 30000, signal: ac.signal });
    await until(async () => (await holder.status()).waiting === 1);
    ac.abort();
    await assert.rejects(waiting, (err) => err.errorName === 'ABORTED' &&
      err.cause instanceof Error && err.cause.name === 'AbortError');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    /* The broker still grants the queued request once a port is free; the client releases it. */
    await held.release();
    await until(async () => (await brokerLeases()) === 0 && (await holder.status()).waiting === 0);
    assert.deepEqual(await c.list(), []);
  } finally {
    await c.close();
    await holder.close();
  }
});

test('a call that settles first removes its abort listener; a later abort does nothing', async () => {
  const c = await connect({ url: broker.url });
  try {
    const ac = new AbortController();
    const st = await c.call('broker.status', {}, { signal: ac.signal });
    assert.equal(typeof st.version, 'string');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    ac.abort();
    const lease = await c.acquire({ fixtures: { p: 'port' }, signal: ac.signal }).catch((e) => e);
    assert.equal(lease.errorName, 'ABORTED');
    assert.equal((await c.status()).leases, 0);
  } finally {
    await c.close();
  }
});
