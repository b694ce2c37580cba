// liveness.test.mjs: a connection that goes silent is noticed, torn down and resumed.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { connect } from '../index.mjs';
import { startBroker } from './helpers/broker.mjs';

/* startBroker runs the broker under a small shell watchdog: the broker is its child. */
function brokerPid(broker) {
  const children = readFileSync(`/proc/${broker.pid}/task/${broker.pid}/children`, 'utf8')
    .trim().split(/\s+/).map(Number);
  const pid = children.find((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'fixture-broker';
    } catch {
      return false;
    }
  });
  assert.ok(pid, `no fixture-broker among the children of ${broker.pid}: ${children}`);
  return pid;
}

describe('silence', () => {
  test('a broker that goes silent is left after dead_after_ms, and the session resumes', { timeout: 30000 }, async () => {
    /* A stopped broker keeps its TCP connections (the kernel still acknowledges): only
     * the silence tells. */
    const broker = await startBroker(['--ports', '28040-28041', '--heartbeat-ms', '200',
      '--dead-after-ms', '1000', '--grace-ms', '10000']);
    const pid = brokerPid(broker);
    const c = await connect({ url: broker.url });
    let stopped = false;
    try {
      assert.equal(c.limits.dead_after_ms, 1000);
      assert.equal(c.deadAfterMs, 1000);
      const lease = await c.acquire({ fixtures: { http: 'port' } });
      const session = c.session;
      const disconnected = once(c, 'disconnect');
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      const [info] = await disconnected;
      assert.match(info.reason, /nothing from the broker for \d+ ms \(deadAfterMs 1000\)/);
      assert.equal(c.connected, false);
      const reconnected = once(c, 'reconnect');
      process.kill(pid, 'SIGCONT');
      stopped = false;
      const [re] = await reconnected;
      assert.equal(re.resumed, true);
      assert.equal(c.session, session);
      assert.equal(lease.released, false);
      const listed = await c.list();
      assert.deepEqual(listed.map((l) => l.lease), [lease.id]);
      assert.deepEqual(listed[0].fixtures, lease.fixtures);
      assert.equal(await lease.release(), true);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await c.close();
    }
  });

  test('an idle client that hears the broker\'s pings keeps its connection', async () => {
    const broker = await startBroker(['--ports', '28042-28042', '--heartbeat-ms', '100',
      '--dead-after-ms', '400']);
    const c = await connect({ url: broker.url });
    try {
      let dropped = 0;
      c.on('disconnect', () => dropped++);
      /* Ten times dead_after_ms without a call: pings alone keep it open. */
      await new Promise((resolve) => setTimeout(resolve, 4000));
      assert.equal(dropped, 0);
      assert.equal(c.connected, true);
    } finally {
      await c.close();
    }
  });

  test('without heartbeat_ms the client probes with its own ping before it gives up', async () => {
    /* A broker that never pings (--heartbeat-ms 0) still answers pings: the client's probe
     * halfway to deadAfterMs keeps an idle connection alive. */
    const broker = await startBroker(['--ports', '28043-28043', '--heartbeat-ms', '0']);
    const c = await connect({ url: broker.url, deadAfterMs: 400 });
    try {
      assert.equal(c.limits.heartbeat_ms, 0);
      let dropped = 0;
      c.on('disconnect', () => dropped++);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.equal(dropped, 0);
      assert.equal(c.connected, true);
    } finally {
      await c.close();
    }
  });

  test('an event loop blocked past deadAfterMs reads the pings that came before it judges', async () => {
    /* Timers run before I/O: the broker's pings that arrived while the loop was blocked
     * are in the socket, not yet heard, when the watch's timer fires. */
    const broker = await startBroker(['--ports', '28044-28044', '--heartbeat-ms', '200',
      '--dead-after-ms', '5000']);
    const c = await connect({ url: broker.url, deadAfterMs: 1500 });
    try {
      let dropped = null;
      c.on('disconnect', (e) => { dropped = e.reason; });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const end = Date.now() + 2000;
      while (Date.now() < end) {
        /* blocked, as a long synchronous test would be */
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(dropped, null);
      assert.equal(c.connected, true);
    } finally {
      await c.close();
    }
  });

  test('deadAfterMs must be a non-negative number', async () => {
    await assert.rejects(connect({ url: 'ws://127.0.0.1:1', deadAfterMs: -1 }),
      { errorName: 'INVALID_ARGUMENT', code: -1 });
    await assert.rejects(connect({ url: 'ws://127.0.0.1:1', deadAfterMs: '5s' }),
      { errorName: 'INVALID_ARGUMENT' });
  });
});
