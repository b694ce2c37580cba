// drain.test.mjs: the client against a draining broker (SIGTERM with --drain-timeout-ms).
//
// A client holding a lease keeps working through the drain (one more acquire, release) and
// the broker exits 0 once it has released; a client holding nothing is closed with 1001,
// waits while the draining broker refuses it, and reports its session lost once a new broker
// answers on the same address (as behind a load balancer), where the session cannot resume.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { connect } from '../index.mjs';
import { startBroker, until } from './helpers/broker.mjs';

test('a held lease survives the drain, and an idle session is reported lost elsewhere', { timeout: 60000 }, async () => {
  /* --grace-ms 0: the client, told so in session.hello, takes RESUME_UNKNOWN from the next
   * broker as final at once (no retries within a grace period, each a session there). */
  const broker = await startBroker(['--ports', '28080-28083', '--drain-timeout-ms', '60000',
    '--grace-ms', '0']);
  const port = new URL(broker.url).port;
  /* The idle client connects first, so its session is s-1, the id the new broker gives the
   * first session it opens: the client must tell the lost session by `resumed`, not by its
   * id alone. */
  const idle = await connect({ url: broker.url, client: 'idle' });
  const holder = await connect({ url: broker.url, client: 'holder' });
  try {
    const lease = await holder.acquire({ fixtures: { http: 'port' } });
    const idleSession = idle.session;
    const lost = [];
    idle.on('sessionLost', (e) => lost.push(e));
    const exited = once(broker.child, 'exit');
    broker.child.kill('SIGTERM');

    await until(() => !idle.connected);
    const st = await holder.status();
    assert.equal(st.draining, true);
    assert.equal(st.shutting_down, false);
    assert.ok(st.drain_remaining_ms > 0 && st.drain_remaining_ms <= 60000, JSON.stringify(st));
    const more = await holder.acquire({ fixtures: { more: 'port' } });
    assert.equal(await more.release(), true);
    assert.equal(broker.child.exitCode, null, 'the broker exited while a lease was held');
    assert.equal(idle.connected, false);
    assert.deepEqual(lost, []);

    assert.equal(await lease.release(), true);
    const [code] = await exited;
    assert.equal(code, 0);
    await holder.close(); /* so that the idle client opens the next broker's first session */
    await startBroker(['--ports', '28080-28083', '--listen', `127.0.0.1:${port}`]);
    await until(() => lost.length === 1 && idle.connected);
    assert.equal(lost[0].previous, idleSession);
    assert.deepEqual(await idle.list(), []);
  } finally {
    await holder.close();
    await idle.close();
  }
});
